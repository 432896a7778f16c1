"""The dead-letter queue, and reconciliation of calls that are not idempotent."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel

from accord.connectors import CallContext, CapabilityRegistry
from accord.core import TenantId
from accord.errors import CapabilityFailed, DeadLetterConflict, DeadLetterNotFound, RunFinished
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage import dead_letters as stored_letters
from accord.testing import FrozenClock

T = TenantId("default")


class Transfer(BaseModel):
    amount: float
    mode: str = "ok"  # ok | lose_after | lose_before | fail


class Receipt(BaseModel):
    transfer_id: str
    amount: float


class Lookup(BaseModel):
    idempotency_key: str


class System:
    """A payments system that does not understand idempotency keys, and what it has done."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.transfers: dict[str, Receipt] = {}
        self.calls: Counter[str] = Counter()
        self.failures_left = 0

    def effects(self) -> int:
        return len(self.transfers)


@pytest.fixture
def system(capabilities: CapabilityRegistry) -> System:
    found = System()

    def send(request: Transfer, ctx: CallContext) -> Receipt:
        with found.lock:
            found.calls["send"] += 1
            if request.mode == "fail" and found.failures_left > 0:
                found.failures_left -= 1
                raise CapabilityFailed("the system is down", error_type="HTTP503", retryable=True)
            if request.mode == "lose_before" and found.calls["send"] == 1:
                raise CapabilityFailed(
                    "connection lost", error_type="ConnectionLost", outcome_unknown=True
                )
            receipt = Receipt(transfer_id=f"tr_{len(found.transfers) + 1}", amount=request.amount)
            # the system keeps its own reference to the caller's key, which is what a status
            # query can look a call up by
            found.transfers[ctx.idempotency_key] = receipt
            if request.mode == "lose_after" and found.calls["send"] == 1:
                raise CapabilityFailed(
                    "connection lost", error_type="ConnectionLost", outcome_unknown=True
                )
            return receipt

    def find(request: Lookup, ctx: CallContext) -> Receipt:
        with found.lock:
            found.calls["find"] += 1
            receipt = found.transfers.get(request.idempotency_key)
        if receipt is None:
            raise CapabilityFailed(
                "no such transfer", error_type="NotFound", retryable=False, status=404
            )
        return receipt

    registry = capabilities
    registry.capability("pay.find")(find)
    registry.capability(
        "pay.send", side_effect="irreversible", idempotent=False, reconcile="pay.find"
    )(send)
    registry.capability("pay.send_blind", side_effect="irreversible", idempotent=False)(send)
    return found


def journey(capability: str, *, on_error: bool = False, attempts: int = 3) -> str:
    return f"""
journey: pay
input: {{amount: number, mode: string}}
blocks:
  - id: send
    kind: task
    capability: {capability}
    input: {{amount: input.amount, mode: input.mode}}
    retry: {{max_attempts: {attempts}, initial_interval: 1s, jitter: 0}}
    {"on_error: failed" if on_error else ""}
  - {{id: done, kind: end, outcome: paid}}
""" + ("  - {id: failed, kind: end, outcome: not_paid}\n" if on_error else "")


def start(accord: Accord, text: str, mode: str, amount: float = 10.0) -> str:
    accord.runtime.catalog.deploy(T, load_journey_text(text))
    return accord.runtime.start(T, "pay", input={"amount": amount, "mode": mode}).run_id


def drive(accord: Accord, clock: FrozenClock, rounds: int = 4) -> None:
    for _ in range(rounds):
        accord.runtime.drive()
        clock.advance(5)


def kinds(accord: Accord, run_id: str) -> list[str]:
    return [e.kind for e in accord.runtime.history(T, run_id)]


def test_a_call_that_outlasts_its_retries_waits_in_the_queue_until_retried(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    system.failures_left = 3
    run_id = start(accord, journey("pay.send"), "fail")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).status == "waiting"
    [letter] = accord.dead_letters()
    assert (letter.run_id, letter.block, letter.capability) == (run_id, "send", "pay.send")
    assert (letter.reason, letter.attempts, letter.error["type"]) == (
        "retries_exhausted",
        3,
        "HTTP503",
    )
    assert system.calls["send"] == 3 and system.effects() == 0

    accord.retry_dead_letter(letter.letter_id, by="ops", note="the system is back")
    drive(accord, clock)
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("completed", "paid")
    assert system.effects() == 1
    assert accord.dead_letters() == []
    [resolved] = accord.dead_letters(status=None)
    assert (resolved.status, resolved.resolved_by, resolved.note) == (
        "retried",
        "ops",
        "the system is back",
    )
    history = kinds(accord, run_id)
    assert history.index("block.dead_lettered") < history.index("dead_letter.resolved")


def test_a_letter_is_resolved_once(accord: Accord, clock: FrozenClock, system: System) -> None:
    system.failures_left = 3
    run_id = start(accord, journey("pay.send"), "fail")
    drive(accord, clock)
    [letter] = accord.dead_letters()
    outcomes: list[str] = []

    def act(action: str) -> None:
        try:
            if action == "retry":
                accord.retry_dead_letter(letter.letter_id, by=action)
            else:
                accord.discard_dead_letter(letter.letter_id, by=action)
            outcomes.append(action)
        except DeadLetterConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=act, args=(a,)) for a in ("retry", "discard") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("conflict") == 5
    with pytest.raises(DeadLetterConflict):
        accord.retry_dead_letter(letter.letter_id, by="late")
    with pytest.raises(DeadLetterNotFound):
        accord.retry_dead_letter("dlq_missing", by="ops")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).status in ("completed", "failed")


