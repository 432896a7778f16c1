"""Fault injection: latency, errors, rate limits, hangs and dropped connections, per operation.

Rules are set at run time (``PUT /_sandbox/faults``). Each rule draws its decisions from its own
``random.Random(seed)``, one draw per configured fault kind and matching request, so the same
rules and the same requests give the same faults. A rule acts ``before`` the operation (nothing is
applied) or ``after`` it (the effect is committed, then the answer is lost or replaced), which is
what makes idempotency keys matter.

A dropped connection closes the socket without any response. That needs the server's help: the
server puts an ``abort`` callable in the ASGI scope under :data:`CONNECTION_EXTENSION`. Under a
server that does not, a drop starts a response and abandons it, which clients see as a broken
connection too.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any, Literal, Self

from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.sandbox._problems import ProblemError, problem_body

CONNECTION_EXTENSION = "accord.sandbox.connection"
"""Scope extension holding ``{"abort": Callable[[], None]}``, which closes the client's socket."""

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
FaultKind = Literal["drop", "timeout", "rate_limit", "error"]
# Terminal faults in the order they win when several hit the same request.
_TERMINAL: tuple[FaultKind, ...] = ("drop", "timeout", "rate_limit", "error")


class FaultRule(BaseModel):
    """One fault rule. Rates are the fraction of matching requests that get the fault."""

    model_config = ConfigDict(extra="forbid", strict=True)

    operation: str = Field(min_length=1, description="an operationId, or '*' for every one")
    method: Method | None = None
    latency_ms: float | None = Field(default=None, ge=0.0, le=600_000.0)
    latency_rate: Rate | None = None
    error_rate: Rate | None = None
    error_status: int | None = Field(default=None, ge=500, le=599)
    rate_limit_rate: Rate | None = None
    retry_after: int | None = Field(default=None, ge=0, le=86_400)
    timeout_rate: Rate | None = None
    hang_ms: float | None = Field(default=None, gt=0.0, le=600_000.0)
    drop_rate: Rate | None = None
    when: Literal["before", "after"] = "before"
    seed: int = 0
    count: int | None = Field(default=None, ge=1)

    @field_validator("error_status")
    @classmethod
    def _known_status(cls, status: int | None) -> int | None:
        known = [s.value for s in HTTPStatus if 500 <= s.value <= 599]
        if status is not None and status not in known:
            raise ValueError(f"{status} is not a standard 5xx status; use one of {known}")
        return status

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        pairs = (
            ("latency_rate", "latency_ms", self.latency_rate, self.latency_ms),
            ("error_status", "error_rate", self.error_status, self.error_rate),
            ("retry_after", "rate_limit_rate", self.retry_after, self.rate_limit_rate),
            ("hang_ms", "timeout_rate", self.hang_ms, self.timeout_rate),
        )
        for name, needs, value, needed in pairs:
            if value is not None and needed is None:
                raise ValueError(f"{name} has no effect without {needs}")
        if self.latency_ms is None and all(self.rate_of(kind) is None for kind in _TERMINAL):
            raise ValueError(
                "the rule injects nothing: set latency_ms or one of error_rate, "
                "rate_limit_rate, timeout_rate, drop_rate"
            )
        return self

    def rate_of(self, kind: FaultKind) -> float | None:
        """The rate of one terminal fault kind, or None when the rule does not inject it."""
        rate: float | None = getattr(self, f"{kind}_rate")
        return rate

    def normalised(self) -> FaultRule:
        """The rule with every default it implies written out."""
        filled: dict[str, Any] = {}
        if self.latency_ms is not None and self.latency_rate is None:
            filled["latency_rate"] = 1.0
        if self.error_rate is not None and self.error_status is None:
            filled["error_status"] = 503
        if self.rate_limit_rate is not None and self.retry_after is None:
            filled["retry_after"] = 1
        if self.timeout_rate is not None and self.hang_ms is None:
            filled["hang_ms"] = 30_000.0
        return self.model_copy(update=filled)


@dataclass(frozen=True, slots=True)
class Fault:
    """The terminal fault one request gets."""

    kind: FaultKind
    when: Literal["before", "after"]
    rule: FaultRule


@dataclass(frozen=True, slots=True)
class Plan:
    """What happens to one request: delays before and after the operation, and at most one fault."""

    delay_before: float = 0.0
    delay_after: float = 0.0
    fault: Fault | None = None


@dataclass(slots=True)
class _ActiveRule:
    rule: FaultRule
    random: random.Random
    faulted: int = 0

    def exhausted(self) -> bool:
        return self.rule.count is not None and self.faulted >= self.rule.count


