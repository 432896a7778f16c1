"""Durations in journey files, and the retry schedule a RetryPolicy produces."""

from __future__ import annotations

import functools
import math
import re
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from accord.core import format_duration, parse_duration
from accord.errors import JourneyInvalid
from accord.journeys import (
    RetryPolicy,
    TaskBlock,
    WaitBlock,
    journey_json_schema,
    load_journey_text,
)

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5h", 5400.0),
        (" 1h 30m ", 5400.0),
        ("0s", 0.0),
        (90, 90.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "h", "-5s", "5x", "1h-", "1e3s", "1.h"])
def test_parse_duration_rejects_other_text_and_names_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration: .*'250ms', '30s', '5m'"):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, -0.5, True])
def test_parse_duration_rejects_negative_numbers_and_booleans(value: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))), min_size=1))
def test_parse_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{amount}{unit}" for amount, unit in parts)
    expected = sum(amount * UNITS[unit] for amount, unit in parts)
    assert parse_duration(text) == pytest.approx(expected)


@functools.cache
def duration_pattern() -> str:
    timeout = journey_json_schema()["$defs"]["TaskBlock"]["properties"]["timeout"]
    (duration, _null) = timeout["anyOf"]
    (_number, text) = duration["anyOf"]
    assert text["type"] == "string"
    return str(text["pattern"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", " "]),
            st.integers(0, 10_000),
            st.sampled_from(["", ".5", ".25"]),
            st.sampled_from(sorted(UNITS)),
        ),
        min_size=1,
    )
)
def test_the_published_schema_accepts_the_durations_files_may_write(
    parts: list[tuple[str, int, str, str]],
) -> None:
    text = "".join(f"{space}{whole}{fraction}{unit}" for space, whole, fraction, unit in parts)
    assert re.search(duration_pattern(), text), text
    parse_duration(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.msdh x")), max_size=12))
def test_text_the_schema_accepts_always_parses(text: str) -> None:
    if re.search(duration_pattern(), text):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (0, "0ms"), (1, "1s"), (90, "1m30s"), (3600, "1h"), (93784, "1d2h3m4s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 10 * 86400, allow_nan=False))
def test_formatted_durations_parse_back_to_nearly_the_same_value(seconds: float) -> None:
    tolerance = 0.0005 if seconds < 1 else 0.5
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=tolerance)


def test_duration_fields_accept_text_and_numbers() -> None:
    spec = load_journey_text(
        dedent("""\
            journey: timing
            blocks:
              - id: lookup
                kind: task
                capability: orders.lookup
                timeout: 1m30s
                retry: {initial_interval: 200ms, max_interval: 1h}
              - id: pause
                kind: wait
                timer: 45
            """)
    ).spec
    lookup, pause = spec.blocks
    assert isinstance(lookup, TaskBlock) and isinstance(pause, WaitBlock)
    assert lookup.timeout == 90.0
    assert lookup.retry is not None
    assert (lookup.retry.initial_interval, lookup.retry.max_interval) == (0.2, 3600.0)
    assert pause.timer == 45.0


def test_a_bad_duration_is_reported_at_its_value() -> None:
    with pytest.raises(JourneyInvalid) as caught:
        load_journey_text(
            "journey: timing\nblocks:\n  - id: pause\n    kind: wait\n    timer: 5 minutes\n",
            source_name="timing.yaml",
        )
    (problem,) = caught.value.diagnostics
    assert problem.message.startswith("not a duration: '5 minutes'")
    assert (problem.file, problem.line, problem.column, problem.path) == (
        "timing.yaml",
        5,
        12,
        "blocks[0].timer",
    )


def test_a_negative_timeout_is_rejected() -> None:
    with pytest.raises(JourneyInvalid) as caught:
        load_journey_text(
            "journey: timing\nblocks:\n  - {id: pause, kind: wait, timer: 1s, timeout: -3}\n"
        )
    (problem,) = caught.value.diagnostics
    assert problem.path == "blocks[0].timeout"
    assert "must not be negative" in problem.message


def test_the_default_policy() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_interval, policy.backoff) == (3, 1.0, 2.0)
    assert (policy.max_interval, policy.jitter, policy.non_retryable) == (300.0, 0.2, ())


