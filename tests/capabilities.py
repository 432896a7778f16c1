"""Capabilities the tests register: deterministic, observable, and able to fail on demand."""

from __future__ import annotations

import threading
import time
from collections import Counter

from pydantic import BaseModel, Field

from accord.connectors import CallContext, CapabilityRegistry
from accord.errors import CapabilityFailed


class Echo(BaseModel):
    value: str = ""
    number: float = 0.0


class Amount(BaseModel):
    amount: float


class Flaky(BaseModel):
    fail_times: int = 0
    error: str = "Transient"
    retryable: bool = True


class Nap(BaseModel):
    seconds: float = 0.0


class Done(BaseModel):
    attempts: int
    key: str


class CustomerRef(BaseModel):
    customer_id: str = "c1"


class Profile(BaseModel):
    customer_id: str
    name: str = Field(json_schema_extra={"category": "pd:Name"})
    email: str = Field(json_schema_extra={"category": "pd:EmailAddress"})
    tier: str


class Charge(BaseModel):
    amount: float
    card: str = "4242"


class Receipt(BaseModel):
    charged: float
    key: str


class Calls:
    """Counts invocations per capability and per idempotency key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_capability: Counter[str] = Counter()
        self.by_key: Counter[str] = Counter()
        self.effects: dict[str, str] = {}

    def record(self, name: str, ctx: CallContext) -> None:
        with self.lock:
            self.by_capability[name] += 1
            self.by_key[ctx.idempotency_key] += 1
            self.effects.setdefault(ctx.idempotency_key, ctx.block)


def register_test_capabilities(registry: CapabilityRegistry, calls: Calls) -> None:

    @registry.capability("test.echo")
    def echo(request: Echo, ctx: CallContext) -> Echo:
        calls.record("test.echo", ctx)
        return request

    @registry.capability("test.double", side_effect="write")
    def double(request: Amount, ctx: CallContext) -> Amount:
        calls.record("test.double", ctx)
        return Amount(amount=request.amount * 2)

    @registry.capability("test.flaky", side_effect="write")
    def flaky(request: Flaky, ctx: CallContext) -> Done:
        calls.record("test.flaky", ctx)
        if ctx.attempt <= request.fail_times:
            raise CapabilityFailed(
                f"failure {ctx.attempt} of {request.fail_times}",
                error_type=request.error,
                retryable=request.retryable,
            )
        return Done(attempts=ctx.attempt, key=ctx.idempotency_key)

    @registry.capability("test.broken")
    def broken(request: Echo, ctx: CallContext) -> Amount:
        calls.record("test.broken", ctx)
        if request.value == "raise":
            raise ValueError("the system answered nonsense")
        return {"amount": "not a number"}  # type: ignore[return-value]

    @registry.capability("test.slow")
    def slow(request: Nap, ctx: CallContext) -> Nap:
        calls.record("test.slow", ctx)
        time.sleep(request.seconds)
        return request

    @registry.capability("test.undo", side_effect="write")
    def undo(request: Echo, ctx: CallContext) -> Echo:
        calls.record("test.undo", ctx)
        return request

    @registry.capability("test.profile", reads=("pd:Name", "pd:EmailAddress"))
    def profile(request: CustomerRef, ctx: CallContext) -> Profile:
        calls.record("test.profile", ctx)
        return Profile(
            customer_id=request.customer_id,
            name="Ada Lovelace",
            email="ada@example.org",
            tier="gold",
        )

    @registry.capability("test.charge", side_effect="irreversible", writes=("pd:PaymentCard",))
    def charge(request: Charge, ctx: CallContext) -> Receipt:
        calls.record("test.charge", ctx)
        return Receipt(charged=request.amount, key=ctx.idempotency_key)
