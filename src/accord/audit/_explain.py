"""Explanation artifacts: why each significant decision of a run came out as it did.

Built from the ledger alone, so every statement points at the entries that prove it. A
significant decision is a gateway decision (with the consent and policy evidence behind it), a
decision table's result, a branch taken, a person's decision (override and reason included), an
agent's output (model, prompt, confidence, band), an escalation, and each step of undoing a
failed run's side effects (compensation). A refusal is the gateway decision that refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from accord.audit._ledger import Ledger
from accord.audit._replay import ReplayedRun, replay_run
from accord.audit._shredding import Erased

DecisionKind = Literal[
    "gateway", "rules", "choice", "offer", "human", "agent", "escalation", "compensation"
]


@dataclass(frozen=True, slots=True)
class ExplainedDecision:
    """One significant decision, in the words and fields an auditor reads.

    Attributes:
        kind: what decided: the gateway, a decision table, a branch, a person, an agent, an
            escalation, or a step of compensation.
        summary: one sentence for a person.
        facts: the decision record's fields: input summary, systems consulted, policy bundle
            version and determining policies, consent used, model and prompt, confidence and
            band, outcome, human override and reason (whichever apply).
        evidence: ledger indexes of the entries this explanation rests on.
    """

    kind: DecisionKind
    at: float
    block: str | None
    summary: str
    facts: dict[str, Any]
    evidence: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at,
            "block": self.block,
            "summary": self.summary,
            "facts": self.facts,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """A run's story: what it was, how it ended, and every significant decision on the way."""

    run: ReplayedRun
    decisions: list[ExplainedDecision]

    def to_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "run_id": run.run_id,
            "tenant": run.tenant_id,
            "journey": run.journey,
            "version": run.version,
            "subject": run.subject_id,
            "status": run.status,
            "outcome": run.outcome,
            "error": run.error,
            "erased": run.erased,
            "decisions": [d.to_json() for d in self.decisions],
            "ledger_entries": [e.index for e in run.entries],
        }


def explain_run(ledger: Ledger, tenant: str, run_id: str) -> Explanation:
    """The explanation of every significant decision of a run.

    Raises:
        RunNotFound: the ledger holds nothing about the run.
    """
    run = replay_run(ledger, tenant, run_id)
    explained: list[ExplainedDecision] = []
    calls = {e.body.get("decision_id"): e for e in run.entries if e.kind == "connector.call"}
    approvals: dict[str, dict[str, Any]] = {}
    for entry in run.entries:
        body = entry.body
        personal = entry.personal if isinstance(entry.personal, dict) else {}
        erased = isinstance(entry.personal, Erased)
        if entry.kind == "gateway.decision":
            call = calls.get(body.get("decision_id"))
            call_index = None if call is None else call.index
            explained.append(_gateway(entry.index, entry.at, body, personal, call_index))
        elif entry.kind == "human.decision":
            approvals[body.get("block") or ""] = body
            facts = {
                "decision": body.get("decision"),
                "by": body.get("by"),
                "reason": "(erased)" if erased else personal.get("reason"),
                "data": None if erased else personal.get("data"),
            }
            for key in ("item", "packet_version", "outcome", "source"):
                if key in body:
                    facts[key] = body[key]
            for key in ("value", "recommendation", "override_outcome"):
                if key in personal:
                    facts[key] = "(erased)" if erased else personal[key]
            override = body.get("decision") == "override"
            recommended = personal.get("recommendation") if not erased else None
            summary = (
                f"{body.get('by')} decided {body.get('decision')!r} at {body.get('block')}"
                + (f": {facts['reason']}" if facts["reason"] else "")
                + (" (an override of the recommendation)" if override else "")
            )
            if isinstance(recommended, dict) and recommended.get("decision"):
                summary += f"; recommended {recommended.get('decision')!r}"
                source = recommended.get("source")
                if isinstance(source, dict):
                    summary += (
                        f" by {source.get('kind')} {source.get('id')} v{source.get('version')}"
                    )
            if "packet_version" in body:
                summary += f" (packet v{body['packet_version']})"
            explained.append(
                ExplainedDecision(
                    "human", entry.at, body.get("block"), summary, facts, [entry.index]
                )
            )
        elif entry.kind == "agent.output":
            explained.append(
                ExplainedDecision(
                    "agent",
                    entry.at,
                    body.get("block"),
                    f"agent {body.get('agent')} v{body.get('version')} ({body.get('model')}) "
                    f"proposed with confidence {body.get('confidence')}: band "
                    f"{body.get('band')}",
                    {
                        "agent": body.get("agent"),
                        "version": body.get("version"),
                        "model": body.get("model"),
                        "prompt_digest": body.get("prompt_digest"),
                        "confidence": body.get("confidence"),
                        "band": body.get("band"),
                        "output": None if erased else personal.get("output"),
                    },
                    [entry.index],
                )
            )
        elif entry.kind == "run.transition":
            found = _transition(entry.index, entry.at, body, personal.get("detail") or {})
            if found is not None:
                explained.append(found)
    return Explanation(run, explained)


_GATEWAY_VERBS = {
    "executed": "the gateway allowed and called {cap}",
    "failed": "the gateway allowed {cap}, whose call failed,",
    "refused": "the gateway refused {cap}",
    "held": "the gateway held {cap} (a kill switch was off)",
    "approval_required": "the gateway required an approval before {cap}",
}


