"""Experiments on SQLite and PostgreSQL: sticky assignment by subject with a holdout, one
outcome per subject and metric, the always-valid report, a guardrail breach that stops the
experiment by itself, people's ship and stop decisions, every one of them in the ledger, and
journeys that take part through the gateway."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from accord.core import TenantId
from accord.errors import InputError
from accord.experiments import HOLDOUT, ExperimentSpec, load_experiment, parse_experiment
from accord.journeys import load_journey_text
from accord.service import Accord

T = TenantId("default")

DESIGN = """
experiment: retention-offer
description: a generous offer against the usual one
target: {kind: agent, name: retention-offer}
control: usual
variants:
  - {name: usual, weight: 1}
  - {name: generous, weight: 1}
holdout: 0.1
primary: {name: retained, kind: binary, minimum_effect: 0.1, baseline: 0.3}
guardrails:
  - {name: discount, worse: higher, tolerance: 5, scale: 5}
minimum_sample: 50
"""


def design(**changes: object) -> ExperimentSpec:
    spec = parse_experiment(DESIGN)
    return spec.model_copy(update=changes) if changes else spec


def test_assignment_is_sticky_weighted_and_keeps_a_holdout(accord: Accord) -> None:
    accord.experiments.create(T, design(), actor="ann")
    arms = {
        f"cus_{i:05d}": accord.experiments.assign(T, "retention-offer", f"cus_{i:05d}")
        for i in range(600)
    }
    again = {
        s: accord.experiments.assign(T, "retention-offer", s).variant for s in list(arms)[:200]
    }
    assert again == {s: arms[s].variant for s in again}
    counts = Counter(a.variant for a in arms.values())
    # 10% holdout, the rest split evenly: each within 4 standard deviations of its share
    for arm, share in ((HOLDOUT, 0.1), ("usual", 0.45), ("generous", 0.45)):
        sd = (600 * share * (1 - share)) ** 0.5
        assert abs(counts[arm] - 600 * share) < 4 * sd, counts
    assert all(a.in_experiment == (a.variant != HOLDOUT) for a in arms.values())
    entries = accord.ledger.entries(T, kinds=["experiment.assigned"])
    assert len(entries) == 600  # once per subject, never again for a repeat
    assert {e.subject_id for e in entries} == set(arms)
    [created] = accord.ledger.entries(T, kinds=["experiment.change"])
    assert created.body["change"] == "created" and created.body["actor"] == "ann"


def test_outcomes_count_once_per_subject_and_only_for_assigned_subjects(accord: Accord) -> None:
    accord.experiments.create(T, design(holdout=0.0), actor="ann")
    record = accord.experiments.record
    assert record(T, "retention-offer", "cus_1", "retained", 1) == "not_assigned"
    accord.experiments.assign(T, "retention-offer", "cus_1")
    assert record(T, "retention-offer", "cus_1", "retained", 1) == "recorded"
    assert record(T, "retention-offer", "cus_1", "retained", 0) == "duplicate"
    with pytest.raises(InputError, match="does not measure 'margin'"):
        record(T, "retention-offer", "cus_1", "margin", 3.0)
    with pytest.raises(InputError, match="binary metric: record 0 or 1"):
        record(T, "retention-offer", "cus_2", "retained", 0.5)
    with pytest.raises(InputError, match="not a finite number"):
        record(T, "retention-offer", "cus_1", "discount", float("nan"))
    report = accord.experiments.report(T, "retention-offer")
    assert sum(c.n_control + c.n_variant for c in report.primary) == 1


def test_a_real_effect_is_reported_ship_and_no_effect_continue(accord: Accord) -> None:
    rng = random.Random(7)
    for name, lift in (("with-effect", 0.25), ("without", 0.0)):
        accord.experiments.create(
            T, design(experiment=name, guardrails=(), holdout=0.0), actor="ann"
        )
        for i in range(300):
            subject = f"{name}-{i}"
            arm = accord.experiments.assign(T, name, subject).variant
            rate = 0.3 + (lift if arm == "generous" else 0.0)
            accord.experiments.record(T, name, subject, "retained", float(rng.random() < rate))
    shipped = accord.experiments.report(T, "with-effect")
    assert shipped.verdict == "ship generous", shipped.reasons
    [c] = shipped.primary
    assert c.significant and c.low > 0 and c.low <= c.effect <= c.high
    flat = accord.experiments.report(T, "without")
    assert flat.verdict == "continue", flat.reasons
    # a report is a reading, never a decision: both still run until a person decides
    assert shipped.status == flat.status == "running"


def test_a_guardrail_breach_stops_the_experiment_by_itself(accord: Accord) -> None:
    accord.experiments.create(T, design(holdout=0.0), actor="ann")
    rng = random.Random(3)
    stopped_after = None
    for i in range(600):
        subject = f"cus_{i}"
        arm = accord.experiments.assign(T, "retention-offer", subject)
        if not arm.in_experiment:
            stopped_after = i
            break
        discount = rng.gauss(30 if arm.variant == "generous" else 10, 5)
        accord.experiments.record(T, "retention-offer", subject, "discount", discount)
    assert stopped_after is not None, "the breach was never noticed"
    report = accord.experiments.report(T, "retention-offer")
    assert report.status == "stopped" and report.decision is not None
    assert report.decision["by"] == "accord"
    assert report.decision["reason"].startswith("guardrail breached: discount generous vs usual")
    [stop] = [
        e
        for e in accord.ledger.entries(T, kinds=["experiment.change"])
        if e.body["change"] == "stopped"
    ]
    assert stop.body["actor"] == "accord" and "guardrail breached" in stop.body["reason"]
    # after the stop, everyone new gets the control and is not in the experiment
    late = accord.experiments.assign(T, "retention-offer", "newcomer")
    assert (late.variant, late.in_experiment) == ("usual", False)
    assert accord.experiments.record(T, "retention-offer", "cus_0", "retained", 1) == "closed"


def test_people_ship_or_stop_with_a_reason_recorded_with_the_figures(accord: Accord) -> None:
    accord.experiments.create(T, design(), actor="ann")
    with pytest.raises(InputError, match="not a variant"):
        accord.experiments.ship(T, "retention-offer", "lavish", actor="ann", reason="x")
    with pytest.raises(InputError, match="needs a reason"):
        accord.experiments.ship(T, "retention-offer", "generous", actor="ann", reason=" ")
    accord.experiments.ship(T, "retention-offer", "generous", actor="ann", reason="better")
    with pytest.raises(InputError, match="already ended"):
        accord.experiments.stop(T, "retention-offer", actor="ann", reason="again")
    assert accord.experiments.assign(T, "retention-offer", "someone").variant == "generous"
    [shipped] = [
        e
        for e in accord.ledger.entries(T, kinds=["experiment.change"])
        if e.body["change"] == "shipped"
    ]
    assert shipped.body["detail"]["variant"] == "generous"
    assert "assigned" in shipped.body["detail"] and "verdict" in shipped.body["detail"]
    with pytest.raises(InputError, match=r"is running|higher version"):
        accord.experiments.create(T, design(), actor="ann")
    accord.experiments.create(T, design(version=2), actor="ann")
    assert accord.experiments.report(T, "retention-offer").status == "running"


def test_a_bad_design_is_refused_with_the_field_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DESIGN.replace("control: usual", "control: lavish"), encoding="utf-8")
    with pytest.raises(InputError, match="control 'lavish' is not one of the variants"):
        load_experiment(path)
    path.write_text(DESIGN.replace("holdout: 0.1", "holdout: 0.9"), encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.yaml: holdout: Input should be less than"):
        load_experiment(path)
    path.write_text("experiment: [", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML"):
        load_experiment(path)


JOURNEY = """
journey: offer_with_experiment
purpose: dpv:CustomerCare
input:
  retained: {type: number}
