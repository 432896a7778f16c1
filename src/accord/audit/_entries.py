"""Ledger entry kinds and their builders.

An entry has a public part (``body``: ids, versions, outcomes, digests; what an auditor needs to
follow the case without seeing anyone's data) and a personal part (values a subject could be
identified by: inputs, outputs, policy context, reasons), which the ledger seals under the
subject's key. Builders here are the one place each kind's shape is decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from accord.storage import HistoryEvent, NewDecision

EntryKind = Literal[
    "run.transition",
    "gateway.decision",
    "connector.call",
    "consent.change",
    "policy.deploy",
    "flag.change",
    "journey.deploy",
    "human.decision",
    "review.opened",
    "review.assigned",
    "review.escalated",
    "review.refused",
    "review.info",
    "confirmation.answered",
    "signal",
    "agent.output",
    "agent.deploy",
    "agent.rollout",
    "agent.assigned",
    "compensation",
    "subject.erased",
    "subject.erasure_refused",
    "subject.hold",
    "subject.hold_released",
    "identity.resolved",
    "identity.candidate",
    "identity.merged",
    "identity.split",
    "identity.model",
    "context.recorded",
    "retention.rule",
    "retention.applied",
    "ledger.key",
    "experiment.change",
    "experiment.assigned",
    "offer.catalogue",
    "watch.proposed",
    "watch.decided",
]
ENTRY_KINDS: tuple[str, ...] = get_args(EntryKind)
ReviewEventKind = Literal[
    "review.opened", "review.assigned", "review.escalated", "review.refused", "review.info"
]
RUN_ENDINGS = ("run.completed", "run.failed", "run.cancelled", "run.compensated")
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry to append: what happened, when, to which run and subject.

    ``body`` must hold only JSON scalars, lists and objects with integers inside the IEEE
    double range (RFC 8785); ``personal`` may hold any JSON value and is sealed when the entry
    names a subject.
    """

    kind: EntryKind
    at: float
    body: dict[str, Any]
    run_id: str | None = None
    subject_id: str | None = None
    personal: Any = None


def run_transition(
    *,
    run_id: str,
    subject_id: str | None,
    seq: int,
    event: HistoryEvent,
    at: float,
    worker: str | None,
    run_input: dict[str, Any] | None = None,
) -> Entry:
    """One history event of a run; ``run.started`` also carries the run's input."""
    personal: dict[str, Any] = {"detail": event.detail}
    if run_input is not None:
        personal["input"] = run_input
    body: dict[str, Any] = {
        "seq": seq,
        "event": event.kind,
        "block": event.block,
        "visit": event.visit,
        "attempt": event.attempt,
        "worker": worker,
    }
    if event.kind == "run.started":
        body["journey"] = event.detail.get("journey")
        body["version"] = event.detail.get("version")
    elif event.kind in RUN_ENDINGS:
        # how a run ended stays readable after its subject is erased
        body["outcome"] = event.detail.get("outcome")
        body["failed"] = event.detail.get("error") is not None
    return Entry(
        "run.transition",
        at,
        body,
        run_id=run_id,
        subject_id=subject_id,
        personal=personal,
    )


_CALLED = ("executed", "failed")


