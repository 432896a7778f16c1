"""Comparing a recorded run with its shadow: path, decisions, outcome."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from accord.audit import ExplainedDecision, Explanation
from accord.replay._report import ChangeKind, DecisionChange
from accord.replay._scrub import Scrubber
from accord.storage import DecisionRecord, HistoryEntry

_EVENT_KINDS: dict[str, ChangeKind] = {
    "decision.made": "rules",
    "choice.taken": "choice",
    "agent.output": "agent",
    "offer.chosen": "offer",
}


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the comparison: a run's history, decisions, end and explanation."""

    history: Sequence[HistoryEntry]
    decisions: Sequence[DecisionRecord]
    ending: str
    explanation: Explanation | None
    ledger: str

    def path(self) -> tuple[str, ...]:
        seen: set[tuple[str, int]] = set()
        path: list[str] = []
        for entry in self.history:
            if entry.block is None:
                continue
            key = (entry.block, entry.visit or 0)
            if key not in seen:
                seen.add(key)
                path.append(entry.block)
        return tuple(path)

    def events(self) -> dict[tuple[ChangeKind, str, int], tuple[Any, int]]:
        """Each decision event by (kind, block, visit): what it decided and its ordinal among
        the same kind of decision at that block (to find its explanation)."""
        found: dict[tuple[ChangeKind, str, int], tuple[Any, int]] = {}
        ordinals: dict[tuple[ChangeKind, str], int] = defaultdict(int)
        for entry in self.history:
            kind = _EVENT_KINDS.get(entry.kind)
            if kind is None or entry.block is None:
                continue
            ordinal = ordinals[(kind, entry.block)]
            ordinals[(kind, entry.block)] += 1
            found[(kind, entry.block, entry.visit or 0)] = (_decided(kind, entry.detail), ordinal)
        return found

    def gateway(self) -> dict[tuple[str, int], list[DecisionRecord]]:
        """The gateway passes of each (block, visit) that decided something: failed attempts
        that were tried again and holds are left out, a shadow answers calls at once."""
        grouped: dict[tuple[str, int], list[DecisionRecord]] = defaultdict(list)
        for decision in self.decisions:
            if decision.block is None:
                continue
            grouped[(decision.block, decision.visit or 0)].append(decision)
        kept: dict[tuple[str, int], list[DecisionRecord]] = {}
        for key, passes in grouped.items():
            kept[key] = [
                d
                for i, d in enumerate(passes)
                if d.outcome != "held" and not (d.outcome == "failed" and i < len(passes) - 1)
            ]
        return kept

    def explain(self, kind: ChangeKind, block: str, ordinal: int) -> str | None:
        if self.explanation is None:
            return None
        matching = [d for d in self.explanation.decisions if d.kind == kind and d.block == block]
        return _render(matching[ordinal], self.ledger) if ordinal < len(matching) else None

    def explain_decision(self, decision_id: str) -> str | None:
        if self.explanation is None:
            return None
        for explained in self.explanation.decisions:
            if explained.kind == "gateway" and explained.facts.get("decision_id") == decision_id:
                return _render(explained, self.ledger)
        return None


def _decided(kind: ChangeKind, detail: dict[str, Any]) -> Any:
    if kind == "rules":
        return {"rules": detail.get("rules"), "output": detail.get("output")}
    if kind == "choice":
        return {"next": detail.get("next")}
    if kind == "offer":
        output = detail.get("output") or {}
        return {"offer": detail.get("offer"), "channel": output.get("channel")}
    return {
        "output": detail.get("output"),
        "band": detail.get("band"),
        "confidence": detail.get("confidence"),
    }


def _same(kind: ChangeKind, before: Any, after: Any) -> bool:
    if kind == "agent" and isinstance(before, dict) and isinstance(after, dict):
        return bool(before.get("output") == after.get("output") and before["band"] == after["band"])
    return bool(before == after)


def _pass(decision: DecisionRecord) -> dict[str, Any]:
    policy = decision.record.get("policy") or {}
    return {
        "capability": decision.capability,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "allowed": policy.get("allowed"),
        "determining": policy.get("determining") or [],
        "obligations": policy.get("obligations") or [],
    }