@dataclass
class FaultInjector:
    """The fault rules of one service and the decisions they make.

    Args:
        operations: the service's operations, operationId to HTTP method, for validation.
    """

    operations: Callable[[], dict[str, str]]
    _active: list[_ActiveRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_rules(self, rules: Iterable[FaultRule]) -> list[FaultRule]:
        """Replace every rule; each starts from its seed again. Raises ProblemError (422)."""
        known = self.operations()
        accepted = [rule.normalised() for rule in rules]
        for index, rule in enumerate(accepted):
            if rule.operation == "*":
                continue
            if rule.operation not in known:
                raise ProblemError(
                    422,
                    "unknown_operation",
                    f"rule {index}: this service has no operation {rule.operation!r}; "
                    f"known operations: {', '.join(sorted(known))}",
                )
            if rule.method is not None and rule.method != known[rule.operation]:
                raise ProblemError(
                    422,
                    "rule_never_matches",
                    f"rule {index}: {rule.operation} is a {known[rule.operation]} operation, "
                    f"so method {rule.method} never matches",
                )
        with self._lock:
            self._active = [_ActiveRule(rule, random.Random(rule.seed)) for rule in accepted]
        return accepted

    def rules(self) -> list[FaultRule]:
        """The rules in force."""
        with self._lock:
            return [active.rule for active in self._active]

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._active = []

    def plan(self, operation: str, method: str) -> Plan | None:
        """Decide the faults for one request, or None when no rule touches it."""
        with self._lock:
            delay_before = delay_after = 0.0
            fault: Fault | None = None
            for active in self._active:
                rule = active.rule
                if rule.operation not in ("*", operation) or rule.method not in (None, method):
                    continue
                if active.exhausted():
                    continue
                rng = active.random
                delayed = (
                    rule.latency_ms is not None
                    and rule.latency_rate is not None
                    and rng.random() < rule.latency_rate
                )
                hits = [kind for kind in _TERMINAL if _draw(rng, rule.rate_of(kind))]
                if not delayed and not hits:
                    continue
                active.faulted += 1
                if delayed and rule.latency_ms is not None:
                    if rule.when == "before":
                        delay_before += rule.latency_ms / 1000
                    else:
                        delay_after += rule.latency_ms / 1000
                if hits and fault is None:
                    fault = Fault(hits[0], rule.when, rule)
            if not delay_before and not delay_after and fault is None:
                return None
            return Plan(delay_before, delay_after, fault)


def _draw(rng: random.Random, rate: float | None) -> bool:
    return rate is not None and rng.random() < rate


class FaultLayer:
    """ASGI middleware applying a :class:`FaultInjector` to the documented operations of an app.

    Paths outside the OpenAPI document (``/_sandbox/...``, ``/openapi.json``) are never faulted,
    so the rules can always be read and cleared.
    """

    def __init__(self, app: ASGIApp, *, injector: FaultInjector, router: Router) -> None:
        self.app = app
        self.injector = injector
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self._plan(scope) if scope["type"] == "http" else None
        if plan is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        replay = _replaying(body, receive)
        if plan.delay_before and not await _wait(plan.delay_before, receive):
            return
        fault = plan.fault
        if fault is not None and fault.when == "before":
            await _deliver(fault, scope, receive, send, captured=None)
            return
        if fault is None and not plan.delay_after:
            await self.app(scope, replay, send)
            return
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, replay, capture)
        if plan.delay_after and not await _wait(plan.delay_after, receive):
            return
        if fault is None:
            for message in captured:
                await send(message)
            return
        await _deliver(fault, scope, receive, send, captured=captured)

    def _plan(self, scope: Scope) -> Plan | None:
        for route in self.router.routes:
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return self.injector.plan(route.operation_id or route.name, scope["method"])
        return None


async def _deliver(
    fault: Fault, scope: Scope, receive: Receive, send: Send, *, captured: list[Message] | None
) -> None:
    rule = fault.rule
    match fault.kind:
        case "drop":
            await _drop(scope, send)
        case "timeout":
            if not await _wait((rule.hang_ms or 30_000.0) / 1000, receive):
                return
            if captured is not None:
                for message in captured:
                    await send(message)
            else:
                await _send_problem(
                    send,
                    ProblemError(504, "timeout", "the operation timed out; nothing was applied"),
                    fault,
                )
        case "rate_limit":
            retry_after = rule.retry_after if rule.retry_after is not None else 1
            await _send_problem(
                send,
                ProblemError(
                    429,
                    "rate_limited",
                    f"too many requests; retry after {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                ),
                fault,
            )
        case "error":
            status = rule.error_status or 503
            code = HTTPStatus(status).phrase.lower().replace(" ", "_")
            detail = f"the service failed ({status}); retry later"
            await _send_problem(send, ProblemError(status, code, detail), fault)


async def _send_problem(send: Send, error: ProblemError, fault: Fault) -> None:
    body = problem_body(error)
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"sandbox-fault", fault.kind.encode()),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _drop(scope: Scope, send: Send) -> None:
    connection: dict[str, Any] = (scope.get("extensions") or {}).get(CONNECTION_EXTENSION, {})
    abort: Callable[[], None] | None = connection.get("abort")
    if abort is not None:
        abort()
        # Let the server notice the closed socket before the app returns, so it does not try
        # to answer on it.
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
    )
    raise ConnectionAbortedError("the sandbox dropped the connection (fault injection)")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _wait(seconds: float, receive: Receive) -> bool:
    """Sleep ``seconds``; False as soon as the client goes away."""

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        done, _ = await asyncio.wait({watcher}, timeout=seconds)
    finally:
        watcher.cancel()
    return not done


def describe(rules: Iterable[FaultRule]) -> list[dict[str, Any]]:
    """Rules as JSON-ready dicts, leaving out unset options."""
    return [rule.model_dump(mode="json", exclude_none=True) for rule in rules]
