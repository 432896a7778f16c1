"""Edge cases of signals, joins, maps, leases and budgets, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from accord.core import SystemClock, TenantId
from accord.errors import InputError
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage._schema import runs, timers, waits
from accord.testing import FrozenClock
from tests.capabilities import Calls

T = TenantId("default")


def deploy(accord: Accord, text: str) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(text))


EVENT = """
journey: event
input: {order: string}
blocks:
  - id: paid
    kind: wait
    event: {name: payment_received, correlation: input.order}
  - {id: ok, kind: end, outcome: paid, output: {amount: steps.paid.amount}}
"""


def test_a_signal_nobody_waits_for_does_not_make_the_worker_spin(accord: Accord) -> None:
    deploy(accord, EVENT)
    run_id = accord.runtime.start(T, "event", input={"order": "o-1"}).run_id
    accord.runtime.drive()
    accord.runtime.signal(T, "something_else", run_id=run_id, payload={})
    worker = accord.runtime.worker()
    worker.run_until_idle(max_seconds=5)
    assert worker.stats.claimed == 1
    assert accord.runtime.get(T, run_id).status == "waiting"
    accord.runtime.signal(T, "payment_received", run_id=run_id, payload={"amount": 2})
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).output == {"amount": 2}


def test_a_signal_between_claim_and_inbox_read_is_handled_once(accord: Accord) -> None:
    deploy(accord, EVENT)
    run_id = accord.runtime.start(T, "event", input={"order": "o-2"}).run_id
    accord.runtime.drive()
    accord.runtime.signal(T, "other", run_id=run_id)
    sent: list[object] = []

    def send(point: str) -> None:
        if point == "claimed" and not sent:
            sent.append(
                accord.runtime.signal(T, "payment_received", run_id=run_id, payload={"amount": 4})
            )

    worker = accord.runtime.worker(fault=send)
    worker.run_until_idle(max_seconds=5)
    assert sent and worker.stats.claimed <= 2
    assert accord.runtime.get(T, run_id).output == {"amount": 4}


def test_a_parked_event_goes_to_one_run_only(accord: Accord) -> None:
    deploy(accord, EVENT)
    accord.runtime.signal(T, "payment_received", correlation_key="o-9", payload={"amount": 5})
    first = accord.runtime.start(T, "event", input={"order": "o-9"}).run_id
    second = accord.runtime.start(T, "event", input={"order": "o-9"}).run_id
    accord.runtime.drive()
    statuses = sorted(accord.runtime.get(T, r).status for r in (first, second))
    assert statuses == ["completed", "waiting"]


def test_a_parked_event_resumes_one_wait_of_a_map(accord: Accord) -> None:
    deploy(
        accord,
        """
journey: mapwait
blocks:
  - id: each
    kind: map
    items: '[1, 2]'
    do:
      blocks:
        - {id: paid, kind: wait, event: {name: payment_received, correlation: '"k"'}}
  - {id: ok, kind: end, outcome: done}
""",
    )
    accord.runtime.signal(T, "payment_received", correlation_key="k", payload={})
    run_id = accord.runtime.start(T, "mapwait").run_id
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).status == "waiting"
    accord.runtime.signal(T, "payment_received", correlation_key="k", payload={})
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).status == "completed"


def test_an_event_parked_while_the_wait_was_being_committed_is_delivered(
    accord: Accord,
) -> None:
    deploy(accord, EVENT)
    run_id = accord.runtime.start(T, "event", input={"order": "o-7"}).run_id
    sent: list[object] = []

    def send(point: str) -> None:
        if point == "executed" and not sent:
            sent.append(
                accord.runtime.signal(
                    T, "payment_received", correlation_key="o-7", payload={"amount": 3}
                )
            )

    accord.runtime.drive(fault=send)
    accord.runtime.drive()
    assert sent
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.output) == ("completed", {"amount": 3})


def test_join_any_cancels_the_losing_sub_journey(accord: Accord) -> None:
    deploy(
        accord,
        """
journey: child
blocks:
  - {id: hold, kind: wait, event: {name: never, correlation: '"k"'}}
""",
    )
    deploy(
        accord,
        """
