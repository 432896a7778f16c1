"""People in a run: review items opened when a run pauses for a person, and their decisions.

An ``approve`` or ``escalate`` block, or a policy's approval obligation on a task, opens a
review item with its handoff packet in the transition that pauses the run; the decision a
person takes on it (through the review inbox) arrives as a signal and decides the way on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accord.errors import BlockTimeout, CapabilityFailed, ExpressionError
from accord.gateway import Approval, ApprovalRequired, Refused, call_digest
from accord.journeys import ApproveBlock, ConfirmBlock, EscalateBlock, TaskBlock, edit_json_schema
from accord.reviews import PolicyContext, ProposedCall, ReviewKind
from accord.runtime._handoff import (
    PacketFacts,
    build_packet,
    recommendation_from,
    review_item_id,
)
from accord.runtime._state import Token, Wait, derived_id
from accord.storage import NewConfirmation, NewReviewItem, SignalRecord

if TYPE_CHECKING:
    from accord.runtime._advance import Advance


def human_decided(adv: Advance, token: Token, block: Any, signal: SignalRecord, wait: Wait) -> None:
    """A person's decision arrived: record it and take the way the journey routes it.

    ``on`` is looked up by the decision, then by an override's outcome; an edit without a
    route of its own goes where an approval would.
    """
    payload = signal.payload
    decision = str(payload.get("decision"))
    output: dict[str, Any] = {
        "decision": decision,
        "by": payload.get("by"),
        "reason": payload.get("reason"),
        "data": payload.get("data"),
    }
    if payload.get("item") is not None:
        recommended = payload.get("recommendation") or {}
        value = payload.get("value")
        if value is None and decision in ("approve", "override"):
            value = recommended.get("value")
        output.update(value=value, item=payload["item"], outcome=payload.get("outcome"))
        if payload.get("override_outcome") is not None:
            output["override_outcome"] = payload["override_outcome"]
    adv._event("decision.received", token, signal_id=signal.signal_id, **output)
    if isinstance(block, TaskBlock):
        approval_decided(adv, token, block, signal, decision, wait)
        return
    adv._set_output(token, output)
    assert isinstance(block, ApproveBlock | EscalateBlock)
    chosen = decision
    if decision == "override":
        chosen = str(payload.get("override_outcome") or "approve")
    target = block.on.get(decision) or block.on.get(chosen)
    if target is None and decision == "edit":
        target = block.on.get("approve")
    if target is None and isinstance(block, EscalateBlock) and not block.next:
        adv._end_run("completed", outcome="escalated", error=None)
        return
    if target is None and isinstance(block, ApproveBlock) and chosen in ("reject", "rejected"):
        adv._fail_block(
            token,
            CapabilityFailed(
                f"approval {block.id!r} was rejected by {payload.get('by') or 'a reviewer'}",
                error_type="Rejected",
                retryable=False,
            ),
        )
        return
    adv._goto(token, target or block.next)


def approval_decided(
    adv: Advance,
    token: Token,
    block: TaskBlock,
    signal: SignalRecord,
    decision: str,
    wait: Wait,
) -> None:
    """A person decided on a call a policy obligation held for approval.

    An approval counts for the call as the person saw it (its digest); an edit replaces
    the call's input and sends it through the gateway again, with its editor among the
    makers who may not approve it.
    """
    payload = signal.payload
    by = str(payload.get("by") or "")
    roles = tuple(payload.get("roles") or wait.roles or ())
    chosen = decision
    if decision == "override":
        chosen = str(payload.get("override_outcome") or "")
        if payload.get("value") is not None:
            chosen = "edit"
    if chosen == "edit":
        token.edited = dict(payload.get("value") or {})
        if by and by not in token.makers:
            token.makers.append(by)
        token.approvals = []
        token.status = "ready"
        return
    if chosen in ("approve", "approved"):
        digest_seen = payload.get("approved_digest") or wait.digest
        approval = Approval(roles, by, payload.get("reason"), adv.now, digest=digest_seen)
        token.approvals.append(approval.to_json())
        token.status = "ready"
        return
    message = (
        f"{by or 'a reviewer'} did not approve {block.capability!r} "
        f"({decision}): {payload.get('reason') or 'no reason given'}"
    )
    decision_id = adv._gateway_session().record_rejection(
        adv._invocation(token, block), by=by, message=message, now=adv.now
    )
    adv._refuse(token, block, Refused("approval_rejected", message, decision_id))


def await_approval(adv: Advance, token: Token, block: TaskBlock, needed: ApprovalRequired) -> None:
    """Pause in a durable human wait, with a review item, until a person decides the call."""
    invocation = adv._invocation(token, block)
    proposed = ProposedCall(
        capability=block.capability,
        input=dict(invocation.payload),
        context=dict(invocation.context),
        digest=call_digest(block.capability, invocation.payload, invocation.context),
    )
    node = adv.journey.nodes[token.block]
    makers = list(token.makers)
    if node.maker is not None:
        maker = node.maker.evaluate(adv.variables(token))
        if maker and str(maker) not in makers:
            makers.append(str(maker))
    record = next(
        (r.record for r in adv._gateway_session().records if r.decision_id == needed.decision_id),
        {},
    )
    policy = record.get("policy") or {}
    roles = list(needed.roles)
    capability = adv.deps.gateway.capabilities.find(block.capability)
    item_id = open_review(
        adv,
        token,
        kind="policy_approval",
        queue=roles[0],
        roles=roles,
        makers=makers,
        priority=0,
        title=f"Approve {block.capability} for {adv.run.journey_name}",
        reason=(
            f"policy {', '.join(needed.policies)} asks {' and '.join(roles)} to approve "
            f"{block.capability}"
        ),
        purpose=block.purpose or adv.journey.spec.purpose,
        reads=block.reads,
        recommendation=recommendation_from(
            {
                "decision": "approve",
                "value": proposed.input,
                "rationale": f"the journey calls {block.capability} with this input",
            },
            adv.journey,
            block.id,
            "approve",
        ),
        policy=PolicyContext(
            decision_id=needed.decision_id,
            bundle_version=policy.get("bundle_version"),
            determining=list(policy.get("determining") or ()),
            obligations=[
                {k: str(v) for k, v in o.items()} for o in policy.get("obligations") or ()
            ],
            reasons=[f"approval by {role} required" for role in roles],
            roles=roles,
        ),
        proposed=proposed,
        decisions=("approve", "edit", "reject", "override", "request_info")
        if capability is not None
        else ("approve", "reject", "override", "request_info"),
        routes=(),
        edit_schema=capability.input_schema() if capability is not None else None,
    )
    adv._event(
        "approval.requested",
        token,
        roles=roles,
        capability=block.capability,
        policies=list(needed.policies),
        decision=needed.decision_id,
        item=item_id,
    )
    adv._publish(
        "review.requested",
        block=block.id,
        role=roles[0],
        roles=roles,
        capability=block.capability,
        policies=list(needed.policies),
        decision=needed.decision_id,
        item=item_id,
    )
    adv._wait(
        token,
        Wait(kind="human", name=block.id, roles=roles, item=item_id, digest=proposed.digest),
    )
    adv._take_pending(token)


def open_review(
    adv: Advance,
    token: Token,
    *,
    kind: ReviewKind,
    queue: str,
    roles: list[str],
    makers: list[str],
    priority: int,
    title: str,
    reason: str,
    purpose: str | None,
    reads: tuple[str, ...],
    recommendation: Any,
    policy: PolicyContext | None,
    proposed: ProposedCall | None,
    decisions: tuple[str, ...],
    routes: tuple[str, ...],
    edit_schema: dict[str, Any] | None,
) -> str:
    """Open a review item with its handoff packet, committed with this transition."""
    path = adv._path(token)
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
        steps=adv.variables(token)["steps"],
        errors=adv.state.errors,
        decisions=[
            *adv.deps.run_decisions(adv.run.tenant_id, adv.run.run_id),
            *session.records,
        ],
        consent=consent,
        now=adv.now,
    )
    packet = build_packet(
        facts,
        item_id=item_id,
        kind=kind,
        title=title,
        reason=reason,
        purpose=purpose,
        reads=reads,
        recommendation=recommendation,
        policy=policy,
        proposed=proposed,
        decisions=decisions,
        routes=routes,
        edit_schema=edit_schema,
    )
    sla = adv.deps.queue_sla(adv.run.tenant_id, queue)
    adv.reviews_add.append(
        NewReviewItem(
            item_id=item_id,
            token=token.id,
            block=path,
            visit=token.visit,
            kind=kind,
            queue=queue,
            roles=tuple(roles),
            makers=tuple(makers),
            priority=priority,
            due_at=adv.now + sla if sla else None,
            packet=packet.to_json(),
            source=recommendation.source.key,
        )
    )
    return item_id


def start_human_wait(
    adv: Advance, token: Token, block: ApproveBlock | EscalateBlock, node: Any
) -> None:
    at = adv.now + block.timeout if block.timeout is not None else None
    variables = adv.variables(token)
    recommended = node.recommend.evaluate(variables) if node.recommend is not None else None
    routes = tuple(block.on)
    decisions = ["approve", "reject", "override", "request_info"]
    if isinstance(block, EscalateBlock):
        assert node.expression is not None
        reason = node.expression.evaluate(variables)
        recommendation = recommendation_from(recommended, adv.journey, block.id, "escalate")
        queue = block.queue or "supervisors"
        item_id = open_review(
            adv,
            token,
            kind="escalation",
            queue=queue,
            roles=[],
            makers=[],
            priority=block.priority,
            title=block.description or f"Escalated from {adv.run.journey_name}",
            reason=str(reason),
            purpose=block.purpose or adv.journey.spec.purpose,
            reads=block.reads,
            recommendation=recommendation,
            policy=None,
            proposed=None,
            decisions=tuple(decisions),
            routes=routes,
            edit_schema=None,
        )
        adv._event("escalated", token, queue=queue, reason=reason, item=item_id)
        adv._publish("run.escalated", block=block.id, queue=queue, reason=reason, item=item_id)
    else:
        maker = node.maker.evaluate(variables) if node.maker is not None else None
        edit_schema = edit_json_schema(block)
        if edit_schema is not None:
            decisions.insert(1, "edit")
        item_id = open_review(
            adv,
            token,
            kind="approval",
            queue=block.queue or block.role,
            roles=[block.role],
            makers=[str(maker)] if maker else [],
            priority=block.priority,
            title=block.title or f"Approve {block.id} for {adv.run.journey_name}",
            reason=block.description or f"{block.id} needs a {block.role}'s approval",
            purpose=block.purpose or adv.journey.spec.purpose,
            reads=block.reads,
            recommendation=recommendation_from(recommended, adv.journey, block.id, "approve"),
            policy=None,
            proposed=None,
            decisions=tuple(decisions),
            routes=routes,
            edit_schema=edit_schema,
        )
        adv._event("approval.requested", token, role=block.role, title=block.title, item=item_id)
        adv._publish(
            "review.requested", block=block.id, role=block.role, title=block.title, item=item_id
        )
    adv._wait(token, Wait(kind="human", name=block.id, at=at, item=item_id))
    adv._take_pending(token)


def start_confirm(adv: Advance, token: Token, block: ConfirmBlock, node: Any) -> None:
    """Propose the action to the subject, unless the journey confirms it implicitly."""
    assert node.mapping is not None
    variables = adv.variables(token)
    proposal = node.mapping.evaluate(variables)
    if node.expression is not None:
        implicit = node.expression.evaluate(variables)
        if not isinstance(implicit, bool):
            raise ExpressionError(
                f"confirm {block.id!r}: implicit `{block.implicit}` gave "
                f"{type(implicit).__name__}, not a boolean"
            )
        if implicit:
            adv._event("confirmation.implicit", token, proposal=proposal)
            adv._set_output(
                token,
                {
                    "answer": "confirmed",
                    "implicit": True,
                    "channel": None,
                    "proposal": proposal,
                    "at": adv.now,
                },
            )
            adv._goto(token, block.on.get("confirmed") or block.next)
            return
    sign = adv.deps.sign_confirmation
    if sign is None:
        raise CapabilityFailed(
            f"confirm {block.id!r}: this runtime has no key to sign confirmation tokens",
            error_type="ConfigurationError",
            retryable=False,
        )
    path = adv._path(token)
    key = f"{adv.run.run_id}/{path}/{token.visit}/{adv.state.new_serial()}"
    confirmation_id = derived_id("cnf", key)
    expires_at = adv.now + block.expires
    channels = list(block.channels)
    signed = sign(
        {
            "c": confirmation_id,
            "t": adv.run.tenant_id,
            "r": adv.run.run_id,
            "b": path,
            "v": token.visit,
            "e": expires_at,
            "ch": channels,
        }
    )
    adv.confirmations_add.append(
        NewConfirmation(confirmation_id, path, token.visit, tuple(channels), expires_at)
    )
    adv._event(
        "confirmation.requested",
        token,
        confirmation=confirmation_id,
        channels=channels,
        expires_at=expires_at,
    )
    adv._publish(
        "confirmation.requested",
        block=block.id,
        confirmation=confirmation_id,
        token=signed,
        proposal=proposal,
        channels=channels,
        expires_at=expires_at,
        subject_id=adv.run.subject_id,
    )
    adv._wait(token, Wait(kind="confirm", name=block.id, at=expires_at, item=confirmation_id))
    adv._take_pending(token)


def confirm_answered(
    adv: Advance, token: Token, block: Any, answer: str, channel: str | None
) -> None:
    """The subject confirmed or refused, or the confirmation expired: take its path."""
    assert isinstance(block, ConfirmBlock)
    node = adv.journey.nodes[token.block]
    assert node.mapping is not None
    proposal = node.mapping.evaluate(adv.variables(token))
    adv._event("confirmation.answered", token, answer=answer, channel=channel)
    adv._set_output(
        token,
        {
            "answer": answer,
            "implicit": False,
            "channel": channel,
            "proposal": proposal,
            "at": adv.now,
        },
    )
    target = block.on.get(answer)
    if target is not None or answer == "confirmed":
        adv._goto(token, target or block.next)
    elif answer == "refused":
        adv._fail_block(
            token,
            CapabilityFailed(
                f"the subject refused the proposal of {block.id!r}",
                error_type="ConfirmationRefused",
                retryable=False,
            ),
        )
    else:
        adv._fail_block(
            token,
            BlockTimeout(f"confirmation {block.id!r} expired unanswered", retryable=False),
        )
