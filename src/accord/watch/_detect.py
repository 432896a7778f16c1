"""Detection: a recent window against a baseline, with named tests, a family-wise error rate
and a minimum practical effect, so that small or noisy differences never alarm.

Each metric measured in both windows, with at least ``min_count`` observations in each and
something that varies, is one hypothesis:

- a **rate** (failures, escalations, refusals, overrides) is a degradation only upwards: a
  one-sided pooled **two-proportion z-test**, or **Fisher's exact test** when an expected cell
  count is below 5 (where the normal approximation is too rough);
- a **distribution** (band mix, decide rules, choice branches) drifts either way: a
  **chi-square test of homogeneity** on the 2-by-k table, categories whose expected count is below
  5 merged into ``(other)``, with the **population stability index** (PSI) as its size;
- **run durations** degrade when they grow: a one-sided **Mann-Whitney U test**.

The p-values of all hypotheses of one check are corrected together by **Holm's step-down
method**, which keeps the chance of any false alarm in the check at or below ``alpha``. A
finding also needs a change large enough to matter: ``min_rate_change`` (absolute) for a
rate, ``min_psi`` for a distribution, and for durations a median both ``min_duration_ratio``
times the baseline's and ``min_duration_change`` seconds longer. Everything here is pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from accord.errors import InputError
from accord.watch._metrics import METRICS, Figure, MetricKey, Mix, Rate, Sample

Kind = Literal["degradation", "drift"]
MIN_EXPECTED = 5.0
OTHER = "(other)"


@dataclass(frozen=True, slots=True)
class DetectOptions:
    """How sure and how large a change must be before it is a finding."""

    alpha: float = 0.01
    """The family-wise error rate of one check (Holm)."""
    min_count: int = 30
    """Observations each window needs before a metric is tested (runs, outputs, visits)."""
    min_rate_change: float = 0.05
    """The smallest rise of a rate that matters, in absolute terms (0.05: 5 points)."""
    min_psi: float = 0.1
    """The smallest distribution shift that matters (PSI; 0.1 is a moderate shift)."""
    min_duration_ratio: float = 1.5
    min_duration_change: float = 1.0
    """Seconds the median duration must grow by, besides the ratio."""

    def check(self) -> None:
        """Raises:
        InputError: an option is out of its range, or not a finite number.
        """
        for name, value in (
            ("alpha", self.alpha),
            ("the minimum rate change", self.min_rate_change),
            ("the minimum PSI", self.min_psi),
            ("the minimum duration ratio", self.min_duration_ratio),
            ("the minimum duration change", self.min_duration_change),
        ):
            if not math.isfinite(value):
                raise InputError(f"{name} must be a finite number, not {value}")
        if not 0.0 < self.alpha <= 0.5:
            raise InputError(f"alpha must be above 0 and at most 0.5, not {self.alpha}")
        if self.min_count < 1:
            raise InputError(f"the minimum count must be at least 1, not {self.min_count}")
        if not 0.0 <= self.min_rate_change < 1.0:
            raise InputError(
                f"the minimum rate change must be within 0..1, not {self.min_rate_change}",
                hint="e.g. 0.05 for five percentage points",
            )
        if self.min_psi < 0.0 or self.min_duration_change < 0.0:
            raise InputError("the minimum PSI and duration change must not be negative")
        if self.min_duration_ratio < 1.0:
            raise InputError(
                f"the minimum duration ratio must be at least 1, not {self.min_duration_ratio}"
            )


@dataclass(frozen=True, slots=True)
class Comparison:
    """One hypothesis tested: the figures of both windows, the test, and what it says."""

    key: MetricKey
    kind: Kind
    test: str
    statistic: float | None
    p_value: float
    adjusted_p: float
    alpha: float
    effect: float
    effect_name: str
    baseline: Figure
    recent: Figure
    large_enough: bool
    worse: bool

    @property
    def significant(self) -> bool:
        return self.adjusted_p <= self.alpha

    @property
    def finding(self) -> bool:
        """Significant after the correction, in the worse direction, and large enough."""
        return self.significant and self.worse and self.large_enough

    def to_json(self) -> dict[str, Any]:
        return {
            **self.key.to_json(),
            "kind": self.kind,
            "test": self.test,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "adjusted_p": _finite(self.adjusted_p),
            "alpha": self.alpha,
            "correction": "holm",
            "effect": _finite(self.effect),
            "effect_name": self.effect_name,
            "baseline": self.baseline.to_json(),
            "recent": self.recent.to_json(),
            "significant": self.significant,
            "large_enough": self.large_enough,
            "worse": self.worse,
            "finding": self.finding,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """A metric not tested, and why (too few observations, nothing varies, one window only)."""

    key: MetricKey
    reason: str


@dataclass(frozen=True, slots=True)
class Detection:
    alpha: float
    compared: tuple[Comparison, ...] = ()
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)

    @property
    def findings(self) -> list[Comparison]:
        return [c for c in self.compared if c.finding]


# -- the tests --------------------------------------------------------------------------------


def two_proportion(baseline: Rate, recent: Rate) -> tuple[str, float | None, float]:
    """One-sided test that the recent rate is higher: (test, z or None, p-value).

    The pooled z-test, unless the smaller expected cell count is below 5; then Fisher's exact
    test, which holds its level at any count.
    """
    x1, n1, x2, n2 = baseline.events, baseline.total, recent.events, recent.total
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return "two-proportion z-test", 0.0, 1.0
    if min(n1, n2) * min(pooled, 1.0 - pooled) < MIN_EXPECTED:
        _, p = _stats().fisher_exact([[x2, n2 - x2], [x1, n1 - x1]], alternative="greater")
        return "Fisher's exact test", None, float(p)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    z = (x2 / n2 - x1 / n1) / se
    return "two-proportion z-test", z, float(_stats().norm.sf(z))


def bounded_rates(baseline: Rate, recent: Rate) -> tuple[Rate, Rate]:
    """The two rates with every pending observation at its least alarming: a pending one of
    the baseline counted as an event, one of the recent window as no event.

    Runs still going have not all reached every block yet, and which of them have depends on
    what they met; so the observations known so far are not a fair sample of the window, and
    the test must not alarm on what the pending ones could still change.
    """
    return (
        Rate(baseline.events + baseline.pending, baseline.total + baseline.pending),
        Rate(recent.events, recent.total + recent.pending),
    )


def filled(mix: Mix, toward: Mix) -> Mix:
    """``mix`` with each of its pending visits counted where it brings the mix closest to
    ``toward`` (the category furthest below its share there), so that visits not known yet
    cannot make a drift (see :func:`bounded_rates`)."""
    total = toward.count
    if not mix.pending or not total:
        return mix
    shares = {c: n / total for c, n in toward.counts}
    counts = dict(mix.counts)
    for step in range(mix.pending):
        size = mix.count + step + 1
        category = max(sorted(shares), key=lambda c: shares[c] * size - counts.get(c, 0))
        counts[category] = counts.get(category, 0) + 1
    return Mix(tuple(sorted(counts.items())))


def merge_sparse(baseline: Mix, recent: Mix) -> list[tuple[str, int, int]]:
    """The columns of the 2-by-k table, (category, baseline count, recent count), with every
    category whose expected count is below 5 in either window merged into ``(other)``."""
    nb, nr = baseline.count, recent.count
    total = nb + nr
    b, r = dict(baseline.counts), dict(recent.counts)
    columns = sorted(
        ((c, b.get(c, 0), r.get(c, 0)) for c in set(b) | set(r)),
        key=lambda col: (col[1] + col[2], col[0]),
    )

    def sparse(column_total: int) -> bool:
        return min(nb, nr) * column_total / total < MIN_EXPECTED

    other_b = other_r = 0
    while columns and sparse(columns[0][1] + columns[0][2]):
        _, cb, cr = columns.pop(0)
        other_b, other_r = other_b + cb, other_r + cr
    while other_b + other_r and sparse(other_b + other_r) and columns:
        _, cb, cr = columns.pop(0)
        other_b, other_r = other_b + cb, other_r + cr
    merged = list(columns)
    if other_b + other_r:
        merged.append((OTHER, other_b, other_r))
    return merged


def chi_square(columns: Sequence[tuple[str, int, int]]) -> tuple[float, float]:
    """The chi-square test of homogeneity of two windows over ``columns``: (statistic, p)."""
    table = [[c[1] for c in columns], [c[2] for c in columns]]
    result = _stats().chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def psi(columns: Sequence[tuple[str, int, int]]) -> float:
    """The population stability index of the recent window against the baseline, with half a
    count added to every cell so that an empty category does not make it infinite."""
    k = len(columns)
    nb = sum(c[1] for c in columns) + 0.5 * k
    nr = sum(c[2] for c in columns) + 0.5 * k
    total = 0.0
    for _, b, r in columns:
        pb, pr = (b + 0.5) / nb, (r + 0.5) / nr
        total += (pr - pb) * math.log(pr / pb)
    return total


def mann_whitney(baseline: Sample, recent: Sample) -> tuple[float, float]:
    """One-sided Mann-Whitney U test that recent values are larger: (U, p)."""
    result = _stats().mannwhitneyu(recent.values, baseline.values, alternative="greater")
    p = float(result.pvalue)
    return float(result.statistic), p if math.isfinite(p) else 1.0


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# -- a check ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tested:
    key: MetricKey
    kind: Kind
    test: str
    statistic: float | None
    p_value: float
    effect: float
    effect_name: str
    baseline: Figure
    recent: Figure
    large_enough: bool
    worse: bool


def detect(
    baseline: Mapping[MetricKey, Figure],
    recent: Mapping[MetricKey, Figure],
    options: DetectOptions | None = None,
) -> Detection:
    """Test every metric measured in both windows; the findings are the comparisons that are
    significant after Holm's correction, worse, and at least the minimum effect."""
    options = options or DetectOptions()
    options.check()
    tested: list[_Tested] = []
    skipped: list[Skipped] = []
    for key in sorted(set(baseline) | set(recent)):
        before, after = baseline.get(key), recent.get(key)
        if before is None or after is None:
            window = "baseline" if before is None else "recent"
            skipped.append(Skipped(key, f"not measured in the {window} window"))
            continue
        unit = METRICS[key.metric].unit
        if min(before.count, after.count) < options.min_count:
            skipped.append(
                Skipped(
                    key,
                    f"{before.count} {unit} in the baseline window and {after.count} in the "
                    f"recent one; each needs at least {options.min_count}",
                )
            )
            continue
        outcome = _test(key, before, after, options)
        if isinstance(outcome, str):
            skipped.append(Skipped(key, outcome))
        else:
            tested.append(outcome)
    adjusted = holm([t.p_value for t in tested])
    compared = tuple(
        Comparison(
            key=t.key,
            kind=t.kind,
            test=t.test,
            statistic=t.statistic,
            p_value=t.p_value,
            adjusted_p=a,
            alpha=options.alpha,
            effect=t.effect,
            effect_name=t.effect_name,
            baseline=t.baseline,
            recent=t.recent,
            large_enough=t.large_enough,
            worse=t.worse,
        )
        for t, a in zip(tested, adjusted, strict=True)
    )
    return Detection(options.alpha, compared, tuple(skipped))


