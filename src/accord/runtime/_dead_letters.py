"""Calls that could not be completed safely: dead letters and reconciliation after a crash.

A task whose call kept failing with a retryable error, through every attempt of its retry policy,
is *dead-lettered*: the run waits, a dead letter names the call and its last error, and an
operator retries it (the block runs again from its first attempt) or discards it (the block fails
and the journey takes its ``on_error`` route, or fails and compensates).

A capability that is not idempotent cannot simply be called again once its answer was lost, so
the runtime records an *intent* just before calling it. If the intent is still there when the
block runs again (the worker died mid-call, or the connection dropped after the request went
out), the runtime asks the system what happened, through the capability's declared ``reconcile``
status query, before anything else. Found: its answer is the block's result. Not found (404): the
call is made. Without a status query nobody can tell, so the call is dead-lettered for a person
who can look.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from accord.connectors import Capability
from accord.errors import CapabilityFailed, ExecutionError
from accord.gateway import Invocation, Outcome
from accord.journeys import TaskBlock
from accord.runtime._state import Token, Wait, derived_id
from accord.storage import NewDeadLetter, SignalRecord

if TYPE_CHECKING:
    from accord.runtime._advance import Advance

NOT_FOUND = 404


def guarded(capability: Capability | None) -> bool:
    """Whether calls to ``capability`` need an intent: a repeat could act twice."""
    return capability is not None and capability.side_effect != "read" and not capability.idempotent


def unknown_outcome(exc: ExecutionError) -> bool:
    """Whether the failed call may have acted: its answer was lost, or it is still running."""
    return exc.outcome_unknown


def reconcile(
    adv: Advance, token: Token, capability: Capability, invocation: Invocation
) -> Outcome | None:
    """The outcome of an earlier call under the same key, if one may have been made.

    ``None``: no earlier call, or the system says it never took effect; make the call.

    Raises:
        CapabilityFailed: nobody can tell (no status query), or the query failed.
    """
    key = invocation.call.idempotency_key
    if key in adv.intents_forgotten or not adv.deps.intent_exists(adv.run.tenant_id, key):
        return None
    if capability.reconcile is None:
        adv._event("call.unreconciled", token, capability=capability.name)
        raise CapabilityFailed(
            f"{capability.name!r} may have taken effect before the worker lost its answer, and "
            "it declares no status query to ask",
            error_type="OutcomeUnknown",
            retryable=False,
            outcome_unknown=True,
            hint="check the system, then retry the dead letter (call again) or discard it",
        )
    query = replace(
        invocation,
        capability=capability.reconcile,
        payload={"idempotency_key": key},
        # the query belongs to the block's visit, so its decision reads with the block's events
        call=replace(invocation.call, idempotency_key=f"{key}/reconcile"),
        approvals=(),
        before_call=None,
    )
    try:
        outcome = adv._gateway_session().invoke(query, now=adv.now)
    except CapabilityFailed as exc:
        if exc.status != NOT_FOUND:
            raise
        adv._event("call.reconciled", token, capability=capability.name, found=False)
        return None
    adv._event(
        "call.reconciled",
        token,
        capability=capability.name,
        found=True,
        query=capability.reconcile,
        decision=getattr(outcome, "decision_id", None),
    )
    return outcome


def dead_letter(
    adv: Advance,
    token: Token,
    block: TaskBlock,
    exc: ExecutionError,
    *,
    reason: Literal["retries_exhausted", "outcome_unknown"],
) -> None:
    """Park the call: the token waits for an operator to retry or discard it."""
    path = adv._path(token)
    letter_id = derived_id("dlq", f"{adv.run.run_id}/{path}/{token.visit}/{token.attempt}")
    error: dict[str, Any] = {"type": exc.error_type, "message": exc.message, "code": str(exc.code)}
    if isinstance(exc, CapabilityFailed) and exc.status is not None:
        error["status"] = exc.status
    adv._event(
        "block.dead_lettered",
        token,
        letter=letter_id,
        capability=block.capability,
        reason=reason,
        error=error,
        attempts=token.attempt,
    )
    adv.dead_letters_add.append(
        NewDeadLetter(
            letter_id=letter_id,
            token=token.id,
            block=path,
            visit=token.visit,
            capability=block.capability,
            reason=reason,
            error=error,
            attempts=token.attempt,
        )
    )
    adv._publish(
        "call.dead_lettered",
        letter=letter_id,
        block=path,
        capability=block.capability,
        reason=reason,
    )
    adv._wait(token, Wait(kind="dead_letter", item=letter_id))


def letter_resolved(adv: Advance, token: Token, signal: SignalRecord) -> None:
    """An operator retried or discarded the token's dead letter."""
    payload = signal.payload
    action = str(payload.get("action"))
    by = payload.get("by")
    adv._event(
        "dead_letter.resolved",
        token,
        letter=signal.name,
        action=action,
        by=by,
        note=payload.get("note"),
    )
    if action == "retry":
        if payload.get("reason") == "outcome_unknown":
            # the person looked at the system and found nothing: the call is made again
            key = f"{adv.run.run_id}/{adv._path(token)}/{token.visit}"
            adv.intents_forgotten.add(key)
            adv.intents_close.append(key)
        # otherwise an intent left by a lost answer is still reconciled before calling
        token.status = "ready"
        token.attempt = 1
        return
    adv._fail_block(
        token,
        CapabilityFailed(
            f"dead letter {signal.name} was discarded by {by or 'an operator'}",
            error_type="Discarded",
            retryable=False,
        ),
    )
