"""Resilience for connector calls: timeouts, retries, a circuit breaker and a concurrency limit.

:func:`resilient` wraps any capability handler; the handler itself only makes one attempt::

    breaker (fail fast while the endpoint is down) → concurrency limit → attempt with a timeout
        ↺ retry retryable failures with exponential backoff and jitter, honouring Retry-After

A failure is retried only when its error says it is retryable, and never when the answer was lost
(``outcome_unknown``) for a capability that is not idempotent: a second call could act twice.
Those go back to the runtime, which reconciles them with the system or asks a person.

Breakers and limits belong to an :class:`Endpoint`, shared by every capability that reaches the
same operation of the same system, and live in the worker's memory: each worker learns on its
own that a system is down, which costs a few failed calls per worker and needs no coordination.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import tenacity
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from accord.connectors._capability import CallContext, Handler
from accord.core import parse_duration
from accord.errors import BlockTimeout, CapabilityFailed, ExecutionError

__all__ = [
    "BreakerSettings",
    "CircuitBreaker",
    "CircuitOpen",
    "Endpoint",
    "Endpoints",
    "Resilience",
    "Retries",
    "resilient",
]

BreakerState = Literal["closed", "open", "half_open"]


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0, le=86_400)]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retries(_Settings):
    """Attempts within one call: ``attempts`` in all, waiting ``initial * multiplier ** n``
    (at most ``max_wait``) plus up to ``jitter`` seconds between them, or what the system's
    ``Retry-After`` asks for, up to ``max_retry_after``."""

    attempts: int = Field(3, ge=1, le=20)
    initial: Seconds = 0.05
    multiplier: float = Field(2.0, ge=1.0, le=10.0)
    max_wait: Seconds = 2.0
    jitter: Seconds = 0.05
    max_retry_after: Seconds = 5.0


class BreakerSettings(_Settings):
    """Open after ``failures`` consecutive failures; after ``reset_after`` seconds let one probe
    through (half-open); close when it succeeds, open again when it fails."""

    failures: int = Field(5, ge=1, le=1000)
    reset_after: Seconds = 30.0


class Resilience(_Settings):
    """How calls to an endpoint are protected. ``timeout`` bounds each attempt; ``concurrency``
    bounds the calls in flight per endpoint and worker; ``None`` switches a protection off."""

    timeout: Seconds | None = 10.0
    retries: Retries | None = Retries()
    breaker: BreakerSettings | None = BreakerSettings()
    concurrency: int | None = Field(None, ge=1, le=10_000)

    def merged(self, overrides: dict[str, Any] | None) -> Resilience:
        """These settings with ``overrides`` (a capability's own) laid over them."""
        if not overrides:
            return self
        data = self.model_dump()
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return Resilience.model_validate(data)


class CircuitOpen(CapabilityFailed):
    """The endpoint's breaker is open: the call was not made."""

    def __init__(self, endpoint: str, retry_after: float) -> None:
        super().__init__(
            f"{endpoint} is failing; its circuit breaker is open, so the call was not made",
            error_type="CircuitOpen",
            retryable=True,
            retry_after=retry_after,
            hint="the block retries after the breaker's reset time; check the system's health",
        )


class CircuitBreaker:
    """Closed, open and half-open, with at most one probe in flight while half-open.

    Only failures that say the system is unwell count: retryable errors other than rate
    limiting. An answer that refuses the request (a 4xx) means the system is working.
    """

    def __init__(
        self,
        endpoint: str,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.opened = 0
        self.probes = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state == "open" and self._remaining() <= 0:
                return "half_open"
            return self._state

    def _remaining(self) -> float:
        return self._opened_at + self.settings.reset_after - self._clock()

    def acquire(self) -> bool:
        """Admit a call, or raise :class:`CircuitOpen`. True when the call is the probe.

        Raises:
            CircuitOpen: the breaker is open, or half-open with its probe in flight.
        """
        with self._lock:
            if self._state == "closed":
                return False
            remaining = self._remaining()
            if self._state == "open" and remaining > 0:
                raise CircuitOpen(self.endpoint, remaining)
            if self._probing:
                raise CircuitOpen(self.endpoint, max(remaining, 0.0))
            self._state = "half_open"
            self._probing = True
            self.probes += 1
            return True

    def succeeded(self, *, probe: bool) -> None:
        with self._lock:
            self._failures = 0
            if probe or self._state != "closed":
                self._state = "closed"
                self._probing = False

    def failed(self, *, probe: bool) -> None:
        with self._lock:
            if probe or self._state == "half_open":
                self._trip()
                return
            self._failures += 1
            if self._state == "closed" and self._failures >= self.settings.failures:
                self._trip()

    def released(self, *, probe: bool) -> None:
        """The admitted call was not made after all (the concurrency limit turned it away)."""
        if probe:
            with self._lock:
                self._probing = False

    def _trip(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probing = False
        self._failures = 0
        self.opened += 1


@dataclass
class Endpoint:
    """One operation of one system, with its breaker and concurrency limit."""

    name: str
    breaker: CircuitBreaker | None
    limit: threading.BoundedSemaphore | None
    in_flight: int = 0
    calls: int = 0
    failures: int = 0
    _counting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, started: int = 0, ended: int = 0, failed: int = 0) -> None:
        """Update the counters; worker threads call one endpoint at once."""
        with self._counting:
            self.in_flight += started - ended
            self.calls += started
            self.failures += failed

    def status(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "breaker": self.breaker.state if self.breaker else None,
            "opened": self.breaker.opened if self.breaker else 0,
            "in_flight": self.in_flight,
            "calls": self.calls,
            "failures": self.failures,
        }


@dataclass
class Endpoints:
    """The endpoints of a process, created on first use and shared by name."""

    clock: Callable[[], float] = time.monotonic
    _found: dict[str, Endpoint] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str, resilience: Resilience) -> Endpoint:
        with self._lock:
            endpoint = self._found.get(name)
            if endpoint is None:
                breaker = (
                    CircuitBreaker(name, resilience.breaker, clock=self.clock)
                    if resilience.breaker is not None
                    else None
                )
                limit = (
                    threading.BoundedSemaphore(resilience.concurrency)
                    if resilience.concurrency is not None
                    else None
                )
                endpoint = Endpoint(name, breaker, limit)
                self._found[name] = endpoint
            return endpoint

    def __iter__(self) -> Iterator[Endpoint]:
        with self._lock:
            return iter(sorted(self._found.values(), key=lambda e: e.name))


def _counts_against(exc: BaseException) -> bool:
    """Whether a failure says the endpoint is unwell."""
    if isinstance(exc, CapabilityFailed) and exc.error_type == "RateLimited":
        return False
    if isinstance(exc, ExecutionError):
        return exc.retryable
    return True


@dataclass(frozen=True, slots=True)
class _Resilient:
    handler: Handler
    endpoint: Endpoint
    resilience: Resilience
    idempotent: bool
    sleep: Callable[[float], None]
    random: Callable[[], float]

    def __call__(self, request: Any, context: CallContext) -> Any:
        retries = self.resilience.retries
        if retries is None or retries.attempts == 1:
            return self._attempt(request, context)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(retries.attempts) | _DeadlineStop(context),
            wait=lambda state: self._wait(retries, state),
            retry=tenacity.retry_if_exception(self._retryable),
            sleep=self.sleep,
            reraise=True,
        )
        attempts = [0]

        def attempt() -> Any:
            attempts[0] += 1
            try:
                return self._attempt(request, context)
            except CapabilityFailed as exc:
                exc.attempts = attempts[0]
                raise

        return retrying(attempt)

    def _retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, ExecutionError) or not exc.retryable:
            return False
        if isinstance(exc, CircuitOpen):
            return False
        return not (
            isinstance(exc, CapabilityFailed) and exc.outcome_unknown and not self.idempotent
        )

    def _wait(self, retries: Retries, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, CapabilityFailed) and exc.retry_after is not None:
            return min(exc.retry_after, retries.max_retry_after)
        grown = retries.initial * retries.multiplier ** (state.attempt_number - 1)
        return min(grown, retries.max_wait) + retries.jitter * self.random()

    def _attempt(self, request: Any, context: CallContext) -> Any:
        endpoint = self.endpoint
        breaker = endpoint.breaker
        probe = breaker.acquire() if breaker is not None else False
        if endpoint.limit is not None and not endpoint.limit.acquire(
            timeout=_remaining(context, self.resilience.timeout)
        ):
            if breaker is not None:
                breaker.released(probe=probe)
            raise CapabilityFailed(
                f"{endpoint.name} already has {self.resilience.concurrency} calls in flight",
                error_type="ConcurrencyLimit",
                retryable=True,
                hint="the block retries; raise the endpoint's concurrency if this persists",
            )
        endpoint.count(started=1)
        try:
            result = self.handler(request, _bounded(context, self.resilience.timeout))
        except BaseException as exc:
            endpoint.count(failed=1)
            if breaker is not None:
                if _counts_against(exc):
                    breaker.failed(probe=probe)
                else:
                    breaker.succeeded(probe=probe)
            raise
        finally:
            endpoint.count(ended=1)
            if endpoint.limit is not None:
                endpoint.limit.release()
        if breaker is not None:
            breaker.succeeded(probe=probe)
        return result


