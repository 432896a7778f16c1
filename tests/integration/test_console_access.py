"""The console over real HTTP: sign-in required on every page, tenants kept apart, roles
decided by the access policies, and forms that need the session's form token."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from accord.api import issue_token
from accord.console import COOKIE, csrf_token
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage import api as stored_api
from tests.e2e.browser import served

A, B = TenantId("default"), TenantId("other")

ASK = """
journey: ask
blocks:
  - {id: check, kind: escalate, queue: supervisors, reason: '"look"'}
  - {id: done, kind: end, outcome: approved}
"""

PAGES = [
    "/console",
    "/console/dashboard",
    "/console/reviews",
    "/console/runs",
    "/console/subjects",
    "/console/subjects/cus_1",
    "/console/audit",
    "/console/controls",
    "/console/experiments",
    "/console/experiments/retention-offer",
]


@pytest.fixture
def world(accord: Accord) -> dict[str, str]:
    found = {}
    for tenant in (A, B):
        accord.runtime.catalog.deploy(tenant, load_journey_text(ASK))
        accord.put_person("ann", roles=["supervisor"], actor="test", tenant=tenant)
        run_id = accord.runtime.start(tenant, "ask", input={}, subject="cus_1").run_id
        accord.runtime.drive()
        (item,) = accord.review_items(tenant=tenant, run_id=run_id)
        found[f"{tenant}.run"] = run_id
        found[f"{tenant}.item"] = item.item_id
    accord.set_flag("capability:x.y", True, actor="test", reason="seed", tenant=A)
    return found


@pytest.fixture
def base(accord: Accord, world: dict[str, str]) -> Iterator[str]:
    with served(accord) as url:
        yield url


def session(accord: Accord, base: str, role: str, tenant: str = A) -> httpx.Client:
    token = issue_token(
        accord.settings.resolved_keys_dir(),
        subject="ann",
        tenant=tenant,
        roles=[role],
        now=time.time(),
    )
    client = httpx.Client(base_url=base, timeout=30)
    signed = client.post("/console/sign-in", data={"token": token})
    assert signed.status_code == 303
    assert signed.cookies[COOKIE] == token
    assert "httponly" in signed.headers["set-cookie"].lower()
    assert "samesite=strict" in signed.headers["set-cookie"].lower()
    return client


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_sends_a_stranger_to_sign_in(base: str, world: dict[str, str]) -> None:
    with httpx.Client(base_url=base) as client:
        pages = [
            *PAGES,
            f"/console/reviews/{world['default.item']}",
            f"/console/runs/{world['default.run']}",
            "/console/audit/proof/0",
        ]
        for path in pages:
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/console/sign-in"), path
        for path in [
            "/console/flags",
            f"/console/reviews/{world['default.item']}/decision",
            "/console/experiments/retention-offer/ship",
            "/console/experiments/retention-offer/stop",
        ]:
            response = client.post(path, data={"csrf": "x", "key": "capability:x.y"})
            assert response.status_code == 303 and "sign-in" in response.headers["location"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_another_tenants_items_and_runs_are_not_found(
    accord: Accord, base: str, world: dict[str, str]
) -> None:
    theirs = session(accord, base, "admin", tenant=B)
    for path in [
        f"/console/reviews/{world['default.item']}",
        f"/console/runs/{world['default.run']}",
    ]:
        response = theirs.get(path)
        assert response.status_code == 404, path
        # the page names the id asked for, and nothing of the run behind it
        assert "cus_1" not in response.text and "Escalated from ask" not in response.text
    listed = theirs.get("/console/runs").text
    assert world["other.run"] in listed and world["default.run"] not in listed
    decided = theirs.post(
        f"/console/reviews/{world['default.item']}/decision",
        data={"csrf": csrf_token(theirs.cookies[COOKIE]), "decision": "approve", "reason": "x"},
    )
    assert decided.status_code == 422
    assert accord.review_item(world["default.item"], tenant=A).status == "open"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pages_follow_the_access_policies_and_are_recorded(
    accord: Accord, base: str, world: dict[str, str]
) -> None:
    reviewer = session(accord, base, "reviewer")
    assert reviewer.get("/console").headers["location"] == "/console/reviews"
    assert reviewer.get("/console/reviews").status_code == 200
    assert reviewer.get("/console/controls").status_code == 403
    assert reviewer.get("/console/audit").status_code == 403
    assert reviewer.get("/console/experiments").status_code == 403
    nav = reviewer.get("/console/reviews").text
    assert "/console/audit" not in nav and "/console/controls" not in nav
    assert "/console/experiments" not in nav

    auditor = session(accord, base, "auditor")
    assert auditor.get("/console/audit").status_code == 200
    refused = auditor.post(
        "/console/flags",
        data={
            "csrf": csrf_token(auditor.cookies[COOKIE]),
            "key": "capability:x.y",
            "value": "off",
            "reason": "auditors may not",
        },
    )
    assert refused.status_code == 403
    assert accord.flags.store.get(A, "capability:x.y").value is True  # type: ignore[union-attr]
    with accord.db.read() as connection:
        denied = stored_api.list_access_decisions(connection, A, allowed=False, limit=10)
    assert {(d.action, d.path) for d in denied} >= {
        ("flags.list", "/console/controls"),
        ("flags.set", "/console/flags"),
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_form_without_the_sessions_token_changes_nothing(
    accord: Accord, base: str, world: dict[str, str]
) -> None:
    operator = session(accord, base, "operator")
    forged = operator.post(
        "/console/flags",
        data={"csrf": "0" * 32, "key": "capability:x.y", "value": "off", "reason": "x"},
    )
    assert forged.status_code == 422 and "did not come from this console" in forged.text
    assert accord.flags.store.get(A, "capability:x.y").value is True  # type: ignore[union-attr]
    real = operator.post(
        "/console/flags",
        data={
            "csrf": csrf_token(operator.cookies[COOKIE]),
            "key": "capability:x.y",
            "value": "off",
            "reason": "incident 42",
        },
    )
    assert real.status_code == 303
    assert accord.flags.store.get(A, "capability:x.y").value is False  # type: ignore[union-attr]