def gateway_decision(decision: NewDecision) -> list[Entry]:
    """The decision record of one gateway pass and, when the connector was called, the call.

    The public part keeps the evidence an auditor checks (policy bundle version, determining
    policies, obligations, lawful basis and the consent grants used); the full record, with
    the policy context and principal, is personal.
    """
    record = decision.record
    policy = record.get("policy") or {}
    basis = record.get("lawful_basis") or {}
    body = {
        "decision_id": decision.decision_id,
        "block": decision.block,
        "visit": decision.visit,
        "attempt": decision.attempt,
        "capability": decision.capability,
        "purpose": decision.purpose,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "categories": list(record.get("categories") or []),
        "policy": {
            "bundle_version": policy.get("bundle_version"),
            "allowed": policy.get("allowed"),
            "determining": list(policy.get("determining") or []),
            "obligations": [
                {"kind": o.get("kind"), "policy": o.get("policy")}
                for o in policy.get("obligations") or []
            ],
        },
        "lawful_basis": {
            "basis": basis.get("basis"),
            "grants": list(basis.get("grants") or []),
        },
    }
    entries = [
        Entry(
            "gateway.decision",
            decision.at,
            body,
            run_id=decision.run_id,
            subject_id=decision.subject_id,
            personal=record,
        )
    ]
    if decision.outcome in _CALLED:
        error = record.get("error") or {}
        entries.append(
            Entry(
                "connector.call",
                decision.at,
                {
                    "decision_id": decision.decision_id,
                    "capability": decision.capability,
                    "idempotency_key": record.get("idempotency_key"),
                    "input_digest": record.get("input_digest"),
                    "output_digest": record.get("output_digest"),
                    "result": "ok" if decision.outcome == "executed" else "error",
                    "error_type": error.get("type"),
                },
                run_id=decision.run_id,
                subject_id=decision.subject_id,
                personal={"error": error} if error else None,
            )
        )
    return entries


def consent_change(
    *,
    event_id: str,
    subject_id: str | None,
    grant_id: str | None,
    kind: str,
    at: float,
    actor: str,
    detail: dict[str, Any],
) -> Entry:
    """A grant, withdrawal or lawful-basis change."""
    return Entry(
        "consent.change",
        at,
        {
            "event_id": event_id,
            "grant_id": grant_id,
            "change": kind,
            "actor": actor,
            "purpose": detail.get("purpose"),
        },
        subject_id=subject_id,
        personal=detail,
    )


def policy_deploy(
    *, version: int, digest: str, source_name: str, actor: str, at: float, policy_ids: list[str]
) -> Entry:
    return Entry(
        "policy.deploy",
        at,
        {
            "version": version,
            "digest": digest,
            "source_name": source_name,
            "actor": actor,
            "policies": policy_ids,
        },
    )


def flag_change(
    *, change_id: str, key: str, value: Any, previous: Any, reason: str, actor: str, at: float
) -> Entry:
    return Entry(
        "flag.change",
        at,
        {
            "change_id": change_id,
            "key": key,
            "value": value,
            "previous": previous,
            "reason": reason,
            "actor": actor,
        },
    )


def experiment_change(
    *,
    experiment: str,
    version: int,
    change: str,
    actor: str,
    reason: str,
    detail: dict[str, Any],
    at: float,
) -> Entry:
    """An experiment created, shipped or stopped (by a person, or on a guardrail breach), with
    the figures the decision rested on."""
    return Entry(
        "experiment.change",
        at,
        {
            "experiment": experiment,
            "version": version,
            "change": change,
            "actor": actor,
            "reason": reason,
            "detail": detail,
        },
    )


def experiment_assigned(
    *, experiment: str, version: int, variant: str, subject_id: str, at: float
) -> Entry:
    """A subject's sticky assignment to one arm of an experiment."""
    return Entry(
        "experiment.assigned",
        at,
        {"experiment": experiment, "version": version, "variant": variant},
        subject_id=subject_id,
    )


def offer_catalogue(*, catalogue: str, version: int, digest: str, actor: str, at: float) -> Entry:
    """An offer catalogue deployed: which version next-best-action choices read from now."""
    return Entry(
        "offer.catalogue",
        at,
        {"catalogue": catalogue, "version": version, "digest": digest, "actor": actor},
    )


def watch_event(
    kind: Literal["watch.proposed", "watch.decided"],
    *,
    proposal_id: str,
    at: float,
    body: dict[str, Any],
) -> Entry:
    """A change the degradation watch proposed (with the finding it rests on), or a person's
    decision on it (with the reason and what accepting applied). About no subject: the
    figures are counts over many runs."""
    return Entry(kind, at, {"proposal": proposal_id, **body})