blocks:
  - id: arm
    kind: task
    capability: experiment.assign
    input: {experiment: '"retention-offer"'}
  - id: outcome
    kind: task
    capability: experiment.record
    input: {experiment: '"retention-offer"', metric: '"retained"', value: input.retained}
  - id: done
    kind: end
    output: {variant: steps.arm.variant, recorded: steps.outcome.result}
"""


def test_journeys_read_their_arm_and_record_outcomes_through_the_gateway(
    accord: Accord,
) -> None:
    accord.experiments.create(T, design(holdout=0.0), actor="ann")
    accord.runtime.catalog.deploy(
        T, load_journey_text(JOURNEY, source_name="test"), deployed_by="t"
    )
    first = accord.runtime.start(T, "offer_with_experiment", input={"retained": 1}, subject="cus_9")
    second = accord.runtime.start(
        T, "offer_with_experiment", input={"retained": 0}, subject="cus_9"
    )
    accord.runtime.drive()
    one, two = (accord.runtime.get(T, r.run_id) for r in (first, second))
    assert one.status == two.status == "completed"
    assert one.output["variant"] == two.output["variant"]
    assert sorted([one.output["recorded"], two.output["recorded"]]) == ["duplicate", "recorded"]
    decisions = accord.runtime.decisions(T, first.run_id)
    assert [(d.capability, d.outcome) for d in decisions] == [
        ("experiment.assign", "executed"),
        ("experiment.record", "executed"),
    ]
    # a run without a subject cannot take part: the call fails, nothing is assigned
    lone = accord.runtime.start(T, "offer_with_experiment", input={"retained": 1})
    accord.runtime.drive()
    assert accord.runtime.get(T, lone.run_id).status == "failed"
