"""The retention journey in the experiment ``retention-offer``, on the sample enterprise over real
HTTP: each customer keeps one arm, the generous arm is offered 5 points more than the model
proposed and never more than 30%, billing applies what was offered, every customer's outcome
is counted once, the journey works as before where the experiment does not exist, and a batch
of customers following a known response model keeps more of them in the generous arm."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.experiments import HOLDOUT, load_experiment
from accord.simulation import (
    TENANT,
    Case,
    Driver,
    Enterprise,
    Persona,
    RetentionResponse,
    open_enterprise,
    retention_wave,
)

ROOT = Path(__file__).resolve().parents[2]
DESIGN = load_experiment(ROOT / "examples" / "enterprise" / "experiments" / "retention-offer.yaml")
MARKETING = "dpv:DirectMarketing"
PROPOSING = {
    10.0: "your app kept crashing last month and support never called back",
    20.0: "the price went up twice this year",
    30.0: "I found the same thing cheaper at another shop",
}
"""A reason for each percent the retention model proposes within the ceiling."""


def emailable(enterprise: Enterprise) -> list[str]:
    """The customers an offer reaches: opted in to marketing e-mail in the CRM."""
    return [str(case.subject) for case in retention_wave(enterprise)]


def offered(arm: str, proposal: float) -> float:
    """What the design promises each arm: 5 more points for generous, never above 30."""
    return min(proposal + 5.0, 30.0) if arm == "generous" else proposal


def case(name: str, customer: str, proposal: float, persona: Persona) -> Case:
    reason = PROPOSING[proposal]
    return Case(
        name, "retention_offer", {"customer_id": customer, "reason": reason}, customer, persona
    )


def steps(enterprise: Enterprise, run_id: str | None) -> dict[str, Any]:
    assert run_id is not None
    return dict(enterprise.accord.runtime.get(TENANT, run_id).steps)


def applied_discounts(enterprise: Enterprise, customer: str) -> list[float]:
    """The percents billing holds for the customer's account, as billing tells it."""
    with httpx.Client(timeout=10.0) as http:
        base = enterprise.url("billing")
        account = http.get(f"{base}/accounts/search", params={"customer_id": customer}).json()
        account_id = account["account_id"]
        discounts = http.get(f"{base}/accounts/{account_id}/discounts").json()["discounts"]
    return [float(d["percent"]) for d in discounts if d["status"] == "active"]


