"""Runtime semantics, on SQLite and on PostgreSQL (every test runs on both)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from accord.core import TenantId
from accord.errors import (
    ContractViolation,
    IdempotencyConflict,
    InputError,
    JourneyInvalid,
    JourneyNotFound,
    RunFinished,
    RunNotFound,
)
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage import runs as run_store
from accord.storage._schema import outbox, signals
from accord.testing import FrozenClock
from tests.capabilities import Calls

T = TenantId("default")


def deploy(accord: Accord, text: str) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(text))


def kinds(accord: Accord, run_id: str) -> list[str]:
    return [e.kind for e in accord.runtime.history(T, run_id)]


def assert_gap_free(accord: Accord, run_id: str) -> None:
    seqs = [e.seq for e in accord.runtime.history(T, run_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert accord.runtime.get(T, run_id).transitions == len(seqs)


LINEAR = """
journey: linear
input: {value: string}
blocks:
  - {id: a, kind: task, capability: test.echo, input: {value: input.value}}
  - {id: b, kind: task, capability: test.echo, input: {value: 'steps.a.value + "!"'}}
  - id: done
    kind: end
    outcome: ok
    output: {final: steps.b.value}
"""


def test_run_completes_with_gap_free_history_and_events(accord: Accord, calls: Calls) -> None:
    deploy(accord, LINEAR)
    started = accord.runtime.start(T, "linear", input={"value": "hi"})
    assert started.created
    accord.runtime.drive()
    view = accord.runtime.get(T, started.run_id)
    assert (view.status, view.outcome, view.output) == ("completed", "ok", {"final": "hi!"})
    assert kinds(accord, started.run_id) == [
        "run.started",
        "block.completed",
        "block.completed",
        "end.reached",
        "run.completed",
    ]
    assert_gap_free(accord, started.run_id)
    assert calls.by_capability["test.echo"] == 2
    with accord.db.read() as connection:
        types = (
            connection.execute(sa.select(outbox.c.type).where(outbox.c.run_id == started.run_id))
            .scalars()
            .all()
        )
    assert types == ["run.started", "run.completed"]


def test_idempotent_start_returns_the_first_run(accord: Accord) -> None:
    deploy(accord, LINEAR)
    first = accord.runtime.start(T, "linear", input={"value": "x"}, idempotency_key="k1")
    again = accord.runtime.start(T, "linear", input={"value": "x"}, idempotency_key="k1")
    assert again.run_id == first.run_id and not again.created
    with pytest.raises(IdempotencyConflict, match="k1"):
        accord.runtime.start(T, "linear", input={"value": "other"}, idempotency_key="k1")
    assert len(accord.runtime.list_runs(T)) == 1


def test_bad_start_requests_change_nothing(accord: Accord) -> None:
    deploy(accord, LINEAR)
    with pytest.raises(JourneyNotFound, match="nope"):
        accord.runtime.start(T, "nope")
    with pytest.raises(ContractViolation, match="value"):
        accord.runtime.start(T, "linear", input={"value": 1.5, "extra": True})
    with pytest.raises(JourneyNotFound, match="versions: 1"):
        accord.runtime.start(T, "linear", input={"value": "x"}, version=7)
    assert accord.runtime.list_runs(T) == []


def test_signals_to_unknown_or_finished_runs_are_refused(accord: Accord) -> None:
    deploy(accord, LINEAR)
    with pytest.raises(RunNotFound):
        accord.runtime.signal(T, "paid", run_id="run_missing")
    run_id = accord.runtime.start(T, "linear", input={"value": "x"}).run_id
    accord.runtime.drive()
    with pytest.raises(RunFinished, match="already ended"):
        accord.runtime.signal(T, "paid", run_id=run_id, payload={"a": 1})
    with pytest.raises(RunFinished):
        accord.runtime.cancel(T, run_id, reason="late", by="test")
    with pytest.raises(InputError, match="exactly one"):
        accord.runtime.signal(T, "paid")
    with accord.db.read() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(signals)).scalar() == 0
    assert accord.runtime.get(T, run_id).transitions == len(kinds(accord, run_id))


RETRY = """
journey: retry
input: {fail_times: integer, retryable: {type: boolean, required: false, default: true}}
blocks:
  - id: call
    kind: task
    capability: test.flaky
    input: {fail_times: input.fail_times, retryable: input.retryable}
    retry: {max_attempts: 3, initial_interval: 10s, backoff: 2, jitter: 0}
  - {id: ok, kind: end, outcome: ok}
