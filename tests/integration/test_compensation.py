"""Compensation: a run that fails after side effects undoes them, the last first, durably.

Every test runs on SQLite and on PostgreSQL. The booking "system" below applies each
cancellation once per idempotency key, as a real system honouring the key would, and counts
every call it receives by key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from accord.connectors import CallContext, CapabilityRegistry
from accord.core import TenantId
from accord.errors import CapabilityFailed
from accord.journeys import lint, load_journey_text
from accord.reviews import item_packet
from accord.service import Accord
from accord.storage._schema import outbox
from accord.testing import FrozenClock
from tests.governance import PERMIT_ALL

T = TenantId("default")

LOCKED = """
@id("cars-stay-booked")
forbid(principal, action == Accord::Action::"trip.cancel_locked", resource);
"""

TRIP = """
journey: trip
input:
  cancel_fail_times: {type: integer, required: false, default: 0}
  cancel_retryable: {type: boolean, required: false, default: true}
blocks:
  - id: flight
    kind: task
    capability: trip.book
    input: {item: '"flight"'}
    compensate:
      capability: trip.cancel
      input: {item: '"flight"', booking: steps.flight.booking}
  - id: hotel
    kind: task
    capability: trip.book
    input: {item: '"hotel"'}
    retry: {max_attempts: 3, initial_interval: 10s, jitter: 0}
    compensate:
      capability: trip.cancel
      input:
        item: '"hotel"'
        booking: steps.hotel.booking
        fail_times: input.cancel_fail_times
        retryable: input.cancel_retryable
  - id: car
    kind: task
    capability: trip.book
    input: {item: '"car"'}
    compensate:
      capability: trip.cancel
      input: {item: '"car"', booking: steps.car.booking}
  - id: pay
    kind: task
    capability: trip.pay
    input: {amount: 120}
  - {id: done, kind: end, outcome: booked}