journey: parent
blocks:
  - id: race
    kind: parallel
    join: any
    branches:
      - name: slow
        blocks:
          - {id: sub, kind: call, journey: child}
      - name: fast
        blocks:
          - {id: quick, kind: task, capability: test.echo}
  - {id: nap, kind: wait, timer: 1h}
""",
    )
    parent = accord.runtime.start(T, "parent").run_id
    worker = accord.runtime.worker()
    worker.run_until_idle(max_seconds=5)
    child = accord.runtime.list_runs(T, journey="child")[0]
    assert child.status == "cancelled"
    assert accord.runtime.get(T, parent).status == "waiting"
    assert worker.stats.claimed <= 4


def test_a_failing_map_result_fails_the_map_and_reaches_on_error(
    accord: Accord, clock: FrozenClock
) -> None:
    deploy(
        accord,
        """
journey: maperr
blocks:
  - id: each
    kind: map
    items: '[{"a": 1}, {"b": 2}]'
    max_concurrency: 1
    do:
      blocks:
        - {id: nap, kind: wait, timer: 1s}
    result: item.a
    on_error: recover
  - {id: ok, kind: end, outcome: done}
  - {id: recover, kind: end, outcome: recovered}
""",
    )
    run_id = accord.runtime.start(T, "maperr").run_id
    for _ in range(3):
        accord.runtime.drive()
        clock.advance(2)
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("completed", "recovered")
    assert accord.runtime.timers(T, run_id) == []


def test_a_failed_child_cleans_up_and_tells_its_parent(accord: Accord, clock: FrozenClock) -> None:
    deploy(
        accord,
        """
journey: child
blocks:
  - id: both
    kind: parallel
    branches:
      - name: m
        blocks:
          - id: each
            kind: map
            items: '[{"a": 1}, {"b": 2}]'
            do:
              blocks:
                - {id: nap, kind: wait, timer: 1s}
            result: item.a
      - name: w
        blocks:
          - {id: paid, kind: wait, event: {name: never, correlation: '"k"'}, timeout: 1h}
""",
    )
    deploy(
        accord,
        """
journey: parent
blocks:
  - {id: sub, kind: call, journey: child, on_error: failed}
  - {id: ok, kind: end, outcome: ok}
  - {id: failed, kind: end, outcome: child_failed}
""",
    )
    parent = accord.runtime.start(T, "parent").run_id
    accord.runtime.drive()
    clock.advance(1)
    accord.runtime.drive()
    child = accord.runtime.list_runs(T, journey="child")[0]
    assert child.status == "failed" and child.error is not None
    assert child.error["type"] == "ExpressionError"
    with accord.db.read() as connection:
        for table in (timers, waits):
            query = sa.select(sa.func.count()).select_from(table)
            assert connection.execute(query.where(table.c.run_id == child.run_id)).scalar() == 0
    assert accord.runtime.get(T, parent).outcome == "child_failed"


def test_a_large_map_of_pure_blocks_is_not_taken_for_a_loop(accord: Accord) -> None:
    deploy(
        accord,
        """
journey: bigmap
input: {items: array}
blocks:
  - id: each
    kind: map
    items: input.items
    max_concurrency: 50
    do:
      blocks:
        - id: classify
          kind: decide
          inputs: {x: item}
          rules: [{when: {x: ">= 0"}, then: {ok: true}}]
          default: {ok: false}
    result: steps.classify.ok
  - {id: done, kind: end, outcome: ok}
""",
    )
    run_id = accord.runtime.start(T, "bigmap", input={"items": list(range(1001))}).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "completed", view.error


def test_block_timeouts_run_on_real_time_whatever_the_clock(accord: Accord) -> None:
    deploy(
        accord,
        """
journey: timed
blocks:
  - {id: call, kind: task, capability: test.echo, timeout: 1h, retry: {max_attempts: 1}}
