"""The one path every capability invocation takes.

A task block, an agent's tool call and an action a person approved all reach a capability through
:meth:`GatewaySession.invoke`, in this order::

    kill switch → lawful basis for (subject, purpose, categories) → policy (Cedar)
    → approval gate → execute (idempotency key, deadline, contracts)
    → project the result to what the purpose allows → record the decision

Each step can end the pass: a switched-off capability is *held* (the caller waits and asks again),
a missing lawful basis or a policy deny is *refused* with a reason, an approval obligation asks a
person first. Every pass leaves one decision record, written in the caller's transaction.

A session belongs to one transition of one run and decides every call of the transition against
one snapshot: the subject's consent, the newest policy bundle and the flag version. A worker reads
the snapshots of all the runs of a round in one read transaction (:class:`SnapshotBatch`) and
reads again once they are older than the commit window; a transition runs its tasks within that
window too. So a withdrawal, deploy or kill switch is seen by every call that starts more than
two commit windows (10 ms by default) after it commits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Tracer

from accord.connectors import Capability, CapabilityRegistry
from accord.consent import BasisCheck, ConsentLedger, ConsentSnapshot, snapshots_from
from accord.core import TenantId, digest, digest_any
from accord.errors import CapabilityFailed, ExecutionError
from accord.flags import Flags
from accord.gateway._executor import Executor
from accord.gateway._outcomes import (
    ApprovalRequired,
    Checked,
    Executed,
    Held,
    Invocation,
    Outcome,
    RefusalReason,
    Refused,
    call_digest,
)
from accord.policy import (
    Entity,
    PolicyBundle,
    PolicyBundleNotFound,
    PolicyDecision,
    PolicyDecisionPoint,
    PolicyInvalid,
    PolicyRequest,
    PolicyStore,
)
from accord.storage import Database, NewDecision
from accord.storage import governance as stored_governance
from accord.telemetry import Telemetry, span


@dataclass
class Governance:
    """The parts the gateway consults: flags, the consent ledger, policy bundles and the PDP."""

    db: Database
    consent: ConsentLedger
    policies: PolicyStore
    pdp: PolicyDecisionPoint
    flags: Flags
    new_id: Callable[[str], str]
    region: str | None = None
    """Where this deployment processes data: policies see it as ``context.processing_region``."""


class Gateway:
    """Invokes capabilities for runs, governed unless built without :class:`Governance`.

    A gateway without governance only checks contracts and deadlines; it exists so that a test
    can show what the protections prevent, and so that a benchmark can price them.
    """

    def __init__(
        self,
        capabilities: CapabilityRegistry,
        *,
        governance: Governance | None,
        max_timeout_threads: int = 32,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.capabilities = capabilities
        self.governance = governance
        self.telemetry = telemetry or Telemetry()
        self._executor = Executor(capabilities, max_timeout_threads=max_timeout_threads)

    def session(
        self,
        tenant: str,
        subject_id: str | None,
        *,
        decision_prefix: str | None = None,
        batch: SnapshotBatch | None = None,
    ) -> GatewaySession:
        """A session for the calls of one transition of a run about ``subject_id``.

        With ``decision_prefix``, decision ids are the prefix and a serial number (a run's
        transition is committed at most once, so run id and sequence number make a unique
        prefix); without, they come from the id generator. With ``batch``, the session's
        snapshot comes from the batch, which reads the snapshots of a worker round together.
        """
        return GatewaySession(
            self, TenantId(tenant), subject_id, decision_prefix=decision_prefix, batch=batch
        )

    def batch(
        self, keys: Iterable[tuple[str, str | None]], *, max_age: float, clock: Callable[[], float]
    ) -> SnapshotBatch:
        """Snapshots for the runs of one worker round, keyed by (tenant, subject).

        Nothing is read until a session asks; then one read transaction serves every run of
        the round. A snapshot older than ``max_age`` seconds (by ``clock``, a monotonic one) is
        read again, so no call is decided on a view older than a transition's commit window.
        """
        return SnapshotBatch(self, keys, max_age=max_age, clock=clock)

    def close(self) -> None:
        self._executor.close()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    consent: ConsentSnapshot | None
    bundle: PolicyBundle | None
    bundle_error: str | None = None
    region: str | None = None
    # the tenant's configured bases with nobody's grants: what a call about no subject may use
    bases_only: ConsentSnapshot | None = None


def _read_snapshots(
    governance: Governance, keys: Collection[tuple[TenantId, str | None]]
) -> dict[tuple[TenantId, str | None], _Snapshot]:
    """One statement per tenant: its versions and its subjects' consent."""
    tenants: dict[TenantId, set[str]] = {}
    for tenant, subject in keys:
        subjects = tenants.setdefault(tenant, set())
        if subject is not None:
            subjects.add(subject)
    read: dict[tuple[TenantId, str | None], _Snapshot] = {}
    with governance.db.statement() as connection:
        found = {
            tenant: stored_governance.read(connection, tenant, sorted(subjects))
            for tenant, subjects in tenants.items()
        }
    for tenant, state in found.items():
        governance.flags.observe(tenant, state.flag_version)
        bundle, bundle_error = None, None
        if state.policy_version:
            try:
                bundle = governance.policies.get_compiled(tenant, state.policy_version)
            except (PolicyInvalid, PolicyBundleNotFound) as exc:
                # a stored bundle this version of Accord cannot compile permits nothing
                bundle_error = f"policy bundle v{state.policy_version} is unusable: {exc.message}"
        [bases_only] = snapshots_from(tenant, [""], {}, state.bases).values()
        read[(tenant, None)] = _Snapshot(None, bundle, bundle_error, bases_only=bases_only)
        consent = snapshots_from(tenant, tenants[tenant], state.grants, state.bases)
        for subject, snapshot in consent.items():
            region = state.regions.get(subject)
            read[(tenant, subject)] = _Snapshot(snapshot, bundle, bundle_error, region)
    return read