def test_without_jitter_delays_grow_by_the_backoff_until_the_cap() -> None:
    policy = RetryPolicy(initial_interval=1.0, backoff=3.0, max_interval=50.0, jitter=0.0)
    assert [policy.delay(attempt, 0.9) for attempt in range(1, 7)] == [1, 3, 9, 27, 50, 50]


def test_jitter_spreads_the_delay_around_the_base() -> None:
    policy = RetryPolicy(initial_interval=10.0, jitter=0.2)
    assert policy.delay(1, 0.0) == pytest.approx(8.0)
    assert policy.delay(1, 0.5) == pytest.approx(10.0)
    assert policy.delay(1, 0.999999) == pytest.approx(12.0, abs=1e-4)


def test_long_schedules_stay_at_the_cap_instead_of_overflowing() -> None:
    policy = RetryPolicy(max_attempts=1000, backoff=100.0, max_interval=600.0, jitter=0.0)
    assert policy.delay(999, 0.5) == 600.0
    assert RetryPolicy(initial_interval=0, backoff=100.0).delay(999, 0.5) == 0.0


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 1000),
    # durations are written with millisecond resolution; far smaller ones mean nothing
    initial_interval=st.just(0.0) | st.floats(1e-6, 3600),
    backoff=st.floats(1.0, 100.0, allow_nan=False),
    max_interval=st.floats(0, 86400, allow_nan=False),
    jitter=st.floats(0.0, 1.0, allow_nan=False),
)


def capped_base(policy: RetryPolicy, attempt: int) -> float:
    """initial · backoff^(attempt-1), capped; compared in log space so it cannot overflow."""
    if policy.initial_interval == 0 or policy.max_interval == 0:
        return 0.0
    growth = math.log(policy.initial_interval) + (attempt - 1) * math.log(policy.backoff)
    if growth > math.log(policy.max_interval) + 1e-9:
        return policy.max_interval
    return min(policy.initial_interval * policy.backoff ** (attempt - 1), policy.max_interval)


@settings(max_examples=300, deadline=None)
@given(policies, st.integers(1, 1000), st.floats(0.0, 1.0, exclude_max=True))
def test_every_delay_lies_within_the_jitter_band_of_its_capped_base(
    policy: RetryPolicy, attempt: int, fraction: float
) -> None:
    base = capped_base(policy, attempt)
    delay = policy.delay(attempt, fraction)
    assert delay >= 0.0
    assert base * (1 - policy.jitter) - 1e-9 <= delay <= base * (1 + policy.jitter) + 1e-9


@settings(max_examples=200, deadline=None)
@given(policies, st.integers(1, 999))
def test_without_jitter_the_schedule_never_shrinks(policy: RetryPolicy, attempt: int) -> None:
    steady = policy.model_copy(update={"jitter": 0.0})
    assert steady.delay(attempt, 0.5) <= steady.delay(attempt + 1, 0.5)


@settings(max_examples=200, deadline=None)
@given(policies, st.integers(1, 1000), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_a_larger_random_fraction_never_gives_a_shorter_delay(
    policy: RetryPolicy, attempt: int, a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert policy.delay(attempt, low) <= policy.delay(attempt, high)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_attempts": 0},
        {"max_attempts": 1001},
        {"backoff": 0.5},
        {"jitter": 1.5},
        {"initial_interval": -1},
        {"max_interval": "soon"},
        {"retries": 3},
    ],
)
def test_out_of_range_policies_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(fields)


def test_retry_fields_in_yaml_are_validated_with_their_location() -> None:
    with pytest.raises(JourneyInvalid) as caught:
        load_journey_text(
            dedent("""\
                journey: timing
                blocks:
                  - id: lookup
                    kind: task
                    capability: orders.lookup
                    retry: {max_attempts: 0, non_retryable: [ContractViolation]}
                """),
            source_name="timing.yaml",
        )
    (problem,) = caught.value.diagnostics
    assert problem.path == "blocks[0].retry.max_attempts"
    assert (problem.line, problem.column) == (6, 27)
