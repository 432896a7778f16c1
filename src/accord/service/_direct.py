"""Direct calls: one governed invocation of a capability, made outside any run.

An external agent (through Accord's MCP server, say) asks for one call at a time. The call takes
the gateway's one path like a task block's: the kill switches (the agent's among them), the
lawful basis, the policy with the agent as principal, approval, the connector, projection. Its
decision record and ledger entries commit together, in one transaction; they belong to no run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, assert_never

from accord.audit import Entry, Ledger, entries
from accord.connectors import CallContext
from accord.core import Clock, IdGenerator, TenantId
from accord.errors import ExecutionError, InputError, SubjectErased
from accord.flags import parse_flag_key
from accord.gateway import (
    ApprovalRequired,
    Executed,
    Gateway,
    GatewaySession,
    Held,
    Invocation,
    Outcome,
    Refused,
)
from accord.storage import Database, NewEvent, runs
from accord.storage import decisions as stored_decisions
from accord.storage import ledger as stored_ledger

DirectStatus = Literal["executed", "refused", "held", "approval_required", "failed"]

MAX_SUBJECT = 128
MAX_KEY = 200


@dataclass(frozen=True, slots=True)
class DirectResult:
    """How a direct call ended.

    ``output`` is the projected result of an executed call; ``withheld`` the output fields the
    purpose or a policy kept back. ``reason`` is the refusal reason (``consent_missing``,
    ``policy_denied``...), ``kill_switch`` for a held call, ``approval_required``, or the
    error type of a failed one; ``retryable`` says whether asking again may succeed.
    """

    status: DirectStatus
    output: dict[str, Any] | None = None
    reason: str | None = None
    message: str = ""
    decision_id: str | None = None
    withheld: tuple[str, ...] = ()
    retryable: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "output": self.output,
            "reason": self.reason,
            "message": self.message,
            "decision_id": self.decision_id,
            "withheld": list(self.withheld),
            "retryable": self.retryable,
        }


@dataclass(frozen=True, slots=True)
class DirectCall:
    """What a direct call asks for; see :meth:`accord.service.Accord.invoke`."""

    tenant: TenantId
    capability: str
    payload: Mapping[str, Any]
    principal: str
    subject: str | None = None
    purpose: str | None = None
    channel: str | None = None
    idempotency_key: str | None = None
    reads: tuple[str, ...] = ()


def invoke_direct(
    call: DirectCall,
    *,
    gateway: Gateway,
    db: Database,
    ledger: Ledger,
    clock: Clock,
    ids: IdGenerator,
) -> DirectResult:
    """Take ``call`` through the gateway and commit what it decided.

    Raises:
        CapabilityNotFound: no capability has that name; nothing was recorded.
        InputError: the principal is not a valid agent name, or the subject id or
            idempotency key is too long; nothing was recorded.
        SubjectErased: the subject was erased; nothing was called.
    """
    gateway.capabilities.get(call.capability)
    _check(call)
    if call.subject is not None:
        with db.read() as connection:
            key = stored_ledger.subject_key_rows(connection, call.tenant, [call.subject])
        found = key.get(call.subject)
        if found is not None and found.wrapped_key is None:
            raise SubjectErased(
                f"subject {call.subject!r} was erased; no call may touch their data",
                hint="a returning customer gets a new subject id",
            )
    idempotency_key = call.idempotency_key or ids.new_id("direct")
    context = CallContext(
        tenant_id=call.tenant,
        run_id=f"direct/{idempotency_key}",
        block=call.channel or "direct",
        visit=1,
        attempt=1,
        idempotency_key=idempotency_key,
        subject_id=call.subject,
        purpose=call.purpose,
    )
    invocation = Invocation(
        capability=call.capability,
        payload=dict(call.payload),
        call=context,
        channel=call.channel,
        agent=call.principal,
        reads=call.reads,
    )
    session = gateway.session(call.tenant, call.subject)
    now = clock.now()
    try:
        result = _result(session.invoke(invocation, now=now))
    except ExecutionError as exc:
        result = DirectResult(
            "failed",
            reason=exc.error_type,
            message=exc.message,
            decision_id=session.records[-1].decision_id if session.records else None,
            retryable=exc.retryable,
        )
    _commit(session, db=db, ledger=ledger, ids=ids, now=now)
    return result


def _check(call: DirectCall) -> None:
    # the agent's kill switch is the flag agent:<principal>, so the name must be one a flag takes
    try:
        parse_flag_key(f"agent:{call.principal}")
    except InputError as exc:
        raise InputError(
            f"{call.principal!r} cannot name an agent: {exc.hint or exc.message}",
            hint="use a name such as support-assistant, so that agent:<name> can switch it off",
        ) from exc
    if call.subject is not None and not 0 < len(call.subject) <= MAX_SUBJECT:
        raise InputError(
            f"a subject id has 1 to {MAX_SUBJECT} characters, got {len(call.subject)}",
            hint="use the subject's identifier, not its data",
        )
    if call.idempotency_key is not None and not 0 < len(call.idempotency_key) <= MAX_KEY:
        raise InputError(
            f"an idempotency key has 1 to {MAX_KEY} characters, got {len(call.idempotency_key)}",
            hint="use a request id or a hash of the request",
        )


def _result(outcome: Outcome) -> DirectResult:
    match outcome:
        case Executed():
            return DirectResult(
                "executed",
                output=outcome.output,
                decision_id=outcome.decision_id,
                withheld=outcome.withheld,
            )
        case Refused():
            return DirectResult(
                "refused",
                reason=outcome.reason,
                message=outcome.message,
                decision_id=outcome.decision_id,
            )
        case Held():
            return DirectResult(
                "held",
                reason="kill_switch",
                message=f"the kill switch {outcome.flag} is off; nothing was called",
                decision_id=outcome.decision_id,
                retryable=True,
            )
        case ApprovalRequired():
            return DirectResult(
                "approval_required",
                reason="approval_required",
                message=(
                    f"policy {', '.join(outcome.policies)} asks for the approval of "
                    f"{', '.join(outcome.roles)} first; nothing was called"
                ),
                decision_id=outcome.decision_id,
            )
        case _:
            assert_never(outcome)


def _commit(
    session: GatewaySession, *, db: Database, ledger: Ledger, ids: IdGenerator, now: float
) -> None:
    """The session's decisions, their ledger entries and its notifications, in one commit."""
    # a direct call belongs to no run: its synthetic run id stays with the connector
    records = [replace(record, run_id=None) for record in session.records]
    if not records:
        return
    recorded: list[Entry] = [e for record in records for e in entries.gateway_decision(record)]
    notices = [NewEvent(ids.new_id("evt"), "gateway.notify", n) for n in session.notifications]
    with db.transaction() as connection:
        stored_decisions.insert_decisions(connection, session.tenant, records)
        ledger.append(connection, session.tenant, recorded)
        runs.insert_outbox(connection, session.tenant, None, None, notices, now)
