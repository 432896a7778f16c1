"""Retries, the circuit breaker and the concurrency limit around a connector's one attempt."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.connectors import (
    BreakerSettings,
    CallContext,
    CircuitBreaker,
    CircuitOpen,
    Endpoints,
    Resilience,
    Retries,
    resilient,
)
from accord.errors import CapabilityFailed


def _context(deadline: float | None = None) -> CallContext:
    return CallContext(
        tenant_id="default",
        run_id="run_1",
        block="b",
        visit=1,
        attempt=1,
        idempotency_key="run_1/b/1",
        deadline=deadline,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Script:
    """A handler that fails as told, then answers."""

    def __init__(self, *failures: CapabilityFailed) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, request: Any, context: CallContext) -> Any:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {"ok": True}


def _wrap(
    handler: Any,
    *,
    idempotent: bool = True,
    retries: Retries | None = None,
    breaker: BreakerSettings | None = None,
    concurrency: int | None = None,
    clock: Clock | None = None,
    sleeps: list[float] | None = None,
) -> Any:
    resilience = Resilience(
        timeout=None, retries=retries or Retries(), breaker=breaker, concurrency=concurrency
    )
    endpoints = Endpoints(clock=clock or Clock())
    return resilient(
        handler,
        endpoint=endpoints.get("sys GET /x", resilience),
        resilience=resilience,
        idempotent=idempotent,
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
        random_fraction=lambda: 0.5,
    )


def unavailable() -> CapabilityFailed:
    return CapabilityFailed("503", error_type="HTTP503", retryable=True, outcome_unknown=True)


def test_retryable_failures_are_retried_with_growing_waits() -> None:
    handler = Script(unavailable(), unavailable())
    sleeps: list[float] = []
    call = _wrap(handler, retries=Retries(attempts=3, initial=0.1, jitter=0.0), sleeps=sleeps)
    assert call(None, _context()) == {"ok": True}
    assert handler.calls == 3
    assert sleeps == [0.1, 0.2]


def test_a_non_retryable_failure_is_never_retried() -> None:
    handler = Script(CapabilityFailed("404", error_type="NotFound", retryable=False))
    call = _wrap(handler)
    with pytest.raises(CapabilityFailed) as caught:
        call(None, _context())
    assert caught.value.error_type == "NotFound"
    assert handler.calls == 1


def test_retries_stop_after_the_attempts_and_say_how_many() -> None:
    handler = Script(*(unavailable() for _ in range(5)))
    call = _wrap(handler, retries=Retries(attempts=3))
    with pytest.raises(CapabilityFailed) as caught:
        call(None, _context())
    assert handler.calls == 3
    assert caught.value.attempts == 3


def test_retry_after_sets_the_wait_up_to_its_cap() -> None:
    limited = CapabilityFailed("429", error_type="RateLimited", retryable=True, retry_after=60)
    handler = Script(
        limited, CapabilityFailed("429", error_type="RateLimited", retryable=True, retry_after=0.3)
    )
    sleeps: list[float] = []
    call = _wrap(handler, retries=Retries(attempts=3, max_retry_after=5), sleeps=sleeps)
    call(None, _context())
    assert sleeps == [5.0, 0.3]


def test_a_lost_answer_is_retried_only_when_the_call_is_idempotent() -> None:
    lost = CapabilityFailed(
        "lost", error_type="ConnectionLost", retryable=True, outcome_unknown=True
    )
    idempotent = Script(lost)
    assert _wrap(idempotent, idempotent=True)(None, _context()) == {"ok": True}
    assert idempotent.calls == 2

    once = Script(
        CapabilityFailed("lost", error_type="ConnectionLost", retryable=True, outcome_unknown=True)
    )
    with pytest.raises(CapabilityFailed) as caught:
        _wrap(once, idempotent=False)(None, _context())
    assert caught.value.outcome_unknown
    assert once.calls == 1

    refused = Script(CapabilityFailed("no", error_type="ConnectionFailed", retryable=True))
    assert _wrap(refused, idempotent=False)(None, _context()) == {"ok": True}
    assert refused.calls == 2


def test_a_passed_deadline_stops_retrying() -> None:
    handler = Script(*(unavailable() for _ in range(5)))
    call = _wrap(handler, retries=Retries(attempts=5, initial=10, max_wait=10, jitter=0))
    with pytest.raises(CapabilityFailed):
        call(None, _context(deadline=time.time() + 5))
    assert handler.calls == 1


def test_the_breaker_opens_fails_fast_then_probes_once() -> None:
    clock = Clock()
    handler = Script(*(unavailable() for _ in range(3)))
    call = _wrap(
        handler,
        retries=Retries(attempts=1),
        breaker=BreakerSettings(failures=3, reset_after=10),
        clock=clock,
    )
    for _ in range(3):
        with pytest.raises(CapabilityFailed):
            call(None, _context())
    with pytest.raises(CircuitOpen) as caught:
        call(None, _context())
    assert caught.value.retryable and caught.value.retry_after == 10
    assert handler.calls == 3
    clock.now = 10.5
    assert call(None, _context()) == {"ok": True}
    assert handler.calls == 4


def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker("sys", BreakerSettings(failures=1, reset_after=5), clock=clock)
    assert breaker.acquire() is False
    breaker.failed(probe=False)
    assert breaker.state == "open"
    clock.now = 6
    assert breaker.state == "half_open"
    assert breaker.acquire() is True
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    breaker.failed(probe=True)
    assert breaker.state == "open"
    assert breaker.opened == 2


def test_refusals_and_rate_limits_do_not_open_the_breaker() -> None:
    clock = Clock()
    handler = Script(
        *(CapabilityFailed("400", error_type="HTTP400", retryable=False) for _ in range(3)),
        *(CapabilityFailed("429", error_type="RateLimited", retryable=True) for _ in range(3)),
    )
    call = _wrap(
        handler, retries=Retries(attempts=1), breaker=BreakerSettings(failures=2), clock=clock
    )
    for _ in range(6):
        with pytest.raises(CapabilityFailed) as caught:
            call(None, _context())
        assert not isinstance(caught.value, CircuitOpen)
    assert call(None, _context()) == {"ok": True}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("acquire"), st.booleans()),
            st.tuples(st.just("tick"), st.floats(min_value=0, max_value=20)),
        ),
        max_size=60,
    )
)
def test_never_more_than_one_probe_in_flight(steps: list[tuple[str, Any]]) -> None:
    """Admitted calls finish in any order, succeeding or failing; probes never overlap."""
    clock = Clock()
    breaker = CircuitBreaker("sys", BreakerSettings(failures=2, reset_after=5), clock=clock)
    in_flight: list[tuple[bool, bool]] = []
    for kind, value in steps:
        if kind == "tick":
            clock.now += value
            if in_flight:
                probe, ok = in_flight.pop(0)
                (breaker.succeeded if ok else breaker.failed)(probe=probe)
            continue
        try:
            probe = breaker.acquire()
        except CircuitOpen:
            continue
        in_flight.append((probe, value))
        assert sum(1 for p, _ in in_flight if p) <= 1


def test_the_concurrency_limit_turns_away_the_call_over_it() -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow(request: Any, context: CallContext) -> Any:
        entered.set()
        release.wait(5)
        return {"ok": True}

    call = _wrap(slow, retries=Retries(attempts=1), concurrency=1)
    first = threading.Thread(target=call, args=(None, _context()))
    first.start()
    assert entered.wait(5)
    with pytest.raises(CapabilityFailed) as caught:
        call(None, _context(deadline=time.time() + 0.05))
    assert caught.value.error_type == "ConcurrencyLimit" and caught.value.retryable
    release.set()
    first.join()
    assert call(None, _context()) == {"ok": True}