"""


class Booking(BaseModel):
    item: str


class Booked(BaseModel):
    item: str
    booking: str


class Cancel(BaseModel):
    item: str
    booking: str = ""
    fail_times: int = 0
    retryable: bool = True
    note: str = ""


class Cancelled(BaseModel):
    item: str
    applied: bool


class Payment(BaseModel):
    amount: float


@dataclass
class Bookings:
    """The booking system: what was booked, what was cancelled, and every call by key."""

    booked: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    applied: set[str] = field(default_factory=set)

    def cancel(self, request: Cancel, ctx: CallContext) -> Cancelled:
        self.calls[ctx.idempotency_key] += 1
        if ctx.attempt <= request.fail_times:
            raise CapabilityFailed(
                f"cancellation {ctx.attempt} of {request.item} failed",
                error_type="BookingUnavailable",
                retryable=request.retryable,
            )
        if ctx.idempotency_key in self.applied:
            return Cancelled(item=request.item, applied=False)
        self.applied.add(ctx.idempotency_key)
        self.cancelled.append(request.item)
        return Cancelled(item=request.item, applied=True)


@pytest.fixture
def bookings(capabilities: CapabilityRegistry) -> Bookings:
    system = Bookings()

    @capabilities.capability("trip.book", side_effect="write")
    def book(request: Booking, ctx: CallContext) -> Booked:
        system.booked.append(request.item)
        return Booked(item=request.item, booking=f"bk-{request.item}")

    @capabilities.capability("trip.cancel", side_effect="write")
    def cancel(request: Cancel, ctx: CallContext) -> Cancelled:
        return system.cancel(request, ctx)

    @capabilities.capability("trip.cancel_locked", side_effect="write")
    def cancel_locked(request: Cancel, ctx: CallContext) -> Cancelled:
        return system.cancel(request, ctx)

    @capabilities.capability("trip.pay", side_effect="write")
    def pay(request: Payment, ctx: CallContext) -> Payment:
        raise CapabilityFailed("the card was declined", error_type="Declined", retryable=False)

    @capabilities.capability("trip.quote")
    def quote(request: Booking, ctx: CallContext) -> Booking:
        return request

    return system


@pytest.fixture
def accord(make_accord: Callable[..., Accord], bookings: Bookings) -> Accord:
    instance = make_accord(policies=PERMIT_ALL + LOCKED)
    deploy(instance, TRIP)
    return instance


def deploy(accord: Accord, text: str) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(text))


def start(accord: Accord, journey: str = "trip", **data: object) -> str:
    run_id = accord.runtime.start(T, journey, input=dict(data)).run_id
    accord.runtime.drive()
    return run_id


def kinds(accord: Accord, run_id: str) -> list[str]:
    return [e.kind for e in accord.runtime.history(T, run_id)]


def undo_key(run_id: str, block: str) -> str:
    return f"{run_id}/{block}/1/compensate"


def published(accord: Accord, run_id: str) -> set[str]:
    with accord.db.read() as connection:
        found = connection.execute(sa.select(outbox.c.type).where(outbox.c.run_id == run_id))
        return set(found.scalars())


def test_side_effects_are_undone_in_reverse_order_each_once_through_the_gateway(
    accord: Accord, bookings: Bookings
) -> None:
    run_id = start(accord)
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("compensated", "compensated")
    assert view.error is not None
    assert (view.error["type"], view.error["block"]) == ("Declined", "pay")
    assert bookings.booked == ["flight", "hotel", "car"]
    assert bookings.cancelled == ["car", "hotel", "flight"]
    assert bookings.calls == {undo_key(run_id, b): 1 for b in ("car", "hotel", "flight")}
    undone = [d for d in accord.runtime.decisions(T, run_id) if d.capability == "trip.cancel"]
    assert [(d.block, d.outcome) for d in undone] == [
        ("car/compensate", "executed"),
        ("hotel/compensate", "executed"),
        ("flight/compensate", "executed"),
    ]
    assert [d.record["idempotency_key"] for d in undone] == [
        undo_key(run_id, b) for b in ("car", "hotel", "flight")
    ]
    history = accord.runtime.history(T, run_id)
    completed = [e for e in history if e.kind == "compensation.completed"]
    assert [(e.block, e.detail["decision"]) for e in completed] == [
        (b, d.decision_id) for b, d in zip(("car", "hotel", "flight"), undone, strict=True)
    ]
    assert kinds(accord, run_id)[-6:] == [
        "block.failed",
        "compensation.started",
        "compensation.completed",
        "compensation.completed",
        "compensation.completed",
        "run.compensated",
    ]
    started = next(e for e in history if e.kind == "compensation.started")
    assert [s["block"] for s in started.detail["steps"]] == ["car", "hotel", "flight"]
    assert {"run.compensating", "run.compensated"} <= published(accord, run_id)
    assert "run.failed" not in published(accord, run_id)
    # the ledger records each compensating call in its own kind of entry too
    recorded = [e.body for e in accord.ledger.entries(T, run_id=run_id) if e.kind == "compensation"]
    assert [(b["block"], b["outcome"]) for b in recorded] == [
        ("car", "compensated"),
        ("hotel", "compensated"),
        ("flight", "compensated"),
    ]


def test_each_compensating_call_commits_before_the_next(accord: Accord, bookings: Bookings) -> None:
    run_id = start(accord)
    decisions = accord.runtime.decisions(T, run_id)
    # a decision id names the transition that took it: dec_<run>_<transition>_<n>
    transition = {d.block: d.decision_id.rsplit("_", 1)[0] for d in decisions}
    calls = ["pay", "car/compensate", "hotel/compensate", "flight/compensate"]
    assert len({transition[b] for b in calls}) == 4, (
        "each call committed in a transition of its own"
    )
    assert sorted(calls, key=transition.__getitem__) == calls


def test_a_retryable_compensation_failure_waits_and_is_retried(
    accord: Accord, bookings: Bookings, clock: FrozenClock
) -> None:
    run_id = start(accord, cancel_fail_times=1)
    view = accord.runtime.get(T, run_id)
    assert view.status == "waiting"
    assert bookings.cancelled == ["car"]
    retries = [e for e in accord.runtime.history(T, run_id) if e.kind.endswith("retry_scheduled")]
    assert [(e.kind, e.block, e.detail["delay"]) for e in retries] == [
        ("compensation.retry_scheduled", "hotel", 10.0)
    ]
    assert [t.purpose for t in accord.runtime.timers(T, run_id)] == ["retry"]
    clock.advance(10)
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).status == "compensated"
    assert bookings.cancelled == ["car", "hotel", "flight"]
    assert bookings.calls[undo_key(run_id, "hotel")] == 2
    hotel = [d for d in accord.runtime.decisions(T, run_id) if d.block == "hotel/compensate"]
    assert [(d.outcome, d.attempt) for d in hotel] == [("failed", 1), ("executed", 2)]


class Crash(Exception):
    pass


def test_a_worker_that_dies_after_a_committed_compensation_is_taken_over(
    make_accord: Callable[..., Accord], accord: Accord, bookings: Bookings
) -> None:
    run_id = accord.runtime.start(T, "trip").run_id

    def crash(point: str) -> None:
        if point == "committed" and bookings.cancelled == ["car"]:
            raise Crash("the worker died")

    with pytest.raises(Crash):
        accord.runtime.drive(fault=crash)
    assert accord.runtime.get(T, run_id).status == "ready"
    make_accord().runtime.drive()
    assert accord.runtime.get(T, run_id).status == "compensated"
    assert bookings.cancelled == ["car", "hotel", "flight"]
    assert bookings.calls == {undo_key(run_id, b): 1 for b in ("car", "hotel", "flight")}


def test_a_compensation_in_flight_when_its_commit_fails_is_repeated_under_its_key(
    make_accord: Callable[..., Accord], accord: Accord, bookings: Bookings
) -> None:
    run_id = accord.runtime.start(T, "trip").run_id

    def crash(point: str) -> None:
        if point == "mid_commit" and bookings.cancelled == ["car", "hotel"]:
            raise Crash("the worker died before its commit")

    with pytest.raises(Crash):
        accord.runtime.drive(fault=crash)
    done = [e.block for e in accord.runtime.history(T, run_id) if e.kind.startswith("compens")]
    assert done == [None, "car"], "the hotel's compensation was not committed"
    make_accord().runtime.drive()
    assert accord.runtime.get(T, run_id).status == "compensated"
    # the system saw the hotel's key twice and acted once; nothing was skipped or doubled
    assert bookings.cancelled == ["car", "hotel", "flight"]
    assert bookings.calls == {
        undo_key(run_id, "car"): 1,
        undo_key(run_id, "hotel"): 2,
        undo_key(run_id, "flight"): 1,
    }
    completed = [
        e.block for e in accord.runtime.history(T, run_id) if e.kind == "compensation.completed"
    ]
    assert completed == ["car", "hotel", "flight"]


def test_a_compensation_that_fails_for_good_escalates_to_a_person(
    accord: Accord, bookings: Bookings
) -> None:
    accord.put_person("olga", roles=["operations"], actor="test")
    run_id = start(accord, cancel_fail_times=1, cancel_retryable=False)
    view = accord.runtime.get(T, run_id)
    assert view.status == "waiting"
    assert bookings.cancelled == ["car"], "nothing after the failed compensation ran"
    [item] = accord.review_items(run_id=run_id)
    assert (item.kind, item.queue, item.block) == ("escalation", "operations", "hotel/compensate")
    packet = item_packet(item)
    assert packet.remaining == ["hotel/compensate", "flight/compensate"]
    assert packet.recommendation.value["undone"] == ["car/compensate"]
    assert packet.recommendation.value["failed"]["error"]["type"] == "BookingUnavailable"
    assert "car/compensate" in {v.block for v in packet.verified}
    assert [(a.block, a.outcome) for a in packet.attempted if a.what == "trip.cancel"] == [
        ("hotel/compensate", "failed")
    ]
    assert "Still to undo: hotel/compensate, flight/compensate" in packet.reason
    assert kinds(accord, run_id)[-2:] == ["compensation.failed", "escalated"]
    assert "run.escalated" in published(accord, run_id)

    accord.decide_review(item.item_id, "olga", "reject", reason="the hotel keeps the booking")
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("failed", None)
    assert view.error is not None and view.error["type"] == "Declined"
    assert view.error["compensation"]["block"] == "hotel/compensate"
    assert bookings.cancelled == ["car"]
    assert accord.review_item(item.item_id).status == "decided"


def test_a_compensation_refused_by_policy_is_undone_by_hand_and_the_run_compensated(
    accord: Accord, bookings: Bookings
) -> None:
    deploy(
        accord,
        TRIP.replace("journey: trip", "journey: locked").replace(
            "capability: trip.cancel\n      input: {item: '\"car\"'",
            "capability: trip.cancel_locked\n      input: {item: '\"car\"'",
        ),
    )
    accord.put_person("olga", roles=["operations"], actor="test")
    run_id = start(accord, "locked")
    assert bookings.cancelled == []
    [refused] = [d for d in accord.runtime.decisions(T, run_id) if d.outcome == "refused"]
    assert (refused.block, refused.reason) == ("car/compensate", "policy_denied")
    [item] = accord.review_items(run_id=run_id)
    packet = item_packet(item)
    assert packet.recommendation.value["failed"]["error"]["decision"] == refused.decision_id
    assert packet.remaining == ["car/compensate", "hotel/compensate", "flight/compensate"]

    accord.decide_review(item.item_id, "olga", "approve", reason="cancelled the car by phone")
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("compensated", "compensated")
    assert view.error is not None and view.error["type"] == "Declined"
    assert bookings.cancelled == [], "what remained was undone by hand, not called again"
    decided = [e for e in accord.runtime.history(T, run_id) if e.kind == "decision.received"]
    assert [(e.detail["decision"], e.detail["by"]) for e in decided] == [("approve", "olga")]


def test_a_compensate_input_that_does_not_evaluate_escalates(
    accord: Accord, bookings: Bookings
) -> None:
    deploy(
        accord,
        """
