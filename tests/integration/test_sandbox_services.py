"""The sandbox services over real HTTP: documents, idempotency, faults, domain rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from accord.errors import ConfigurationError
from accord.sandbox import SERVICES, SandboxEnterprise, create_app

MUTATING = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def enterprise(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxEnterprise]:
    with SandboxEnterprise(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture(scope="module")
def clients(enterprise: SandboxEnterprise) -> Iterator[dict[str, httpx.Client]]:
    opened = {name: httpx.Client(base_url=url, timeout=10) for name, url in enterprise.urls.items()}
    yield opened
    for client in opened.values():
        client.close()


@pytest.fixture(autouse=True)
def no_faults_left(clients: dict[str, httpx.Client]) -> Iterator[None]:
    yield
    for client in clients.values():
        client.delete("/_sandbox/faults").raise_for_status()


@pytest.fixture
def crm(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["crm"]


@pytest.fixture
def billing(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["billing"]


@pytest.fixture
def orders(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["orders"]


@pytest.fixture
def helpdesk(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["helpdesk"]


@pytest.fixture
def kyc(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["kyc"]


@pytest.fixture
def notifications(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["notifications"]


def effects(client: httpx.Client, operation: str, key: str | None = None) -> list[dict[str, Any]]:
    response = client.get("/_sandbox/effects", params={"operation": operation})
    response.raise_for_status()
    return [e for e in response.json() if key is None or e["idempotency_key"] == key]


def set_faults(client: httpx.Client, *rules: dict[str, Any]) -> None:
    response = client.put("/_sandbox/faults", json=list(rules))
    assert response.status_code == 200, response.text


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"].endswith(code)
    assert problem["title"] and problem["detail"]
    return problem


def email(to: str, subject: str = "Your refund") -> dict[str, Any]:
    return {"to": to, "subject": subject, "body": "It is on its way."}


# --- OpenAPI documents ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_documents_its_operations(
    clients: dict[str, httpx.Client], name: str
) -> None:
    document = clients[name].get("/openapi.json").json()

    assert document["openapi"].startswith("3.")
    assert not any(path.startswith("/_sandbox") for path in document["paths"])
    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            assert operation["operationId"].isidentifier(), (path, method)
            assert operation["operationId"] == operation["operationId"].lower()
            assert operation["summary"]
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert ("Idempotency-Key" in headers) == (method in MUTATING), (path, method)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"]
            assert "404" in operation["responses"] or "{" not in path
    assert len(operation_ids) == len(set(operation_ids))
    for schema_name, schema in document["components"]["schemas"].items():
        if schema.get("type") == "object":
            assert schema.get("additionalProperties") is False, schema_name


# --- idempotency ---------------------------------------------------------------------------


def test_a_repeat_with_the_same_key_applies_once_and_replays(helpdesk: httpx.Client) -> None:
    ticket = {"customer_id": "cus_00010", "channel": "web", "subject": "Hi", "body": "Help"}
    headers = {"Idempotency-Key": "open-once"}

    first = helpdesk.post("/tickets", json=ticket, headers=headers)
    again = helpdesk.post("/tickets", json=ticket, headers=headers)

    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(effects(helpdesk, "open_ticket", "open-once")) == 1


def test_the_same_key_with_another_body_is_refused(helpdesk: httpx.Client) -> None:
    ticket = {"customer_id": "cus_00011", "channel": "web", "subject": "Hi", "body": "Help"}
    headers = {"Idempotency-Key": "reused"}
    assert helpdesk.post("/tickets", json=ticket, headers=headers).status_code == 201

    changed = helpdesk.post("/tickets", json={**ticket, "body": "Other"}, headers=headers)

    assert_problem(changed, 422, "idempotency_key_reused")
    assert len(effects(helpdesk, "open_ticket", "reused")) == 1


def test_keys_are_scoped_per_operation(notifications: httpx.Client) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    mail = notifications.post("/emails", json=email("scoped@example.com"), headers=headers)
    sms = notifications.post("/sms", json={"to": "+14155550100", "body": "hi"}, headers=headers)

    assert mail.status_code == sms.status_code == 201
    assert len(effects(notifications, "send_email", "shared-key")) == 1
    assert len(effects(notifications, "send_sms", "shared-key")) == 1


def test_concurrent_duplicates_apply_once(notifications: httpx.Client) -> None:
    url = str(notifications.base_url) + "/emails"
    barrier = threading.Barrier(8)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(timeout=10) as own:
            barrier.wait()
            response = own.post(
                url, json=email("race@example.com"), headers={"Idempotency-Key": "race"}
            )
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    applied = [
        r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    ]
    assert len(applied) == 1
    for response in responses:
        if response.status_code == 201:
            assert response.json() == applied[0].json()
        else:
            assert_problem(response, 409, "idempotency_key_in_flight")
    assert len(effects(notifications, "send_email", "race")) == 1
    listed = notifications.get("/messages", params={"recipient": "race@example.com"}).json()
    assert len(listed["messages"]) == 1


def test_a_write_without_a_key_applies_every_time(notifications: httpx.Client) -> None:
    for _ in range(2):
        assert notifications.post("/emails", json=email("nokey@example.com")).status_code == 201

    listed = notifications.get("/messages", params={"recipient": "nokey@example.com"}).json()
    assert len(listed["messages"]) == 2


# --- fault injection -----------------------------------------------------------------------


def test_an_error_before_applies_nothing(notifications: httpx.Client) -> None:
    set_faults(notifications, {"operation": "send_sms", "error_rate": 1.0})
    sms = {"to": "+14155550101", "body": "code 123"}
    headers = {"Idempotency-Key": "sms-before"}

    failed = notifications.post("/sms", json=sms, headers=headers)

    assert_problem(failed, 503, "service_unavailable")
    assert effects(notifications, "send_sms", "sms-before") == []
    notifications.delete("/_sandbox/faults")
    retried = notifications.post("/sms", json=sms, headers=headers)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert len(effects(notifications, "send_sms", "sms-before")) == 1


def test_an_error_after_applies_and_a_retry_gets_the_stored_success(
    billing: httpx.Client,
) -> None:
    set_faults(
        billing,
        {"operation": "issue_refund", "error_rate": 1.0, "error_status": 502, "when": "after"},
    )
    refund = {"order_id": "#W4316152", "amount": 12.5, "method": "original_payment"}
    headers = {"Idempotency-Key": "refund-after"}

    lost = billing.post("/refunds", json=refund, headers=headers)

    assert_problem(lost, 502, "bad_gateway")
    assert len(effects(billing, "issue_refund", "refund-after")) == 1
    found = billing.get("/refunds/search", params={"idempotency_key": "refund-after"})
    assert found.status_code == 200
    billing.delete("/_sandbox/faults")
    retried = billing.post("/refunds", json=refund, headers=headers)
    assert retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == found.json()
    assert len(effects(billing, "issue_refund", "refund-after")) == 1


def test_a_rate_limit_says_when_to_retry(crm: httpx.Client) -> None:
    set_faults(crm, {"operation": "get_customer", "rate_limit_rate": 1.0, "retry_after": 7})

    limited = crm.get("/customers/cus_00001")

    assert_problem(limited, 429, "rate_limited")
    assert limited.headers["Retry-After"] == "7"


def test_a_drop_closes_the_connection_without_a_response(crm: httpx.Client) -> None:
    set_faults(crm, {"operation": "get_customer", "drop_rate": 1.0})

    with pytest.raises(httpx.RemoteProtocolError):
        crm.get("/customers/cus_00001")


def test_a_drop_after_the_effect_is_recovered_by_the_key(notifications: httpx.Client) -> None:
    set_faults(notifications, {"operation": "send_email", "drop_rate": 1.0, "when": "after"})
    message = email("dropped@example.com")
    headers = {"Idempotency-Key": "drop-after"}

    with pytest.raises(httpx.RemoteProtocolError):
        notifications.post("/emails", json=message, headers=headers)

    assert len(effects(notifications, "send_email", "drop-after")) == 1
    notifications.delete("/_sandbox/faults")
    retried = notifications.post("/emails", json=message, headers=headers)
    assert retried.headers["Idempotent-Replayed"] == "true"
    listed = notifications.get("/messages", params={"recipient": "dropped@example.com"}).json()
    assert [m["message_id"] for m in listed["messages"]] == [retried.json()["message_id"]]


def test_a_hang_outlasts_a_shorter_client_timeout(crm: httpx.Client) -> None:
    set_faults(crm, {"operation": "get_customer", "timeout_rate": 1.0, "hang_ms": 20_000})

    with pytest.raises(httpx.ReadTimeout):
        crm.get("/customers/cus_00001", timeout=0.2)


def test_latency_delays_only_as_many_requests_as_counted(crm: httpx.Client) -> None:
    set_faults(crm, {"operation": "get_customer", "latency_ms": 20_000, "count": 1})

    with pytest.raises(httpx.ReadTimeout):
        crm.get("/customers/cus_00001", timeout=0.2)
    assert crm.get("/customers/cus_00001", timeout=5).status_code == 200


def test_a_count_limits_the_faulted_requests(crm: httpx.Client) -> None:
    set_faults(crm, {"operation": "*", "error_rate": 1.0, "count": 2})

    statuses = [crm.get("/customers/cus_00002").status_code for _ in range(4)]

    assert statuses == [503, 503, 200, 200]


def _pattern(crm: httpx.Client, seed: int) -> list[int]:
    set_faults(crm, {"operation": "get_customer", "error_rate": 0.5, "seed": seed})
    return [crm.get("/customers/cus_00003").status_code for _ in range(24)]


def test_seeded_rules_repeat_their_decisions(crm: httpx.Client) -> None:
    first = _pattern(crm, 42)
    again = _pattern(crm, 42)
    other = _pattern(crm, 7)

    assert first == again
    assert set(first) == {200, 503}
    assert other != first


def test_rules_match_by_method(crm: httpx.Client) -> None:
    set_faults(crm, {"operation": "*", "method": "PUT", "error_rate": 1.0})

    assert crm.get("/customers/cus_00004").status_code == 200
    changed = crm.put("/customers/cus_00004/email", json={"email": "m@example.com"})
    assert_problem(changed, 503, "service_unavailable")


def test_admin_routes_and_documents_are_never_faulted(crm: httpx.Client) -> None:
    set_faults(crm, {"operation": "*", "drop_rate": 1.0})

    assert crm.get("/openapi.json").status_code == 200
    assert crm.get("/_sandbox/health").json() == {"service": "crm", "status": "ok"}
    assert crm.get("/_sandbox/faults").json()[0]["drop_rate"] == 1.0


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ({"operation": "no_such_operation", "error_rate": 1}, "no operation 'no_such_operation'"),
        ({"operation": "get_customer", "error_rate": 1.5}, "less than or equal to 1"),
        ({"operation": "get_customer", "error_rate": "1"}, "valid number"),
        ({"operation": "get_customer"}, "injects nothing"),
        ({"operation": "get_customer", "drop_rat": 1}, "Extra inputs are not permitted"),
        ({"operation": "get_customer", "latency_rate": 0.5}, "latency_rate has no effect"),
        ({"operation": "get_customer", "hang_ms": 10}, "hang_ms has no effect"),
        ({"operation": "get_customer", "error_rate": 1, "error_status": 404}, "greater than"),
        ({"operation": "get_customer", "method": "POST", "error_rate": 1}, "never matches"),
        ({"operation": "get_customer", "error_rate": 1, "when": "during"}, "'before' or 'after'"),
    ],
)
def test_a_bad_fault_rule_is_refused_clearly(
    crm: httpx.Client, rule: dict[str, Any], says: str
) -> None:
    set_faults(crm, {"operation": "get_customer", "error_rate": 0.1})

    refused = crm.put("/_sandbox/faults", json=[rule])

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert says in refused.json()["detail"]
    assert crm.get("/_sandbox/faults").json() == [
        {
            "operation": "get_customer",
            "error_rate": 0.1,
            "error_status": 503,
            "when": "before",
            "seed": 0,
        }
    ]


# --- domain rules --------------------------------------------------------------------------


def test_an_unknown_id_is_404_and_a_malformed_one_is_422(
    crm: httpx.Client, orders: httpx.Client
) -> None:
    assert_problem(crm.get("/customers/cus_99999"), 404, "customer_not_found")
    assert_problem(orders.get("/orders/W0000000"), 404, "order_not_found")
    problem = assert_problem(crm.get("/customers/42"), 422, "invalid_request")
    assert problem["errors"][0]["location"] == "path.customer_id"
    assert_problem(crm.get("/no/such/path"), 404, "not_found")


def test_a_bad_email_is_refused_without_writing(crm: httpx.Client) -> None:
    before = crm.get("/customers/cus_00005").json()

    refused = crm.put(
        "/customers/cus_00005/email",
        json={"email": "not-an-address"},
        headers={"Idempotency-Key": "bad-email"},
    )

    problem = assert_problem(refused, 422, "invalid_request")
    assert problem["errors"][0]["location"] == "body.email"
    assert crm.get("/customers/cus_00005").json() == before
    assert effects(crm, "update_customer_email", "bad-email") == []


def test_an_email_change_returns_what_reverts_it(crm: httpx.Client) -> None:
    original = crm.get("/customers/cus_00006").json()["email"]

    changed = crm.put("/customers/cus_00006/email", json={"email": "new6@example.com"}).json()
    found = crm.get("/customers/search", params={"email": "new6@example.com"}).json()
    reverted = crm.put("/customers/cus_00006/email", json={"email": changed["previous_email"]})

    assert changed["previous_email"] == original
    assert found["customer_id"] == "cus_00006"
    assert reverted.json()["email"] == original
    contacts = crm.get("/customers/cus_00006/contacts").json()["contacts"]
    assert {c["channel"]: c["value"] for c in contacts}["email"] == original


def test_an_email_of_another_customer_is_a_conflict(crm: httpx.Client) -> None:
    taken = crm.get("/customers/cus_00008").json()["email"]

    clash = crm.put("/customers/cus_00007/email", json={"email": taken})

    assert_problem(clash, 409, "email_in_use")


def test_preferences_are_set_and_returned_with_the_previous_ones(crm: httpx.Client) -> None:
    before = crm.get("/customers/cus_00009/preferences").json()
    wanted = {"marketing": {"email": False, "sms": True, "phone": False}, "language": "es-MX"}

    change = crm.put("/customers/cus_00009/preferences", json=wanted).json()

    assert change["preferences"] == wanted
    assert change["previous"] == {"marketing": before["marketing"], "language": before["language"]}
    assert crm.get("/customers/cus_00009/preferences").json()["language"] == "es-MX"


def _order_with_status(
    crm: httpx.Client, orders: httpx.Client, status: str, *, skip: int = 0
) -> dict[str, Any]:
    """The ``skip``-th order in ``status`` of the first customers, found through the APIs."""
    for index in range(1, 60):
        user_id = crm.get(f"/customers/cus_{index:05d}").json()["retail_user_id"]
        for order in orders.get(f"/users/{user_id}/orders").json()["orders"]:
            if order["status"] == status:
                if skip == 0:
                    return dict(order)
                skip -= 1
    raise AssertionError(f"no {status} order among the first customers")


def test_only_a_pending_order_can_be_cancelled(crm: httpx.Client, orders: httpx.Client) -> None:
    delivered = _order_with_status(crm, orders, "delivered")
    pending = _order_with_status(crm, orders, "pending")
    reason = {"reason": "no longer needed"}

    refused = orders.post(f"/orders/{quote(delivered['order_id'])}/cancel", json=reason)
    cancelled = orders.post(f"/orders/{pending['order_id'].lstrip('#')}/cancel", json=reason)

    problem = assert_problem(refused, 409, "order_not_pending")
    assert delivered["order_id"] in problem["detail"]
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled"
    refunds = [t for t in body["payment_history"] if t["transaction_type"] == "refund"]
    paid = [t for t in pending["payment_history"] if t["transaction_type"] == "payment"]
    assert sum(t["amount"] for t in refunds) == pytest.approx(sum(t["amount"] for t in paid))
    again = orders.post(f"/orders/{pending['order_id'].lstrip('#')}/cancel", json=reason)
    assert_problem(again, 409, "order_not_pending")
    assert_problem(
        orders.post(f"/orders/{pending['order_id'].lstrip('#')}/cancel", json={"reason": "meh"}),
        422,
        "invalid_request",
    )


def test_returns_need_a_delivered_order_its_items_and_an_allowed_method(
    crm: httpx.Client, orders: httpx.Client
) -> None:
    delivered = _order_with_status(crm, orders, "delivered", skip=1)
    path = f"/orders/{delivered['order_id'].lstrip('#')}/returns"
    item = delivered["items"][0]["item_id"]
    method = delivered["payment_history"][0]["payment_method_id"]

    wrong_item = orders.post(path, json={"item_ids": ["0000000000"], "payment_method_id": method})
    wrong_method = orders.post(path, json={"item_ids": [item], "payment_method_id": "paypal_0"})
    accepted = orders.post(path, json={"item_ids": [item], "payment_method_id": method})

    assert_problem(wrong_item, 422, "item_not_in_order")
    assert_problem(wrong_method, 422, "payment_method_not_allowed")
    assert accepted.json()["status"] == "return requested"
    assert accepted.json()["return_items"] == [item]
    again = orders.post(path, json={"item_ids": [item], "payment_method_id": method})
    assert_problem(again, 409, "order_not_delivered")


def test_refunds_are_bounded_by_the_payment_and_can_be_voided(billing: httpx.Client) -> None:
    invoice = billing.get("/accounts/acc_00002/invoices").json()["invoices"][0]
    too_much = {
        "order_id": invoice["order_id"],
        "amount": invoice["amount"] + 1,
        "method": "gift_card",
    }

    assert_problem(billing.post("/refunds", json=too_much), 409, "refund_exceeds_payment")
    assert_problem(
        billing.post("/refunds", json={**too_much, "amount": 1.234}), 422, "invalid_request"
    )
    refund = billing.post("/refunds", json={**too_much, "amount": invoice["amount"]}).json()
    refunded = billing.get("/accounts/acc_00002/invoices").json()["invoices"][0]
    assert refunded["status"] == "refunded"
    voided = billing.post(f"/refunds/{refund['refund_id']}/void").json()
    assert voided["status"] == "voided"
    assert_problem(billing.post(f"/refunds/{refund['refund_id']}/void"), 409, "refund_not_issued")
    assert billing.get("/accounts/acc_00002/invoices").json()["invoices"][0]["status"] == "paid"


def test_subscriptions_and_discounts_have_their_compensations(billing: httpx.Client) -> None:
    created = billing.post("/subscriptions", json={"account_id": "acc_00003", "plan": "basic"})
    subscription = created.json()
    discount = billing.post(
        "/accounts/acc_00003/discounts", json={"percent": 15, "reason": "retention offer"}
    ).json()

    assert created.status_code == 201 and subscription["price"] == 9.99
    assert discount["quarter"].startswith(discount["applied_at"][:4] + "-Q")
    assert (
        billing.post(f"/subscriptions/{subscription['subscription_id']}/cancel").json()["status"]
        == "cancelled"
    )
    assert billing.delete(f"/discounts/{discount['discount_id']}").json()["status"] == "removed"
    assert_problem(
        billing.delete(f"/discounts/{discount['discount_id']}"), 409, "discount_not_active"
    )
    history = billing.get("/accounts/acc_00003/discounts").json()["discounts"]
    assert [d["status"] for d in history] == ["removed"]


def test_tickets_resolve_and_reopen(helpdesk: httpx.Client) -> None:
    ticket = helpdesk.post(
        "/tickets",
        json={"customer_id": "cus_00012", "channel": "email", "subject": "Late", "body": "Where?"},
    ).json()
    path = f"/tickets/{ticket['ticket_id']}"

    helpdesk.post(f"{path}/notes", json={"author": "agent", "body": "checking"})
    resolved = helpdesk.post(f"{path}/resolve", json={"resolution": "shipped today"}).json()
    conflict = helpdesk.post(f"{path}/resolve", json={"resolution": "again"})
    reopened = helpdesk.post(f"{path}/reopen", json={"reason": "not received"}).json()

    assert resolved["status"] == "resolved"
    assert_problem(conflict, 409, "ticket_not_open")
    assert reopened["status"] == "open" and reopened["resolution"] is None
    assert [n["author"] for n in reopened["notes"]] == ["agent", "helpdesk"]
    listed = helpdesk.get("/tickets", params={"customer_id": "cus_00012"}).json()["tickets"]
    assert ticket["ticket_id"] in [t["ticket_id"] for t in listed]
    assert_problem(
        helpdesk.post("/tickets", json={**ticket_body("cus_99999")}), 404, "customer_not_found"
    )


def ticket_body(customer_id: str) -> dict[str, str]:
    return {"customer_id": customer_id, "channel": "sms", "subject": "s", "body": "b"}


def test_kyc_outcomes_are_deterministic(kyc: httpx.Client) -> None:
    by_code = kyc.post("/verifications", json={"customer_id": "cus_00013", "method": "otp"}).json()
    path = f"/verifications/{by_code['verification_id']}"
    code = kyc.get(f"{path}/otp").json()["code"]
    wrong = "000000" if code != "000000" else "111111"

    first = kyc.post(f"{path}/otp", json={"code": wrong}).json()
    verified = kyc.post(f"{path}/otp", json={"code": code}).json()

    assert (first["status"], first["failure_reason"]) == ("pending", "code_mismatch")
    assert verified["status"] == "verified"
    assert_problem(kyc.post(f"{path}/otp", json={"code": code}), 409, "verification_closed")
    document = kyc.post("/verifications", json={"customer_id": "cus_00013", "method": "document"})
    doc_path = f"/verifications/{document.json()['verification_id']}/document"
    unreadable = kyc.post(doc_path, json={"document_type": "passport", "document_number": "X12340"})
    assert unreadable.json()["failure_reason"] == "document_unreadable"
    scores = {kyc.get("/customers/cus_00013/fraud-score").json()["score"] for _ in range(2)}
    assert len(scores) == 1 and 0 <= scores.pop() <= 1
    assert_problem(kyc.post(f"{path}/otp", json={"code": "12345"}), 422, "invalid_request")


def test_notifications_validate_addresses(notifications: httpx.Client) -> None:
    bad_phone = notifications.post("/sms", json={"to": "4155550123", "body": "hi"})
    bad_email = notifications.post("/emails", json=email("nobody"))

    assert assert_problem(bad_phone, 422, "invalid_request")["errors"][0]["location"] == "body.to"
    assert assert_problem(bad_email, 422, "invalid_request")["errors"][0]["location"] == "body.to"


# --- seeded data and persistence -----------------------------------------------------------


def test_seeded_records_line_up_across_systems(
    crm: httpx.Client, billing: httpx.Client, orders: httpx.Client, helpdesk: httpx.Client
) -> None:
    customer = crm.get("/customers/cus_00020").json()
    user = orders.get(f"/users/{customer['retail_user_id']}").json()
    account = billing.get("/accounts/search", params={"customer_id": "cus_00020"}).json()
    invoices = billing.get(f"/accounts/{account['account_id']}/invoices").json()["invoices"]
    placed = orders.get(f"/users/{user['user_id']}/orders").json()["orders"]

    assert user["customer_id"] == "cus_00020"
    assert user["email"] == customer["email"] == account["email"]
    assert placed and sorted(o["order_id"] for o in placed) == sorted(user["orders"])
    assert sorted(i["order_id"] for i in invoices) == sorted(user["orders"])
    assert (
        orders.get("/users/search", params={"email": customer["email"]}).json()["user_id"]
        == (user["user_id"])
    )
    assert helpdesk.get("/tickets", params={"customer_id": "cus_00020"}).status_code == 200
    assert len(orders.get("/products").json()["products"]) == 50


def test_a_restart_on_the_same_directory_keeps_the_data(tmp_path: Path) -> None:
    with SandboxEnterprise(tmp_path, services=["crm"]) as first:
        httpx.put(
            first.url("crm") + "/customers/cus_00030/email", json={"email": "kept@example.com"}
        ).raise_for_status()

    with SandboxEnterprise(tmp_path, services=["crm"]) as second:
        customer = httpx.get(second.url("crm") + "/customers/cus_00030").json()
        applied = httpx.get(second.url("crm") + "/_sandbox/effects").json()

    assert customer["email"] == "kept@example.com"
    assert [e["operation"] for e in applied] == ["update_customer_email"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite3") == ["crm.sqlite3"]


def test_unknown_services_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no sandbox service 'erp'"):
        SandboxEnterprise(tmp_path, services=["erp"])
    with pytest.raises(ConfigurationError, match="no sandbox service 'erp'"):
        create_app("erp", tmp_path / "erp.sqlite3")


def test_a_drop_under_another_server_still_breaks_the_connection(tmp_path: Path) -> None:
    import socket

    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    app = create_app("kyc", tmp_path / "kyc.sqlite3")
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_config=None, log_level="critical")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        while not server.started:
            thread.join(timeout=0.01)
        with httpx.Client(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}") as client:
            set_faults(client, {"operation": "fraud_score", "drop_rate": 1.0})
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/customers/cus_00001/fraud-score")
    finally:
        server.should_exit = True
        thread.join()


def test_the_cli_sets_shows_and_clears_faults(crm: httpx.Client) -> None:
    from typer.testing import CliRunner

    from accord.cli import app

    runner = CliRunner()
    url = str(crm.base_url)
    rules = '[{"operation": "get_customer", "error_rate": 1}]'

    set_result = runner.invoke(app, ["sandbox", "faults", "crm", "--url", url, "--set", rules])
    faulted = crm.get("/customers/cus_00001").status_code
    shown = runner.invoke(app, ["sandbox", "faults", "crm", "--url", url, "--show"])
    cleared = runner.invoke(app, ["sandbox", "faults", "crm", "--url", url, "--clear"])
    refused = runner.invoke(
        app, ["sandbox", "faults", "crm", "--url", url, "--set", '[{"operation": "x"}]']
    )

    assert set_result.exit_code == 0, set_result.output
    assert faulted == 503
    assert '"error_status": 503' in shown.output
    assert cleared.exit_code == 0 and crm.get("/_sandbox/faults").json() == []
    assert refused.exit_code == 2
    assert "injects nothing" in refused.output