def _test(key: MetricKey, before: Figure, after: Figure, options: DetectOptions) -> _Tested | str:
    """The test of one metric, or why it cannot be tested."""
    if isinstance(before, Rate) and isinstance(after, Rate):
        if before.events + after.events in (0, before.total + after.total):
            return "the rate is the same in every observation of both windows"
        low, high = bounded_rates(before, after)
        test, statistic, p = two_proportion(low, high)
        change = high.value - low.value
        return _Tested(
            key,
            "degradation",
            test,
            statistic,
            p,
            change,
            "rate change",
            before,
            after,
            change >= options.min_rate_change,
            change > 0,
        )
    if isinstance(before, Mix) and isinstance(after, Mix):
        columns = merge_sparse(filled(before, after), filled(after, before))
        if len(columns) < 2:
            return "fewer than two categories with enough observations"
        statistic, p = chi_square(columns)
        shift = psi(columns)
        return _Tested(
            key,
            "drift",
            "chi-square test of homogeneity",
            statistic,
            p,
            shift,
            "PSI",
            before,
            after,
            shift >= options.min_psi,
            True,
        )
    if isinstance(before, Sample) and isinstance(after, Sample):
        if len(set(before.values) | set(after.values)) < 2:
            return "every duration in both windows is the same"
        statistic, p = mann_whitney(before, after)
        change = after.median - before.median
        large = (
            change >= options.min_duration_change
            and after.median >= options.min_duration_ratio * before.median
        )
        return _Tested(
            key,
            "degradation",
            "Mann-Whitney U test",
            statistic,
            p,
            change,
            "median change (s)",
            before,
            after,
            large,
            change > 0,
        )
    raise TypeError(f"{key.label}: the windows hold different kinds of figures")


def _stats() -> Any:
    # scipy.stats takes about a second to import: only a check needs it, not every command
    from scipy import stats  # noqa: PLC0415

    return stats


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


__all__ = [
    "OTHER",
    "Comparison",
    "DetectOptions",
    "Detection",
    "Kind",
    "Skipped",
    "bounded_rates",
    "chi_square",
    "detect",
    "filled",
    "holm",
    "mann_whitney",
    "merge_sparse",
    "psi",
    "two_proportion",
]