def test_arms_are_sticky_offer_what_the_design_says_and_count_each_customer_once(
    tmp_path: Path,
) -> None:
    with open_enterprise(tmp_path / "work") as enterprise:
        accord = enterprise.accord
        accord.experiments.create(TENANT, DESIGN, actor="test")
        customers = emailable(enterprise)[:75]
        proposal = {c: (10.0, 20.0, 30.0)[i % 3] for i, c in enumerate(customers)}
        refuses_first = set(customers[::4])
        with Driver(enterprise) as driver:
            first = {
                c: driver.start(
                    case(
                        f"first {c}",
                        c,
                        proposal[c],
                        Persona(
                            consents=(MARKETING,),
                            confirm="refuse" if c in refuses_first else "confirm",
                        ),
                    )
                )
                for c in customers
            }
            driver.settle(seconds=120)
            again = {
                c: driver.start(case(f"again {c}", c, proposal[c], Persona(consents=(MARKETING,))))
                for c in sorted(refuses_first)
            }
            driver.settle(seconds=120)

        arms = {c: steps(enterprise, first[c])["arm"]["variant"] for c in customers}
        # one arm per customer, the same at their second offer and in the ledger
        assert {c: steps(enterprise, again[c])["arm"]["variant"] for c in again} == {
            c: arms[c] for c in again
        }
        assigned = accord.ledger.entries(TENANT, kinds=["experiment.assigned"])
        assert sorted(e.subject_id or "" for e in assigned) == sorted(customers)
        assert {e.subject_id: e.body["variant"] for e in assigned} == arms
        seen = Counter(arms.values())
        assert seen["usual"] > 0 and seen["generous"] > 0, seen

        # billing applied what the arm offers: the proposal, or 5 points more up to 30
        for c in customers:
            accepted_then = again[c] if c in refuses_first else first[c]
            view = accord.runtime.get(TENANT, accepted_then or "")
            assert [p.block for p in view.positions] == ["settle_in"], (c, view)
            assert applied_discounts(enterprise, c) == [offered(arms[c], proposal[c])], c
        generous = {proposal[c] for c in customers if arms[c] == "generous"}
        assert 30.0 in generous and generous & {10.0, 20.0}, generous

        # each customer's outcome counts once: a second offer answers duplicate
        for run in again.values():
            later = steps(enterprise, run)
            assert later["record_retained"] == later["record_discount"] == {"result": "duplicate"}
        report = accord.experiments.report(TENANT, DESIGN.experiment)
        assert report.assigned == {arm: seen[arm] for arm in ("usual", "generous", HOLDOUT)}
        [retained] = report.primary
        [discount] = [g.comparison for g in report.guardrails]
        for comparison in (retained, discount):
            assert (comparison.n_control, comparison.n_variant) == (seen["usual"], seen["generous"])

        def first_outcomes(arm: str) -> tuple[float, float]:
            """Retained and discount of the arm's customers at their first offer."""
            mine = [c for c in customers if arms[c] == arm]
            kept = [c for c in mine if c not in refuses_first]
            return (
                len(kept) / len(mine),
                sum(offered(arm, proposal[c]) for c in kept) / len(mine),
            )

        assert (retained.control_mean, discount.control_mean) == pytest.approx(
            first_outcomes("usual")
        )
        assert (retained.variant_mean, discount.variant_mean) == pytest.approx(
            first_outcomes("generous")
        )


def test_without_the_experiment_the_usual_offer_goes_out_and_nothing_is_recorded(
    tmp_path: Path,
) -> None:
    with open_enterprise(tmp_path / "work") as enterprise:
        accord = enterprise.accord
        assert accord.experiments.list(TENANT) == []
        customers = emailable(enterprise)[:3]
        personas = {
            "accepts": Persona(consents=(MARKETING,)),
            "refuses": Persona(consents=(MARKETING,), confirm="refuse"),
            "not reached": Persona(),
        }
        with Driver(enterprise, advance_time=True) as driver:
            runs = {
                who: driver.start(case(who, customer, 20.0, persona))
                for (who, persona), customer in zip(personas.items(), customers, strict=True)
            }
            driver.settle(seconds=120)
        ended = {who: accord.runtime.get(TENANT, run or "") for who, run in runs.items()}
        assert {who: (v.status, v.outcome) for who, v in ended.items()} == {
            "accepts": ("completed", "retained"),
            "refuses": ("completed", "declined"),
            "not reached": ("completed", "no_outreach"),
        }
        assert ended["accepts"].output["percent"] == 20.0
        assert applied_discounts(enterprise, customers[0]) == [20.0]
        for run in runs.values():
            decided = [
                (d.capability, d.outcome)
                for d in accord.runtime.decisions(TENANT, run or "")
                if d.capability.startswith("experiment.")
            ]
            assert decided == [("experiment.assign", "failed")]