"""


def test_retries_wait_for_their_backoff_and_keep_the_idempotency_key(
    accord: Accord, clock: FrozenClock, calls: Calls
) -> None:
    deploy(accord, RETRY)
    run_id = accord.runtime.start(T, "retry", input={"fail_times": 2}).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "waiting" and view.positions[0].waiting_for == "retry"
    assert view.positions[0].until == pytest.approx(clock.now() + 10)
    clock.advance(9)
    accord.runtime.drive()
    assert calls.by_capability["test.flaky"] == 1
    clock.advance(1)
    accord.runtime.drive()
    assert calls.by_capability["test.flaky"] == 2
    clock.advance(20)
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "completed"
    assert view.steps["call"]["attempts"] == 3
    assert len(calls.by_key) == 1, "every attempt of one visit carries the same key"
    delays = [
        e.detail["delay"]
        for e in accord.runtime.history(T, run_id)
        if e.kind == "block.retry_scheduled"
    ]
    assert delays == [10.0, 20.0]
    assert_gap_free(accord, run_id)


def test_exhausted_or_non_retryable_failures_fail_the_run(accord: Accord, calls: Calls) -> None:
    deploy(accord, RETRY)
    run_id = accord.runtime.start(T, "retry", input={"fail_times": 1, "retryable": False}).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "failed"
    assert view.error is not None and view.error["block"] == "call"
    assert view.error["type"] == "Transient"
    assert calls.by_capability["test.flaky"] == 1


FALLBACK = """
journey: fallback
blocks:
  - id: call
    kind: task
    capability: test.flaky
    input: {fail_times: 5, error: '"Declined"'}
    retry: {max_attempts: 2, initial_interval: 1s, non_retryable: [Declined]}
    on_error: recover
  - {id: ok, kind: end, outcome: ok}
  - {id: recover, kind: end, outcome: recovered, output: {why: errors.call.type}}
"""


def test_on_error_takes_the_fallback_path(accord: Accord, calls: Calls) -> None:
    deploy(accord, FALLBACK)
    run_id = accord.runtime.start(T, "fallback").run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome, view.output) == (
        "completed",
        "recovered",
        {"why": "Declined"},
    )
    assert calls.by_capability["test.flaky"] == 1, "non-retryable errors are not retried"


TIMER = """
journey: timer
blocks:
  - {id: before, kind: task, capability: test.echo}
  - {id: nap, kind: wait, timer: 1h}
  - {id: after, kind: task, capability: test.echo}
"""


def test_timers_survive_a_restart(
    make_accord: Callable[..., Accord], clock: FrozenClock, calls: Calls
) -> None:
    first = make_accord()
    deploy(first, TIMER)
    run_id = first.runtime.start(T, "timer").run_id
    first.runtime.drive()
    assert first.runtime.get(T, run_id).status == "waiting"
    assert [t.purpose for t in first.runtime.timers(T, run_id)] == ["timer"]
    first.close()
    restarted = make_accord()
    clock.advance(3599)
    restarted.runtime.drive()
    assert restarted.runtime.get(T, run_id).status == "waiting"
    clock.advance(1)
    restarted.runtime.drive()
    assert restarted.runtime.get(T, run_id).status == "completed"
    assert restarted.runtime.timers(T, run_id) == []
    assert calls.by_capability["test.echo"] == 2


EVENT = """
journey: event
input: {order: string}
blocks:
  - id: paid
    kind: wait
    event: {name: payment_received, correlation: input.order}
    timeout: 1d
    on_timeout: expired
  - {id: ok, kind: end, outcome: paid, output: {amount: steps.paid.amount}}
  - {id: expired, kind: end, outcome: expired}
