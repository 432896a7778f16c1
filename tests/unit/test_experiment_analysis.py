"""The mSPRT comparison of two arms: its formulas against a plain loop over every look, its
invariances, and its refusals of bad input."""

from __future__ import annotations

import math
import random
from statistics import fmean, variance

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import InputError
from accord.experiments import (
    Comparison,
    Observation,
    compare,
    default_tau,
    parse_experiment,
    required_sample,
)

ALPHA = 0.05


def _brute_force(
    observations: list[Observation],
    *,
    control: str,
    variant: str,
    alpha: float,
    tau: float,
    min_sample: int = 2,
    each_arm_varies: bool = True,
) -> tuple[float, float, float]:
    """p-value, low and high by the formulas, one look after each observation. A look needs
    both arms to vary, or with ``each_arm_varies=False`` only a positive pooled variance."""
    a: list[float] = []
    b: list[float] = []
    p_value, low, high = 1.0, -math.inf, math.inf
    t2 = tau * tau
    for observation in observations:
        if observation.arm == control:
            a.append(observation.value)
        elif observation.arm == variant:
            b.append(observation.value)
        else:
            continue
        if min(len(a), len(b)) < min_sample:
            continue
        if each_arm_varies and (len(set(a)) < 2 or len(set(b)) < 2):
            continue
        v = variance(a) / len(a) + variance(b) / len(b)
        if v == 0:
            continue
        theta = fmean(b) - fmean(a)
        log_lambda = 0.5 * math.log(v / (v + t2)) + theta**2 * t2 / (2 * v * (v + t2))
        p_value = min(p_value, 1.0, math.exp(-log_lambda) if log_lambda > -700 else 1.0)
        radius = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
        low = max(low, theta - radius)
        high = min(high, theta + radius)
    return p_value, low, high


def _random_observations(seed: int, n: int, *, arms: str = "ab") -> list[Observation]:
    rng = random.Random(seed)
    shift = {"a": 0.0, "b": 0.4, "c": -1.0}
    return [
        Observation(arm, rng.gauss(10.0 + shift[arm], 1.5))
        for arm in (rng.choice(arms) for _ in range(n))
    ]


def _assert_matches(found: Comparison, expected: tuple[float, float, float]) -> None:
    p_value, low, high = expected
    assert found.p_value == pytest.approx(p_value, rel=1e-9, abs=1e-300)
    assert found.low == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert found.high == pytest.approx(high, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("tau", [0.05, 0.5, 5.0])
def test_compare_matches_a_loop_over_every_prefix(seed: int, tau: float) -> None:
    observations = _random_observations(seed, 160, arms="abc")
    found = compare(observations, control="a", variant="b", alpha=ALPHA, tau=tau)
    _assert_matches(
        found, _brute_force(observations, control="a", variant="b", alpha=ALPHA, tau=tau)
    )
    a = [o.value for o in observations if o.arm == "a"]
    b = [o.value for o in observations if o.arm == "b"]
    assert (found.n_control, found.n_variant) == (len(a), len(b))
    assert found.control_mean == pytest.approx(fmean(a), rel=1e-12)
    assert found.variant_mean == pytest.approx(fmean(b), rel=1e-12)
    assert found.effect == pytest.approx(fmean(b) - fmean(a), rel=1e-9)
    assert found.relative == pytest.approx((fmean(b) - fmean(a)) / fmean(a), rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_binary_outcomes_match_the_loop_including_early_looks(seed: int) -> None:
    rng = random.Random(seed)
    observations = [
        Observation(arm, float(rng.random() < (0.3 if arm == "a" else 0.5)))
        for arm in (rng.choice("ab") for _ in range(300))
    ]
    for min_sample in (2, 5, 40):
        found = compare(
            observations, control="a", variant="b", alpha=0.1, tau=0.1, min_sample=min_sample
        )
        _assert_matches(
            found,
            _brute_force(
                observations, control="a", variant="b", alpha=0.1, tau=0.1, min_sample=min_sample
            ),
        )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abx"), st.integers(min_value=-20, max_value=20)),
        max_size=60,
    ),
    st.sampled_from([0.01, 0.2, 1.0, 3.0, 40.0]),
    st.sampled_from([0.01, 0.05, 0.5]),
)
def test_compare_matches_the_loop_on_any_small_sequence(
    pairs: list[tuple[str, int]], tau: float, alpha: float
) -> None:
    observations = [Observation(arm, value / 4) for arm, value in pairs]
    found = compare(observations, control="a", variant="b", alpha=alpha, tau=tau)
    _assert_matches(
        found, _brute_force(observations, control="a", variant="b", alpha=alpha, tau=tau)
    )
    assert found.significant == (found.p_value <= alpha)
    # p <= alpha exactly when some look's interval excludes 0, so the intersection does too
    excludes_zero = found.low > 0 or found.high < 0
    if found.p_value < alpha * (1 - 1e-9):
        assert excludes_zero
    if found.p_value > alpha * (1 + 1e-9):
        assert not excludes_zero


