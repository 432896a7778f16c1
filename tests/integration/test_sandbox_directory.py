"""The directory service over real HTTP: employees, entitlements, grants and their rules."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.connectors import CallContext, CapabilityRegistry, Endpoints, load_catalogue
from accord.consent import validate_categories
from accord.sandbox import SandboxEnterprise
from accord.testing import FrozenClock

CATALOGUE = Path(__file__).parents[2] / "examples" / "capabilities" / "sandbox.yaml"
START = 1_767_225_600.0


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture(scope="module")
def directory(
    tmp_path_factory: pytest.TempPathFactory, clock: FrozenClock
) -> Iterator[httpx.Client]:
    with (
        SandboxEnterprise(
            tmp_path_factory.mktemp("directory"), services=["directory"], clock=clock
        ) as enterprise,
        httpx.Client(base_url=enterprise.url("directory"), timeout=10) as client,
    ):
        yield client


def grant(
    employee_id: str,
    entitlement_id: str,
    *,
    hours: int = 24,
    approved_by: str = "emp_0001",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "employee_id": employee_id,
        "entitlement_id": entitlement_id,
        "duration_hours": hours,
        "approved_by": approved_by,
        "justification": "covering the on-call rota",
        **extra,
    }


def effects(client: httpx.Client, operation: str) -> list[dict[str, Any]]:
    response = client.get("/_sandbox/effects", params={"operation": operation})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["detail"]
    return problem


def moment(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


# --- employees and entitlements ------------------------------------------------------------


def test_an_employee_is_found_by_id(directory: httpx.Client) -> None:
    head = directory.get("/employees/emp_0002").json()

    assert head["employee_id"] == "emp_0002"
    assert head["department"] == "support"
    assert head["title"] == "Head of Support"
    assert head["manager_id"] == "emp_0001"
    assert head["status"] == "active"
    assert head["email"].endswith("@staff.example.com")
    assert directory.get("/employees/emp_0001").json()["manager_id"] is None
    assert directory.get("/employees/emp_0012").json()["status"] == "suspended"
    assert directory.get("/employees/emp_0035").json()["status"] == "left"
    assert_problem(directory.get("/employees/emp_9999"), 404, "employee_not_found")
    assert_problem(directory.get("/employees/bob"), 422, "invalid_request")


def test_employees_are_listed_by_manager(directory: httpx.Client) -> None:
    reports = directory.get("/employees", params={"manager_id": "emp_0002"}).json()
    heads = directory.get("/employees", params={"manager_id": "emp_0001"}).json()

    ids = [e["employee_id"] for e in reports["employees"]]
    assert reports["manager_id"] == "emp_0002"
    assert ids[:2] == ["emp_0007", "emp_0012"]
    assert {e["department"] for e in reports["employees"]} == {"support"}
    assert [e["employee_id"] for e in heads["employees"]] == [f"emp_{n:04d}" for n in range(2, 7)]
    assert directory.get("/employees", params={"manager_id": "emp_0007"}).json()["employees"] == []
    assert_problem(
        directory.get("/employees", params={"manager_id": "emp_9999"}), 404, "employee_not_found"
    )
    assert_problem(directory.get("/employees"), 422, "invalid_request")


def test_the_seed_is_a_tree_of_about_forty_with_unique_addresses(directory: httpx.Client) -> None:
    seen: list[dict[str, Any]] = []
    pending = ["emp_0001"]
    while pending:
        manager = pending.pop()
        found = directory.get("/employees", params={"manager_id": manager}).json()["employees"]
        seen.extend(found)
        pending.extend(e["employee_id"] for e in found)

    assert len(seen) + 1 == 40
    assert len({e["email"] for e in seen}) == len(seen)
    assert {e["department"] for e in seen} == {
        "support",
        "finance",
        "engineering",
        "sales",
        "people",
    }


def test_entitlements_are_listed_and_found(directory: httpx.Client) -> None:
    listed = directory.get("/entitlements").json()["entitlements"]
    crm_admin = directory.get("/entitlements/ent_crm_admin").json()

    assert len(listed) == 14
    for entitlement in listed:
        expected = entitlement["level"] == "admin" or entitlement["system"] == "finance"
        assert entitlement["sensitive"] is expected, entitlement
    assert crm_admin == {
        "entitlement_id": "ent_crm_admin",
        "system": "crm",
        "level": "admin",
        "sensitive": True,
        "max_duration_hours": 72,
        "description": "Administer the CRM's customer records",
    }
    assert directory.get("/entitlements/ent_crm_read").json()["max_duration_hours"] == 2160
    assert_problem(directory.get("/entitlements/ent_mail_read"), 404, "entitlement_not_found")
    assert_problem(directory.get("/entitlements/crm"), 422, "invalid_request")


# --- grants --------------------------------------------------------------------------------


def test_access_is_granted_for_its_duration(directory: httpx.Client, clock: FrozenClock) -> None:
    response = directory.post("/grants", json=grant("emp_0019", "ent_kyc_read", hours=48))

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["grant_id"].startswith("grt_")
    assert created["status"] == "active"
    assert created["approved_by"] == "emp_0001"
    assert created["justification"] == "covering the on-call rota"
    assert moment(created["granted_at"]).timestamp() == clock.now()
    assert moment(created["expires_at"]) - moment(created["granted_at"]) == dt.timedelta(hours=48)
    assert created["revoked_at"] is None and created["revoked_reason"] is None
    assert directory.get(f"/grants/{created['grant_id']}").json() == created
    mine = directory.get("/grants", params={"employee_id": "emp_0019"}).json()["grants"]
    assert mine == [created]
    active = directory.get("/grants", params={"status": "active"}).json()["grants"]
    assert created in active
    assert all(g["status"] == "active" for g in active)


def test_seeded_grants_are_active_expired_and_revoked(directory: httpx.Client) -> None:
    seeded = {
        g["grant_id"]: g
        for g in directory.get("/grants").json()["grants"]
        if g["justification"].startswith("needed for")
    }

    statuses = [g["status"] for g in seeded.values()]
    assert statuses.count("active") >= 3
    assert "expired" in statuses and "revoked" in statuses


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (grant("emp_9999", "ent_crm_read"), 404, "employee_not_found"),
        (grant("emp_0020", "ent_mail_read"), 404, "entitlement_not_found"),
        (grant("emp_0020", "ent_crm_read", approved_by="emp_9998"), 404, "employee_not_found"),
        (grant("emp_0012", "ent_crm_read"), 409, "employee_not_active"),
        (grant("emp_0035", "ent_crm_read"), 409, "employee_not_active"),
        (grant("emp_0020", "ent_crm_read", approved_by="emp_0012"), 409, "approver_not_active"),
        (grant("emp_0020", "ent_crm_admin", hours=73), 409, "duration_exceeds_limit"),
        (grant("emp_0020", "ent_finance_write", hours=169), 409, "duration_exceeds_limit"),
        (grant("emp_0020", "ent_crm_read", approved_by="emp_0020"), 409, "self_approval"),
    ],
    ids=[
        "unknown-employee",
        "unknown-entitlement",
        "unknown-approver",
        "suspended",
        "left",
        "suspended-approver",
        "admin-too-long",
        "finance-too-long",
        "self-approval",
    ],
)
def test_a_grant_the_rules_forbid_is_refused_and_writes_nothing(
    directory: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    before = len(directory.get("/grants").json()["grants"])

    assert_problem(directory.post("/grants", json=body), status, code)

    assert len(directory.get("/grants").json()["grants"]) == before


def test_an_entitlement_is_held_once_at_a_time(directory: httpx.Client) -> None:
    first = directory.post("/grants", json=grant("emp_0021", "ent_helpdesk_read")).json()

    again = directory.post("/grants", json=grant("emp_0021", "ent_helpdesk_read", hours=2))

    problem = assert_problem(again, 409, "already_granted")
    assert first["grant_id"] in problem["detail"]
    other = directory.post("/grants", json=grant("emp_0021", "ent_helpdesk_write"))
    assert other.status_code == 201


def test_the_longest_allowed_duration_is_accepted(directory: httpx.Client) -> None:
    response = directory.post("/grants", json=grant("emp_0022", "ent_crm_admin", hours=72))

    assert response.status_code == 201, response.text


def test_a_repeat_with_the_same_key_grants_once(directory: httpx.Client) -> None:
    headers = {"Idempotency-Key": "grant-once"}
    body = grant("emp_0023", "ent_orders_write")

    first = directory.post("/grants", json=body, headers=headers)
    again = directory.post("/grants", json=body, headers=headers)
    changed = directory.post("/grants", json={**body, "duration_hours": 5}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert_problem(changed, 422, "idempotency_key_reused")
    keyed = [e for e in effects(directory, "grant_access") if e["idempotency_key"] == "grant-once"]
    assert len(keyed) == 1
    held = directory.get("/grants", params={"employee_id": "emp_0023"}).json()["grants"]
    assert len(held) == 1


@pytest.mark.parametrize(
    "body",
    [
        {**grant("emp_0024", "ent_crm_read"), "role": "admin"},
        grant("emp_0024", "ent_crm_read", hours=0),
        grant("emp_0024", "ent_crm_read", hours=2161),
        {**grant("emp_0024", "ent_crm_read"), "duration_hours": "24"},
        {**grant("emp_0024", "ent_crm_read"), "duration_hours": 24.5},
        grant("24", "ent_crm_read"),
        grant("emp_0024", "crm_read"),
        grant("emp_0024", "ent_crm_read", approved_by="boss"),
        {**grant("emp_0024", "ent_crm_read"), "justification": ""},
        {k: v for k, v in grant("emp_0024", "ent_crm_read").items() if k != "justification"},
    ],
    ids=[
        "unknown-field",
        "zero-hours",
        "too-many-hours",
        "hours-as-text",
        "fractional-hours",
        "bad-employee-id",
        "bad-entitlement-id",
        "bad-approver-id",
        "empty-justification",
        "no-justification",
    ],
)
def test_invalid_input_is_refused_and_writes_nothing(
    directory: httpx.Client, body: dict[str, Any]
) -> None:
    before = len(effects(directory, "grant_access"))

    response = directory.post("/grants", json=body, headers={"Idempotency-Key": "invalid"})

    problem = assert_problem(response, 422, "invalid_request")
    assert problem["errors"]
    assert len(effects(directory, "grant_access")) == before
    assert directory.get("/grants", params={"employee_id": "emp_0024"}).json()["grants"] == []


def test_invalid_queries_and_revocations_are_refused(directory: httpx.Client) -> None:
    assert_problem(directory.get("/grants", params={"status": "gone"}), 422, "invalid_request")
    assert_problem(directory.get("/grants/grant_1"), 422, "invalid_request")
    assert_problem(directory.get("/grants/grt_999999"), 404, "grant_not_found")
    created = directory.post("/grants", json=grant("emp_0025", "ent_crm_read")).json()
    url = f"/grants/{created['grant_id']}/revoke"
    assert_problem(directory.post(url, json={}), 422, "invalid_request")
    assert_problem(directory.post(url, json={"reason": "x", "by": "me"}), 422, "invalid_request")
    assert directory.get(f"/grants/{created['grant_id']}").json()["status"] == "active"


def test_a_revoked_grant_stays_revoked_and_frees_the_entitlement(
    directory: httpx.Client,
) -> None:
    created = directory.post("/grants", json=grant("emp_0026", "ent_billing_read")).json()
    url = f"/grants/{created['grant_id']}/revoke"

    revoked = directory.post(url, json={"reason": "left the project"})
    again = directory.post(url, json={"reason": "a second thought"})

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_reason"] == "left the project"
    assert revoked.json()["revoked_at"] is not None
    assert again.status_code == 200
    assert again.json() == revoked.json()
    assert directory.get(f"/grants/{created['grant_id']}").json() == revoked.json()
    listed = directory.get("/grants", params={"employee_id": "emp_0026", "status": "revoked"})
    assert [g["grant_id"] for g in listed.json()["grants"]] == [created["grant_id"]]
    assert directory.post("/grants", json=grant("emp_0026", "ent_billing_read")).status_code == 201
    assert_problem(
        directory.post("/grants/grt_999999/revoke", json={"reason": "x"}), 404, "grant_not_found"
    )


def test_a_grant_expires_by_the_services_clock(tmp_path: Path) -> None:
    clock = FrozenClock(START)
    with (
        SandboxEnterprise(tmp_path, services=["directory"], clock=clock) as enterprise,
        httpx.Client(base_url=enterprise.url("directory"), timeout=10) as client,
    ):
        created = client.post("/grants", json=grant("emp_0027", "ent_crm_admin", hours=2)).json()
        grant_id = created["grant_id"]

        clock.advance(2 * 3600 - 1)
        assert client.get(f"/grants/{grant_id}").json()["status"] == "active"
        assert_problem(
            client.post("/grants", json=grant("emp_0027", "ent_crm_admin")), 409, "already_granted"
        )

        clock.advance(1)
        assert client.get(f"/grants/{grant_id}").json()["status"] == "expired"
        expired = client.get("/grants", params={"employee_id": "emp_0027", "status": "expired"})
        assert [g["grant_id"] for g in expired.json()["grants"]] == [grant_id]
        renewed = client.post("/grants", json=grant("emp_0027", "ent_crm_admin"))
        assert renewed.status_code == 201
        assert renewed.json()["status"] == "active"


# --- through the capability catalogue ------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CapabilityRegistry]:
    with SandboxEnterprise(tmp_path_factory.mktemp("enterprise")) as enterprise:
        found = CapabilityRegistry()
        load_catalogue(
            CATALOGUE,
            found,
            check_categories=validate_categories,
            connector_urls=enterprise.urls,
            endpoints=Endpoints(),
        )
        yield found
        found.close()


def call(registry: CapabilityRegistry, name: str, payload: dict[str, Any], key: str) -> Any:
    capability = registry.get(name)
    context = CallContext("default", "run_x", "b", 1, 1, key, deadline=time.time() + 10)
    return capability.handler(capability.input_model.model_validate(payload), context)


def test_the_catalogue_grants_and_revokes_access_over_http(registry: CapabilityRegistry) -> None:
    granting = registry.get("directory.grant_access")
    revoking = registry.get("directory.revoke_access")
    assert granting.compensation == "directory.revoke_access"
    assert set(revoking.input_schema()["properties"]) == {"grant_id", "reason"}
    assert registry.get("directory.get_employee").fields == {
        "name": "pd:Name",
        "email": "pd:EmailAddress",
    }

    granted = call(registry, "directory.grant_access", grant("emp_0030", "ent_crm_read"), "run/g/1")
    replayed = call(
        registry, "directory.grant_access", grant("emp_0030", "ent_crm_read"), "run/g/1"
    )
    undo = {"grant_id": granted["grant_id"], "reason": "the journey failed"}
    revoked = call(registry, "directory.revoke_access", undo, "run/g/1/compensate")
    repeated = call(registry, "directory.revoke_access", undo, "run/g/1/compensate")
    looked_up = call(registry, "directory.get_grant", {"grant_id": granted["grant_id"]}, "read")

    assert granted["status"] == "active"
    assert replayed == granted
    assert revoked["status"] == "revoked"
    assert revoked["revoked_reason"] == "the journey failed"
    assert repeated == revoked
    assert looked_up == revoked
    listed = call(registry, "directory.list_grants", {"employee_id": "emp_0030"}, "read")
    assert [g["status"] for g in listed["grants"]] == ["revoked"]