"""


def test_events_resume_runs_by_correlation_key(accord: Accord) -> None:
    deploy(accord, EVENT)
    run_id = accord.runtime.start(T, "event", input={"order": "o-1"}).run_id
    other = accord.runtime.start(T, "event", input={"order": "o-2"}).run_id
    accord.runtime.drive()
    result = accord.runtime.signal(
        T, "payment_received", correlation_key="o-1", payload={"amount": 12}
    )
    assert result.run_ids == (run_id,)
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).output == {"amount": 12}
    assert accord.runtime.get(T, other).status == "waiting"


def test_early_events_are_parked_until_a_run_waits(accord: Accord) -> None:
    deploy(accord, EVENT)
    parked = accord.runtime.signal(
        T, "payment_received", correlation_key="o-9", payload={"amount": 5}
    )
    assert parked.parked and parked.run_ids == ()
    run_id = accord.runtime.start(T, "event", input={"order": "o-9"}).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.output) == ("completed", {"amount": 5})


def test_event_wait_times_out(accord: Accord, clock: FrozenClock) -> None:
    deploy(accord, EVENT)
    run_id = accord.runtime.start(T, "event", input={"order": "o-3"}).run_id
    accord.runtime.drive()
    clock.advance(86400)
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).outcome == "expired"


def test_signal_sent_to_a_run_before_it_waits_is_kept(accord: Accord) -> None:
    deploy(accord, EVENT)
    run_id = accord.runtime.start(T, "event", input={"order": "o-4"}).run_id
    accord.runtime.signal(T, "payment_received", run_id=run_id, payload={"amount": 1})
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).output == {"amount": 1}


APPROVE = """
journey: approval
blocks:
  - id: check
    kind: approve
    role: supervisor
    on: {reject: declined}
  - {id: ok, kind: end, outcome: approved, output: {by: steps.check.by}}
  - {id: declined, kind: end, outcome: declined, output: {reason: steps.check.reason}}
"""


@pytest.mark.parametrize(
    ("decision", "outcome", "output"),
    [("approve", "approved", {"by": "ann"}), ("reject", "declined", {"reason": "too much"})],
)
def test_approvals_route_on_the_decision(
    accord: Accord, decision: str, outcome: str, output: dict[str, str]
) -> None:
    deploy(accord, APPROVE)
    run_id = accord.runtime.start(T, "approval").run_id
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).positions[0].waiting_for == "human:check"
    with pytest.raises(InputError, match="decision"):
        accord.runtime.signal(T, "check", run_id=run_id, payload={}, kind="decision")
    accord.runtime.decide(T, run_id, "check", decision, by="ann", reason="too much")
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert (view.outcome, view.output) == (outcome, output)
    assert_gap_free(accord, run_id)


PARALLEL = """
journey: fan
input: {items: array}
blocks:
  - id: both
    kind: parallel
    join: JOIN
    branches:
      - name: left
        blocks:
          - {id: l1, kind: task, capability: test.echo, input: {value: '"left"'}}
      - name: right
        blocks:
          - {id: r_wait, kind: wait, timer: 1h}
          - {id: r1, kind: task, capability: test.echo, input: {value: '"right"'}}
  - id: each
    kind: map
    items: input.items
    max_concurrency: 2
    do:
      blocks:
        - {id: dbl, kind: task, capability: test.double, input: {amount: double(item)}}
    result: steps.dbl.amount
  - {id: done, kind: end, outcome: ok, output: {doubled: steps.each, branches: steps.both}}
"""


def test_parallel_join_all_waits_for_every_branch(accord: Accord, clock: FrozenClock) -> None:
    deploy(accord, PARALLEL.replace("JOIN", "all"))
    run_id = accord.runtime.start(T, "fan", input={"items": [1, 2, 3]}).run_id
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).status == "waiting"
    clock.advance(3600)
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "completed"
    assert view.output == {
        "doubled": [2.0, 4.0, 6.0],
        "branches": {"branches": {"left": "completed", "right": "completed"}},
    }
    assert_gap_free(accord, run_id)


def test_parallel_join_any_cancels_the_slower_branch(accord: Accord) -> None:
    deploy(accord, PARALLEL.replace("JOIN", "any"))
    run_id = accord.runtime.start(T, "fan", input={"items": []}).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "completed"
    assert view.output["branches"] == {"branches": {"left": "completed", "right": "cancelled"}}
    assert accord.runtime.timers(T, run_id) == [], "the cancelled branch's timer is gone"


CHILD = """
journey: child
input: {fail_times: integer}
blocks:
  - id: work
    kind: task
    capability: test.flaky
    input: {fail_times: input.fail_times, retryable: false}
  - {id: done, kind: end, outcome: child_done, output: {attempts: steps.work.attempts}}