class SnapshotBatch:
    """The snapshots of one worker round, read together when the first call needs one."""

    def __init__(
        self,
        gateway: Gateway,
        keys: Iterable[tuple[str, str | None]],
        *,
        max_age: float,
        clock: Callable[[], float],
    ) -> None:
        self.gateway = gateway
        self._keys = {(TenantId(t), s) for t, s in keys}
        self._max_age = max_age
        self._clock = clock
        self._read: dict[tuple[TenantId, str | None], _Snapshot] = {}
        self._read_at = -math.inf
        self.reads = 0

    def get(self, governance: Governance, tenant: TenantId, subject: str | None) -> _Snapshot:
        key = (tenant, subject)
        now = self._clock()
        if key not in self._read or now - self._read_at > self._max_age:
            self._keys.add(key)
            self._read = _read_snapshots(governance, self._keys)
            self._read_at = now
            self.reads += 1
        return self._read[key]


class GatewaySession:
    """The calls of one transition. ``records`` and ``notifications`` go into its commit."""

    def __init__(
        self,
        gateway: Gateway,
        tenant: TenantId,
        subject_id: str | None,
        *,
        decision_prefix: str | None = None,
        batch: SnapshotBatch | None = None,
    ) -> None:
        self.gateway = gateway
        self.tenant = tenant
        self.subject_id = subject_id
        self._batch = batch
        self._decision_prefix = decision_prefix
        self._decisions_made = 0
        self.records: list[NewDecision] = []
        self.notifications: list[dict[str, Any]] = []
        self._snapshot: _Snapshot | None = None
        self._policy_memo: dict[str, PolicyDecision] = {}

    def invoke(self, invocation: Invocation, *, now: float) -> Outcome:
        """Take ``invocation`` through the gateway at time ``now``.

        Raises:
            ExecutionError: the capability was called and failed (the failure is recorded);
                ``retryable`` says whether to try again.
        """
        telemetry = self.gateway.telemetry
        started = time.perf_counter()
        outcome = "failed"
        with span(
            telemetry.tracer,
            f"gateway {invocation.capability}",
            attributes={
                "accord.capability": invocation.capability,
                "accord.run_id": invocation.call.run_id or "",
                "accord.purpose": invocation.call.purpose or "",
            },
        ) as current:
            try:
                result = self._invoke(invocation, now=now)
                outcome = type(result).__name__.lower()
                current.set_attribute("accord.outcome", outcome)
                if isinstance(result, Refused):
                    current.set_attribute("accord.refusal_reason", result.reason)
                    telemetry.metrics.gateway_refusals.labels(
                        capability=invocation.capability, reason=result.reason
                    ).inc()
                return result
            finally:
                telemetry.metrics.gateway_decision_seconds.labels(
                    capability=invocation.capability, outcome=outcome
                ).observe(time.perf_counter() - started)

    def switched_off(self, *, journey: str | None, channel: str) -> str | None:
        """The kill switch that closes ``channel`` (or the journey) now, if one does: for a
        contact that no capability carries, such as a portal notice."""
        governance = self.gateway.governance
        if governance is None:
            return None
        self.snapshot(governance)
        return governance.flags.kill_switch(
            self.tenant, capability=None, journey=journey, channel=channel
        )

    def check(self, invocation: Invocation, *, now: float) -> Checked | Refused | Held:
        """Whether the gateway would let ``invocation`` through now (kill switch, lawful basis,
        policy), without calling anything and without a decision record: what a choice among
        possible actions asks before it proposes one. The action, when it is taken, passes the
        gateway again and is recorded then."""
        governance = self.gateway.governance
        if governance is None:
            return Checked(None, (), (), ())
        capability = self.gateway._executor.resolve(invocation.capability)
        return _Pass(self, governance, capability, invocation, now, dry=True).check()

    def _invoke(self, invocation: Invocation, *, now: float) -> Outcome:
        executor = self.gateway._executor
        governance = self.gateway.governance
        if (
            governance is not None
            and invocation.agent is not None
            and invocation.agent_tools is not None
            and invocation.capability not in invocation.agent_tools
        ):
            return self._refuse_tool(governance, invocation, now)
        capability = executor.resolve(invocation.capability)
        if governance is None:
            if invocation.before_call is not None:
                invocation.before_call()
            with _connector_span(self.gateway.telemetry.tracer, capability.name):
                output = executor.execute(capability, invocation.payload, invocation.call)
            return Executed(output, None)
        governed = _Pass(self, governance, capability, invocation, now)
        try:
            outcome = governed.run()
            assert not isinstance(outcome, Checked)
            return outcome
        finally:
            governed.stage(None)

    def snapshot(self, governance: Governance) -> _Snapshot:
        if self._snapshot is None:
            key = (self.tenant, self.subject_id)
            if self._batch is not None:
                self._snapshot = self._batch.get(governance, self.tenant, self.subject_id)
            else:
                self._snapshot = _read_snapshots(governance, [key])[key]
        return self._snapshot

    def record_rejection(
        self, invocation: Invocation, *, by: str, message: str, now: float
    ) -> str | None:
        """Record that a person rejected a call a policy held for approval; returns its id."""
        governance = self.gateway.governance
        if governance is None:
            return None
        capability = self.gateway._executor.resolve(invocation.capability)
        decision = _Pass(self, governance, capability, invocation, now)
        decision.record["rejected_by"] = by
        decision.record["approvals"] = [a.to_json() for a in invocation.approvals]
        decision._refuse("approval_rejected", message)
        return decision.decision_id

    def _refuse_tool(self, governance: Governance, invocation: Invocation, now: float) -> Refused:
        """Refuse, and record, an agent's call to a tool its spec does not allow (whether or
        not such a capability exists)."""
        decision_id = self.new_decision_id(governance)
        call = invocation.call
        allowed = ", ".join(invocation.agent_tools or ()) or "none"
        message = (
            f"agent {invocation.agent_model or invocation.agent!r} may not call "
            f"{invocation.capability!r}; its spec allows: {allowed}"
        )
        record: dict[str, Any] = {
            "capability": invocation.capability,
            "block": call.block,
            "subject": call.subject_id,
            "idempotency_key": call.idempotency_key,
            "principal": {"type": "Agent", "id": invocation.agent},
            "agent_model": invocation.agent_model,
            "input_digest": digest_any(invocation.payload),
            "message": message,
            "outcome": "refused",
            "reason": "tool_not_allowed",
        }
        self.records.append(
            NewDecision(
                decision_id=decision_id,
                capability=invocation.capability[:128],
                outcome="refused",
                reason="tool_not_allowed",
                at=now,
                record=record,
                run_id=call.run_id,
                block=call.block,
                visit=call.visit,
                attempt=call.attempt,
                subject_id=call.subject_id,
                purpose=call.purpose,
            )
        )
        return Refused("tool_not_allowed", message, decision_id)

    def new_decision_id(self, governance: Governance) -> str:
        self._decisions_made += 1
        if self._decision_prefix is None:
            return governance.new_id("dec")
        return f"{self._decision_prefix}_{self._decisions_made:04d}"

    def decide(
        self, governance: Governance, bundle: PolicyBundle | None, request: PolicyRequest
    ) -> PolicyDecision:
        """The PDP's decision, remembered for identical requests within the session."""
        # repr of JSON data is equal only for equal values; differently ordered nested maps
        # merely miss the memo
        key = repr(
            (
                request.action,
                _entity_key(request.principal),
                _entity_key(request.resource),
                sorted(request.context.items()),
            )
        )
        decision = self._policy_memo.get(key)
        if decision is None:
            decision = governance.pdp.decide(bundle, request)
            self._policy_memo[key] = decision
        return decision