def journey_deploy(
    *, name: str, version: int, digest: str, source_name: str, actor: str, at: float
) -> Entry:
    return Entry(
        "journey.deploy",
        at,
        {
            "journey": name,
            "version": version,
            "digest": digest,
            "source_name": source_name,
            "actor": actor,
        },
    )


def human_decision(
    *,
    signal_id: str | None,
    run_id: str,
    subject_id: str | None,
    block: str,
    payload: dict[str, Any],
    at: float,
) -> Entry:
    """A person's decision on an approval or escalation.

    Decisions made on a review item also name the item, the packet version decided on, the
    outcome against the recommendation (accepted, edited, rejected, overridden) and the
    recommender's version; the recommendation itself, the reason and any edited value are
    personal.
    """
    body = {
        "signal_id": signal_id,
        "block": block,
        "decision": payload.get("decision"),
        "by": payload.get("by"),
        "visit": payload.get("visit"),
    }
    for key in ("item", "packet_version", "outcome", "source", "decision_id"):
        if payload.get(key) is not None:
            body[key] = payload[key]
    personal: dict[str, Any] = {"reason": payload.get("reason"), "data": payload.get("data")}
    for key in ("value", "recommendation", "override_outcome"):
        if payload.get(key) is not None:
            personal[key] = payload[key]
    return Entry(
        "human.decision", at, body, run_id=run_id, subject_id=subject_id, personal=personal
    )


def review_event(
    kind: ReviewEventKind,
    *,
    item_id: str,
    run_id: str,
    subject_id: str | None,
    at: float,
    body: dict[str, Any],
    personal: Any = None,
) -> Entry:
    """A review item's life: opened (with its packet), assigned, escalated past its SLA,
    a refused attempt to act on it, information asked for or given."""
    return Entry(
        kind,
        at,
        {"item": item_id, **body},
        run_id=run_id,
        subject_id=subject_id,
        personal=personal,
    )


def confirmation_answered(
    *,
    confirmation_id: str,
    run_id: str,
    subject_id: str | None,
    block: str,
    answer: str,
    channel: str,
    signal_id: str,
    at: float,
) -> Entry:
    """A subject's answer to a proposal (confirmed or refused), and where it came from."""
    return Entry(
        "confirmation.answered",
        at,
        {
            "confirmation": confirmation_id,
            "answer": answer,
            "channel": channel,
            "block": block,
            "signal_id": signal_id,
        },
        run_id=run_id,
        subject_id=subject_id,
    )


def signal(
    *,
    signal_id: str,
    run_id: str | None,
    subject_id: str | None,
    kind: str,
    name: str,
    correlation_key: str | None,
    payload: dict[str, Any],
    at: float,
) -> Entry:
    """An external event or a cancellation request, as received."""
    return Entry(
        "signal",
        at,
        {
            "signal_id": signal_id,
            "signal_kind": kind,
            "name": name,
            "parked": run_id is None,
            "correlated": correlation_key is not None,
        },
        run_id=run_id,
        subject_id=subject_id,
        personal={"payload": payload, "correlation_key": correlation_key},
    )


def agent_output(
    *,
    run_id: str,
    subject_id: str | None,
    block: str,
    agent: str,
    version: int,
    model: str,
    prompt_digest: str,
    confidence: float,
    band: Literal["auto", "confirm", "escalate"],
    output_digest: str,
    output: Any,
    at: float,
    detail: dict[str, Any] | None = None,
    prompt: dict[str, Any] | None = None,
) -> Entry:
    """What an agent proposed, with the model and prompt that produced it and its band.

    ``detail`` holds the public facts (arm, rollout, validity, reason, usage, cost, tool calls
    by name and outcome); ``prompt`` the exact redacted prompt, sealed with the output.
    """
    body: dict[str, Any] = {
        "block": block,
        "agent": agent,
        "version": version,
        "model": model,
        "prompt_digest": prompt_digest,
        "confidence": confidence,
        "band": band,
        "output_digest": output_digest,
    }
    if detail:
        body.update(detail)
    personal: dict[str, Any] = {"output": output}
    if prompt is not None:
        personal["prompt"] = prompt
    return Entry("agent.output", at, body, run_id=run_id, subject_id=subject_id, personal=personal)