"""

PARENT = """
journey: parent
input: {fail_times: integer}
blocks:
  - id: sub
    kind: call
    journey: child
    input: {fail_times: input.fail_times}
    on_error: failed
  - {id: ok, kind: end, outcome: ok, output: {child: steps.sub.output}}
  - {id: failed, kind: end, outcome: child_failed}
"""


@pytest.mark.parametrize(("fail_times", "outcome"), [(0, "ok"), (1, "child_failed")])
def test_call_waits_for_the_sub_journey(accord: Accord, fail_times: int, outcome: str) -> None:
    deploy(accord, CHILD)
    deploy(accord, PARENT)
    run_id = accord.runtime.start(T, "parent", input={"fail_times": fail_times}).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.outcome == outcome
    children = [v for v in accord.runtime.list_runs(T, journey="child")]
    assert len(children) == 1 and children[0].parent_run_id == run_id
    if outcome == "ok":
        assert view.output == {"child": {"attempts": 1}}


def test_cancel_ends_a_waiting_run_and_its_timers(accord: Accord) -> None:
    deploy(accord, TIMER)
    run_id = accord.runtime.start(T, "timer").run_id
    accord.runtime.drive()
    accord.runtime.cancel(T, run_id, reason="customer withdrew", by="ops")
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "cancelled"
    assert accord.runtime.timers(T, run_id) == []
    assert kinds(accord, run_id)[-2:] == ["signal.received", "run.cancelled"]


def test_runs_stay_on_the_version_they_started_on(accord: Accord, clock: FrozenClock) -> None:
    deploy(accord, TIMER)
    old_run = accord.runtime.start(T, "timer").run_id
    accord.runtime.drive()
    changed = TIMER.replace("timer: 1h", "timer: 2h")
    deploy(accord, changed)
    deploy(accord, changed)
    assert [r.version for r in accord.runtime.catalog.versions(T, "timer")] == [1, 2]
    new_run = accord.runtime.start(T, "timer").run_id
    accord.runtime.drive()
    clock.advance(3600)
    accord.runtime.drive()
    assert accord.runtime.get(T, old_run).status == "completed"
    assert accord.runtime.get(T, old_run).version == 1
    assert accord.runtime.get(T, new_run).status == "waiting"
    assert accord.runtime.get(T, new_run).version == 2


def test_tenants_do_not_see_each_other(accord: Accord) -> None:
    deploy(accord, TIMER)
    run_id = accord.runtime.start(T, "timer").run_id
    other = TenantId("other")
    with pytest.raises(JourneyNotFound):
        accord.runtime.start(other, "timer")
    with pytest.raises(RunNotFound):
        accord.runtime.get(other, run_id)
    with pytest.raises(RunNotFound):
        accord.runtime.signal(other, "x", run_id=run_id)
    with pytest.raises(RunNotFound):
        accord.runtime.cancel(other, run_id, reason="x", by="x")
    assert accord.runtime.list_runs(other) == []


def test_a_worker_whose_lease_expired_cannot_commit(
    make_accord: Callable[..., Accord], calls: Calls
) -> None:
    accord = make_accord(lease=0.3)
    deploy(accord, LINEAR)
    run_id = accord.runtime.start(T, "linear", input={"value": "x"}).run_id
    slow = accord.runtime.worker(name="slow")
    assert slow.claim() == 1
    time.sleep(0.4)
    fast = accord.runtime.worker(name="fast")
    fast.run_until_idle()
    assert accord.runtime.get(T, run_id).status == "completed"
    assert slow.step() == 0, "the late commit is rejected"
    assert slow.stats.lease_lost == 1
    completed = [e for e in accord.runtime.history(T, run_id) if e.kind == "block.completed"]
    assert [e.block for e in completed] == ["a", "b"]
    assert {e.worker for e in completed} == {"fast"}
    assert_gap_free(accord, run_id)


def test_a_signal_arriving_mid_transition_is_not_lost(accord: Accord) -> None:
    deploy(accord, EVENT)
    run_id = accord.runtime.start(T, "event", input={"order": "o-5"}).run_id
    sent = []

    def send_during_step(point: str) -> None:
        if point == "executed" and not sent:
            sent.append(
                accord.runtime.signal(T, "payment_received", run_id=run_id, payload={"amount": 3})
            )

    accord.runtime.drive(fault=send_during_step)
    assert sent, "the signal was sent between execution and commit"
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).output == {"amount": 3}


def test_history_records_every_block_with_visit_and_attempt(accord: Accord) -> None:
    deploy(accord, LINEAR)
    run_id = accord.runtime.start(T, "linear", input={"value": "x"}).run_id
    accord.runtime.drive()
    entries = accord.runtime.history(T, run_id)
    completed = [(e.block, e.visit, e.attempt) for e in entries if e.kind == "block.completed"]
    assert completed == [("a", 1, 1), ("b", 1, 1)]
    with accord.db.read() as connection:
        record = run_store.get_run(connection, T, run_id)
    assert record is not None and record.lease_owner is None
    assert json.loads(record.state)["tokens"] == []


def test_a_call_that_cannot_start_its_sub_journey_takes_on_error(accord: Accord) -> None:
    deploy(accord, PARENT.replace("{fail_times: input.fail_times}", "{fail_times: '\"many\"'}"))
    deploy(accord, CHILD)
    run_id = accord.runtime.start(T, "parent", input={"fail_times": 0}).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("completed", "child_failed")
    failed = [e for e in accord.runtime.history(T, run_id) if e.kind == "block.failed"]
    assert failed[0].detail["error"]["type"] == "ContractViolation"
    assert accord.runtime.list_runs(T, journey="child") == []


BROKEN = """
journey: broken
input: {mode: string, data: object}
blocks:
  - id: route
    kind: choice
    choices: [{when: 'input.mode == "expression"', next: bad_expression}]
    default: call
  - id: call
    kind: task
    capability: test.broken
    input: {value: input.mode}
    retry: {max_attempts: 2, initial_interval: 1s, jitter: 0}
  - {id: ok, kind: end}
  - id: bad_expression
    kind: task
    capability: test.echo
    input: {value: input.data.missing}