def _gateway(
    index: int, at: float, body: dict[str, Any], record: dict[str, Any], call: int | None
) -> ExplainedDecision:
    policy = body.get("policy") or {}
    basis = body.get("lawful_basis") or {}
    outcome = body.get("outcome")
    reason = body.get("reason")
    capability = body.get("capability")
    determining = policy.get("determining") or []
    parts = [
        _GATEWAY_VERBS.get(str(outcome), "the gateway decided {outcome} for {cap}").format(
            cap=capability, outcome=outcome
        )
    ]
    if reason:
        parts.append(f"({reason})")
    if policy.get("bundle_version") is not None:
        parts.append(
            f"under policy bundle v{policy['bundle_version']}"
            + (f", decided by {', '.join(determining)}" if determining else "")
        )
    if basis.get("basis"):
        grants = basis.get("grants") or []
        parts.append(
            f"on the basis of {basis['basis']}"
            + (f" (grants {', '.join(grants)})" if grants else "")
        )
    facts = {
        "decision_id": body.get("decision_id"),
        "capability": capability,
        "purpose": body.get("purpose"),
        "categories": body.get("categories"),
        "systems_consulted": [capability],
        "policy_bundle_version": policy.get("bundle_version"),
        "determining_policies": determining,
        "obligations": policy.get("obligations"),
        "consent_used": basis,
        "outcome": outcome,
        "reason": reason,
        "input_summary": {
            "context": record.get("context"),
            "input_digest": record.get("input_digest"),
        },
        "approvals": record.get("approvals"),
        "message": record.get("message"),
    }
    evidence = [index] if call is None else [index, call]
    return ExplainedDecision("gateway", at, body.get("block"), " ".join(parts), facts, evidence)


def _transition(
    index: int, at: float, body: dict[str, Any], detail: dict[str, Any]
) -> ExplainedDecision | None:
    event = body.get("event")
    block = body.get("block")
    if event == "decision.made":
        return ExplainedDecision(
            "rules",
            at,
            block,
            f"decision table {block} matched rules {detail.get('rules')} and gave "
            f"{detail.get('output')}",
            {"rules": detail.get("rules"), "output": detail.get("output")},
            [index],
        )
    if event == "choice.taken":
        return ExplainedDecision(
            "choice",
            at,
            block,
            f"{block} took "
            + (
                f"choice {detail['choice'] + 1}"
                if isinstance(detail.get("choice"), int)
                else "its default"
            )
            + f" to {detail.get('next')}",
            {"choice": detail.get("choice"), "next": detail.get("next")},
            [index],
        )
    if event == "offer.chosen":
        found = detail.get("output")
        output: dict[str, Any] = found if isinstance(found, dict) else {}
        explanation = output.get("explanation")
        chosen = detail.get("offer")
        summary = (
            f"offer block {block} chose {chosen!r} from catalogue {detail.get('catalogue')} "
            f"v{detail.get('version')} on {output.get('channel')} by {output.get('method')}"
            + (" (explored)" if output.get("explored") else "")
            if chosen
            else f"offer block {block} found nothing to offer from catalogue "
            f"{detail.get('catalogue')} v{detail.get('version')}"
        )
        return ExplainedDecision(
            "offer",
            at,
            block,
            summary,
            {
                "offer": chosen,
                "channel": output.get("channel"),
                "reason": output.get("reason"),
                "explanation": explanation,
            },
            [index],
        )
    if event is not None and event.startswith("compensation."):
        return _compensation(index, at, str(event), block, detail)
    if event == "escalated":
        return ExplainedDecision(
            "escalation",
            at,
            block,
            f"{block} escalated to queue {detail.get('queue')}: {detail.get('reason')}",
            {"queue": detail.get("queue"), "reason": detail.get("reason")},
            [index],
        )
    return None


def _compensation(
    index: int, at: float, event: str, block: str | None, detail: dict[str, Any]
) -> ExplainedDecision | None:
    capability = detail.get("capability")
    found = detail.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    if event == "compensation.started":
        steps = detail.get("steps") or []
        summary = (
            f"the run failed ({error.get('type')}: {error.get('message')}) after side effects; "
            f"it undoes {len(steps)} of them, the last first: "
            + ", ".join(f"{s.get('capability')} for {s.get('block')}" for s in steps)
        )
        facts: dict[str, Any] = {"error": detail.get("error"), "steps": steps}
    elif event == "compensation.completed":
        summary = f"{capability} undid {block}" + (
            f" (decision {detail['decision']})" if detail.get("decision") else ""
        )
        facts = {"capability": capability, "decision": detail.get("decision")}
    elif event == "compensation.retry_scheduled":
        summary = (
            f"{capability} failed to undo {block} ({error.get('type')}: "
            f"{error.get('message')}); it is tried again"
        )
        facts = {"capability": capability, "error": detail.get("error")}
    elif event == "compensation.failed":
        summary = (
            f"{capability} could not undo {block} ({error.get('type')}: {error.get('message')})"
        )
        facts = {"capability": capability, "error": detail.get("error")}
    else:
        return None
    return ExplainedDecision("compensation", at, block, summary, facts, [index])


def render(explanation: Explanation) -> str:
    """The story for a person, one line per decision."""
    run = explanation.run
    lines = [
        f"Run {run.run_id}: journey {run.journey} v{run.version}"
        + (f" for subject {run.subject_id}" if run.subject_id else "")
        + f", {run.status}"
        + (f" with outcome {run.outcome}" if run.outcome else "")
        + (
            f" ({run.error.get('type')}: {run.error.get('message')})"
            if isinstance(run.error, dict)
            else ""
        )
    ]
    if run.erased:
        lines.append("The subject was erased: personal details are no longer readable.")
    if not explanation.decisions:
        lines.append("No significant decisions were recorded.")
    for n, decision in enumerate(explanation.decisions, 1):
        evidence = ", ".join(f"#{i}" for i in decision.evidence)
        lines.append(f"{n}. [{decision.kind}] {decision.summary}  (ledger {evidence})")
    return "\n".join(lines)
