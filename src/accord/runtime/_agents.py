"""Agent blocks in a run: pick the version, ask the agent, route the output by its band.

The version comes from the block's pin, else the agent's active rollout (a sticky share of
subjects to the candidate, or a shadow beside the primary), else its current version. Every
tool call the agent asks for goes through the gateway with the agent as principal; in a
shadow, calls that would change anything are suppressed. The output, its band, its cost and
the exact redacted prompt are recorded in the transition that produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accord.agents import (
    AgentCatalog,
    AgentDefinition,
    AgentEngine,
    AgentResult,
    PromptError,
    ToolResult,
    ToolSpec,
    bucket_of,
    in_candidate,
)
from accord.connectors import CallContext
from accord.core import digest_any
from accord.errors import BudgetExceeded, CapabilityFailed, ExecutionError, ExpressionError
from accord.gateway import ApprovalRequired, Executed, Held, Invocation, Refused
from accord.journeys import AgentBlock
from accord.reviews import Recommendation, Source
from accord.runtime._humans import open_review
from accord.runtime._state import Token, Wait, derived_id
from accord.storage import NewAgentOutcome, RolloutRecord, SignalRecord
from accord.telemetry import span

if TYPE_CHECKING:
    from accord.runtime._advance import Advance

AGENT_DECISIONS = ("approve", "edit", "reject", "override", "request_info")


@dataclass(frozen=True)
class AgentServices:
    """What agent blocks need: deployed versions and rollouts, and the engine."""

    catalog: AgentCatalog
    engine: AgentEngine


@dataclass(frozen=True)
class _Choice:
    definition: AgentDefinition
    arm: str
    rollout: RolloutRecord | None
    bucket: int | None


def run_agent(adv: Advance, token: Token, block: AgentBlock, node: Any) -> None:
    """Ask the agent and take the way its band (or a person) decides."""
    services = adv.deps.agents
    if services is None:
        raise CapabilityFailed(
            f"agent block {block.id!r}: this Accord has no agents configured",
            error_type="AgentsUnavailable",
            retryable=False,
        )
    switched_off = _switched_off(adv, block)
    if switched_off is not None:
        adv._hold(token, block, Held(switched_off, None))
        return
    token.holds = 0
    assert node.mapping is not None
    data = node.mapping.evaluate(adv.variables(token))
    choice = _choose(adv, token, block, services)
    definition = choice.definition
    purpose = block.purpose or definition.spec.purpose or adv.journey.spec.purpose
    allowed = _allowed_categories(adv, purpose)
    if choice.rollout is not None and choice.bucket is not None:
        adv._event(
            "agent.assigned",
            token,
            rollout=choice.rollout.rollout_id,
            agent=definition.name,
            arm=choice.arm,
            version=definition.version,
            bucket=choice.bucket,
            percent=choice.rollout.percent,
        )
    with span(
        adv.deps.telemetry.tracer,
        f"agent {definition.name}@{definition.version}",
        attributes={"accord.agent": definition.name, "accord.agent_version": definition.version},
    ) as current:
        result = _ask(adv, token, services, definition, data, block, purpose, allowed, shadow=False)
        current.set_attribute("accord.band", result.band)
        if result.confidence is not None:
            current.set_attribute("accord.confidence", result.confidence)
    metrics = adv.deps.telemetry.metrics
    version = str(definition.version)
    if result.confidence is not None:
        metrics.agent_confidence.labels(agent=definition.name, version=version).observe(
            result.confidence
        )
    metrics.agent_bands.labels(agent=definition.name, version=version, band=result.band).inc()
    outcome_id = _record(adv, token, definition, result, choice.arm, choice.rollout, None)
    if choice.rollout is not None and choice.rollout.mode == "shadow":
        _shadow(adv, token, services, block, data, purpose, allowed, choice.rollout, result)
    output = {
        "output": result.output,
        "confidence": result.confidence,
        "band": result.band,
        "reason": result.reason,
        "agent": definition.name,
        "version": definition.version,
        "model": result.model,
        "reviewed": None,
        "outcome_id": outcome_id,
    }
    adv._set_output(token, output)
    if result.band == "auto":
        adv._goto(token, block.next)
        return
    route = block.on.get(result.band)
    if route is not None:
        adv._goto(token, route)
        return
    _open_agent_review(adv, token, block, definition, result, purpose)


def agent_decided(
    adv: Advance, token: Token, block: AgentBlock, signal: SignalRecord, wait: Wait
) -> None:
    """A person decided on an agent's output: approve and edit go on, reject stops."""
    payload = signal.payload
    decision = str(payload.get("decision"))
    chosen = decision
    if decision == "override":
        chosen = str(payload.get("override_outcome") or "approve")
    previous = dict(adv.state.steps.get(block.id) or {})
    if token.scope is not None:
        previous = dict(adv.state.scopes[token.scope].steps.get(block.id) or previous)
    value = payload.get("value")
    if value is None and chosen not in ("reject", "rejected"):
        value = previous.get("output")
    reviewed = {
        "decision": decision,
        "by": payload.get("by"),
        "reason": payload.get("reason"),
        "item": payload.get("item"),
    }
    outcome = payload.get("outcome")
    adv._event("decision.received", token, signal_id=signal.signal_id, **reviewed, value=value)
    outcome_id = previous.get("outcome_id")
    if outcome_id and isinstance(outcome, str):
        adv.agent_reviews.append((str(outcome_id), outcome))
    if chosen in ("reject", "rejected"):
        adv._set_output(token, {**previous, "reviewed": reviewed})
        target = block.on.get("reject")
        if target is not None:
            adv._goto(token, target)
            return
        adv._fail_block(
            token,
            CapabilityFailed(
                f"agent output at {block.id!r} was rejected by "
                f"{payload.get('by') or 'a reviewer'}: {payload.get('reason') or 'no reason'}",
                error_type="AgentRejected",
                retryable=False,
            ),
        )
        return
    adv._set_output(token, {**previous, "output": value, "reviewed": reviewed})
    route = block.on.get(chosen) if chosen not in ("approve", "approved") else None
    adv._goto(token, route or block.next)


