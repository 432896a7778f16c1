"""The error rates of the sequential test, measured by simulation on binary outcomes.

Each experiment draws ``PER_ARM`` outcomes per arm at a control rate of 0.30, the arms
interleaved in a random order, and is monitored after every observation: ``compare`` over a
prefix reports the smallest p-value and the narrowest interval of every look up to its end, so a
prefix is significant exactly when the experiment would have been stopped by then.

A fraction measured over ``runs`` seeded experiments is held to its bound with a Monte Carlo
margin of three standard errors, ``3 * sqrt(rate * (1 - rate) / runs)``: a correct test fails the
check with probability about 0.1%. The seeds are fixed, so the outcome is deterministic.
``ACCORD_SOAK=1`` runs ten times as many experiments for tighter figures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from accord.experiments import Comparison, Observation, compare, default_tau, required_sample

SOAK = os.environ.get("ACCORD_SOAK") == "1"
NULL_RUNS = 5000 if SOAK else 500
EFFECT_RUNS = 3000 if SOAK else 300
PER_ARM = 3000
ALPHA = 0.05
CONTROL_RATE = 0.30
VARIANT_RATE = 0.36
MINIMUM_EFFECT = VARIANT_RATE - CONTROL_RATE
TAU = default_tau(MINIMUM_EFFECT)
POWER = 0.8
#: The sample a design would declare: fixed-horizon, planned with the control's spread.
PLANNED = required_sample(
    MINIMUM_EFFECT, math.sqrt(CONTROL_RATE * (1 - CONTROL_RATE)), alpha=ALPHA, power=POWER
)


def _margin(rate: float, runs: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / runs)


def _experiments(
    seed: int, runs: int, variant_rate: float
) -> Iterator[tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]]:
    """Arrival order (True for the variant) and outcomes of each experiment."""
    for run in range(runs):
        rng = np.random.default_rng([seed, run])
        in_variant = np.repeat([False, True], PER_ARM)
        rng.shuffle(in_variant)
        rates = np.where(in_variant, variant_rate, CONTROL_RATE)
        yield in_variant, (rng.random(2 * PER_ARM) < rates).astype(np.float64)


def _observations(
    in_variant: npt.NDArray[np.bool_], values: npt.NDArray[np.float64]
) -> list[Observation]:
    return [
        Observation("variant" if v else "control", x)
        for v, x in zip(in_variant.tolist(), values.tolist(), strict=True)
    ]


def _compare(observations: list[Observation]) -> Comparison:
    return compare(observations, control="control", variant="variant", alpha=ALPHA, tau=TAU)


def _detected(comparison: Comparison) -> bool:
    """Significant, with the sign of the true effect."""
    return comparison.significant and comparison.low > 0


def _until(in_variant: npt.NDArray[np.bool_], per_arm: int) -> int:
    """The length of the prefix by which both arms have ``per_arm`` observations."""
    reached = np.minimum(np.cumsum(~in_variant), np.cumsum(in_variant)) >= per_arm
    return int(np.argmax(reached)) + 1


def _naive_z_test_ever_significant(
    in_variant: npt.NDArray[np.bool_], values: npt.NDArray[np.float64], *, every: int
) -> bool:
    """A two-sided fixed-horizon z-test at ALPHA, checked after every ``every`` observations."""
    looks = np.arange(every, in_variant.size + 1, every) - 1
    n_b = np.cumsum(in_variant)[looks]
    n_a = looks + 1 - n_b
    ones_b = np.cumsum(values * in_variant)[looks]
    ones_a = np.cumsum(values * ~in_variant)[looks]
    mean_a, mean_b = ones_a / n_a, ones_b / n_b
    # binary outcomes: the sum of squares is the count of ones
    var_a = (ones_a - n_a * mean_a**2) / (n_a - 1)
    var_b = (ones_b - n_b * mean_b**2) / (n_b - 1)
    se = np.sqrt(var_a / n_a + var_b / n_b)
    z = np.divide(mean_b - mean_a, se, out=np.zeros_like(se), where=se > 0)
    return bool(np.any(np.abs(z) > 1.959963984540054))


def test_with_no_effect_the_monitored_test_rarely_declares_one() -> None:
    false_positives = 0
    naive = 0
    for in_variant, values in _experiments(1, NULL_RUNS, CONTROL_RATE):
        false_positives += _compare(_observations(in_variant, values)).significant
        naive += _naive_z_test_ever_significant(in_variant, values, every=100)
    rate = false_positives / NULL_RUNS
    naive_rate = naive / NULL_RUNS
    assert rate <= ALPHA + _margin(ALPHA, NULL_RUNS), f"false-positive rate {rate:.3f}"
    # Peeking at a fixed-horizon test after every 100 observations inflates its error rate
    # several times over: the reason the sequential test exists.
    assert naive_rate >= 3 * ALPHA, f"naive peeking rate {naive_rate:.3f}"
    assert naive_rate > 3 * rate


def test_with_a_known_effect_the_test_finds_it_and_covers_it() -> None:
    by_planned = by_twice_planned = by_end = covered = 0
    for in_variant, values in _experiments(2, EFFECT_RUNS, VARIANT_RATE):
        observations = _observations(in_variant, values)
        final = _compare(observations)
        by_end += _detected(final)
        covered += final.low <= MINIMUM_EFFECT <= final.high
        by_planned += _detected(_compare(observations[: _until(in_variant, PLANNED)]))
        by_twice_planned += _detected(_compare(observations[: _until(in_variant, 2 * PLANNED)]))
    assert PLANNED == 916
    # The sequential test needs more than the fixed-horizon sample for the same power ...
    assert by_planned / EFFECT_RUNS < POWER, f"power by {PLANNED}: {by_planned / EFFECT_RUNS}"
    # ... and reaches it by twice that (measured: 80% by 1.7 times, 87% by twice).
    power = by_twice_planned / EFFECT_RUNS
    assert power >= POWER, f"power by {2 * PLANNED} per arm: {power:.3f}"
    assert by_end / EFFECT_RUNS >= 0.95, f"power by {PER_ARM} per arm: {by_end / EFFECT_RUNS}"
    coverage = covered / EFFECT_RUNS
    assert coverage >= 1 - ALPHA - _margin(ALPHA, EFFECT_RUNS), f"coverage {coverage:.3f}"


def test_required_sample_gives_a_fixed_horizon_test_its_stated_power() -> None:
    sd = math.sqrt((CONTROL_RATE * (1 - CONTROL_RATE) + VARIANT_RATE * (1 - VARIANT_RATE)) / 2)
    n = required_sample(MINIMUM_EFFECT, sd, alpha=ALPHA, power=POWER)
    rng = np.random.default_rng(3)
    runs = 10 * EFFECT_RUNS
    a = (rng.random((runs, n)) < CONTROL_RATE).mean(axis=1)
    b = (rng.random((runs, n)) < VARIANT_RATE).mean(axis=1)
    se = np.sqrt(a * (1 - a) / (n - 1) + b * (1 - b) / (n - 1))
    power = float(np.mean((b - a) / se > 1.959963984540054))
    assert power == pytest.approx(POWER, abs=_margin(POWER, runs))