def agent_deploy(
    *,
    name: str,
    version: int,
    digest: str,
    prompt_digest: str,
    models: dict[str, str],
    source_name: str,
    actor: str,
    at: float,
) -> Entry:
    return Entry(
        "agent.deploy",
        at,
        {
            "agent": name,
            "version": version,
            "digest": digest,
            "prompt_digest": prompt_digest,
            "models": dict(models),
            "source_name": source_name,
            "actor": actor,
        },
    )


def agent_rollout(
    *,
    rollout_id: str,
    agent: str,
    change: str,
    state: dict[str, Any],
    reason: str | None,
    actor: str,
    at: float,
) -> Entry:
    """A rollout started, moved to a new percentage, rolled back, was promoted or stopped."""
    return Entry(
        "agent.rollout",
        at,
        {
            "rollout_id": rollout_id,
            "agent": agent,
            "change": change,
            "state": state,
            "reason": reason,
            "actor": actor,
        },
    )


def agent_assigned(
    *,
    run_id: str,
    subject_id: str | None,
    block: str,
    rollout_id: str,
    agent: str,
    arm: str,
    version: int,
    bucket: int,
    percent: float,
    at: float,
) -> Entry:
    """Which arm of a rollout a subject's run was sent to, and the sticky bucket why."""
    return Entry(
        "agent.assigned",
        at,
        {
            "block": block,
            "rollout_id": rollout_id,
            "agent": agent,
            "arm": arm,
            "version": version,
            "bucket": bucket,
            "percent": percent,
        },
        run_id=run_id,
        subject_id=subject_id,
    )


def compensation(
    *,
    run_id: str,
    subject_id: str | None,
    block: str,
    capability: str,
    decision_id: str | None,
    outcome: Literal["compensated", "failed", "escalated"],
    at: float,
    detail: dict[str, Any] | None = None,
) -> Entry:
    """A compensating call run because the journey failed after a side effect."""
    return Entry(
        "compensation",
        at,
        {
            "block": block,
            "capability": capability,
            "decision_id": decision_id,
            "outcome": outcome,
        },
        run_id=run_id,
        subject_id=subject_id,
        personal=detail,
    )


def subject_event(
    kind: Literal[
        "subject.erased", "subject.erasure_refused", "subject.hold", "subject.hold_released"
    ],
    *,
    subject_id: str,
    actor: str,
    at: float,
    body: dict[str, Any] | None = None,
) -> Entry:
    """An erasure, a refused erasure or a legal hold change. Never personal: after an erasure
    nothing could be decrypted, and the record of it must stay readable."""
    return Entry(kind, at, {"actor": actor, **(body or {})}, subject_id=subject_id)


def ledger_key(*, key_id: str, public_key: str, previous: str | None, at: float) -> Entry:
    """A signing key's first use on this log: the heads after it are signed by ``key_id``."""
    return Entry(
        "ledger.key",
        at,
        {"key_id": key_id, "public_key": public_key, "previous_key_id": previous},
    )


IdentityKind = Literal[
    "identity.resolved",
    "identity.candidate",
    "identity.merged",
    "identity.split",
    "identity.model",
    "context.recorded",
    "retention.rule",
    "retention.applied",
]


def identity_event(
    kind: IdentityKind,
    *,
    at: float,
    body: dict[str, Any],
    subject_id: str | None = None,
    personal: Any = None,
) -> Entry:
    """A change to who is who, to what the context store holds, or to how long it keeps it.

    ``body`` holds ids, counts, categories, probabilities and digests, never a record's values;
    ``personal`` (sealed under the subject's key) may hold the per-field evidence of a match.
    """
    return Entry(kind, at, body, subject_id=subject_id, personal=personal)
