"""Identity, context and retention, wired into the gateway and the runtime.

The context store is reached only through the ``context.read`` capability, so every read names
a purpose, passes the gateway (kill switch, lawful basis, policy) and comes back projected to
the categories the purpose allows. A possible link becomes a run of the built-in
``identity_review`` journey: its ``approve`` block puts the question in the review inbox, and
the person's answer merges the subjects (``identity.merge``) or keeps them apart
(``identity.keep_apart``), each through the gateway like any other action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from accord.connectors import CallContext, Capability, CapabilityRegistry
from accord.core import TenantId
from accord.errors import CapabilityFailed
from accord.identity import ContextStore, Resolver, ResolveReport, SourceRecord
from accord.service._conversations import SAY
from accord.service._direct import DirectResult
from accord.storage import identity as stored

REVIEW_JOURNEY = "identity_review"
CONTEXT_READ = "context.read"

REVIEW_JOURNEY_TEXT = """\
journey: identity_review
description: >
  Two subjects may be the same person. A person looks at the evidence (which fields agree, how
  strongly) and merges them, or rejects to keep them apart; either answer is final for the pair
  and recorded with the reviewer's reason.
purpose: dpv:CustomerRelationshipManagement
input:
  candidate_id: string
  other_subject: string
  probability: number
  rationale: string
blocks:
  - id: same_person
    kind: approve
    role: identity
    queue: identity
    title: Same person? Approve to merge the two subjects, reject to keep them apart
    recommend:
      decision: 'input.probability >= 0.7 ? "approve" : "reject"'
      value: {candidate_id: input.candidate_id, other_subject: input.other_subject}
      confidence: input.probability
      rationale: input.rationale
      source: {kind: '"rule"', id: '"identity-match-model"', version: '"1"'}
    on: {reject: keep_apart}
  - id: merge
    kind: task
    capability: identity.merge
    input:
      candidate_id: input.candidate_id
      by: steps.same_person.by
      reason: steps.same_person.reason
  - id: merged
    kind: end
    outcome: merged
    output: {subject: steps.merge.subject_id, merge_id: steps.merge.merge_id}
  - id: keep_apart
    kind: task
    capability: identity.keep_apart
    input:
      candidate_id: input.candidate_id
      by: steps.same_person.by
      reason: steps.same_person.reason
  - {id: kept_apart, kind: end, outcome: kept_apart}
"""


class ContextReadRequest(BaseModel):
    """What a context read asks for; the subject is the run's (or the direct call's)."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = Field(
        None, description="only these categories (each still needs the purpose's basis)"
    )
    signals: int = Field(50, ge=0, le=200, description="newest signals per category")


class ContextReadResult(BaseModel):
    """``{category: {"attributes": {...}, "signals": [...]}}``, one key per category."""

    model_config = ConfigDict(extra="allow")


class CandidateDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate_id: str = Field(min_length=1, max_length=64)
    by: str | None = Field(None, max_length=128)
    reason: str | None = Field(None, max_length=2000)


class CandidateOutcome(BaseModel):
    candidate_id: str
    status: str
    subject_id: str
    merge_id: str | None = None


def deployment_registry(registry: CapabilityRegistry) -> CapabilityRegistry:
    """The deployment's own capabilities under Accord's built-in layers (context, identity,
    conversations, experiments, offers) of an instance's registry."""
    while registry.over is not None and any(
        registry.holds(name) for name in (CONTEXT_READ, SAY, "experiment.assign", "offer.record")
    ):
        registry = registry.over
    return registry