"""


@pytest.mark.parametrize(
    ("mode", "error_type", "attempts"),
    [
        ("output", "ContractViolation", 1),
        ("raise", "Discarded", 2),
        ("expression", "ExpressionError", 0),
    ],
)
def test_misbehaving_blocks_fail_the_run_cleanly(
    accord: Accord, clock: FrozenClock, calls: Calls, mode: str, error_type: str, attempts: int
) -> None:
    """A retryable failure that outlasts its retries is dead-lettered until someone discards it;
    the others fail the run at once."""
    deploy(accord, BROKEN)
    run_id = accord.runtime.start(T, "broken", input={"mode": mode, "data": {}}).run_id
    for _ in range(3):
        accord.runtime.drive()
        clock.advance(5)
    if mode == "raise":
        assert accord.runtime.get(T, run_id).status == "waiting"
        [letter] = accord.dead_letters()
        assert (letter.run_id, letter.capability, letter.attempts) == (run_id, "test.broken", 2)
        assert letter.reason == "retries_exhausted" and letter.error["type"] == "ValueError"
        accord.discard_dead_letter(letter.letter_id, by="ops", note="bad input")
        accord.runtime.drive()
        assert accord.dead_letters() == []
    view = accord.runtime.get(T, run_id)
    assert view.status == "failed"
    assert view.error is not None and view.error["type"] == error_type
    assert calls.by_capability["test.broken"] == attempts
    assert accord.runtime.timers(T, run_id) == []
    assert_gap_free(accord, run_id)
    assert kinds(accord, run_id)[-2:] == ["block.failed", "run.failed"]


def test_call_inputs_are_linted_against_the_sub_journey_contract(accord: Accord) -> None:
    deploy(accord, CHILD)
    bad = PARENT.replace("{fail_times: input.fail_times}", "{fail_times: '\"many\"', extra: 1}")
    with pytest.raises(JourneyInvalid) as caught:
        deploy(accord, bad)
    messages = [d.message for d in caught.value.diagnostics]
    assert "journey 'child' has no input field 'extra'" in messages
    assert any("input field 'fail_times' of journey 'child' needs integer" in m for m in messages)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"subject": "s" * 129}, "subject id"), ({"idempotency_key": "k" * 257}, "idempotency key")],
)
def test_oversized_start_fields_are_refused(
    accord: Accord, options: dict[str, str], message: str
) -> None:
    deploy(accord, LINEAR)
    with pytest.raises(InputError, match=message):
        accord.runtime.start(T, "linear", input={"value": "x"}, **options)  # type: ignore[arg-type]
    assert accord.runtime.list_runs(T) == []