def test_a_seeded_batch_keeps_more_customers_in_the_generous_arm(tmp_path: Path) -> None:
    # Customers who almost never stay for 10% off and often stay for 15%: a large true
    # effect, so that its direction shows in one batch whatever the experiment's random salt
    # makes of the arms (the estimate is some five standard errors above zero), and a true
    # discount cost of about 5 points, well inside the guardrail's tolerance of 8.
    response = RetentionResponse(midpoint=16.0, slope=0.6)
    assert response.acceptance(10.0) < 0.03
    assert 0.35 < response.acceptance(15.0) < 0.36
    draws = random.Random(2026)
    with open_enterprise(tmp_path / "work") as enterprise:
        accord = enterprise.accord
        accord.experiments.create(TENANT, DESIGN, actor="test")
        customers = emailable(enterprise)
        with Driver(enterprise, response=response) as driver:
            runs = {
                c: driver.start(
                    case(
                        c,
                        c,
                        10.0,
                        Persona(consents=(MARKETING,), confirm="weigh", draw=draws.random()),
                    )
                )
                for c in customers
            }
            driver.settle(seconds=180)
            weighed = {f.case.name: f.weighed for f in driver.results()}

        outcomes: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for c, run in runs.items():
            taken = steps(enterprise, run)
            arm = taken["arm"]["variant"]
            assert weighed[c] == offered(arm, 10.0)
            stayed = "discount" in taken
            outcomes[arm].append(
                (1.0 if stayed else 0.0, taken["discount"]["percent"] if stayed else 0.0)
            )
        report = accord.experiments.report(TENANT, DESIGN.experiment)
        [retained] = report.primary
        [guardrail] = report.guardrails

        def mean(arm: str, index: int) -> float:
            return sum(o[index] for o in outcomes[arm]) / len(outcomes[arm])

        # the figures are the recorded outcomes, arm by arm
        assert (retained.n_control, retained.n_variant) == (
            len(outcomes["usual"]),
            len(outcomes["generous"]),
        )
        assert retained.control_mean == pytest.approx(mean("usual", 0))
        assert retained.variant_mean == pytest.approx(mean("generous", 0))
        assert guardrail.comparison.control_mean == pytest.approx(mean("usual", 1))
        assert guardrail.comparison.variant_mean == pytest.approx(mean("generous", 1))
        # and they show what the customers do: the generous arm keeps more of them
        assert retained.effect > 0
        assert retained.effect == pytest.approx(mean("generous", 0) - mean("usual", 0))
        # fewer outcomes than the design asks for per arm: a verdict waits, and says why
        fewest = min(retained.n_control, retained.n_variant)
        assert fewest < DESIGN.minimum_sample
        assert report.verdict == "continue"
        assert report.reasons == [
            f"generous: {fewest} of the {DESIGN.minimum_sample} outcomes per arm the design "
            "asks for before deciding"
        ]
        assert not guardrail.breached and report.status == "running"


def test_an_acceptance_counts_even_when_billing_then_fails(tmp_path: Path) -> None:
    draws = random.Random(2026)
    with open_enterprise(tmp_path / "work") as enterprise:
        accord = enterprise.accord
        accord.experiments.create(TENANT, DESIGN, actor="test")
        httpx.put(
            f"{enterprise.url('billing')}/_sandbox/faults",
            json=[{"operation": "apply_discount", "error_rate": 1.0, "seed": 3}],
        ).raise_for_status()
        customers = emailable(enterprise)[:24]
        # every customer accepts: whichever arm they are in, billing fails after the answer
        with Driver(enterprise, advance_time=True) as driver:
            runs = {
                c: driver.start(
                    case(c, c, 10.0, Persona(consents=(MARKETING,), draw=draws.random()))
                )
                for c in customers
            }
            driver.settle(seconds=240)
        accepted = 0
        for customer, run in runs.items():
            view = accord.runtime.get(TENANT, str(run))
            if view.steps.get("accept", {}).get("answer") != "confirmed":
                continue
            accepted += 1
            assert "record_retained" in view.steps, (customer, view.status)
            assert "discount" not in view.steps  # billing never answered
        assert accepted >= 12
        report = accord.experiments.report(TENANT, DESIGN.experiment)
        [primary] = report.primary
        held_out = report.assigned.get(HOLDOUT, 0)
        assert primary.n_control + primary.n_variant == accepted - held_out
        assert primary.control_mean == primary.variant_mean == 1.0