""",
    )
    run_id = accord.runtime.start(T, "timed").run_id
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).status == "completed"


def test_an_overlong_correlation_key_fails_its_run_only(accord: Accord) -> None:
    deploy(accord, EVENT)
    deploy(accord, "journey: quick\nblocks:\n  - {id: a, kind: task, capability: test.echo}\n")
    bad = accord.runtime.start(T, "event", input={"order": "x" * 300}).run_id
    good = accord.runtime.start(T, "quick").run_id
    accord.runtime.drive()
    assert accord.runtime.get(T, good).status == "completed"
    view = accord.runtime.get(T, bad)
    assert view.status == "failed" and view.error is not None
    assert "correlation key" in view.error["message"]


@pytest.mark.parametrize("clock", [SystemClock()])
def test_a_round_slower_than_the_lease_still_makes_progress(
    make_accord: Callable[..., Accord], calls: Calls, clock: SystemClock
) -> None:
    accord = make_accord(lease=0.5)
    deploy(
        accord,
        "journey: slow\nblocks:\n"
        "  - {id: call, kind: task, capability: test.slow, input: {seconds: 0.2}}\n",
    )
    run_ids = [accord.runtime.start(T, "slow").run_id for _ in range(4)]
    worker = accord.runtime.worker()
    worker.run_until_idle(max_seconds=30)
    assert [accord.runtime.get(T, r).status for r in run_ids] == ["completed"] * 4
    assert worker.stats.lease_lost == 0
    assert calls.by_capability["test.slow"] == 4


LOOPING_APPROVAL = """
journey: twice
blocks:
  - {id: check, kind: approve, on: {reject: again}}
  - {id: ok, kind: end, outcome: approved}
  - {id: again, kind: wait, timer: 1m, next: check}
"""


def test_decisions_only_answer_a_waiting_approval_and_its_visit(
    accord: Accord, clock: FrozenClock
) -> None:
    deploy(accord, LOOPING_APPROVAL)
    run_id = accord.runtime.start(T, "twice").run_id
    accord.runtime.drive()
    with pytest.raises(InputError, match="not waiting for a decision at 'elsewhere'"):
        accord.runtime.decide(T, run_id, "elsewhere", "approve", by="ann")
    accord.runtime.decide(T, run_id, "check", "reject", by="ann")
    accord.runtime.decide(T, run_id, "check", "reject", by="bob")
    accord.runtime.drive()
    clock.advance(60)
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "waiting", "bob's duplicate decision must not answer the second visit"
    assert view.positions[0].block == "check"
    accord.runtime.decide(T, run_id, "check", "approve", by="cy")
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).outcome == "approved"


def test_decisions_inside_a_map_are_addressed_per_item(accord: Accord) -> None:
    deploy(
        accord,
        """
journey: perline
blocks:
  - id: lines
    kind: map
    items: '["a", "b"]'
    do:
      blocks:
        - {id: ok_line, kind: approve}
""",
    )
    run_id = accord.runtime.start(T, "perline").run_id
    accord.runtime.drive()
    with pytest.raises(InputError, match="address one of them: lines\\[0\\]/ok_line"):
        accord.runtime.decide(T, run_id, "ok_line", "approve", by="ann")
    accord.runtime.decide(T, run_id, "lines[1]/ok_line", "approve", by="ann")
    accord.runtime.drive()
    assert [p.block for p in accord.runtime.get(T, run_id).positions if p.waiting_for] == [
        "ok_line"
    ]
    accord.runtime.decide(T, run_id, "ok_line", "approve", by="ann")
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).status == "completed"


@pytest.mark.no_replay_check
def test_a_run_whose_state_cannot_be_read_is_failed_and_others_go_on(accord: Accord) -> None:
    deploy(accord, "journey: quick\nblocks:\n  - {id: a, kind: task, capability: test.echo}\n")
    broken = accord.runtime.start(T, "quick").run_id
    fine = accord.runtime.start(T, "quick").run_id
    with accord.db.transaction() as connection:
        connection.execute(runs.update().where(runs.c.run_id == broken).values(state="{oops"))
    accord.runtime.drive()
    assert accord.runtime.get(T, fine).status == "completed"
    with accord.db.read() as connection:
        row = connection.execute(
            sa.select(runs.c.status, runs.c.error).where(runs.c.run_id == broken)
        ).one()
    assert row.status == "failed" and "InternalError" in row.error