def _render(explained: ExplainedDecision, ledger: str) -> str:
    evidence = ", ".join(f"#{i}" for i in explained.evidence)
    return f"[{explained.kind}] {explained.summary}" + (
        f"  ({ledger} {evidence})" if evidence else ""
    )


def compare(recorded: Side, candidate: Side, scrub: Scrubber) -> list[DecisionChange]:
    """Every decision that differs between the recorded run and its shadow, in block order."""
    changes: list[DecisionChange] = []
    before_events, after_events = recorded.events(), candidate.events()
    for key in sorted(set(before_events) | set(after_events), key=_order(recorded, candidate)):
        kind, block, visit = key
        before, ordinal_before = before_events.get(key, (None, 0))
        after, ordinal_after = after_events.get(key, (None, 0))
        if _same(kind, before, after):
            continue
        changes.append(
            DecisionChange(
                kind,
                block,
                visit,
                scrub.value(before),
                scrub.value(after),
                _text(scrub, recorded.explain(kind, block, ordinal_before) if before else None),
                _text(scrub, candidate.explain(kind, block, ordinal_after) if after else None),
                None if before and after else _only(before),
            )
        )
    before_passes, after_passes = recorded.gateway(), candidate.gateway()
    for block, visit in sorted(
        set(before_passes) | set(after_passes), key=lambda k: _position(recorded, candidate, k)
    ):
        olds = before_passes.get((block, visit), [])
        news = after_passes.get((block, visit), [])
        for i in range(max(len(olds), len(news))):
            old = olds[i] if i < len(olds) else None
            new = news[i] if i < len(news) else None
            old_pass = None if old is None else _pass(old)
            new_pass = None if new is None else _pass(new)
            if old_pass == new_pass:
                continue
            changes.append(
                DecisionChange(
                    "gateway",
                    block,
                    visit,
                    scrub.value(old_pass),
                    scrub.value(new_pass),
                    _text(
                        scrub, None if old is None else recorded.explain_decision(old.decision_id)
                    ),
                    _text(
                        scrub, None if new is None else candidate.explain_decision(new.decision_id)
                    ),
                    _gateway_note(old_pass, new_pass),
                )
            )
    before_path, after_path = recorded.path(), candidate.path()
    if before_path != after_path:
        changes.append(
            DecisionChange(
                "path",
                None,
                None,
                list(before_path),
                list(after_path),
                note=_path_note(before_path, after_path),
            )
        )
    if recorded.ending != candidate.ending:
        changes.append(
            DecisionChange("outcome", None, None, recorded.ending, scrub.text(candidate.ending))
        )
    return changes


def _only(before: Any) -> str:
    return "only in the recording" if before else "only in the candidate"


def _text(scrub: Scrubber, text: str | None) -> str | None:
    return None if text is None else scrub.text(text)


def _gateway_note(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str | None:
    if old is None:
        return "the candidate makes a call the recording did not make here"
    if new is None:
        return "the candidate does not reach this call"
    if old["outcome"] != new["outcome"]:
        return f"the call would be {new['outcome']} instead of {old['outcome']}" + (
            f" ({new['reason']})" if new["reason"] else ""
        )
    return None


def _path_note(before: Sequence[str], after: Sequence[str]) -> str:
    shared = 0
    while shared < min(len(before), len(after)) and before[shared] == after[shared]:
        shared += 1
    if shared == len(after):
        last = after[-1] if after else "the start"
        return f"the candidate stops after {last}, where the recording went on to " + (
            ", ".join(before[shared:])
        )
    went = before[shared] if shared < len(before) else "the end"
    return f"after {before[shared - 1] if shared else 'the start'} the candidate goes to " + (
        f"{after[shared]} instead of {went}"
    )


def _order(recorded: Side, candidate: Side) -> Any:
    def key(item: tuple[ChangeKind, str, int]) -> tuple[int, int]:
        return _position(recorded, candidate, (item[1], item[2]))

    return key


def _position(recorded: Side, candidate: Side, key: tuple[str, int]) -> tuple[int, int]:
    for side, rank in ((recorded, 0), (candidate, 1)):
        for i, entry in enumerate(side.history):
            if (entry.block, entry.visit or 0) == key:
                return (i, rank)
    return (10**9, 0)
