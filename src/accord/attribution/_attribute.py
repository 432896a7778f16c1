"""Attribution of outcomes to the decisions on runs' paths: for each decision point, what each
value it took is associated with (or, when randomised, causes) in the success rate, and its
share of the credit for success along the paths.

Three methods, each named in every result it produces:

- ``randomised difference in means``: the point's value was an experiment's arm, drawn at
  random for each subject, so the difference in success rate between arms estimates the arm's
  effect. Causal once every run selected has ended: only ended runs are compared, and an arm
  that changes how long runs take to end changes which runs have ended (``open_runs``).
- ``observational, stratified by earlier decisions (not causal)``: the difference between a
  value and the point's most common value, within strata of the values taken at up to
  :data:`MAX_ADJUST` earlier decision points (the nearest first; the farthest are dropped until
  every compared value keeps ``min_runs`` runs in strata holding both). Without such strata,
  ``observational, unadjusted difference (not causal)``. Neither is causal: whatever made the
  journey take a value (the customer, the data) can also make the run succeed, and only the
  earlier decisions are adjusted for.
- ``removal effect, first-order Markov chain``: each point's share of the credit along the
  paths (see :mod:`accord.attribution._markov`).

A point's value on a run is the value taken the first time the run reached it. Below
``min_runs`` runs of a value (or of the reference) a comparison says "too few runs" instead of
a number, and so does the removal effect below ``min_runs`` runs in all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.attribution._estimates import Difference, difference, wilson
from accord.attribution._markov import removal_effects
from accord.attribution._paths import Point, RunPath, Step
from accord.errors import InputError

__all__ = [
    "INTERVAL",
    "MAX_ADJUST",
    "OBSERVATIONAL",
    "RANDOMISED",
    "RATE_INTERVAL",
    "REMOVAL",
    "STRATIFIED",
    "TOO_FEW",
    "UNADJUSTED",
    "Attribution",
    "Estimate",
    "PointAttribution",
    "Removal",
    "ValueFigures",
    "attribute",
]

RANDOMISED = "randomised difference in means"
STRATIFIED = "observational, stratified by earlier decisions (not causal)"
UNADJUSTED = "observational, unadjusted difference (not causal)"
OBSERVATIONAL = "observational (not causal)"
"""The method of an observational comparison that had too few runs to be made."""
REMOVAL = "removal effect, first-order Markov chain"
INTERVAL = "normal, cluster-robust by subject, at least Agresti-Caffo's width"
RATE_INTERVAL = "Wilson score"
TOO_FEW = "too few runs"
NOT_REACHED = "(not reached)"
MAX_ADJUST = 3
"""The most earlier decision points an observational estimate is stratified by."""

Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

CAUSAL_NOTE = (
    "only randomised points (experiment arms) estimate causal effects; the other estimates "
    "are associations adjusted for earlier decisions, and whatever led the journey to a value "
    "may also have led the run to its outcome"
)


@dataclass(frozen=True, slots=True)
class ValueFigures:
    """One value of a point: its runs, successes and success rate with a Wilson interval."""

    value: str
    runs: int
    successes: int
    rate: float
    low: float
    high: float

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "runs": self.runs,
            "successes": self.successes,
            "success_rate": self.rate,
            "interval": [self.low, self.high],
        }


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value's success rate against the reference value's, by the method named.

    Attributes:
        value: the value compared.
        reference: the value compared with (an experiment's control, else the most common).
        method: how the difference was estimated.
        causal: the method estimates an effect (randomised, with every selected run ended),
            not an association.
        runs: runs that took ``value`` at the point.
        reference_runs: runs that took ``reference``.
        difference: the estimated difference in success rate; None when too few runs.
        low: the lower end of the interval; None when too few runs.
        high: the upper end of the interval; None when too few runs.
        raw_difference: the unadjusted difference; None when too few runs.
        adjusted_for: the earlier points the strata were made of.
        left_out: runs in strata holding only one of the two values.
        note: why there is no number, or what to bear in mind.
    """

    value: str
    reference: str
    method: str
    causal: bool
    runs: int
    reference_runs: int
    difference: float | None
    low: float | None
    high: float | None
    raw_difference: float | None
    adjusted_for: tuple[str, ...]
    left_out: int
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "reference": self.reference,
            "method": self.method,
            "causal": self.causal,
            "runs": self.runs,
            "reference_runs": self.reference_runs,
            "difference": self.difference,
            "interval": None if self.low is None else [self.low, self.high],
            "interval_method": INTERVAL,
            "raw_difference": self.raw_difference,
            "adjusted_for": list(self.adjusted_for),
            "left_out": self.left_out,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class PointAttribution:
    """What one decision point took, what each value is associated with, and its credit.

    Attributes:
        point: the block and the kind of decision.
        randomised: the point is an experiment's arm.
        experiment: the experiment, for an arm.
        position: the point's mean position on the paths that reach it (0 first).
        runs: runs that reached the point (for an arm: that were randomised there).
        successes: of those, how many succeeded.
        reference: the value the others are compared with.
        values: each value's figures, most common first.
        estimates: each other value against the reference.
        removal_effect: the share of success lost without the point (0 to 1); None when the
            chain has too few runs.
        share: the point's share of the credit, in percent (all points sum to 100).
        note: what the figures leave out.
    """

    point: Point
    randomised: bool
    experiment: str | None
    position: float
    runs: int
    successes: int
    reference: str | None
    values: tuple[ValueFigures, ...]
    estimates: tuple[Estimate, ...]
    removal_effect: float | None
    share: float | None
    note: str | None

    def estimate_for(self, value: str) -> Estimate | None:
        """The estimate of ``value`` against the reference (None for the reference itself)."""
        return next((e for e in self.estimates if e.value == value), None)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.point.to_json(),
            "randomised": self.randomised,
            "experiment": self.experiment,
            "runs": self.runs,
            "successes": self.successes,
            "reference": self.reference,
            "values": [v.to_json() for v in self.values],
            "estimates": [e.to_json() for e in self.estimates],
            "removal_effect": self.removal_effect,
            "share": self.share,
            "share_method": REMOVAL,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Removal:
    """The Markov chain the shares come from: its success probability, or why it has none."""

    method: str
    success_rate: float | None
    note: str | None