def test_discarding_takes_the_blocks_error_route(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    system.failures_left = 3
    run_id = start(accord, journey("pay.send"), "fail")
    drive(accord, clock)
    [letter] = accord.dead_letters()
    accord.discard_dead_letter(letter.letter_id, by="ops", note="customer cancelled")
    drive(accord, clock)
    view = accord.runtime.get(T, run_id)
    assert view.status == "failed"
    assert view.error is not None and view.error["type"] == "Discarded"
    assert system.effects() == 0
    with pytest.raises(RunFinished):
        accord.retry_dead_letter(letter.letter_id, by="ops")


def test_with_an_error_route_an_exhausted_call_takes_it_instead(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    system.failures_left = 3
    run_id = start(accord, journey("pay.send", on_error=True), "fail")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).outcome == "not_paid"
    assert accord.dead_letters(status=None) == []


def test_a_lost_answer_is_reconciled_not_repeated(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    run_id = start(accord, journey("pay.send"), "lose_after")
    drive(accord, clock)
    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("completed", "paid")
    assert system.calls["send"] == 1 and system.calls["find"] == 1
    assert system.effects() == 1
    history = accord.runtime.history(T, run_id)
    [reconciled] = [e for e in history if e.kind == "call.reconciled"]
    assert reconciled.detail["found"] is True
    completed = [e for e in history if e.kind == "block.completed"]
    assert completed[0].detail["output"]["transfer_id"] == "tr_1"
    assert _intents(accord) == []


def test_a_call_the_system_never_saw_is_made_after_reconciling(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    run_id = start(accord, journey("pay.send"), "lose_before")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).outcome == "paid"
    assert system.calls["send"] == 2 and system.calls["find"] == 1
    assert system.effects() == 1
    [reconciled] = [e for e in accord.runtime.history(T, run_id) if e.kind == "call.reconciled"]
    assert reconciled.detail["found"] is False


def test_after_a_crash_mid_call_the_system_is_asked_before_anything_else(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    """A worker recorded the intent and the system acted, then the worker died before its
    transition committed: the next worker must not call again."""
    run_id = start(accord, journey("pay.send"), "ok")
    key = f"{run_id}/send/1"
    with accord.db.transaction() as connection:
        stored_letters.put_intent(
            connection, T, key, run_id=run_id, capability="pay.send", at=clock.now()
        )
    system.transfers[key] = Receipt(transfer_id="tr_before_crash", amount=10.0)
    drive(accord, clock)
    view = accord.runtime.get(T, run_id)
    assert view.outcome == "paid"
    assert system.calls["send"] == 0 and system.effects() == 1
    assert _intents(accord) == []


def test_without_a_status_query_a_lost_answer_goes_to_a_person(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    run_id = start(accord, journey("pay.send_blind"), "lose_after")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).status == "waiting"
    assert system.calls["send"] == 1, "a blind repeat could pay twice"
    [letter] = accord.dead_letters()
    assert (letter.reason, letter.error["type"]) == ("outcome_unknown", "ConnectionLost")
    # the person checks the system, sees the transfer went through, and discards the call
    accord.discard_dead_letter(letter.letter_id, by="ops", note="transfer tr_1 exists")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).status == "failed"
    assert system.effects() == 1 and system.calls["send"] == 1


def test_a_crash_without_a_status_query_goes_to_a_person_and_retry_calls_again(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    run_id = start(accord, journey("pay.send_blind"), "ok")
    with accord.db.transaction() as connection:
        stored_letters.put_intent(
            connection, T, f"{run_id}/send/1", run_id=run_id, capability="pay.send_blind", at=0
        )
    drive(accord, clock)
    [letter] = accord.dead_letters()
    assert letter.reason == "outcome_unknown" and system.calls["send"] == 0
    accord.retry_dead_letter(letter.letter_id, by="ops", note="nothing arrived at the system")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).outcome == "paid"
    assert system.calls["send"] == 1 and system.effects() == 1
    assert _intents(accord) == []


def _intents(accord: Accord) -> list[Any]:
    from accord.storage._schema import call_intents

    with accord.db.read() as connection:
        return list(connection.execute(call_intents.select()).all())


def test_erasing_the_subject_forgets_what_its_letters_said(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    system.failures_left = 3
    accord.runtime.catalog.deploy(T, load_journey_text(journey("pay.send")))
    run_id = accord.runtime.start(
        T, "pay", input={"amount": 10.0, "mode": "fail"}, subject="cus_42"
    ).run_id
    drive(accord, clock)
    [letter] = accord.dead_letters()
    accord.discard_dead_letter(letter.letter_id, by="ops", note="customer asked to stop")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).status == "failed"
    accord.erase_subject("cus_42", actor="dpo", reason="erasure request")
    [scrubbed] = accord.dead_letters(status=None)
    assert scrubbed.error == {"erased": True} and scrubbed.note is None


def test_retrying_a_letter_whose_last_answer_was_lost_reconciles_first(
    accord: Accord, clock: FrozenClock, system: System
) -> None:
    run_id = start(accord, journey("pay.send", attempts=1), "lose_after")
    drive(accord, clock)
    [letter] = accord.dead_letters()
    assert letter.reason == "retries_exhausted" and system.effects() == 1
    accord.retry_dead_letter(letter.letter_id, by="ops")
    drive(accord, clock)
    assert accord.runtime.get(T, run_id).outcome == "paid"
    assert system.calls["send"] == 1, "the transfer had gone through; it must not be repeated"
    assert system.calls["find"] == 1 and system.effects() == 1