class _Pass:
    """One pass through the gateway, building its decision record as it goes."""

    def __init__(
        self,
        session: GatewaySession,
        governance: Governance,
        capability: Capability,
        invocation: Invocation,
        now: float,
        *,
        dry: bool = False,
    ) -> None:
        self.session = session
        self.governance = governance
        self.capability = capability
        self.invocation = invocation
        self.call = invocation.call
        self.now = now
        self._dry = dry
        self.decision_id = "" if dry else session.new_decision_id(governance)
        self._tracer = session.gateway.telemetry.tracer
        self._stage: Span | None = None
        # purpose, journey, channel, side effect and region are in the policy context below
        self.record: dict[str, Any] = {
            "capability": capability.name,
            "block": self.call.block,
            "subject": self.call.subject_id,
            "idempotency_key": self.call.idempotency_key,
        }

    def stage(self, name: str | None) -> None:
        """End the current stage's span and, with a name, begin the next one's."""
        if self._stage is not None:
            self._stage.end()
            self._stage = None
        if name is not None and not isinstance(self._tracer, trace.NoOpTracer):
            self._stage = self._tracer.start_span(f"gateway.{name}")

    def check(self) -> Checked | Refused | Held:
        """The stages before the call, recording nothing (``dry``)."""
        assert self._dry
        try:
            outcome = self.run()
        finally:
            self.stage(None)
        assert isinstance(outcome, Checked | Refused | Held)
        if isinstance(outcome, Refused | Held):
            return replace(outcome, decision_id=None)
        return outcome

    def run(self) -> Outcome | Checked:
        tenant = self.session.tenant
        self.stage("kill_switch")
        snapshot = self.session.snapshot(self.governance)

        flag = self.governance.flags.kill_switch(
            tenant,
            capability=self.capability.name,
            journey=self.invocation.journey,
            channel=self.invocation.channel,
            agent=self.invocation.agent,
        )
        self.record["kill_switch"] = {"off": flag}
        if flag is not None:
            self._record("held", "kill_switch")
            return Held(flag, self.decision_id)

        self.stage("consent")
        categories = required_categories(self.capability, self.invocation.reads)
        check, refusal = self._lawful_basis(snapshot, categories)
        if refusal is not None:
            return refusal

        self.stage("policy")
        request = self._request(snapshot)
        if snapshot.bundle_error is not None:
            self.record["policy"] = {"allowed": False, "errors": [snapshot.bundle_error]}
            return self._refuse("policy_error", snapshot.bundle_error)
        decision = self.session.decide(self.governance, snapshot.bundle, request)
        self.record["policy"] = {
            "bundle_version": decision.bundle_version,
            "allowed": decision.allowed,
            "reason": decision.reason,
            "determining": list(decision.determining),
            "obligations": [
                {"kind": o.kind, "value": o.value, "policy": o.policy} for o in decision.obligations
            ],
            "errors": list(decision.errors),
        }
        if not decision.allowed:
            reason: RefusalReason = (
                "policy_denied" if decision.reason in ("forbid", "no_permit") else "policy_error"
            )
            return self._refuse(reason, _policy_message(decision))

        self.stage("approval")
        current = call_digest(
            self.capability.name, self.invocation.payload, self.invocation.context
        )
        # an approval given for a different call (changed input or context) does not count
        valid = [a for a in self.invocation.approvals if a.digest in (None, current)]
        approved = {role for a in valid for role in a.roles}
        self.record["approvals"] = [a.to_json() for a in valid]
        if len(valid) < len(self.invocation.approvals):
            self.record["stale_approvals"] = [
                a.to_json() for a in self.invocation.approvals if a not in valid
            ]
        wanted = [o for o in decision.obligations if o.kind == "approval"]
        missing = tuple(sorted({o.value for o in wanted} - approved))
        if self._dry:
            return Checked(
                decision.bundle_version,
                tuple(decision.determining),
                tuple((o.kind, o.value, o.policy) for o in decision.obligations),
                missing,
            )
        if missing:
            self._record("approval_required", None)
            policies = tuple(sorted({o.policy for o in wanted if o.value in missing}))
            return ApprovalRequired(missing, policies, self.decision_id)

        self.stage(None)
        self.record["input_digest"] = digest(dict(self.invocation.payload))
        executor = self.session.gateway._executor
        if self.invocation.before_call is not None:
            self.invocation.before_call()
        try:
            with _connector_span(self._tracer, self.capability.name):
                output = executor.execute(self.capability, self.invocation.payload, self.call)
        except ExecutionError as exc:
            self.record["error"] = {"type": exc.error_type, "message": exc.message}
            if isinstance(exc, CapabilityFailed):
                self.record["error"]["attempts"] = exc.attempts
                if exc.outcome_unknown:
                    self.record["error"]["outcome_unknown"] = True
            self._record("failed", None)
            raise
        redact = {o.value for o in decision.obligations if o.kind == "redact"}
        allowed = check.allowed_categories if check is not None else None
        projected, withheld = project(
            self.capability, output, allowed=allowed, reads=self.invocation.reads, redact=redact
        )
        self.record["output_digest"] = digest(output)
        self.record["withheld"] = list(withheld)
        self._record("executed", None)
        for obligation in decision.obligations:
            if obligation.kind == "notify":
                self.session.notifications.append(
                    {
                        "target": obligation.value,
                        "policy": obligation.policy,
                        "capability": self.capability.name,
                        "decision": self.decision_id,
                        "block": self.call.block,
                    }
                )
        return Executed(projected, self.decision_id, withheld)

    def _lawful_basis(
        self, snapshot: _Snapshot, categories: tuple[str, ...]
    ) -> tuple[BasisCheck | None, Refused | None]:
        self.record["categories"] = list(categories)
        if not categories and not self.capability.by_category:
            self.record["lawful_basis"] = {"required": False}
            return None, None
        if self.call.subject_id is None or snapshot.consent is None:
            return self._without_subject(snapshot, categories)
        if not self.call.purpose:
            message = (
                f"{self.capability.name!r} touches personal data "
                f"({', '.join(categories)}) but the block declares no purpose"
            )
            return None, self._refuse("purpose_missing", message)
        check = snapshot.consent.check(self.call.purpose, categories, at=self.now)
        self.record["lawful_basis"] = {
            "required": True,
            "allowed": check.allowed,
            "basis": check.basis,
            "grants": list(check.grant_ids),
            "missing": list(check.missing),
            "reason": check.reason,
            "allowed_categories": (
                sorted(check.allowed_categories) if check.allowed_categories is not None else None
            ),
        }
        if not check.allowed:
            assert check.reason is not None
            return check, self._refuse(check.reason, check.message)
        return check, None

    def _without_subject(
        self, snapshot: _Snapshot, categories: tuple[str, ...]
    ) -> tuple[BasisCheck | None, Refused | None]:
        """A call about nobody in particular (a system's export, say) may use personal data
        only under a basis the tenant configured for the purpose, never under consent: there
        is no one whose consent it could be."""
        purpose = self.call.purpose
        if purpose and categories and snapshot.bases_only is not None:
            check = snapshot.bases_only.check(purpose, categories, at=self.now)
            if check.allowed:
                self.record["lawful_basis"] = {
                    "required": True,
                    "allowed": True,
                    "basis": check.basis,
                    "grants": [],
                    "missing": [],
                    "reason": None,
                    "subject": None,
                    "allowed_categories": (
                        sorted(check.allowed_categories)
                        if check.allowed_categories is not None
                        else None
                    ),
                }
                return check, None
        message = (
            f"{self.capability.name!r} touches personal data "
            f"({', '.join(categories) or 'by category'}) but the call has no subject, and no "
            f"lawful basis configured for {purpose or 'its purpose'} covers them"
        )
        return None, self._refuse("subject_missing", message)

    def _request(self, snapshot: _Snapshot) -> PolicyRequest:
        journey = self.invocation.journey
        agent = self.invocation.agent
        if agent is not None:
            model = self.invocation.agent_model or agent
            principal = Entity("Agent", agent, {"role": "agent", "model": model})
        else:
            principal = Entity(
                "Service",
                f"journey/{journey}" if journey else "accord",
                {"role": "journey", "tier": "automated", "journey": journey},
            )
        attrs = dict(self.invocation.resource)
        if snapshot.region is not None:
            # the subject's home region comes from the identity store, not from the caller
            attrs["region"] = snapshot.region
        resource = Entity("Subject", self.call.subject_id or "anonymous", attrs)
        # the block stays out of the context: calls that differ only in where they are made
        # share one policy decision within a transition. What the gateway knows itself is laid
        # over what the journey passes, so no journey can claim a call is a read, or made
        # elsewhere, to pass a policy.
        context: dict[str, Any] = dict(self.invocation.context)
        if self.invocation.channel is not None or "channel" not in context:
            context["channel"] = self.invocation.channel
        context.update(
            {
                "purpose": self.call.purpose,
                "journey": journey,
                "time": int(self.now),
                "side_effect": self.capability.side_effect,
                "region": self.capability.region,
                "processing_region": self.governance.region,
            }
        )
        self.record["principal"] = {"type": principal.type, "id": principal.id}
        self.record["resource"] = {"type": resource.type, "id": resource.id}
        self.record["context"] = {k: v for k, v in context.items() if v is not None}
        return PolicyRequest(principal, self.capability.name, resource, context)

    def _refuse(self, reason: RefusalReason, message: str) -> Refused:
        self.record["message"] = message
        self._record("refused", reason)
        return Refused(reason, message, self.decision_id)

    def _record(self, outcome: str, reason: str | None) -> None:
        self.record["outcome"] = outcome
        self.record["reason"] = reason
        if self._dry:
            return
        self.session.records.append(
            NewDecision(
                decision_id=self.decision_id,
                capability=self.capability.name,
                outcome=outcome,
                reason=reason,
                at=self.now,
                record=self.record,
                run_id=self.call.run_id,
                block=self.call.block,
                visit=self.call.visit,
                attempt=self.call.attempt,
                subject_id=self.call.subject_id,
                purpose=self.call.purpose,
            )
        )


