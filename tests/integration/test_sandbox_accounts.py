"""Billing's refund and discount listings by quarter, and the CRM's portal access, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from accord.sandbox import SandboxEnterprise
from accord.testing import FrozenClock

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the first day of 2026-Q1


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def sandbox(tmp_path: Path, clock: FrozenClock) -> Iterator[SandboxEnterprise]:
    with SandboxEnterprise(tmp_path, services=["crm", "billing"], clock=clock) as running:
        yield running


@pytest.fixture
def billing(sandbox: SandboxEnterprise) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url("billing"), timeout=10) as client:
        yield client


@pytest.fixture
def crm(sandbox: SandboxEnterprise) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url("crm"), timeout=10) as client:
        yield client


def refund(billing: httpx.Client, order: str, amount: float, key: str) -> dict[str, object]:
    response = billing.post(
        "/refunds",
        json={"order_id": order, "amount": amount, "method": "gift_card"},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_refunds_are_listed_by_order_and_quarter(billing: httpx.Client, clock: FrozenClock) -> None:
    refund(billing, "#W4316152", 10.0, "r1")
    clock.advance(100 * 86400)  # into 2026-Q2
    second = refund(billing, "#W4316152", 5.0, "r2")
    refund(billing, "#W9311069", 7.0, "r3")
    every = billing.get("/accounts/acc_00001/refunds").json()
    assert every["quarter"] is None
    assert {r["order_id"] for r in every["refunds"]} >= {"#W4316152", "#W9311069"}
    current = billing.get(
        "/accounts/acc_00001/refunds", params={"quarter": "current", "order_id": "#W4316152"}
    ).json()
    assert current["quarter"] == "2026-Q2"
    assert [r["refund_id"] for r in current["refunds"]] == [second["refund_id"]]
    first_quarter = billing.get(
        "/accounts/acc_00001/refunds", params={"quarter": "2026-Q1", "order_id": "#W4316152"}
    ).json()
    assert [r["amount"] for r in first_quarter["refunds"]] == [10.0]


def test_discounts_are_listed_by_quarter(billing: httpx.Client, clock: FrozenClock) -> None:
    applied = billing.post(
        "/accounts/acc_00002/discounts", json={"percent": 10.0, "reason": "retention"}
    ).json()
    assert applied["quarter"] == "2026-Q1"
    listed = billing.get("/accounts/acc_00002/discounts", params={"quarter": "current"}).json()
    assert [d["discount_id"] for d in listed["discounts"]] == [applied["discount_id"]]
    clock.advance(100 * 86400)
    later = billing.get("/accounts/acc_00002/discounts", params={"quarter": "current"}).json()
    assert later == {"account_id": "acc_00002", "quarter": "2026-Q2", "discounts": []}


@pytest.mark.parametrize("quarter", ["2026-Q5", "last", "26-Q1"])
def test_a_malformed_quarter_is_refused(billing: httpx.Client, quarter: str) -> None:
    response = billing.get("/accounts/acc_00001/refunds", params={"quarter": quarter})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_an_unknown_account_has_no_refund_list(billing: httpx.Client) -> None:
    response = billing.get("/accounts/acc_99999/refunds")
    assert response.status_code == 404


def test_portal_access_is_enabled_disabled_and_enabled_again(crm: httpx.Client) -> None:
    missing = crm.get("/customers/cus_00003/portal-access")
    assert missing.status_code == 404 and missing.json()["code"] == "portal_access_not_found"
    enabled = crm.post("/customers/cus_00003/portal-access", headers={"Idempotency-Key": "e1"})
    assert enabled.status_code == 200, enabled.text
    access = enabled.json()
    customer = crm.get("/customers/cus_00003").json()
    assert (access["status"], access["login"]) == ("active", customer["email"])
    again = crm.post("/customers/cus_00003/portal-access", headers={"Idempotency-Key": "e1"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == access
    disabled = crm.post(
        "/customers/cus_00003/portal-access/disable", json={"reason": "onboarding undone"}
    ).json()
    assert (disabled["status"], disabled["disabled_reason"]) == ("disabled", "onboarding undone")
    twice = crm.post("/customers/cus_00003/portal-access/disable", json={"reason": "again"})
    assert twice.json()["disabled_reason"] == "onboarding undone"
    back = crm.post("/customers/cus_00003/portal-access").json()
    assert back["status"] == "active" and back["disabled_at"] is None


def test_disabling_needs_a_reason_and_an_existing_access(crm: httpx.Client) -> None:
    no_reason = crm.post("/customers/cus_00004/portal-access/disable", json={})
    assert no_reason.status_code == 422
    never = crm.post("/customers/cus_00004/portal-access/disable", json={"reason": "x"})
    assert never.status_code == 404
    unknown = crm.post("/customers/cus_99999/portal-access")
    assert unknown.status_code == 404