@dataclass(frozen=True, slots=True)
class Attribution:
    """Outcomes of a journey's ended runs attributed to the decision points on their paths."""

    journey: str
    version: int | None
    since: float | None
    until: float | None
    success: tuple[str, ...]
    runs: int
    successes: int
    outcomes: dict[str, int]
    erased: int
    min_runs: int
    confidence: float
    points: tuple[PointAttribution, ...]
    removal: Removal
    notes: tuple[str, ...]

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.runs if self.runs else None

    def point(self, block: str, kind: str | None = None) -> PointAttribution:
        """The figures of the point at ``block`` (of ``kind``, when the block holds two).

        Raises:
            InputError: no such point on the paths.
        """
        found = [p for p in self.points if p.point.block == block]
        if kind is not None:
            found = [p for p in found if p.point.kind == kind]
        if len(found) != 1:
            known = ", ".join(p.point.label for p in self.points) or "none"
            raise InputError(
                f"no single decision point at {block!r}" + (f" of kind {kind!r}" if kind else ""),
                hint=f"the points on these paths: {known}",
            )
        return found[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "version": self.version,
            "since": self.since,
            "until": self.until,
            "success": list(self.success),
            "runs": self.runs,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "outcomes": dict(self.outcomes),
            "erased_runs_left_out": self.erased,
            "min_runs": self.min_runs,
            "confidence": self.confidence,
            "removal": {
                "method": self.removal.method,
                "success_rate": self.removal.success_rate,
                "note": self.removal.note,
            },
            "points": [p.to_json() for p in self.points],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class _Reach:
    """A run at a point: which run, where on its path, and what it decided there."""

    run: int
    position: int
    step: Step


def attribute(
    paths: Sequence[RunPath],
    *,
    success: Collection[str],
    min_runs: int = 30,
    confidence: float = 0.95,
    references: Mapping[Point, str] | None = None,
    journey: str = "",
    version: int | None = None,
    since: float | None = None,
    until: float | None = None,
    erased: int = 0,
    open_runs: int = 0,
) -> Attribution:
    """Attribute the outcomes of ``paths`` to their decision points (see the module).

    Args:
        paths: the runs' paths.
        success: the outcomes that count as success.
        min_runs: the fewest runs a compared value (and the chain) needs for a number.
        confidence: of every interval.
        references: per point, the value to compare the others with (an experiment's
            control), when it was taken; else the point's most common value.
        journey, version, since, until, erased: what the paths were selected by, for the
            result.
        open_runs: runs of the selection that have not ended yet, so are not among
            ``paths``. While there are any, a randomised estimate is not causal: an arm that
            changes how long runs take to end changes which runs have ended.

    Raises:
        InputError: no success outcome, ``min_runs`` below 1 or ``confidence`` outside
            [0.5, 1).
    """
    wanted = tuple(dict.fromkeys(success))
    if not wanted:
        raise InputError("no outcome counts as success", hint="name at least one outcome")
    if min_runs < 1:
        raise InputError(f"the minimum runs must be at least 1, not {min_runs}")
    if not 0.5 <= confidence < 1:
        raise InputError(
            f"the confidence must be at least 0.5 and below 1, not {confidence}",
            hint="e.g. 0.95",
        )
    chosen = frozenset(wanted)
    succeeded = np.array([p.outcome in chosen for p in paths], dtype=bool)
    firsts = [p.first_steps() for p in paths]
    subjects: dict[str, int] = {}
    clusters = np.array(
        [
            subjects.setdefault(p.subject, len(subjects))
            if p.subject is not None
            else subjects.setdefault(f"\0{p.run_id}", len(subjects))
            for p in paths
        ],
        dtype=np.int64,
    )
    reached: dict[Point, list[_Reach]] = {}
    for run, first in enumerate(firsts):
        for point, (position, step) in first.items():
            reached.setdefault(point, []).append(_Reach(run, position, step))
    removal, effects = _removal(paths, succeeded, min_runs)
    total = sum(effects.values())
    context = _Context(
        firsts, succeeded, clusters, min_runs, confidence, references or {}, max(0, open_runs)
    )
    points = [
        _point(
            point,
            reach,
            context,
            effect=effects.get(point) if effects else None,
            share=100 * effects[point] / total if effects and total > 0 else None,
        )
        for point, reach in reached.items()
    ]
    points.sort(key=lambda p: (p.position, p.point))
    notes = [CAUSAL_NOTE]
    if erased:
        notes.append(f"{erased} runs of erased subjects are left out: their paths are gone")
    if open_runs > 0:
        notes.append(_open_note(open_runs))
    return Attribution(
        journey=journey,
        version=version,
        since=since,
        until=until,
        success=wanted,
        runs=len(paths),
        successes=int(succeeded.sum()),
        outcomes=dict(Counter(p.outcome for p in paths).most_common()),
        erased=erased,
        min_runs=min_runs,
        confidence=confidence,
        points=tuple(points),
        removal=removal,
        notes=tuple(notes),
    )


def _removal(
    paths: Sequence[RunPath], succeeded: Bools, min_runs: int
) -> tuple[Removal, dict[Point, float]]:
    if len(paths) < min_runs:
        few = f"{TOO_FEW}: {len(paths)} ended runs, {min_runs} needed"
        return Removal(REMOVAL, None, few), {}
    if not succeeded.any():
        return Removal(REMOVAL, 0.0, "no run succeeded: there is no credit to share"), {}
    walks = [([s.point for s in p.steps], bool(ok)) for p, ok in zip(paths, succeeded, strict=True)]
    base, effects = removal_effects(walks)
    note: str | None = None
    if effects and sum(effects.values()) <= 0:
        note = "no decision point carries success: every successful run decided nothing"
    elif not effects:
        note = "the runs passed no decision point"
    return Removal(REMOVAL, base, note), effects


@dataclass(frozen=True, slots=True)
class _Context:
    firsts: list[dict[Point, tuple[int, Step]]]
    succeeded: Bools
    clusters: Ints
    min_runs: int
    confidence: float
    references: Mapping[Point, str]
    open_runs: int


def _open_note(open_runs: int) -> str:
    return (
        f"{open_runs} runs started in the window have not ended yet: only ended runs are "
        "compared, and an arm that changes how long runs take to end changes which runs "
        "have ended, so the experiment arms' estimates are causal only once they have ended"
    )


def _point(
    point: Point,
    reach: list[_Reach],
    context: _Context,
    *,
    effect: float | None,
    share: float | None,
) -> PointAttribution:
    randomised = point.kind == "experiment"
    notes = []
    used = [r for r in reach if r.step.randomised] if randomised else reach
    if len(used) < len(reach):
        notes.append(
            f"{len(reach) - len(used)} runs assigned after the experiment ended are left out "
            "of the comparison: their arm was not drawn at random"
        )
    experiment = next((r.step.experiment for r in reach if r.step.experiment), None)
    ok = context.succeeded
    runs = Counter(r.step.value for r in used)
    wins = Counter(r.step.value for r in used if ok[r.run])
    values = tuple(
        ValueFigures(
            value, n, wins[value], wins[value] / n, *wilson(wins[value], n, context.confidence)
        )
        for value, n in sorted(runs.items(), key=lambda item: (-item[1], item[0]))
    )
    preferred = context.references.get(point)
    reference = preferred if preferred in runs else (values[0].value if values else None)
    estimates: list[Estimate] = []
    if len(values) == 1:
        notes.append("one value only: nothing to compare")
    elif reference is not None:
        covariates = [] if randomised else _covariates(point, reach, context)
        for figures in values:
            if figures.value != reference:
                estimates.append(
                    _estimate(point, used, figures.value, reference, covariates, context)
                )
    position = float(np.mean([r.position for r in reach])) if reach else 0.0
    return PointAttribution(
        point=point,
        randomised=randomised,
        experiment=experiment,
        position=position,
        runs=len(used),
        successes=sum(wins.values()),
        reference=reference,
        values=values,
        estimates=tuple(estimates),
        removal_effect=effect,
        share=share,
        note="; ".join(notes) or None,
    )


def _covariates(point: Point, reach: list[_Reach], context: _Context) -> list[Point]:
    """The points decided before ``point`` on every path holding both, that vary, nearest
    first."""
    before: Counter[Point] = Counter()
    after: set[Point] = set()
    distance: Counter[Point] = Counter()
    for r in reach:
        for other, (position, _) in context.firsts[r.run].items():
            if other == point:
                continue
            if position < r.position:
                before[other] += 1
                distance[other] += r.position - position
            else:
                after.add(other)
    eligible = []
    for other in before:
        if other in after:
            continue
        seen = {_value_at(context.firsts[r.run], other) for r in reach}
        if len(seen) > 1:
            eligible.append(other)
    eligible.sort(key=lambda p: (distance[p] / before[p], p))
    return eligible


def _value_at(first: dict[Point, tuple[int, Step]], point: Point) -> str:
    found = first.get(point)
    return NOT_REACHED if found is None else found[1].value


def _estimate(
    point: Point,
    used: list[_Reach],
    value: str,
    reference: str,
    covariates: list[Point],
    context: _Context,
) -> Estimate:
    compared = [r for r in used if r.step.value in (value, reference)]
    is_value = np.array([r.step.value == value for r in compared], dtype=bool)
    n_value, n_reference = int(is_value.sum()), int((~is_value).sum())
    randomised = point.kind == "experiment"
    if n_value < context.min_runs or n_reference < context.min_runs:
        note = (
            f"{TOO_FEW}: {n_value} with {value!r} and {n_reference} with {reference!r}, "
            f"{context.min_runs} of each needed"
        )
        return Estimate(
            value=value,
            reference=reference,
            method=RANDOMISED if randomised else OBSERVATIONAL,
            causal=randomised and not context.open_runs,
            runs=n_value,
            reference_runs=n_reference,
            difference=None,
            low=None,
            high=None,
            raw_difference=None,
            adjusted_for=(),
            left_out=0,
            note=note,
        )
    runs = np.array([r.run for r in compared], dtype=np.int64)
    success = context.succeeded[runs]
    clusters = context.clusters[runs]
    one = np.zeros(len(compared), dtype=np.int64)
    raw = difference(is_value, success, one, clusters, confidence=context.confidence)
    found: Difference = raw
    method = RANDOMISED if randomised else UNADJUSTED
    adjusted: list[Point] = covariates[:MAX_ADJUST]
    while adjusted:
        strata = _strata(compared, adjusted, context)
        found = difference(is_value, success, strata, clusters, confidence=context.confidence)
        if found.runs >= context.min_runs and found.reference_runs >= context.min_runs:
            method = STRATIFIED
            break
        adjusted = adjusted[:-1]
        found = raw
    return Estimate(
        value=value,
        reference=reference,
        method=method,
        causal=randomised and not context.open_runs,
        runs=n_value,
        reference_runs=n_reference,
        difference=found.estimate,
        low=found.low,
        high=found.high,
        raw_difference=raw.estimate,
        adjusted_for=tuple(p.label for p in adjusted),
        left_out=found.left_out,
        note=_open_note(context.open_runs) if randomised and context.open_runs else None,
    )


def _strata(compared: list[_Reach], covariates: list[Point], context: _Context) -> Ints:
    keys: dict[tuple[str, ...], int] = {}
    return np.array(
        [
            keys.setdefault(
                tuple(_value_at(context.firsts[r.run], c) for c in covariates), len(keys)
            )
            for r in compared
        ],
        dtype=np.int64,
    )
