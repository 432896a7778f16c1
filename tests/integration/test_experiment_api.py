"""Experiments over the /v1 API and real HTTP: designs in YAML or JSON, the list, the report
with its always-valid figures, ship and stop with a reason the ledger keeps, a specific problem
for each bad request, the roles the access policies give, and tenants kept apart."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest
import yaml

from accord.api import OPERATIONS, ROLES, compile_access, role_matrix
from accord.core import TenantId
from accord.experiments import parse_experiment
from accord.service import Accord
from tests.integration import test_api
from tests.integration.test_api import A, B, auth, token

shop = test_api.shop
api = test_api.api

NAME = "retention-offer"

DESIGN = """
experiment: retention-offer
description: a generous offer against the usual one
target: {kind: agent, name: retention-offer}
control: usual
variants:
  - {name: usual, description: the usual offer}
  - {name: generous, description: five points more}
holdout: 0.05
primary: {name: retained, kind: binary, minimum_effect: 0.1, baseline: 0.3}
guardrails:
  - {name: discount, worse: higher, tolerance: 15, scale: 5}
minimum_sample: 50
"""

EXPERIMENT_OPERATIONS = {name for name in OPERATIONS if name.startswith("experiments.")}
READS = {"experiments.list", "experiments.get"}


def seed_outcomes(
    accord: Accord, tenant: str, name: str, *, subjects: int = 300, seed: int = 11
) -> None:
    """Assign ``subjects`` and record their outcomes: the generous arm keeps 70% of its
    customers, the usual one 25%, and both give discounts well inside the guardrail."""
    rng = random.Random(seed)
    t = TenantId(tenant)
    for i in range(subjects):
        subject = f"cus_{i:04d}"
        arm = accord.experiments.assign(t, name, subject)
        if not arm.in_experiment:
            continue
        rate = 0.7 if arm.variant == "generous" else 0.25
        accord.experiments.record(t, name, subject, "retained", float(rng.random() < rate))
        discount = rng.gauss(12 if arm.variant == "generous" else 10, 2)
        accord.experiments.record(t, name, subject, "discount", discount)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["detail"]
    return body


def changes(accord: Accord, tenant: str = A) -> list[dict[str, Any]]:
    return [e.body for e in accord.ledger.entries(tenant, kinds=["experiment.change"])]


def test_an_experiment_is_created_listed_and_reported_with_its_figures(
    api: httpx.Client, shop: Accord
) -> None:
    author = auth(token(shop, "author", subject="ann"))
    created = api.post("/v1/experiments", json={"source": DESIGN}, headers=author)
    assert created.status_code == 201, created.text
    fresh = created.json()
    assert (fresh["experiment"], fresh["status"], fresh["verdict"]) == (NAME, "running", "continue")
    assert fresh["subjects"] == 0
    assert [a["name"] for a in fresh["arms"] if a["control"]] == ["usual"]

    # the same design as a JSON object, under another name
    as_object = yaml.safe_load(DESIGN) | {"experiment": "as-json"}
    assert (
        api.post("/v1/experiments", json={"design": as_object}, headers=author).status_code == 201
    )

    seed_outcomes(shop, A, NAME)
    supervisor = auth(token(shop, "supervisor", subject="sue"))
    listed = api.get("/v1/experiments", headers=supervisor)
    assert listed.status_code == 200, listed.text
    rows = {r["experiment"]: r for r in listed.json()["items"]}
    assert set(rows) == {NAME, "as-json"}
    row = rows[NAME]
    assert row["target"] == {"kind": "agent", "name": "retention-offer"}
    assert row["variants"] == ["usual", "generous"]
    assert (row["status"], row["verdict"], row["subjects"]) == ("running", "ship generous", 300)
    assert sum(row["assigned"].values()) == 300 and row["assigned"]["holdout"] > 0

    got = api.get(f"/v1/experiments/{NAME}", headers=supervisor)
    assert got.status_code == 200, got.text
    report = got.json()
    expected = shop.experiments.report(A, NAME)
    assert report["verdict"] == "ship generous" == expected.verdict
    assert report["reasons"] == expected.reasons and report["reasons"][0].startswith("generous")
    assert report["planned_sample"] == expected.planned_sample
    assert report["assigned"] == expected.assigned
    primary, guardrail = report["metrics"]
    assert (primary["name"], primary["role"], primary["better"]) == (
        "retained",
        "primary",
        "higher",
    )
    [c] = primary["comparisons"]
    [e] = expected.primary
    assert (c["variant"], c["control"]) == ("generous", "usual")
    assert (c["n_control"], c["n_variant"]) == (e.n_control, e.n_variant)
    assert c["control_mean"] == pytest.approx(e.control_mean)
    assert c["variant_mean"] == pytest.approx(e.variant_mean)
    assert c["effect"] == pytest.approx(e.effect) and c["effect"] > 0.3
    assert c["low"] == pytest.approx(e.low) and 0 < c["low"] <= c["effect"] <= c["high"]
    assert c["p_value"] == pytest.approx(e.p_value) and c["significant"] is True
    assert "always valid" in c["method"]
    assert (guardrail["name"], guardrail["role"], guardrail["better"]) == (
        "discount",
        "guardrail",
        "lower",
    )
    assert guardrail["breached"] is False and guardrail["comparisons"][0]["breached"] is False
    assert report["decision"] is None and report["status"] == "running"


def test_ship_and_stop_need_a_reason_and_the_ledger_keeps_it_with_the_figures(
    api: httpx.Client, shop: Accord
) -> None:
    shop.experiments.create(A, parse_experiment(DESIGN), actor="tests")
    shop.experiments.create(A, parse_experiment(DESIGN.replace(NAME, "second", 1)), actor="tests")
    seed_outcomes(shop, A, NAME)
    operator = auth(token(shop, "operator", subject="olga"))

    shipped = api.post(
        f"/v1/experiments/{NAME}/ship",
        json={"variant": "generous", "reason": "twice the retention, discount within bounds"},
        headers=operator,
    )
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped"
    assert shipped.json()["decision"] == {
        "status": "shipped",
        "variant": "generous",
        "by": "olga",
        "reason": "twice the retention, discount within bounds",
    }
    stopped = api.post(
        "/v1/experiments/second/stop", json={"reason": "the offer was withdrawn"}, headers=operator
    )
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["decision"]["by"] == "olga"

    decided = {(c["experiment"], c["change"]): c for c in changes(shop)}
    ship_entry = decided[NAME, "shipped"]
    assert (ship_entry["actor"], ship_entry["reason"]) == (
        "olga",
        "twice the retention, discount within bounds",
    )
    assert ship_entry["detail"]["variant"] == "generous"
    assert ship_entry["detail"]["verdict"] == "ship generous"
    assert sum(ship_entry["detail"]["assigned"].values()) == 300
    stop_entry = decided["second", "stopped"]
    assert (stop_entry["actor"], stop_entry["reason"]) == ("olga", "the offer was withdrawn")

    # everyone new now gets the shipped variant, outside the experiment
    late = shop.experiments.assign(A, NAME, "newcomer")
    assert (late.variant, late.in_experiment) == ("generous", False)

    # an ended experiment takes no second decision, and nothing more is written
    before = len(changes(shop))
    again = api.post(
        f"/v1/experiments/{NAME}/stop", json={"reason": "changed my mind"}, headers=operator
    )
    body = problem(again, 409, "experiment_ended")
    assert "shipped by olga" in body["detail"]
    problem(
        api.post(
            "/v1/experiments/second/ship",
            json={"variant": "generous", "reason": "after all"},
            headers=operator,
        ),
        409,
        "experiment_ended",
    )
    assert len(changes(shop)) == before


def test_an_idempotency_key_replays_a_decision_instead_of_refusing_it(
    api: httpx.Client, shop: Accord
) -> None:
    shop.experiments.create(A, parse_experiment(DESIGN), actor="tests")
    operator = {**auth(token(shop, "operator")), "Idempotency-Key": "ship-retention-1"}
    body = {"variant": "usual", "reason": "no difference worth the cost"}
    first = api.post(f"/v1/experiments/{NAME}/ship", json=body, headers=operator)
    again = api.post(f"/v1/experiments/{NAME}/ship", json=body, headers=operator)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotency-replayed"] == "true"
    assert [c["change"] for c in changes(shop)] == ["created", "shipped"]


def test_each_bad_request_gets_its_own_problem_and_changes_nothing(
    api: httpx.Client, shop: Accord
) -> None:
    shop.experiments.create(A, parse_experiment(DESIGN), actor="tests")
    admin = auth(token(shop, "admin"))
    before = (changes(shop), shop.experiments.list(A))

    problem(api.get("/v1/experiments/nothing-here", headers=admin), 404, "experiment_not_found")
    for action, body in (
        ("ship", {"variant": "usual", "reason": "x"}),
        ("stop", {"reason": "x"}),
    ):
        missing = api.post(f"/v1/experiments/nothing-here/{action}", json=body, headers=admin)
        problem(missing, 404, "experiment_not_found")
    # a name no experiment can have is refused before anything is looked up
    problem(api.get("/v1/experiments/Not_A_Name", headers=admin), 422, "validation_failed")

    bad = api.post(
        "/v1/experiments",
        json={"source": DESIGN.replace(NAME, "other", 1).replace("holdout: 0.05", "holdout: 0.9")},
        headers=admin,
    )
    found = problem(bad, 422, "experiment_invalid")
    assert "holdout" in found["detail"]
    assert [e["location"] for e in found["errors"]] == ["body.source.holdout"]

    design = yaml.safe_load(DESIGN) | {"experiment": "other"}
    design["primary"] = {**design["primary"], "minimum_effect": -1}
    found = problem(
        api.post("/v1/experiments", json={"design": design}, headers=admin),
        422,
        "experiment_invalid",
    )
    assert [e["location"] for e in found["errors"]] == ["body.design.primary.minimum_effect"]

    found = problem(
        api.post("/v1/experiments", json={"source": "experiment: ["}, headers=admin),
        422,
        "experiment_invalid",
    )
    assert "not valid YAML" in found["detail"]
    unnamed = yaml.safe_load(DESIGN) | {"control": "lavish", "experiment": "other"}
    found = problem(
        api.post("/v1/experiments", json={"source": json.dumps(unnamed)}, headers=admin),
        422,
        "experiment_invalid",
    )
    assert "control 'lavish' is not one of the variants" in found["detail"]
    problem(
        api.post("/v1/experiments", json={"source": DESIGN, "design": design}, headers=admin),
        422,
        "validation_failed",
    )
    running = problem(
        api.post("/v1/experiments", json={"source": DESIGN}, headers=admin),
        409,
        "experiment_conflict",
    )
    assert "is running" in running["detail"]

    for body in ({"variant": "generous"}, {"variant": "generous", "reason": "   "}):
        found = problem(
            api.post(f"/v1/experiments/{NAME}/ship", json=body, headers=admin),
            422,
            "validation_failed",
        )
        assert found["errors"][0]["location"] == "body.reason"
    found = problem(
        api.post(f"/v1/experiments/{NAME}/stop", json={}, headers=admin), 422, "validation_failed"
    )
    assert found["errors"][0]["location"] == "body.reason"
    found = problem(
        api.post(
            f"/v1/experiments/{NAME}/ship",
            json={"variant": "lavish", "reason": "bigger is better"},
            headers=admin,
        ),
        422,
        "unknown_variant",
    )
    assert "usual, generous" in found["hint"]
    problem(
        api.post(
            f"/v1/experiments/{NAME}/ship",
            json={"variant": "holdout", "reason": "nobody gets anything"},
            headers=admin,
        ),
        422,
        "unknown_variant",
    )
    assert (changes(shop), shop.experiments.list(A)) == before


def test_a_higher_version_replaces_an_ended_design_and_a_lower_one_conflicts(
    api: httpx.Client, shop: Accord
) -> None:
    author = auth(token(shop, "author"))
    assert api.post("/v1/experiments", json={"source": DESIGN}, headers=author).status_code == 201
    stop = api.post(f"/v1/experiments/{NAME}/stop", json={"reason": "redesign"}, headers=author)
    assert stop.status_code == 200
    same = problem(
        api.post("/v1/experiments", json={"source": DESIGN}, headers=author),
        409,
        "experiment_conflict",
    )
    assert "version: 2" in same["hint"]
    second = api.post("/v1/experiments", json={"source": DESIGN + "version: 2\n"}, headers=author)
    assert second.status_code == 201, second.text
    assert (second.json()["version"], second.json()["status"]) == (2, "running")


def test_roles_reach_the_experiment_operations_the_policies_give_them(
    api: httpx.Client, shop: Accord
) -> None:
    shop.experiments.create(A, parse_experiment(DESIGN), actor="tests")
    everything = EXPERIMENT_OPERATIONS
    expected = {
        "operator": everything,
        "author": everything,
        "admin": everything,
        "supervisor": READS,
        "auditor": READS,
        "reviewer": set(),
    }
    matrix = role_matrix(compile_access(None))
    assert {role: set(matrix[role]) & everything for role in ROLES} == expected

    requests = {
        "experiments.list": ("GET", "/v1/experiments", None),
        "experiments.get": ("GET", f"/v1/experiments/{NAME}", None),
        # a design that is refused (422) shows the caller got past the policies
        "experiments.create": ("POST", "/v1/experiments", {"source": "experiment: ["}),
        "experiments.ship": (
            "POST",
            f"/v1/experiments/{NAME}/ship",
            {"variant": "lavish", "reason": "probe"},
        ),
        "experiments.stop": ("POST", f"/v1/experiments/{NAME}/stop", {"reason": " "}),
    }
    assert set(requests) == everything
    for role in ROLES:
        bearer = auth(token(shop, role, subject=f"{role}-1"))
        for operation, (method, path, body) in requests.items():
            response = api.request(method, path, json=body, headers=bearer)
            if operation in expected[role]:
                assert response.status_code in (200, 422), (role, operation, response.text)
            else:
                found = problem(response, 403, "forbidden")
                assert found["operation"] == operation, (role, found)
    assert shop.experiments.report(A, NAME).status == "running"


def test_another_tenants_experiments_are_neither_seen_nor_decided(
    api: httpx.Client, shop: Accord
) -> None:
    shop.experiments.create(A, parse_experiment(DESIGN), actor="tests")
    seed_outcomes(shop, A, NAME, subjects=60)
    theirs = auth(token(shop, "admin", tenant=B, subject="bob"))

    assert api.get("/v1/experiments", headers=theirs).json()["items"] == []
    problem(api.get(f"/v1/experiments/{NAME}", headers=theirs), 404, "experiment_not_found")
    problem(
        api.post(
            f"/v1/experiments/{NAME}/ship",
            json={"variant": "generous", "reason": "not ours to ship"},
            headers=theirs,
        ),
        404,
        "experiment_not_found",
    )
    problem(
        api.post(f"/v1/experiments/{NAME}/stop", json={"reason": "nor to stop"}, headers=theirs),
        404,
        "experiment_not_found",
    )
    assert shop.experiments.report(A, NAME).status == "running"

    # the same name in the other tenant is another experiment, with nothing of the first
    created = api.post("/v1/experiments", json={"source": DESIGN}, headers=theirs)
    assert created.status_code == 201, created.text
    assert created.json()["subjects"] == 0
    stopped = api.post(f"/v1/experiments/{NAME}/stop", json={"reason": "ours"}, headers=theirs)
    assert stopped.status_code == 200
    ours = api.get(f"/v1/experiments/{NAME}", headers=auth(token(shop, "auditor"))).json()
    assert (ours["status"], ours["subjects"]) == ("running", 60)
    assert [c["change"] for c in changes(shop, A)] == ["created"]
    assert [c["change"] for c in changes(shop, B)] == ["created", "stopped"]


def _design(**primary: Any) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(DESIGN)
    found["primary"] = found["primary"] | primary
    return found


@pytest.mark.parametrize(
    ("design", "location"),
    [
        (_design(minimum_effect=1e-200), "body.source.primary.minimum_effect"),
        (_design(minimum_effect=1e-8), "body.source"),
        (_design(minimum_effect=float("inf")), "body.source.primary.minimum_effect"),
        (_design(kind="number", sd=1e300), "body.source.primary.sd"),
        (_design(kind="number", baseline=float("nan"), sd=1), "body.source.primary.baseline"),
        (yaml.safe_load(DESIGN) | {"version": 10**30}, "body.source.version"),
        (
            yaml.safe_load(DESIGN)
            | {"guardrails": [{"name": "discount", "worse": "higher", "scale": 1e-320}]},
            "body.source.guardrails.0.scale",
        ),
        (
            yaml.safe_load(DESIGN)
            | {
                "guardrails": [
                    {"name": "discount", "worse": "higher", "scale": 1, "tolerance": 1e300}
                ]
            },
            "body.source.guardrails.0.tolerance",
        ),
    ],
)
def test_a_design_that_cannot_be_run_is_refused_before_it_is_stored(
    api: httpx.Client, shop: Accord, design: dict[str, Any], location: str
) -> None:
    author = auth(token(shop, "author", subject="ann"))
    found = problem(
        api.post("/v1/experiments", json={"source": yaml.safe_dump(design)}, headers=author),
        422,
        "experiment_invalid",
    )
    assert [e["location"] for e in found["errors"]] == [location]
    assert shop.experiments.list(A) == []
    listed = api.get("/v1/experiments", headers=author)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
    # the name stays free: the same experiment, designed soundly, starts at once
    sound = api.post("/v1/experiments", json={"source": DESIGN}, headers=author)
    assert sound.status_code == 201, sound.text


def test_a_stored_design_that_no_longer_reads_does_not_break_the_list(
    api: httpx.Client, shop: Accord
) -> None:
    import sqlalchemy as sa

    from accord.storage._schema import experiments

    shop.experiments.create(A, parse_experiment(DESIGN), actor="tests")
    shop.experiments.create(A, parse_experiment(DESIGN.replace(NAME, "second", 1)), actor="tests")
    broken = _design(minimum_effect=1e-200) | {"experiment": "second"}
    with shop.db.transaction() as connection:
        connection.execute(
            sa.update(experiments)
            .where(experiments.c.tenant_id == A, experiments.c.name == "second")
            .values(spec=json.dumps(broken))
        )
    listed = api.get("/v1/experiments", headers=auth(token(shop, "admin")))
    assert listed.status_code == 200, listed.text
    items = {i["experiment"]: i for i in listed.json()["items"]}
    assert items[NAME]["verdict"] == "continue" and items[NAME]["error"] is None
    assert items["second"]["verdict"] == "invalid"
    assert items["second"]["status"] == "running"
    assert "minimum_effect" in items["second"]["error"]