def test_one_look_by_hand() -> None:
    # control 1, 3: mean 2, variance 2; variant 8, 12: mean 10, variance 8. V = 2/2 + 8/2 = 5.
    values = [("a", 1), ("a", 3), ("b", 8), ("b", 12)]
    observations = [Observation(arm, value) for arm, value in values]
    found = compare(observations, control="a", variant="b", alpha=ALPHA, tau=2.0)
    # Lambda = sqrt(5 / 9) * exp(8**2 * 2**2 / (2 * 5 * 9)), at the only look
    assert found.p_value == pytest.approx(math.sqrt(9 / 5) * math.exp(-128 / 45))
    assert found.p_value == pytest.approx(0.0781, abs=1e-4)
    radius = math.sqrt(5 * 9 / 4 * (2 * math.log(20) + math.log(9 / 5)))
    assert (found.low, found.high) == pytest.approx((8 - radius, 8 + radius))
    assert found.low < 0 < found.effect == 8.0 < found.high
    assert found.relative == pytest.approx(4.0)
    assert not found.significant
    assert compare(observations, control="a", variant="b", alpha=0.1, tau=2.0).significant
    assert found.method == "mSPRT (normal mixture, tau=2), always valid"


def test_strong_evidence_by_hand() -> None:
    # control 0, 1 repeated; variant 10, 11 repeated: a difference of 10 with V = 0.5 / 10.
    observations = [
        Observation(arm, base + i % 2) for i in range(20) for arm, base in [("a", 0), ("b", 10)]
    ]
    found = compare(observations, control="a", variant="b", alpha=ALPHA, tau=1.0)
    assert found.effect == pytest.approx(10.0)
    assert found.significant
    assert found.p_value < 1e-100
    assert 0 < found.low <= found.high


def test_swapping_the_arms_mirrors_the_comparison() -> None:
    observations = _random_observations(3, 400)
    forward = compare(observations, control="a", variant="b", alpha=ALPHA, tau=0.3)
    backward = compare(observations, control="b", variant="a", alpha=ALPHA, tau=0.3)
    assert backward.effect == pytest.approx(-forward.effect)
    assert backward.p_value == pytest.approx(forward.p_value)
    assert (backward.low, backward.high) == pytest.approx((-forward.high, -forward.low))
    assert (backward.n_control, backward.n_variant) == (forward.n_variant, forward.n_control)


def test_shifting_every_value_changes_only_the_means() -> None:
    observations = _random_observations(4, 400)
    shifted = [Observation(o.arm, o.value + 1e6) for o in observations]
    plain = compare(observations, control="a", variant="b", alpha=ALPHA, tau=0.3)
    moved = compare(shifted, control="a", variant="b", alpha=ALPHA, tau=0.3)
    assert moved.control_mean == pytest.approx(plain.control_mean + 1e6)
    assert moved.effect == pytest.approx(plain.effect, rel=1e-6)
    assert moved.p_value == pytest.approx(plain.p_value, rel=1e-6)
    assert (moved.low, moved.high) == pytest.approx((plain.low, plain.high), rel=1e-6)


def test_rescaling_values_and_tau_together_rescales_the_interval() -> None:
    observations = _random_observations(5, 400)
    scaled = [Observation(o.arm, o.value * 250) for o in observations]
    plain = compare(observations, control="a", variant="b", alpha=ALPHA, tau=0.3)
    large = compare(scaled, control="a", variant="b", alpha=ALPHA, tau=0.3 * 250)
    assert large.p_value == pytest.approx(plain.p_value, rel=1e-9)
    assert (large.low, large.high) == pytest.approx((plain.low * 250, plain.high * 250))
    assert large.relative == pytest.approx(plain.relative)


@pytest.mark.parametrize("seed", range(4))
def test_more_observations_never_weaken_the_evidence_or_widen_the_interval(seed: int) -> None:
    observations = _random_observations(seed, 600)
    before = compare(observations[:2], control="a", variant="b", alpha=ALPHA, tau=0.3)
    for end in range(3, len(observations) + 1):
        after = compare(observations[:end], control="a", variant="b", alpha=ALPHA, tau=0.3)
        assert after.p_value <= before.p_value
        assert after.low >= before.low
        assert after.high <= before.high
        before = after
    assert before.significant


