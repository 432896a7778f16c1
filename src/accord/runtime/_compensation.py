"""Compensation: a failed run undoes its side effects, the last first.

A task that declares ``compensate`` leaves an entry in the run's state when it succeeds: the
compensating capability and its input, evaluated then. A run about to end ``failed`` with such
entries compensates instead. One token walks the entries backwards and calls each compensating
capability through the gateway as a task call is made (the run's subject, the block's purpose,
the journey), at ``<block>/compensate`` with the idempotency key ``RUN/BLOCK/VISIT/compensate``.
Each call commits before the next starts, so a crash repeats at most the call in flight, under
the same key. Retryable failures wait on the block's retry policy.

When every effect is undone the run ends ``compensated``, its error the original failure. When
one cannot be undone (refused, failed for good, or its input did not evaluate) the run escalates:
a review item says what failed, what was undone and what remains, and the person's ``approve``
(undone by hand) ends the run ``compensated``, ``reject`` ends it ``failed``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from accord.connectors import CallContext
from accord.errors import ExecutionError
from accord.gateway import ApprovalRequired, Held, Invocation, Refused
from accord.journeys import RetryPolicy, TaskBlock
from accord.reviews import Recommendation
from accord.runtime._handoff import PacketFacts, build_packet, journey_source, review_item_id
from accord.runtime._state import Compensating, Token, Wait
from accord.storage import NewReviewItem, SignalRecord

if TYPE_CHECKING:
    from accord.runtime._advance import Advance

COMPENSATION_FLOW = "~compensate"
"""The flow of the token that compensates; no journey flow has this name."""

ESCALATION_QUEUE = "operations"
"""Where a compensation that failed is handed to a person."""

DECISIONS = ("approve", "reject", "request_info")


def compensation_path(path: str) -> str:
    """Where the compensation of the block at ``path`` is called, decided and reviewed."""
    return f"{path}/compensate"


def compensates_instead(adv: Advance, error: Any) -> bool:
    """Whether a run about to end ``failed`` compensates (or hands over to a person) instead.

    A run that failed after side effects starts compensating. A run whose compensating itself
    failed inside the runtime escalates; one whose person already has the case ends.
    """
    progress = adv.state.compensating
    if progress is None:
        if not adv.state.compensations:
            return False
        _begin(adv, error)
        return True
    token = _token(adv)
    if progress.failure is not None or token is None:
        return False
    entry = adv.state.compensations[progress.remaining - 1]
    failure = dict(error) if isinstance(error, dict) else {"message": str(error)}
    adv._clear_wait(token)
    _escalate(adv, token, entry, failure)
    return True


def is_compensation(token: Token) -> bool:
    return token.flow == COMPENSATION_FLOW


def compensate_next(adv: Advance, token: Token, *, default_retry: RetryPolicy) -> None:
    """Call the next compensating capability, and take the way its outcome leads."""
    progress = adv.state.compensating
    assert progress is not None and progress.remaining > 0
    entry = adv.state.compensations[progress.remaining - 1]
    block = adv.journey.nodes[token.block].block
    assert isinstance(block, TaskBlock)
    if "input" not in entry:
        error = {
            "type": "ExpressionError",
            "message": f"the compensate input did not evaluate: {entry.get('error')}",
            "code": "expression_error",
        }
        _escalate(adv, token, entry, error)
        return
    session = adv._gateway_session()
    try:
        outcome = session.invoke(_invocation(adv, token, block, entry), now=adv.now)
    except ExecutionError as exc:
        error = {"type": exc.error_type, "message": exc.message, "code": str(exc.code)}
        decision = _last_decision(adv, entry)
        if decision is not None:
            error["decision"] = decision
        policy = block.retry or default_retry
        retryable = exc.retryable and exc.error_type not in policy.non_retryable
        if retryable and token.attempt < policy.max_attempts:
            delay = policy.delay(token.attempt, adv.deps.random())
            adv._event(
                "compensation.retry_scheduled",
                token,
                capability=entry["capability"],
                error=error,
                delay=round(delay, 6),
                **_decision(error),
            )
            adv._wait(token, Wait(kind="retry", at=adv.now + delay))
            return
        _escalate(adv, token, entry, error)
        return
    if isinstance(outcome, Held):
        adv._hold(token, block, outcome)
        return
    if isinstance(outcome, Refused | ApprovalRequired):
        if isinstance(outcome, Refused):
            error = {"type": "Refused", "reason": outcome.reason, "message": outcome.message}
        else:
            error = {
                "type": "ApprovalRequired",
                "reason": "approval_required",
                "message": f"policy {', '.join(outcome.policies)} asks "
                f"{' and '.join(outcome.roles)} to approve {entry['capability']}",
            }
        error["code"] = "refused"
        if outcome.decision_id is not None:
            error["decision"] = outcome.decision_id
        _escalate(adv, token, entry, error)
        return
    token.holds = 0
    detail: dict[str, Any] = {"capability": entry["capability"]}
    if outcome.decision_id is not None:
        detail["decision"] = outcome.decision_id
    progress.remaining -= 1
    adv._event("compensation.completed", token, **detail, remaining=progress.remaining)
    if progress.remaining == 0:
        adv._end_run("compensated", outcome="compensated", error=progress.error)
        return
    _point(token, adv.state.compensations[progress.remaining - 1])


def compensation_decided(adv: Advance, token: Token, signal: SignalRecord) -> None:
    """A person decided the case of a compensation that failed: it was undone by hand
    (``approve``), or cannot be (``reject``). Other decisions leave the run waiting."""
    progress = adv.state.compensating
    assert progress is not None
    payload = signal.payload
    decision = str(payload.get("decision"))
    chosen = decision
    if decision == "override":
        chosen = str(payload.get("override_outcome") or "")
    adv._event(
        "decision.received",
        token,
        signal_id=signal.signal_id,
        decision=decision,
        by=payload.get("by"),
        reason=payload.get("reason"),
        item=payload.get("item"),
    )
    if chosen in ("approve", "approved"):
        adv._clear_wait(token)
        adv._end_run("compensated", outcome="compensated", error=progress.error)
    elif chosen in ("reject", "rejected"):
        adv._clear_wait(token)
        error = {**(progress.error or {}), "compensation": progress.failure}
        adv._end_run("failed", outcome=None, error=error)


def _begin(adv: Advance, error: Any) -> None:
    for token in list(adv.state.tokens.values()):
        if token.parent is None:
            adv._drop_token(token)
    adv.state.tokens.clear()
    adv.state.scopes.clear()
    entries = adv.state.compensations
    adv.state.compensating = Compensating(error=error, remaining=len(entries))
    token = Token(id=adv.state.new_token_id(), flow=COMPENSATION_FLOW, block="")
    _point(token, entries[-1])
    adv.state.tokens[token.id] = token
    steps = [{"block": e["block"], "capability": e["capability"]} for e in reversed(entries)]
    adv._event("compensation.started", None, error=error, steps=steps)
    adv._publish("run.compensating", error=error, steps=len(steps))


def _token(adv: Advance) -> Token | None:
    return next((t for t in adv.state.tokens.values() if is_compensation(t)), None)


def _point(token: Token, entry: dict[str, Any]) -> None:
    """Set the token at the compensation of ``entry`` (its block's path and visit)."""
    scope, _, block = str(entry["block"]).rpartition("/")
    token.block = block
    token.scope = scope or None
    token.visit = int(entry["visit"])
    token.attempt = 1
    token.holds = 0
    token.status = "ready"
    token.wait = None


def _invocation(adv: Advance, token: Token, block: TaskBlock, entry: dict[str, Any]) -> Invocation:
    path = str(entry["block"])
    call = CallContext(
        tenant_id=adv.run.tenant_id,
        run_id=adv.run.run_id,
        block=compensation_path(path),
        visit=token.visit,
        attempt=token.attempt,
        idempotency_key=f"{adv.run.run_id}/{path}/{token.visit}/compensate",
        subject_id=adv.run.subject_id,
        purpose=block.purpose or adv.journey.spec.purpose,
        deadline=time.time() + block.timeout if block.timeout else None,
    )
    return Invocation(
        capability=str(entry["capability"]),
        payload=dict(entry["input"] or {}),
        call=call,
        journey=adv.run.journey_name,
    )


def _decision(error: dict[str, Any]) -> dict[str, Any]:
    """The decision id an event names at its top level, so the ledger puts it just before."""
    return {"decision": error["decision"]} if error.get("decision") else {}


def _last_decision(adv: Advance, entry: dict[str, Any]) -> str | None:
    records = adv._gateway_session().records
    path = compensation_path(str(entry["block"]))
    found = [r for r in records if r.block == path]
    return found[-1].decision_id if found else None


def _escalate(adv: Advance, token: Token, entry: dict[str, Any], error: dict[str, Any]) -> None:
    """Hand the case to a person: what failed, what was undone, and what remains."""
    progress = adv.state.compensating
    assert progress is not None
    path = compensation_path(str(entry["block"]))
    capability = str(entry["capability"])
    entries = adv.state.compensations
    undone = [compensation_path(e["block"]) for e in reversed(entries[progress.remaining :])]
    remaining = [compensation_path(e["block"]) for e in reversed(entries[: progress.remaining])]
    progress.failure = {"block": path, "capability": capability, "error": error}
    adv._event("compensation.failed", token, capability=capability, error=error, **_decision(error))
    reason = (
        f"the run failed ({(progress.error or {}).get('message', 'no message')}) and "
        f"{capability} could not undo {entry['block']}: {error.get('message')}. "
        + (f"Undone: {', '.join(undone)}. " if undone else "Nothing was undone yet. ")
        + f"Still to undo: {', '.join(remaining)}."
    )
    item_id = _open_review(adv, token, path, capability, error, reason, undone, remaining)
    adv._event("escalated", token, queue=ESCALATION_QUEUE, reason=reason, item=item_id)
    adv._publish("run.escalated", block=path, queue=ESCALATION_QUEUE, reason=reason, item=item_id)
    adv._wait(token, Wait(kind="human", name=path, item=item_id))


def _open_review(
    adv: Advance,
    token: Token,
    path: str,
    capability: str,
    error: dict[str, Any],
    reason: str,
    undone: list[str],
    remaining: list[str],
) -> str:
    block = adv.journey.nodes[token.block].block
    item_id = review_item_id(adv.run.run_id, path, token.visit, adv.state.new_serial())
    session = adv._gateway_session()
    governance = adv.deps.gateway.governance
    consent = session.snapshot(governance).consent if governance is not None else None
    facts = PacketFacts(
        journey=adv.journey,
        capabilities=adv.deps.gateway.capabilities,
        run_id=adv.run.run_id,
        subject_id=adv.run.subject_id,
        block=token.block,
        path=path,
        visit=token.visit,
        steps=adv.state.steps,
        errors={**adv.state.errors, path: error},
        decisions=[
            *adv.deps.run_decisions(adv.run.tenant_id, adv.run.run_id),
            *session.records,
        ],
        consent=consent,
        now=adv.now,
    )
    recommendation = Recommendation(
        decision="approve",
        value={
            "failed": {"block": path, "capability": capability, "error": error},
            "undone": undone,
            "remaining": remaining,
        },
        rationale="approve once what remains is undone by hand; reject if it cannot be, "
        "and the run ends failed",
        source=journey_source(adv.journey),
    )
    packet = build_packet(
        facts,
        item_id=item_id,
        kind="escalation",
        title=f"Undo by hand: {capability} failed for {adv.run.journey_name}",
        reason=reason,
        purpose=block.purpose or adv.journey.spec.purpose,
        reads=block.reads,
        recommendation=recommendation,
        decisions=DECISIONS,
        routes=(),
        edit_schema=None,
    ).model_copy(update={"remaining": remaining})
    sla = adv.deps.queue_sla(adv.run.tenant_id, ESCALATION_QUEUE)
    adv.reviews_add.append(
        NewReviewItem(
            item_id=item_id,
            token=token.id,
            block=path,
            visit=token.visit,
            kind="escalation",
            queue=ESCALATION_QUEUE,
            roles=(),
            makers=(),
            priority=0,
            due_at=adv.now + sla if sla else None,
            packet=packet.to_json(),
            source=recommendation.source.key,
        )
    )
    return item_id
