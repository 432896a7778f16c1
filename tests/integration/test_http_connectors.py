"""Capabilities bound to OpenAPI operations, called over real HTTP against the sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from accord.connectors import (
    CallContext,
    CapabilityRegistry,
    CatalogueInvalid,
    CircuitOpen,
    Credential,
    Endpoints,
    load_catalogue,
)
from accord.consent import validate_categories
from accord.core import TenantId
from accord.errors import CapabilityFailed
from accord.journeys import load_journey_text
from accord.sandbox import SandboxEnterprise
from accord.service import Accord

T = TenantId("default")
CATALOGUE = Path(__file__).parents[2] / "examples" / "capabilities" / "sandbox.yaml"


@pytest.fixture(scope="module")
def enterprise(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxEnterprise]:
    with SandboxEnterprise(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults(enterprise: SandboxEnterprise) -> Iterator[None]:
    yield
    for url in enterprise.urls.values():
        httpx.delete(f"{url}/_sandbox/faults").raise_for_status()


@pytest.fixture
def registry(enterprise: SandboxEnterprise) -> Iterator[CapabilityRegistry]:
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


def faults(enterprise: SandboxEnterprise, service: str, *rules: dict[str, Any]) -> None:
    httpx.put(f"{enterprise.url(service)}/_sandbox/faults", json=list(rules)).raise_for_status()


def effects(enterprise: SandboxEnterprise, service: str, operation: str, key: str) -> int:
    response = httpx.get(
        f"{enterprise.url(service)}/_sandbox/effects", params={"operation": operation}
    )
    return sum(1 for e in response.json() if e["idempotency_key"] == key)


def context(key: str, *, timeout: float = 10.0) -> CallContext:
    return CallContext("default", "run_x", "b", 1, 1, key, deadline=time.time() + timeout)


def call(registry: CapabilityRegistry, name: str, payload: dict[str, Any], key: str) -> Any:
    capability = registry.get(name)
    return capability.handler(capability.input_model.model_validate(payload), context(key))


def a_billed_order(enterprise: SandboxEnterprise) -> str:
    customer = httpx.get(f"{enterprise.url('crm')}/customers/cus_00001").json()
    user = httpx.get(f"{enterprise.url('orders')}/users/{customer['retail_user_id']}").json()
    return str(user["orders"][0])


def test_the_catalogue_binds_operations_with_the_documents_contracts(
    registry: CapabilityRegistry,
) -> None:
    refund = registry.get("billing.issue_refund")
    assert refund.source.endswith("(openapi:billing#issue_refund)")
    assert refund.compensation == "billing.void_refund"
    schema = refund.input_schema()
    assert {"order_id", "amount", "method"} <= set(schema["properties"])
    customer = registry.get("crm.get_customer")
    assert customer.fields["email"] == "pd:EmailAddress"
    assert len(registry) == 45


def test_a_write_sends_the_calls_key_and_a_repeat_acts_once(
    enterprise: SandboxEnterprise, registry: CapabilityRegistry
) -> None:
    order = a_billed_order(enterprise)
    payload = {"order_id": order, "amount": 1.0, "method": "original_payment"}
    first = call(registry, "billing.issue_refund", payload, "k-repeat")
    again = call(registry, "billing.issue_refund", payload, "k-repeat")
    assert first == again
    assert effects(enterprise, "billing", "issue_refund", "k-repeat") == 1


def test_failures_before_the_effect_are_retried_within_the_call(
    enterprise: SandboxEnterprise, registry: CapabilityRegistry
) -> None:
    order = a_billed_order(enterprise)
    faults(enterprise, "billing", {"operation": "issue_refund", "error_rate": 1.0, "count": 2})
    result = call(
        registry,
        "billing.issue_refund",
        {"order_id": order, "amount": 1.0, "method": "gift_card"},
        "k-retried",
    )
    assert result["order_id"] == order
    assert effects(enterprise, "billing", "issue_refund", "k-retried") == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"drop_rate": 1.0, "when": "after", "count": 1},
        {"error_rate": 1.0, "error_status": 500, "when": "after", "count": 1},
    ],
    ids=["dropped", "500"],
)
def test_a_lost_answer_after_the_effect_is_recovered_by_the_key(
    enterprise: SandboxEnterprise, registry: CapabilityRegistry, fault: dict[str, Any]
) -> None:
    order = a_billed_order(enterprise)
    key = f"k-lost-{fault.get('error_status', 'drop')}"
    faults(enterprise, "billing", {"operation": "issue_refund", **fault})
    result = call(
        registry,
        "billing.issue_refund",
        {"order_id": order, "amount": 1.0, "method": "gift_card"},
        key,
    )
    assert result["order_id"] == order and result["refund_id"]
    assert effects(enterprise, "billing", "issue_refund", key) == 1


def test_a_rate_limit_is_waited_out_and_does_not_trip_the_breaker(
    enterprise: SandboxEnterprise, registry: CapabilityRegistry
) -> None:
    faults(
        enterprise,
        "kyc",
        {"operation": "fraud_score", "rate_limit_rate": 1.0, "retry_after": 0, "count": 2},
    )
    result = call(registry, "kyc.fraud_score", {"customer_id": "cus_00001"}, "k-429")
    assert 0 <= result["score"] <= 1


def test_a_refusal_is_not_retried_and_carries_the_systems_code(
    enterprise: SandboxEnterprise, registry: CapabilityRegistry
) -> None:
    with pytest.raises(CapabilityFailed) as caught:
        call(registry, "orders.get_order", {"order_id": "#W0000000"}, "k-404")
    assert not caught.value.retryable
    assert caught.value.status == 404
    assert caught.value.attempts == 1
    assert caught.value.error_type.endswith("not_found")


def test_the_breaker_opens_on_a_failing_endpoint_and_spares_it(
    enterprise: SandboxEnterprise, registry: CapabilityRegistry
) -> None:
    """Five failed attempts (the billing connector's threshold) open the breaker; from then on
    calls are refused without a request until its reset time has passed."""
    faults(enterprise, "billing", {"operation": "find_account", "error_rate": 1.0})
    raised: list[CapabilityFailed] = []
    while not (raised and isinstance(raised[-1], CircuitOpen)):
        with pytest.raises(CapabilityFailed) as caught:
            call(registry, "billing.find_account", {"customer_id": "cus_00001"}, "k-down")
        raised.append(caught.value)
        assert len(raised) <= 2
    endpoint = registry.get("billing.find_account").handler.endpoint  # type: ignore[attr-defined]
    assert endpoint.name == "billing GET /accounts/search"
    assert endpoint.breaker is not None and endpoint.breaker.state == "open"
    made = endpoint.calls
    with pytest.raises(CircuitOpen) as refused:
        call(registry, "billing.find_account", {"customer_id": "cus_00001"}, "k-down")
    assert refused.value.retryable and refused.value.retry_after is not None
    assert endpoint.calls == made, "an open breaker must not let the request through"


def test_a_journey_reaches_the_sandbox_through_the_gateway(
    make_accord: Any, enterprise: SandboxEnterprise, registry: CapabilityRegistry
) -> None:
    accord: Accord = make_accord()
    for capability in registry:
        accord.capabilities.add(capability)
    order = a_billed_order(enterprise)
    accord.runtime.catalog.deploy(
        T,
        load_journey_text(
            """
journey: refund_over_http
input: {order_id: string}
blocks:
  - id: score
    kind: task
    capability: kyc.fraud_score
    input: {customer_id: '"cus_00001"'}
  - id: refund
    kind: task
    capability: billing.issue_refund
    input: {order_id: input.order_id, amount: 2.5, method: '"gift_card"'}
  - {id: done, kind: end, outcome: refunded}
"""
        ),
    )
    run_id = accord.runtime.start(T, "refund_over_http", input={"order_id": order}).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("completed", "refunded")
    decisions = accord.runtime.decisions(T, run_id)
    assert [(d.capability, d.outcome) for d in decisions] == [
        ("kyc.fraud_score", "executed"),
        ("billing.issue_refund", "executed"),
    ]
    assert effects(enterprise, "billing", "issue_refund", f"{run_id}/refund/1") == 1


def test_an_unreachable_service_is_reported_where_it_is_declared(tmp_path: Path) -> None:
    catalogue = tmp_path / "down.yaml"
    catalogue.write_text(
        "catalogue: 1\n"
        "connectors:\n"
        "  - {name: billing, kind: openapi, url: 'http://127.0.0.1:9'}\n"
        "capabilities:\n"
        "  - {name: billing.x, connector: billing, operation: x, side_effect: read}\n"
    )
    with pytest.raises(CatalogueInvalid) as caught:
        load_catalogue(catalogue, CapabilityRegistry())
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.line == 3
    assert "cannot fetch its OpenAPI document from http://127.0.0.1:9/openapi.json" in (
        diagnostic.message
    )


def test_catalogue_mistakes_are_listed_together(
    tmp_path: Path, enterprise: SandboxEnterprise
) -> None:
    catalogue = tmp_path / "bad.yaml"
    catalogue.write_text(
        "catalogue: 1\n"
        "connectors:\n"
        f"  - {{name: billing, kind: openapi, url: '{enterprise.url('billing')}',"
        " auth: {secret_env: ACCORD_TEST_NO_SUCH_SECRET}}\n"
        f"  - {{name: crm, kind: openapi, url: '{enterprise.url('crm')}',"
        " resilience: {retries: {attempts: 0}}}\n"
        "capabilities:\n"
        "  - {name: a, connector: nowhere, operation: x, side_effect: read}\n"
        "  - {name: b, side_effect: read}\n"
        "  - {name: c, connector: billing, operation: issue_refnd, side_effect: read}\n"
    )
    with pytest.raises(CatalogueInvalid) as caught:
        load_catalogue(catalogue, CapabilityRegistry(), environ={})
    messages = [d.message for d in caught.value.diagnostics]
    assert any("its credential is not set" in m for m in messages)
    assert any("resilience" in m for m in messages)
    assert any("connector 'nowhere' is not declared" in m for m in messages)
    assert any("needs one binding" in m for m in messages)


def test_a_credential_is_sent_but_never_shown(enterprise: SandboxEnterprise) -> None:
    credential = Credential(SecretStr("s3cr3t-token"))
    assert "s3cr3t" not in repr(credential)
    assert credential.value() == "Bearer s3cr3t-token"
    with pytest.raises(Exception) as caught:
        Credential.from_env("ACCORD_TEST_UNSET", environ={})
    assert "ACCORD_TEST_UNSET" in str(caught.value)


def test_import_openapi_writes_a_catalogue_that_loads(
    enterprise: SandboxEnterprise, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from accord.cli import app

    output = tmp_path / "helpdesk.yaml"
    result = CliRunner().invoke(
        app,
        [
            "capability",
            "import-openapi",
            enterprise.url("helpdesk"),
            "--connector",
            "helpdesk",
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    registry = CapabilityRegistry()
    found = load_catalogue(output, registry)
    try:
        names = {c.name: c for c in found}
        assert names["helpdesk.open_ticket"].side_effect == "write"
        assert names["helpdesk.open_ticket"].idempotent
        assert names["helpdesk.get_ticket"].side_effect == "read"
        assert len(found) == 6
    finally:
        registry.close()