journey: broken_undo
blocks:
  - id: flight
    kind: task
    capability: trip.book
    input: {item: '"flight"'}
    compensate:
      capability: trip.cancel
      input: {item: '"flight"', note: string(1 / 0)}
  - {id: pay, kind: task, capability: trip.pay, input: {amount: 1}}
""",
    )
    run_id = start(accord, "broken_undo")
    assert accord.runtime.get(T, run_id).status == "waiting"
    assert bookings.calls == {}
    [item] = accord.review_items(run_id=run_id)
    assert item_packet(item).recommendation.value["failed"]["error"]["type"] == "ExpressionError"


def test_without_compensate_a_failed_run_just_fails(accord: Accord, bookings: Bookings) -> None:
    deploy(
        accord,
        """
journey: plain
blocks:
  - {id: flight, kind: task, capability: trip.book, input: {item: '"flight"'}}
  - {id: pay, kind: task, capability: trip.pay, input: {amount: 1}}
""",
    )
    run_id = start(accord, "plain")
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.error and view.error["type"]) == ("failed", "Declined")
    assert not [k for k in kinds(accord, run_id) if k.startswith("compensation.")]
    assert bookings.booked == ["flight"] and bookings.calls == {}


def test_a_run_that_fails_before_any_side_effect_compensates_nothing(
    accord: Accord, bookings: Bookings
) -> None:
    deploy(
        accord,
        """