def test_at_a_single_look_the_interval_is_centred_on_the_estimate() -> None:
    rng = random.Random(6)
    control = [Observation("a", rng.gauss(0, 1)) for _ in range(30)]
    variant = [Observation("b", rng.gauss(0.5, 1)) for _ in range(12)]
    # The variant reaches min_sample with its last observation: that is the only look.
    found = compare(
        control + variant, control="a", variant="b", alpha=ALPHA, tau=0.3, min_sample=12
    )
    assert found.low < found.effect < found.high
    assert found.effect - found.low == pytest.approx(found.high - found.effect)
    _assert_matches(
        found,
        _brute_force(
            control + variant, control="a", variant="b", alpha=ALPHA, tau=0.3, min_sample=12
        ),
    )


def test_other_arms_are_ignored() -> None:
    observations = _random_observations(7, 300, arms="abc")
    only_two = [o for o in observations if o.arm != "c"]
    with_c = compare(observations, control="a", variant="b", alpha=ALPHA, tau=0.3)
    without = compare(only_two, control="a", variant="b", alpha=ALPHA, tau=0.3)
    assert with_c == without


def test_an_arm_without_observations_reports_nothing_yet() -> None:
    observations = [Observation("a", float(i % 3)) for i in range(50)]
    found = compare(observations, control="a", variant="b", alpha=ALPHA, tau=0.5)
    assert (found.n_control, found.n_variant) == (50, 0)
    assert found.variant_mean == 0.0
    assert found.effect == 0.0
    assert (found.low, found.high, found.p_value) == (-math.inf, math.inf, 1.0)
    assert not found.significant
    empty = compare([], control="a", variant="b", alpha=ALPHA, tau=0.5)
    assert (empty.n_control, empty.n_variant, empty.p_value) == (0, 0, 1.0)
    assert empty.relative is None
    assert not any(math.isnan(x) for x in (empty.effect, empty.low, empty.high))


def test_no_look_counts_below_min_sample_or_while_an_arm_is_constant() -> None:
    # The variant's values never vary: the plug-in variance of that arm is 0 at every look.
    constant = [
        Observation(arm, float(i % 2) if arm == "a" else 1.0) for i in range(200) for arm in "ab"
    ]
    found = compare(constant, control="a", variant="b", alpha=ALPHA, tau=0.5)
    assert (found.low, found.high, found.p_value) == (-math.inf, math.inf, 1.0)
    assert found.effect == pytest.approx(0.5)
    few = [Observation("a", 0), Observation("a", 1), Observation("b", 5), Observation("b", 9)]
    assert compare(few, control="a", variant="b", alpha=ALPHA, tau=1, min_sample=3).p_value == 1.0
    assert compare(few, control="a", variant="b", alpha=ALPHA, tau=1, min_sample=2).p_value < 1.0


