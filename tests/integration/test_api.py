"""The /v1 API over real HTTP: bearer tokens, Cedar-decided access by role, tenant scoping,
problem details, cursor pagination and Idempotency-Key."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.api import OPERATIONS, ROLES, compile_access, create_app, issue_token, role_matrix
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage._schema import runs
from tests.served import serving

A, B = TenantId("default"), TenantId("other")

APPLY = """
journey: apply
purpose: dpv:ServiceProvision
input: {amount: number}
blocks:
  - id: check
    kind: escalate
    queue: supervisors
    reason: '"a second look"'
  - {id: done, kind: end, outcome: approved}
"""

QUICK = """
journey: quick
input: {n: integer}
blocks:
  - {id: done, kind: end, outcome: done}
"""


@pytest.fixture
def shop(accord: Accord) -> Accord:
    for tenant in (A, B):
        accord.runtime.catalog.deploy(tenant, load_journey_text(APPLY))
        accord.runtime.catalog.deploy(tenant, load_journey_text(QUICK))
    accord.put_person("ann", roles=["supervisor"], actor="test")
    return accord


@pytest.fixture
def api(shop: Accord) -> Iterator[httpx.Client]:
    with serving(create_app(shop)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def token(accord: Accord, *roles: str, tenant: str = A, subject: str = "ann", **claims: Any) -> str:
    return issue_token(
        accord.settings.resolved_keys_dir(),
        subject=subject,
        tenant=tenant,
        roles=list(roles),
        now=time.time(),
        **claims,
    )


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def v1_operations(client: httpx.Client) -> list[tuple[str, str, str]]:
    """(method, path, operation) of every /v1 route the OpenAPI document lists."""
    document = client.get("/openapi.json").json()
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path.startswith("/v1/") and path != "/v1/events":
                found.append((method.upper(), path, operation["x-accord-operation"]))
    return found


def concrete(path: str) -> str:
    return (
        path.replace("{run_id}", "run_none")
        .replace("{item_id}", "rev_none")
        .replace("{name}", "apply")
        .replace("{key}", "capability:x.y")
        .replace("{index}", "0")
    )


# -- authentication --------------------------------------------------------------------------


def test_every_v1_route_answers_401_problem_details_without_a_token(api: httpx.Client) -> None:
    routes = v1_operations(api)
    assert {op for _, _, op in routes} == set(OPERATIONS), "every operation has a route"
    for method, path, _ in routes:
        response = api.request(method, concrete(path), json={})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert api.get("/health").status_code == 200


def test_forged_expired_and_misaddressed_tokens_are_refused(
    api: httpx.Client, shop: Accord
) -> None:
    keys = shop.settings.resolved_keys_dir()
    good = token(shop, "admin")
    now = int(time.time())
    claims = {"iss": "accord", "aud": "accord", "sub": "ann", "tenant": A, "roles": ["admin"]}
    stranger = Ed25519PrivateKey.generate()
    header = jwt.get_unverified_header(good)
    forged = {
        "expired": issue_token(
            keys, subject="ann", tenant=A, roles=["admin"], now=time.time() - 7200, ttl_seconds=60
        ),
        "other audience": issue_token(
            keys, subject="ann", tenant=A, roles=["admin"], now=time.time(), audience="them"
        ),
        "other issuer": issue_token(
            keys, subject="ann", tenant=A, roles=["admin"], now=time.time(), issuer="them"
        ),
        "unknown signer": jwt.encode(
            {**claims, "iat": now, "exp": now + 60}, stranger, "EdDSA", headers=header
        ),
        "alg none": jwt.encode({**claims, "iat": now, "exp": now + 60}, None, "none"),
        "shared secret": jwt.encode({**claims, "iat": now, "exp": now + 60}, "x" * 32, "HS256"),
        "no tenant": jwt.encode(
            {k: v for k, v in claims.items() if k != "tenant"} | {"iat": now, "exp": now + 60},
            Ed25519PrivateKey.from_private_bytes(b"\0" * 32),
            "EdDSA",
        ),
        "garbage": "not-a-jwt",
        "tampered": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
    }
    assert api.get("/v1/runs", headers=auth(good)).status_code == 200
    for why, bad in forged.items():
        response = api.get("/v1/runs", headers=auth(bad))
        assert response.status_code == 401, why
        assert response.json()["code"] == "unauthenticated", why


# -- authorisation ---------------------------------------------------------------------------


def test_every_role_reaches_exactly_the_operations_its_policies_allow(
    api: httpx.Client, shop: Accord
) -> None:
    allowed = role_matrix(compile_access(None))
    routes = v1_operations(api)
    for role in ROLES:
        bearer = auth(token(shop, role))
        for method, path, operation in routes:
            response = api.request(method, concrete(path), json={}, headers=bearer)
            if operation in allowed[role]:
                assert response.status_code != 403, (role, operation, response.text)
            else:
                assert response.status_code == 403, (role, operation, response.status_code)
                problem = response.json()
                assert (problem["code"], problem["operation"]) == ("forbidden", operation)
    writes = {name for name, op in OPERATIONS.items() if op.kind == "write"}
    assert not writes & set(allowed["auditor"]), "auditors never write"
    assert set(allowed["admin"]) == set(OPERATIONS)


def test_a_tenant_never_sees_or_touches_another_tenants_runs(
    api: httpx.Client, shop: Accord
) -> None:
    ours = api.post(
        "/v1/runs",
        json={"journey": "apply", "input": {"amount": 10}, "subject": "cus_1"},
        headers=auth(token(shop, "operator")),
    )
    assert ours.status_code == 201, ours.text
    run_id = ours.json()["run_id"]
    theirs = auth(token(shop, "admin", tenant=B))

    assert api.get(f"/v1/runs/{run_id}", headers=theirs).status_code == 404
    assert api.get(f"/v1/runs/{run_id}/history", headers=theirs).status_code == 404
    assert api.get("/v1/runs", headers=theirs).json()["items"] == []
    cancelled = api.post(f"/v1/runs/{run_id}/cancel", json={"reason": "x"}, headers=theirs)
    assert cancelled.status_code == 404
    signalled = api.post(f"/v1/runs/{run_id}/signals", json={"name": "x"}, headers=theirs)
    assert signalled.status_code == 404
    assert shop.runtime.get(A, run_id).status != "cancelled"


def test_denials_are_recorded_with_the_policies_that_decided(
    api: httpx.Client, shop: Accord
) -> None:
    refused = api.post(
        "/v1/runs",
        json={"journey": "quick", "input": {"n": 1}},
        headers=auth(token(shop, "auditor", subject="aud")),
    )
    assert refused.status_code == 403
    assert refused.json()["policies"] == ["auditors-never-write"]

    listed = api.get(
        "/v1/access/decisions",
        params={"principal": "aud", "allowed": "false"},
        headers=auth(token(shop, "auditor", subject="aud")),
    )
    assert listed.status_code == 200
    (decision,) = listed.json()["items"]
    assert decision["action"] == "runs.start" and decision["reason"] == "forbid"
    assert decision["policies"] == ["auditors-never-write"]
    assert decision["roles"] == ["auditor"] and decision["method"] == "POST"


# -- resources -------------------------------------------------------------------------------


def test_runs_page_by_cursor_without_gaps_or_repeats(
    api: httpx.Client, shop: Accord, clock: Any
) -> None:
    operator = auth(token(shop, "operator"))
    started = []
    for n in range(5):
        clock.advance(1)
        response = api.post(
            "/v1/runs", json={"journey": "quick", "input": {"n": n}}, headers=operator
        )
        started.append(response.json()["run_id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, "journey": "quick"}
        if cursor:
            params["cursor"] = cursor
        body = api.get("/v1/runs", params=params, headers=operator).json()
        seen += [r["run_id"] for r in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (started[::-1], 3)
    broken = api.get("/v1/runs", params={"cursor": "bm9wZQ"}, headers=operator)
    assert (broken.status_code, broken.json()["code"]) == (400, "invalid_cursor")
    bad_limit = api.get("/v1/runs", params={"limit": 0}, headers=operator)
    assert bad_limit.status_code == 422
    assert bad_limit.json()["code"] == "validation_failed"
    assert bad_limit.json()["errors"][0]["location"] == "query.limit"


def test_bad_input_gets_a_specific_problem_and_starts_nothing(
    api: httpx.Client, shop: Accord
) -> None:
    operator = auth(token(shop, "operator"))
    cases = {
        "unknown journey": ({"journey": "nope", "input": {}}, 404, "journey_not_found"),
        "breaks the contract": (
            {"journey": "quick", "input": {"n": "three"}},
            422,
            "contract_violation",
        ),
        "unknown field": ({"journey": "quick", "input": {}, "colour": 1}, 422, "validation_failed"),
    }
    for why, (body, status, code) in cases.items():
        response = api.post("/v1/runs", json=body, headers=operator)
        assert (response.status_code, response.json()["code"]) == (status, code), why
        assert response.json()["detail"], why
    with shop.db.read() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 0


def test_a_reviewer_decides_an_escalated_item_and_the_run_completes(
    api: httpx.Client, shop: Accord
) -> None:
    started = api.post(
        "/v1/runs",
        json={"journey": "apply", "input": {"amount": 10}, "subject": "cus_1"},
        headers=auth(token(shop, "operator")),
    ).json()
    shop.runtime.drive()
    reviewer = auth(token(shop, "reviewer"))

    inbox = api.get("/v1/reviews", headers=reviewer).json()["items"]
    (item,) = [i for i in inbox if i["run_id"] == started["run_id"]]
    detail = api.get(f"/v1/reviews/{item['item_id']}", headers=reviewer).json()
    assert detail["packet"]["run"]["journey"] == "apply"
    assert api.post(f"/v1/reviews/{item['item_id']}/claim", headers=reviewer).status_code == 200
    decided = api.post(
        f"/v1/reviews/{item['item_id']}/decision",
        json={"decision": "approve", "reason": "looks right"},
        headers=reviewer,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["decision"] == "approve"
    shop.runtime.drive()

    run = api.get(f"/v1/runs/{started['run_id']}", headers=reviewer).json()
    assert (run["status"], run["outcome"]) == ("completed", "approved")
    again = api.post(
        f"/v1/reviews/{item['item_id']}/decision",
        json={"decision": "reject", "reason": "changed my mind"},
        headers=reviewer,
    )
    assert (again.status_code, again.json()["code"]) == (409, "review_conflict")


def test_audit_routes_answer_heads_proofs_and_verification(api: httpx.Client, shop: Accord) -> None:
    api.post(
        "/v1/runs",
        json={"journey": "quick", "input": {"n": 1}},
        headers=auth(token(shop, "operator")),
    )
    shop.runtime.drive()
    shop.tree_head(A, fresh=True)
    auditor = auth(token(shop, "auditor"))
    head = api.get("/v1/audit/head", headers=auditor).json()
    assert head["tree_size"] >= 1
    proof = api.get(
        "/v1/audit/proofs/inclusion/0",
        params={"tree_size": head["tree_size"]},
        headers=auditor,
    )
    assert proof.status_code == 200, proof.text
    verified = api.post("/v1/audit/verify", headers=auditor)
    assert verified.status_code == 200 and verified.json()["ok"] is True


# -- idempotency -----------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_answer_and_refuses_a_changed_body(
    api: httpx.Client, shop: Accord
) -> None:
    operator = {**auth(token(shop, "operator")), "Idempotency-Key": "order-17"}
    body = {"journey": "quick", "input": {"n": 17}}
    first = api.post("/v1/runs", json=body, headers=operator)
    again = api.post("/v1/runs", json=body, headers=operator)
    changed = api.post("/v1/runs", json={**body, "input": {"n": 18}}, headers=operator)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotency-replayed"] == "true"
    assert (changed.status_code, changed.json()["code"]) == (422, "idempotency_key_reused")
    bad_key = api.post("/v1/runs", json=body, headers={**operator, "Idempotency-Key": "has space"})
    assert (bad_key.status_code, bad_key.json()["code"]) == (400, "invalid_idempotency_key")
    with shop.db.read() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 1


def test_a_thousand_concurrent_duplicates_start_exactly_one_run(
    api: httpx.Client, shop: Accord
) -> None:
    headers = {**auth(token(shop, "operator")), "Idempotency-Key": "burst-1"}
    body = {"journey": "quick", "input": {"n": 1}}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)

    with httpx.Client(base_url=str(api.base_url), timeout=60, limits=limits) as client:

        def post(_: int) -> httpx.Response:
            return client.post("/v1/runs", json=body, headers=headers)

        with ThreadPoolExecutor(max_workers=64) as pool:
            responses = list(pool.map(post, range(1000)))

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    run_ids = {r.json()["run_id"] for r in responses if r.status_code == 201}
    assert len(run_ids) == 1
    assert all(r.json()["code"] == "request_in_flight" for r in responses if r.status_code == 409)
    with shop.db.read() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 1


def test_token_cli_prints_a_token_the_api_accepts(
    api: httpx.Client, shop: Accord, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from accord.cli import app

    monkeypatch.setenv("ACCORD_KEYS_DIR", str(shop.settings.resolved_keys_dir()))
    made = CliRunner().invoke(app, ["token", "create", "--role", "auditor", "--subject", "eve"])
    refused = CliRunner().invoke(app, ["token", "create", "--role", "wizard"])

    assert made.exit_code == 0, made.output
    assert api.get("/v1/runs", headers=auth(made.stdout.strip())).status_code == 200
    assert refused.exit_code == 2 and "unknown role(s) wizard" in refused.output