journey: early
blocks:
  - {id: pay, kind: task, capability: trip.pay, input: {amount: 1}}
  - id: flight
    kind: task
    capability: trip.book
    input: {item: '"flight"'}
    compensate: {capability: trip.cancel, input: {item: '"flight"'}}
""",
    )
    run_id = start(accord, "early")
    assert accord.runtime.get(T, run_id).status == "failed"
    assert kinds(accord, run_id)[-2:] == ["block.failed", "run.failed"]
    assert bookings.booked == [] and bookings.calls == {}


def test_a_parent_sees_its_sub_journey_compensated_as_a_failed_call(
    accord: Accord, bookings: Bookings
) -> None:
    deploy(
        accord,
        """
journey: holiday
blocks:
  - {id: book_trip, kind: call, journey: trip, on_error: sorry}
  - {id: done, kind: end, outcome: booked}
  - {id: sorry, kind: end, outcome: not_booked, output: {why: errors.book_trip.type}}
""",
    )
    run_id = start(accord, "holiday")
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome, view.output) == (
        "completed",
        "not_booked",
        {"why": "ChildRunCompensated"},
    )
    [ended] = [e for e in accord.runtime.history(T, run_id) if e.kind == "call.ended"]
    assert ended.detail["status"] == "compensated"
    assert accord.runtime.get(T, ended.detail["child"]).status == "compensated"
    assert bookings.cancelled == ["car", "hotel", "flight"]


def test_explain_tells_the_compensation_step_by_step(accord: Accord, bookings: Bookings) -> None:
    run_id = start(accord)
    explanation = accord.explain(run_id)
    assert explanation.run.status == "compensated"
    steps = [d for d in explanation.decisions if d.kind == "compensation"]
    assert [d.summary.split(" (")[0] for d in steps] == [
        "the run failed",
        "trip.cancel undid car",
        "trip.cancel undid hotel",
        "trip.cancel undid flight",
    ]
    assert steps[1].facts["decision"] is not None
    assert "trip.cancel for car, trip.cancel for hotel, trip.cancel for flight" in steps[0].summary


def test_lint_warns_of_compensating_a_read(
    capabilities: CapabilityRegistry, bookings: Bookings
) -> None:
    text = """
journey: undo_a_read
blocks:
  - id: look
    kind: task
    capability: trip.quote
    input: {item: '"x"'}
    compensate: {capability: trip.cancel, input: {item: '"x"'}}
"""
    loaded = load_journey_text(text)
    found = lint(loaded.spec, loaded.source_map, capabilities=capabilities)
    assert [(d.severity, d.message) for d in found] == [
        ("warning", "'trip.quote' is a read; it has no effect to compensate")
    ]