def identity_capabilities(
    resolver: Resolver, store: ContextStore, over: CapabilityRegistry
) -> CapabilityRegistry:
    """Accord's built-in capabilities, over the deployment's registry.

    Given another instance's registry (built-ins over a deployment's, conversations' over
    these), the new built-ins sit over the same deployment registry, bound to this instance's
    stores.
    """
    registry = CapabilityRegistry(over=deployment_registry(over))

    def read_context(request: ContextReadRequest, ctx: CallContext) -> dict[str, Any]:
        if ctx.subject_id is None:
            return {}
        return store.read(
            ctx.tenant_id, ctx.subject_id, categories=request.categories, signals=request.signals
        )

    def merge(request: CandidateDecision, ctx: CallContext) -> CandidateOutcome:
        by, reason = _who(request, ctx)
        candidate = _candidate(resolver, ctx.tenant_id, request.candidate_id)
        merged = resolver.merge_candidate(ctx.tenant_id, request.candidate_id, by=by, reason=reason)
        if merged is None:
            # decided before (a retried call, or a person's direct decision): report it as is
            candidate = _candidate(resolver, ctx.tenant_id, request.candidate_id)
            subject = resolver.current_subject(ctx.tenant_id, candidate.subject_id)
            merges = resolver.show(ctx.tenant_id, subject).merges
            earlier = [m.merge_id for m in merges if m.candidate_id == candidate.candidate_id]
            return CandidateOutcome(
                candidate_id=candidate.candidate_id,
                status=candidate.status,
                subject_id=subject,
                merge_id=earlier[0] if earlier else None,
            )
        return CandidateOutcome(
            candidate_id=candidate.candidate_id,
            status="merged",
            subject_id=merged.into_subject,
            merge_id=merged.merge_id,
        )

    def keep_apart(request: CandidateDecision, ctx: CallContext) -> CandidateOutcome:
        by, reason = _who(request, ctx)
        resolver.keep_apart(ctx.tenant_id, request.candidate_id, by=by, reason=reason)
        candidate = _candidate(resolver, ctx.tenant_id, request.candidate_id)
        return CandidateOutcome(
            candidate_id=candidate.candidate_id,
            status=candidate.status,
            subject_id=candidate.subject_id,
        )

    registry.add(
        Capability(
            name=CONTEXT_READ,
            input_model=ContextReadRequest,
            output_model=ContextReadResult,
            handler=read_context,
            side_effect="read",
            by_category=True,
            description="The subject's context, grouped by data category",
            source="accord.service:context.read",
        )
    )
    for name, handler, what in (
        ("identity.merge", merge, "Merge a possible link's two subjects"),
        ("identity.keep_apart", keep_apart, "Keep a possible link's two subjects apart"),
    ):
        registry.add(
            Capability(
                name=name,
                input_model=CandidateDecision,
                output_model=CandidateOutcome,
                handler=handler,
                side_effect="write",
                idempotent=True,
                description=what,
                source=f"accord.service:{name}",
            )
        )
    return registry


def review_rationale(candidate: stored.CandidateRow) -> str:
    """The evidence of a possible link in words: which fields agree, and how strongly."""
    levels: dict[str, int | None] = candidate.evidence.get("levels", {})
    weights: dict[str, float] = candidate.evidence.get("weights", {})
    agree = sorted(f for f, w in weights.items() if w > 0)
    differ = sorted(f for f, w in weights.items() if w < 0)
    missing = sorted(f for f, level in levels.items() if level is None)
    parts = [f"match probability {candidate.probability:.2f}"]
    if agree:
        parts.append("agree: " + ", ".join(agree))
    if differ:
        parts.append("differ: " + ", ".join(differ))
    if missing:
        parts.append("missing on one side: " + ", ".join(missing))
    return "; ".join(parts)


def _who(request: CandidateDecision, ctx: CallContext) -> tuple[str, str]:
    by = request.by or f"run {ctx.run_id}"
    reason = (request.reason or "").strip() or f"decided in review of run {ctx.run_id}"
    return by, reason


def _candidate(resolver: Resolver, tenant: str, candidate_id: str) -> stored.CandidateRow:
    with resolver.db.read() as connection:
        candidate = stored.get_candidate(connection, TenantId(tenant), candidate_id)
    if candidate is None:
        raise CapabilityFailed(
            f"no possible link {candidate_id!r}",
            error_type="CandidateNotFound",
            retryable=False,
            hint="accord identity candidates lists them",
        )
    return candidate


@dataclass(frozen=True, slots=True)
class SyncProblem:
    """A request whose record could not be read: the call was refused, held or failed, or
    its answer lacked the record's id."""

    request: dict[str, Any]
    status: str
    reason: str | None
    message: str
    decision_id: str | None = None


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What reading records from a system and resolving them did."""

    resolved: ResolveReport
    problems: tuple[SyncProblem, ...]


def read_source_records(
    invoke: Callable[[Mapping[str, Any]], DirectResult],
    requests: Sequence[Mapping[str, Any]],
    *,
    source: str,
    id_field: str,
    region_field: str | None,
    region: str | None,
) -> tuple[list[SourceRecord], list[SyncProblem]]:
    """Each request's answer as a source record; every request that gave none, and why."""
    records: list[SourceRecord] = []
    problems: list[SyncProblem] = []
    for request in requests:
        result = invoke(request)
        if result.status != "executed" or result.output is None:
            problems.append(
                SyncProblem(
                    dict(request), result.status, result.reason, result.message, result.decision_id
                )
            )
            continue
        output = result.output
        record_id = output.get(id_field)
        if record_id is None or str(record_id) == "":
            problems.append(
                SyncProblem(
                    dict(request),
                    "no_id",
                    None,
                    f"the answer has no {id_field!r}; its fields: {', '.join(sorted(output))}",
                    result.decision_id,
                )
            )
            continue
        found_region = output.get(region_field) if region_field else None
        records.append(
            SourceRecord(
                source,
                str(record_id),
                {k: v for k, v in output.items() if k != id_field},
                str(found_region) if found_region is not None else region,
            )
        )
    return records, problems