def _switched_off(adv: Advance, block: AgentBlock) -> str | None:
    """The kill switch (``agent:<name>``, then ``journey:<name>``) that is off, if any: the
    block waits, as a task does, without asking the model."""
    governance = adv.deps.gateway.governance
    if governance is None:
        return None
    for key in (f"agent:{block.agent_name}", f"journey:{adv.run.journey_name}"):
        if not governance.flags.is_enabled(adv.run.tenant_id, key):
            return key
    return None


def _choose(adv: Advance, token: Token, block: AgentBlock, services: AgentServices) -> _Choice:
    tenant = adv.run.tenant_id
    catalog = services.catalog
    name = block.agent_name
    if block.agent_version is not None:
        return _Choice(catalog.get(tenant, name, block.agent_version), "pinned", None, None)
    rollout = catalog.active_rollout(tenant, name)
    if rollout is None:
        return _Choice(
            catalog.get(tenant, name, catalog.current_version(tenant, name)), "primary", None, None
        )
    if rollout.mode == "shadow":
        return _Choice(catalog.get(tenant, name, rollout.primary_version), "primary", rollout, None)
    bucket = bucket_of(tenant, rollout.rollout_id, adv.run.subject_id or adv.run.run_id)
    if in_candidate(bucket, rollout.percent):
        return _Choice(
            catalog.get(tenant, name, rollout.candidate_version), "candidate", rollout, bucket
        )
    return _Choice(catalog.get(tenant, name, rollout.primary_version), "primary", rollout, bucket)


def _allowed_categories(adv: Advance, purpose: str | None) -> frozenset[str] | None:
    """The categories the purpose may use for the run's subject; empty without a basis."""
    governance = adv.deps.gateway.governance
    if governance is None:
        return None
    snapshot = adv._gateway_session().snapshot(governance).consent
    if snapshot is None or not purpose:
        return frozenset()
    return snapshot.check(purpose, (), at=adv.now).allowed_categories