def _connector_span(tracer: Tracer, capability: str) -> AbstractContextManager[Span]:
    """The span of the connector call itself; HTTP connectors send its ``traceparent``."""
    return span(
        tracer,
        f"connector {capability}",
        kind=SpanKind.CLIENT,
        attributes={"accord.capability": capability},
    )


def required_categories(capability: Capability, reads: Iterable[str]) -> tuple[str, ...]:
    """The categories a call needs a lawful basis for.

    What the capability returns (narrowed to what the caller reads, if it says) and everything it
    writes: a caller cannot narrow away what the call sends to its system.
    """
    returned = {*capability.reads, *capability.fields.values()}
    wanted = set(reads)
    if capability.by_category:
        # whatever categories the output holds, the caller's are the ones it asks a basis for
        return tuple(sorted(wanted | set(capability.writes)))
    if wanted:
        returned &= wanted
    return tuple(sorted(returned | set(capability.writes)))


def project(
    capability: Capability,
    output: Mapping[str, Any],
    *,
    allowed: frozenset[str] | None,
    reads: Iterable[str] = (),
    redact: Iterable[str] = (),
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``output`` without the fields whose category the purpose, the caller or a policy withholds.

    A field is withheld when its category is not among ``allowed`` (``None``: any), not among
    ``reads`` when the caller narrowed them, or named (by field or category) in ``redact``. The
    fields of a capability whose output is grouped ``by_category`` are the categories
    themselves, whatever they are: one the purpose does not allow never passes.
    """
    wanted = set(reads)
    redacted = set(redact)
    withheld = []
    fields = {name: name for name in output} if capability.by_category else capability.fields
    for name, category in fields.items():
        if name not in output:
            continue
        if (
            (allowed is not None and category not in allowed)
            or (wanted and category not in wanted)
            or category in redacted
            or name in redacted
        ):
            withheld.append(name)
    if not withheld:
        return dict(output), ()
    return {k: v for k, v in output.items() if k not in withheld}, tuple(sorted(withheld))


def _entity_key(entity: Entity) -> tuple[Any, ...]:
    return (entity.type, entity.id, sorted(entity.attrs.items()), entity.parents)


def _policy_message(decision: PolicyDecision) -> str:
    if decision.reason == "no_bundle":
        return "no policy bundle is deployed for this tenant, so nothing is permitted"
    if decision.reason == "error":
        return "the policy could not be evaluated: " + "; ".join(decision.errors[:3])
    if decision.reason == "forbid":
        return f"forbidden by policy {', '.join(decision.determining)}"
    return "no policy permits this call"