def test_an_arm_that_has_not_varied_yet_cannot_fake_early_evidence() -> None:
    # No conversion among the first 15 in the control (0.5% likely at a rate of 0.30) while
    # the variant converts 9 of 15: its plug-in variance of 0 makes the difference look sure.
    variant = [1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    observations = [Observation(arm, value) for v in variant for arm, value in [("a", 0), ("b", v)]]
    unguarded = _brute_force(
        observations, control="a", variant="b", alpha=ALPHA, tau=0.3, each_arm_varies=False
    )
    assert unguarded[0] < ALPHA
    found = compare(observations, control="a", variant="b", alpha=ALPHA, tau=0.3)
    assert (found.low, found.high, found.p_value) == (-math.inf, math.inf, 1.0)
    assert not found.significant


def test_relative_is_none_when_the_control_mean_is_zero() -> None:
    observations = [Observation("a", v) for v in (-1, 1, -2, 2)] + [
        Observation("b", v) for v in (0, 1, 2)
    ]
    found = compare(observations, control="a", variant="b", alpha=ALPHA, tau=1)
    assert found.control_mean == 0.0
    assert found.relative is None


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_alpha_outside_zero_and_one_is_refused(alpha: float) -> None:
    with pytest.raises(InputError, match="alpha must lie strictly between 0 and 1") as caught:
        compare([], control="a", variant="b", alpha=alpha, tau=1)
    assert caught.value.hint


@pytest.mark.parametrize("tau", [0.0, -1.0, math.inf, math.nan])
def test_tau_must_be_positive_and_finite(tau: float) -> None:
    with pytest.raises(InputError, match="tau must be a positive finite number") as caught:
        compare([], control="a", variant="b", alpha=ALPHA, tau=tau)
    assert "default_tau" in str(caught.value.hint)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_and_located(value: float) -> None:
    observations = [Observation("a", 1.0), Observation("b", 2.0), Observation("b", value)]
    with pytest.raises(InputError, match=r"observation 2 \(arm 'b'\)") as caught:
        compare(observations, control="a", variant="b", alpha=ALPHA, tau=1)
    assert caught.value.hint


def test_min_sample_and_arm_names_are_checked() -> None:
    with pytest.raises(InputError, match="min_sample must be an integer of at least 2"):
        compare([], control="a", variant="b", alpha=ALPHA, tau=1, min_sample=1)
    with pytest.raises(InputError, match="the same arm"):
        compare([], control="a", variant="a", alpha=ALPHA, tau=1)


def test_default_tau_is_the_minimum_effect() -> None:
    assert default_tau(0.06) == 0.06
    assert default_tau(12.5) == 12.5
    for bad in (0.0, -0.1, math.inf, math.nan):
        with pytest.raises(InputError, match="minimum effect must be a positive finite number"):
            default_tau(bad)


def test_default_tau_is_close_to_the_best_scale_where_the_effect_becomes_detectable() -> None:
    # log Lambda of an estimate at z standard errors, with tau**2 = r * V
    def log_lambda(z: float, r: float) -> float:
        return -0.5 * math.log1p(r) + z * z * r / (2 * (1 + r))

    z = 3.0
    best = max(log_lambda(z, r / 100) for r in range(1, 5000))
    assert log_lambda(z, z * z) == pytest.approx(best, abs=0.01)


def test_required_sample_by_hand() -> None:
    # 2 * (1.959964 + 0.841621)**2 * 0.21 / 0.06**2 = 915.7
    assert required_sample(0.06, math.sqrt(0.21), alpha=0.05, power=0.8) == 916
    # 2 * (2.575829 + 1.281552)**2 * 1 / 0.5**2 = 119.0
    assert required_sample(0.5, 1.0, alpha=0.01, power=0.9) == 120
    assert required_sample(10.0, 1.0, alpha=0.05, power=0.8) == 2


def test_required_sample_grows_as_the_effect_shrinks_and_depends_on_their_ratio() -> None:
    sizes = [required_sample(d, 1.0, alpha=0.05, power=0.8) for d in (0.4, 0.2, 0.1, 0.05)]
    assert sizes == sorted(sizes)
    assert sizes[-1] > 3.9 * sizes[-2]
    assert required_sample(0.2, 1.0, alpha=0.05, power=0.8) == required_sample(
        2.0, 10.0, alpha=0.05, power=0.8
    )
    assert required_sample(0.2, 1.0, alpha=0.05, power=0.9) > sizes[1]
    assert required_sample(0.2, 1.0, alpha=0.01, power=0.8) > sizes[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 1.0, 0.05, 0.8), "minimum effect"),
        ((math.nan, 1.0, 0.05, 0.8), "minimum effect"),
        ((0.1, 0.0, 0.05, 0.8), "standard deviation"),
        ((0.1, math.inf, 0.05, 0.8), "standard deviation"),
        ((0.1, 1.0, 0.0, 0.8), "alpha"),
        ((0.1, 1.0, 1.0, 0.8), "alpha"),
        ((0.1, 1.0, 0.05, 1.0), "power"),
        ((0.1, 1.0, 0.05, 0.0), "power"),
    ],
)
def test_required_sample_refuses_bad_input(
    args: tuple[float, float, float, float], message: str
) -> None:
    effect, sd, alpha, power = args
    with pytest.raises(InputError, match=message) as caught:
        required_sample(effect, sd, alpha=alpha, power=power)
    assert caught.value.hint


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("minimum_effect: 1e-200", "primary.minimum_effect"),
        ("minimum_effect: .inf", "primary.minimum_effect"),
        ("minimum_effect: .nan", "primary.minimum_effect"),
        ("minimum_effect: 1e-8", "(top)"),
    ],
)
def test_a_design_no_sample_could_test_is_refused_naming_the_field(change: str, field: str) -> None:

    text = f"""
experiment: tiny
target: {{kind: agent, name: offer}}
control: usual
variants: [{{name: usual}}, {{name: generous}}]
primary: {{name: retained, kind: binary, baseline: 0.3, {change}}}
"""
    with pytest.raises(InputError) as caught:
        parse_experiment(text, source="tiny.yaml")
    assert f"tiny.yaml: {field}:" in caught.value.message
    sound = parse_experiment(text.replace(change, "minimum_effect: 0.05"))
    assert sound.planned_sample() == required_sample(
        0.05, 0.3**0.5 * 0.7**0.5, alpha=0.05, power=0.8
    )
    good = text.replace(change, "minimum_effect: 0.05")
    assert parse_experiment(good + "version: 2147483647\n").version == 2**31 - 1
    with pytest.raises(InputError, match="version"):
        parse_experiment(good + "version: 2147483648\n")