def _ask(
    adv: Advance,
    token: Token,
    services: AgentServices,
    definition: AgentDefinition,
    data: dict[str, Any],
    block: AgentBlock,
    purpose: str | None,
    allowed: frozenset[str] | None,
    *,
    shadow: bool,
) -> AgentResult:
    runner = _Tools(adv, token, definition, purpose, block.reads, shadow=shadow)
    try:
        return services.engine.run(
            adv.run.tenant_id,
            definition,
            data,
            bands=block.bands,
            allowed=allowed,
            tools=runner,
            tool_specs=_tool_specs(adv, definition),
            cache=services.catalog.cache(adv.run.tenant_id, adv.run.subject_id),
            now=adv.now,
        )
    except PromptError as exc:
        raise ExpressionError(
            f"agent {definition.key} at {block.id!r}: {exc.message}", hint=exc.hint
        ) from exc


def _tool_specs(adv: Advance, definition: AgentDefinition) -> tuple[ToolSpec, ...]:
    specs = []
    for name in definition.spec.tools:
        capability = adv.deps.gateway.capabilities.find(name)
        if capability is None:
            continue
        specs.append(ToolSpec(name, capability.description, capability.input_schema()))
    return tuple(specs)


class _Tools:
    """The tool runner of one agent call: each call is one gateway pass, the agent principal.

    The block's ``reads`` narrow what a tool's answer may bring back, as they do for a task.
    """

    def __init__(
        self,
        adv: Advance,
        token: Token,
        definition: AgentDefinition,
        purpose: str | None,
        reads: tuple[str, ...],
        *,
        shadow: bool,
    ) -> None:
        self._reads = reads
        self._adv = adv
        self._token = token
        self._definition = definition
        self._purpose = purpose
        self._shadow = shadow
        self._count = 0

    def __call__(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        adv, token = self._adv, self._token
        self._count += 1
        path = adv._path(token)
        arm = "shadow" if self._shadow else "tool"
        capability = adv.deps.gateway.capabilities.find(name)
        if self._shadow and (capability is None or capability.side_effect != "read"):
            return ToolResult(
                False, message="suppressed: a shadow run changes nothing", reason="shadow"
            )
        call = CallContext(
            tenant_id=adv.run.tenant_id,
            run_id=adv.run.run_id,
            block=path,
            visit=token.visit,
            attempt=token.attempt,
            idempotency_key=f"{adv.run.run_id}/{path}/{token.visit}/{arm}{self._count}",
            subject_id=adv.run.subject_id,
            purpose=self._purpose,
        )
        invocation = Invocation(
            capability=name,
            payload=arguments if isinstance(arguments, dict) else {"value": arguments},
            call=call,
            journey=adv.run.journey_name,
            agent=self._definition.name,
            agent_model=self._definition.key,
            agent_tools=tuple(self._definition.spec.tools),
            context={"agent": self._definition.key},
            reads=self._reads,
        )
        try:
            outcome = adv._gateway_session().invoke(invocation, now=adv.now)
        except BudgetExceeded:
            raise
        except ExecutionError as exc:
            return ToolResult(False, message=f"failed: {exc.message}", reason="failed")
        if isinstance(outcome, Executed):
            return ToolResult(True, output=outcome.output)
        if isinstance(outcome, Refused):
            return ToolResult(
                False,
                message=f"{outcome.reason}: {outcome.message}",
                reason=outcome.reason,
            )
        if isinstance(outcome, Held):
            return ToolResult(
                False, message=f"held: kill switch {outcome.flag} is off", reason="kill_switch"
            )
        assert isinstance(outcome, ApprovalRequired)
        return ToolResult(
            False,
            message=(
                f"{name!r} needs approval by {', '.join(outcome.roles)}; an agent cannot wait "
                "for one, so propose it in the output instead"
            ),
            reason="approval_required",
        )


def _record(
    adv: Advance,
    token: Token,
    definition: AgentDefinition,
    result: AgentResult,
    arm: str,
    rollout: RolloutRecord | None,
    agrees: bool | None,
) -> str:
    path = adv._path(token)
    outcome_id = derived_id("ago", f"{adv.run.run_id}/{path}/{token.visit}/{token.attempt}/{arm}")
    output_digest = digest_any(result.output)
    adv.agent_outcomes_add.append(
        NewAgentOutcome(
            outcome_id=outcome_id,
            block=path,
            visit=token.visit,
            agent=definition.name,
            version=definition.version,
            arm=arm,
            rollout_id=rollout.rollout_id if rollout is not None else None,
            band=result.band,
            valid=result.valid,
            confidence=result.confidence,
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cost=result.cost,
            cached=result.cached,
            output_digest=output_digest,
            agrees=agrees,
        )
    )
    adv._event(
        "agent.shadow" if arm == "shadow" else "agent.output",
        token,
        agent=definition.name,
        version=definition.version,
        arm=arm,
        rollout=rollout.rollout_id if rollout is not None else None,
        outcome_id=outcome_id,
        output=result.output,
        output_digest=output_digest,
        agrees=agrees,
        prompt={"instructions": result.instructions, "message": result.message},
        **result.summary(),
    )
    return outcome_id


def _shadow(
    adv: Advance,
    token: Token,
    services: AgentServices,
    block: AgentBlock,
    data: dict[str, Any],
    purpose: str | None,
    allowed: frozenset[str] | None,
    rollout: RolloutRecord,
    primary: AgentResult,
) -> None:
    """Run the candidate on the same input, changing nothing, and record how it compares."""
    candidate = services.catalog.get(adv.run.tenant_id, rollout.agent, rollout.candidate_version)
    try:
        result = _ask(adv, token, services, candidate, data, block, purpose, allowed, shadow=True)
    except ExecutionError as exc:
        adv._event(
            "agent.shadow_failed",
            token,
            agent=candidate.name,
            version=candidate.version,
            rollout=rollout.rollout_id,
            error={"type": exc.error_type, "message": exc.message},
        )
        return
    agrees = digest_any(result.output) == digest_any(primary.output) and (
        result.band == primary.band
    )
    _record(adv, token, candidate, result, "shadow", rollout, agrees)


def _open_agent_review(
    adv: Advance,
    token: Token,
    block: AgentBlock,
    definition: AgentDefinition,
    result: AgentResult,
    purpose: str | None,
) -> None:
    reasons = {
        "low_confidence": f"confidence {result.confidence:.2f} is below the confirm band",
        "invalid_output": "the output stayed invalid after repair: " + "; ".join(result.problems),
        "budget_exceeded": "the agent ran out of budget: " + "; ".join(result.problems),
        None: f"confidence {result.confidence:.2f} asks for a person's confirmation",
    }
    reason = reasons[result.reason]
    recommendation = Recommendation(
        decision="approve",
        value=result.output,
        confidence=result.confidence,
        band=result.band,
        rationale=reason,
        source=Source(kind="agent", id=definition.name, version=str(definition.version)),
    )
    verb = "Confirm" if result.band == "confirm" else "Review"
    item_id = open_review(
        adv,
        token,
        kind="agent",
        queue=block.queue,
        roles=[],
        makers=[],
        priority=block.priority,
        title=block.description or f"{verb} {definition.key}'s output in {adv.run.journey_name}",
        reason=reason,
        purpose=purpose,
        reads=block.reads,
        recommendation=recommendation,
        policy=None,
        proposed=None,
        decisions=AGENT_DECISIONS,
        routes=tuple(block.on),
        edit_schema=definition.spec.output.schema_,
    )
    adv._event(
        "agent.escalated" if result.band == "escalate" else "agent.confirm_requested",
        token,
        queue=block.queue,
        reason=reason,
        item=item_id,
    )
    adv._publish(
        "run.escalated" if result.band == "escalate" else "review.requested",
        block=block.id,
        queue=block.queue,
        reason=reason,
        item=item_id,
    )
    at = adv.now + block.timeout if block.timeout is not None else None
    adv._wait(token, Wait(kind="human", name=block.id, at=at, item=item_id))
    adv._take_pending(token)