class _DeadlineStop(tenacity.stop.stop_base):
    """Stop when the next wait would end past the call's deadline."""

    def __init__(self, context: CallContext) -> None:
        self.deadline = context.deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if self.deadline is None:
            return False
        return time.time() + (retry_state.upcoming_sleep or 0.0) >= self.deadline


def _remaining(context: CallContext, timeout: float | None) -> float | None:
    bounds = [b for b in (timeout, _until(context.deadline)) if b is not None]
    return max(0.0, min(bounds)) if bounds else None


def _until(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.time()


def _bounded(context: CallContext, timeout: float | None) -> CallContext:
    """``context`` with its deadline brought forward to this attempt's timeout."""
    if timeout is None:
        return context
    own = time.time() + timeout
    if context.deadline is not None and context.deadline <= own:
        if context.deadline <= time.time():
            raise BlockTimeout("the call's deadline passed before this attempt could start")
        return context
    return replace(context, deadline=own)


def resilient(
    handler: Handler,
    *,
    endpoint: Endpoint,
    resilience: Resilience,
    idempotent: bool,
    sleep: Callable[[float], None] = time.sleep,
    random_fraction: Callable[[], float] = random.random,
) -> Handler:
    """``handler`` behind ``endpoint``'s breaker and limit, retried as ``resilience`` says.

    The handler makes one attempt and honours ``context.deadline`` (epoch seconds), which each
    attempt brings forward to ``resilience.timeout``.
    """
    return _Resilient(handler, endpoint, resilience, idempotent, sleep, random_fraction)
