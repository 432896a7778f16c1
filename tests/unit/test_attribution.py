"""Attribution on synthetic paths whose truth is known: a randomised arm's effect is covered by
its interval about as often as promised, also when subjects run the journey several times; an
arm without effect gets an interval covering 0; a confounded observational point is labelled
not causal and its stratified estimate moves toward the truth; removal-effect shares sum to
100% and the point every success needs gets the most; below the minimum counts there are no
numbers; and paths are read from the events the runtime records."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from accord.attribution import (
    RANDOMISED,
    REMOVAL,
    STRATIFIED,
    TOO_FEW,
    UNADJUSTED,
    Point,
    RecordedRun,
    RunPath,
    Step,
    attribute,
    difference,
    paths_of,
    wilson,
)
from accord.errors import InputError

ARM = Point("arm", "experiment")
SEGMENT = Point("segment", "branch")
OFFER = Point("offer", "branch")
WIN, LOSS = "retained", "lost"
ASSIGN = "experiment.assign"


def arm(value: str, *, randomised: bool = True) -> Step:
    return Step(ARM, value, randomised=randomised, experiment="retention-offer")


def run(index: int, steps: list[Step], won: bool, subject: str | None = None) -> RunPath:
    return RunPath(
        run_id=f"run_{index:06d}",
        version=1,
        subject=subject if subject is not None else f"cus_{index}",
        started_at=float(index),
        outcome=WIN if won else LOSS,
        steps=tuple(steps),
    )


def experiment(
    rng: random.Random, subjects: int, *, effect: float, base: float = 0.3, runs_each: int = 1
) -> list[RunPath]:
    """Subjects randomised 50/50 to ``usual`` or ``generous``; ``generous`` adds ``effect`` to
    the chance of success. With several runs each, a subject's own propensity (shared by its
    runs) is far from the base, either way, so its runs are far from independent."""
    paths = []
    for s in range(subjects):
        value = "generous" if rng.random() < 0.5 else "usual"
        own = base + rng.choice((-0.3, 0.3)) if runs_each > 1 else base
        chance = own + (effect if value == "generous" else 0.0)
        for _ in range(runs_each):
            paths.append(run(len(paths), [arm(value)], rng.random() < chance, subject=f"cus_{s}"))
    return paths


def generous(paths: list[RunPath], **options: Any) -> Any:
    found = attribute(paths, success=[WIN], references={ARM: "usual"}, **options)
    [estimate] = found.point("arm").estimates
    return estimate


def test_a_randomised_effect_is_covered_by_its_interval_about_as_often_as_promised() -> None:
    truth, covered, estimates = 0.1, 0, []
    for seed in range(300):
        estimate = generous(experiment(random.Random(seed), 400, effect=truth))
        assert estimate.method == RANDOMISED and estimate.causal
        assert estimate.reference == "usual" and estimate.value == "generous"
        covered += estimate.low <= truth <= estimate.high
        estimates.append(estimate.difference)
    # 95% nominal; the binomial floor makes the interval at most slightly conservative
    assert 0.92 <= covered / 300 <= 0.985, covered
    assert abs(float(np.mean(estimates)) - truth) < 0.01


def test_several_runs_per_subject_keep_the_coverage_that_treating_runs_apart_loses() -> None:
    truth = 0.1
    clustered = naive = 0
    for seed in range(200):
        paths = experiment(random.Random(seed), 150, effect=truth, base=0.35, runs_each=4)
        estimate = generous(paths)
        clustered += estimate.low <= truth <= estimate.high
        # the same estimate with every run its own cluster, as if runs were independent
        is_value = np.array([p.steps[0].value == "generous" for p in paths])
        won = np.array([p.outcome == WIN for p in paths])
        apart = np.arange(len(paths))
        one = np.zeros(len(paths), dtype=np.int64)
        alone = difference(is_value, won, one, apart, confidence=0.95)
        assert alone.estimate == pytest.approx(estimate.difference)
        naive += alone.low <= truth <= alone.high
    assert clustered / 200 >= 0.92, clustered
    assert naive / 200 < 0.9, naive  # runs treated apart: intervals too narrow


def test_an_arm_without_effect_gets_an_interval_covering_zero() -> None:
    covered = 0
    for seed in range(200):
        estimate = generous(experiment(random.Random(1000 + seed), 300, effect=0.0))
        covered += estimate.low <= 0.0 <= estimate.high
    assert covered / 200 >= 0.91, covered
    one = generous(experiment(random.Random(7), 600, effect=0.0))
    assert one.low < 0.0 < one.high


def confounded(rng: random.Random, runs: int, *, effect: float) -> list[RunPath]:
    """Gold customers (an earlier branch) get the call-back offer far more often and stay far
    more often whatever the offer; the offer itself adds ``effect``."""
    paths = []
    for i in range(runs):
        gold = rng.random() < 0.5
        call = rng.random() < (0.8 if gold else 0.2)
        chance = 0.2 + (0.4 if gold else 0.0) + (effect if call else 0.0)
        steps = [
            Step(SEGMENT, "gold" if gold else "standard"),
            Step(OFFER, "call_back" if call else "email"),
        ]
        paths.append(run(i, steps, rng.random() < chance))
    return paths


def test_a_confounded_point_is_not_causal_and_stratifying_moves_it_toward_the_truth() -> None:
    truth, covered = 0.05, 0
    for seed in range(20):
        found = attribute(confounded(random.Random(seed), 2000, effect=truth), success=[WIN])
        offer = found.point("offer")
        [estimate] = offer.estimates
        assert estimate.method == STRATIFIED and "not causal" in estimate.method
        assert estimate.causal is False
        assert estimate.adjusted_for == ("segment (branch)",)
        assert offer.reference in ("call_back", "email")
        sign = 1 if estimate.value == "call_back" else -1
        raw, adjusted = sign * estimate.raw_difference, sign * estimate.difference
        assert raw - truth > 0.15  # the raw difference is mostly the segment's doing
        assert abs(adjusted - truth) < abs(raw - truth)
        covered += estimate.low <= sign * truth <= estimate.high
    assert covered >= 16, covered  # of 20: about 19 expected at 95%
    shown = estimate.to_json()
    assert shown["causal"] is False and shown["method"].endswith("(not causal)")
    assert any("only randomised points" in n for n in found.notes)


def test_an_adjustment_the_counts_do_not_allow_falls_back_to_the_unadjusted_difference() -> None:
    rng = random.Random(3)
    paths = []
    for i in range(400):
        gold = rng.random() < 0.5
        # the segment decides the offer entirely: no stratum holds both offers
        steps = [
            Step(SEGMENT, "gold" if gold else "standard"),
            Step(OFFER, "call_back" if gold else "email"),
        ]
        paths.append(run(i, steps, rng.random() < 0.5))
    [estimate] = attribute(paths, success=[WIN]).point("offer").estimates
    assert estimate.method == UNADJUSTED and "not causal" in estimate.method
    assert estimate.adjusted_for == () and estimate.difference == estimate.raw_difference


def test_removal_effect_shares_sum_to_100_and_the_point_every_success_needs_gets_most() -> None:
    triage, offer, discount = (
        Point("triage", "agent"),
        Point("offer", "branch"),
        Point("discount", "table"),
    )
    confirm, escalate = Point("confirm", "confirmation"), Point("escalate", "review")
    shapes: list[tuple[list[Point], float]] = [
        ([triage, offer, confirm], 0.8),
        ([offer, confirm], 0.7),
        ([triage, discount, confirm], 0.6),
        ([discount, confirm], 0.5),
        ([triage, escalate], 0.0),
        ([triage, offer], 0.0),
        ([discount], 0.0),
    ]
    rng = random.Random(5)
    paths = []
    for i in range(1400):
        points, chance = shapes[i % len(shapes)]
        steps = [Step(p, "taken") for p in points]
        paths.append(run(i, steps, rng.random() < chance))
    found = attribute(paths, success=[WIN])
    shares = {p.point: p.share for p in found.points}
    assert all(share is not None for share in shares.values())
    assert sum(s for s in shares.values() if s is not None) == pytest.approx(100.0)
    assert max(shares, key=lambda p: shares[p] or 0.0) == confirm
    assert found.point("confirm").removal_effect == pytest.approx(1.0)
    assert all((p.removal_effect or 0.0) < 1.0 for p in found.points if p.point != confirm)
    assert found.point("escalate").removal_effect == pytest.approx(0.0)
    assert found.removal.method == REMOVAL
    assert found.removal.success_rate == pytest.approx(found.successes / found.runs)


def test_below_the_minimum_counts_the_figures_say_too_few_runs() -> None:
    rng = random.Random(9)
    paths = [
        run(i, [Step(OFFER, "rare" if i < 5 else "usual")], rng.random() < 0.5) for i in range(60)
    ]
    found = attribute(paths, success=[WIN], min_runs=30)
    [estimate] = found.point("offer").estimates
    assert estimate.difference is None and estimate.low is None and estimate.high is None
    assert estimate.note is not None and estimate.note.startswith(TOO_FEW)
    assert "5 with 'rare'" in estimate.note and "30 of each needed" in estimate.note
    assert estimate.to_json()["difference"] is None
    assert found.point("offer").share is not None  # 60 runs: the chain has enough

    few = attribute(paths[:20], success=[WIN], min_runs=30)
    assert few.removal.note == f"{TOO_FEW}: 20 ended runs, 30 needed"
    assert all(p.share is None and p.removal_effect is None for p in few.points)

    one_value = attribute(
        [run(i, [Step(OFFER, "usual")], i % 2 == 0) for i in range(40)], success=[WIN]
    )
    assert one_value.point("offer").estimates == ()
    assert one_value.point("offer").note == "one value only: nothing to compare"


def test_arms_given_after_the_experiment_ended_are_left_out_of_the_comparison() -> None:
    rng = random.Random(2)
    paths = experiment(rng, 200, effect=0.0)
    late = [run(1000 + i, [arm("generous", randomised=False)], True) for i in range(50)]
    found = attribute(paths + late, success=[WIN], references={ARM: "usual"}, min_runs=20)
    point = found.point("arm")
    assert point.randomised and point.runs == 200
    assert point.note is not None and "50 runs assigned after the experiment ended" in point.note
    assert sum(v.runs for v in point.values) == 200


def test_wilson_intervals_match_the_published_values() -> None:
    low, high = wilson(5, 10, 0.95)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson(0, 0, 0.95) == (0.0, 1.0)
    low, high = wilson(0, 20, 0.95)
    assert low == 0.0 and round(high, 4) == 0.1611


def test_bad_parameters_are_refused_naming_them() -> None:
    paths = [run(0, [], True)]
    with pytest.raises(InputError, match="no outcome counts as success"):
        attribute(paths, success=[])
    with pytest.raises(InputError, match="minimum runs must be at least 1, not 0"):
        attribute(paths, success=[WIN], min_runs=0)
    with pytest.raises(InputError, match=r"confidence must be at least 0\.5 and below 1, not 1"):
        attribute(paths, success=[WIN], confidence=1.0)
    with pytest.raises(InputError, match="no single decision point at 'nowhere'"):
        attribute(paths, success=[WIN]).point("nowhere")


@dataclass(frozen=True)
class Event:
    kind: str
    block: str | None
    detail: dict[str, Any]


def recorded(
    run_id: str, events: list[Event], *, status: str = "completed", outcome: str | None = "retained"
) -> RecordedRun:
    return RecordedRun(run_id, 2, "cus_1", 10.0, status, outcome, events)


def test_paths_are_read_from_the_events_the_runtime_records() -> None:
    def assign(status: str) -> Event:
        output = {"experiment": "retention-offer", "variant": "generous", "status": status}
        return Event("block.completed", "arm", {"capability": ASSIGN, "output": output})

    first = recorded(
        "run_1",
        [
            Event("run.started", None, {}),
            assign("running"),
            Event("choice.taken", "route", {"choice": 0, "next": "call_back"}),
            Event(
                "decision.made",
                "price",
                {"rules": [2], "output": {"tier": "gold", "discount": 0.15, "notes": ["x"]}},
            ),
            Event(
                "agent.output",
                "triage",
                {"output": {"intent": "cancel", "reason": "price"}, "band": "confirm"},
            ),
            Event(
                "decision.received",
                "triage",
                {"decision": "override", "override_outcome": "reject"},
            ),
            Event("block.completed", "lookup", {"capability": "crm.lookup", "output": {}}),
            Event(
                "confirmation.answered", "s_1/confirm", {"answer": "confirmed", "channel": "portal"}
            ),
            Event("confirmation.implicit", "again", {"proposal": {}}),
        ],
    )
    second = recorded(
        "run_2",
        [
            assign("shipped"),
            Event("gateway.refused", "lookup", {"reason": "no_consent", "message": "m"}),
        ],
        status="failed",
        outcome=None,
    )
    gone = recorded("run_3", [Event("choice.taken", "route", {"erased": True})])
    paths, erased = paths_of([first, second, gone])
    assert erased == 1 and [p.run_id for p in paths] == ["run_1", "run_2"]
    one, two = paths
    assert [(s.point.label, s.value) for s in one.steps] == [
        ("arm (experiment)", "generous"),
        ("route (branch)", "call_back"),
        ("price (table)", "discount=0.15, tier=gold"),
        ("triage (agent)", "cancel (confirm)"),
        ("triage (review)", "override: reject"),
        ("lookup (gateway)", "permitted"),
        ("confirm (confirmation)", "confirmed"),
        ("again (confirmation)", "implicit"),
    ]
    assert one.steps[0].randomised and one.steps[0].experiment == "retention-offer"
    assert one.outcome == "retained" and one.version == 2
    assert [(s.point.label, s.value, s.randomised) for s in two.steps] == [
        ("arm (experiment)", "generous", False),
        ("lookup (gateway)", "refused: no_consent", False),
    ]
    assert two.outcome == "failed"
    assert one.to_json()["steps"][0] == {
        "block_id": "arm",
        "kind": "experiment",
        "label": "arm (experiment)",
        "value": "generous",
        "randomised": True,
        "experiment": "retention-offer",
    }
    # a task no run was refused at decides nothing, so it is no decision point
    alone, _ = paths_of([first])
    assert "lookup (gateway)" not in [s.point.label for s in alone[0].steps]


def test_an_arm_is_not_causal_while_runs_of_the_selection_are_still_open() -> None:
    paths = experiment(random.Random(5), 400, effect=0.1)
    assert generous(paths).causal
    found = attribute(paths, success=[WIN], references={ARM: "usual"}, open_runs=12)
    [estimate] = found.point("arm").estimates
    assert estimate.method == RANDOMISED and not estimate.causal
    assert estimate.note is not None and "12 runs" in estimate.note
    assert any("12 runs started in the window have not ended yet" in n for n in found.notes)
    few = attribute(paths[:10], success=[WIN], references={ARM: "usual"}, open_runs=1)
    assert not any(e.causal for p in few.points for e in p.estimates)
