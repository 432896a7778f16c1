"""The change a finding proposes, chosen by what degraded.

- An agent block's override (or escalation) rate rose, and a canary of its agent sends the
  rise: **roll the rollout back** (everyone returns to the primary version).
- It rose after a rollout promoted a new version: **make the previous version current again**.
- Its override rate rose with no rollout behind it: **raise the block's bands** (``auto`` and
  ``confirm`` by one step), as a journey change to deploy; the exact YAML is in the proposal.
- A journey's failure rate rose while its runs moved to a newer version: **deploy the previous
  version's source again**, so new runs start on it (running instances keep theirs).
- It rose with most failed runs failing on one capability: **switch that capability off**
  (runs that reach it wait safely until it is switched back on).
- Anything else (refusals, escalations, durations, a drifting distribution): no change is
  proposed; the proposal says what moved and where to look.

Only the rollback, the agent version and the kill switch have a governed mechanism in Accord;
accepting those applies them as the accepting person. Journey changes are deployed by a person.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import yaml

from accord.errors import JourneyInvalid
from accord.journeys import JourneySpec, load_journey_text
from accord.storage import JourneyRecord, RolloutRecord
from accord.watch._detect import Comparison, merge_sparse
from accord.watch._metrics import CHANGED, FAILED, AgentFact, Facts, Mix, Rate

CandidateKind = Literal[
    "rollback_rollout",
    "restore_agent_version",
    "raise_thresholds",
    "restore_journey_version",
    "kill_switch",
    "investigate",
]
APPLIED: frozenset[str] = frozenset({"rollback_rollout", "restore_agent_version", "kill_switch"})
"""The kinds accepting applies, through the same mechanism a person would use."""
CONCENTRATED = 0.8
"""The share of failed runs one capability must account for before switching it off is the
proposal."""


@dataclass(frozen=True, slots=True)
class Candidate:
    kind: CandidateKind
    summary: str
    """What to change, in one sentence."""
    rationale: str
    """Why this change, from the figures."""
    change: dict[str, Any]
    """The exact change: rollout, versions, flag key, or the journey YAML and its diff."""

    @property
    def applies(self) -> bool:
        """Whether accepting applies the change (else a person deploys it)."""
        return self.kind in APPLIED

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "applies": self.applies,
            "summary": self.summary,
            "rationale": self.rationale,
            "change": self.change,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Candidate:
        return cls(
            cast("CandidateKind", data["kind"]),
            str(data["summary"]),
            str(data["rationale"]),
            dict(data["change"]),
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a candidate may be chosen from, besides the finding."""

    baseline: Facts
    recent: Facts
    rollouts: Sequence[RolloutRecord]
    journeys: Mapping[str, Sequence[JourneyRecord]]
    """Each journey's deployed versions, oldest first."""
    bands: Callable[[str], tuple[float, float] | None]
    """An agent reference's (``NAME`` or ``NAME@VERSION``) own bands: (auto, confirm)."""
    min_rate_change: float
    threshold_step: float


def choose(finding: Comparison, evidence: Evidence) -> Candidate:
    """The candidate change for ``finding``."""
    key = finding.key
    if key.metric in ("override_rate", "agent_escalation_rate"):
        return _agent(finding, evidence)
    if key.metric == "failure_rate":
        return _failures(finding, evidence)
    if key.metric == "refusal_rate":
        reasons = Counter(
            reason
            for run in evidence.recent.runs
            if run.journey == key.journey and run.refused
            for reason in run.refusals
        )
        return _investigate(
            finding,
            "more runs are refused by the gateway: consent, lawful basis, policy or residency",
            [f"{reason} ({n} times)" for reason, n in reasons.most_common(3)]
            or ["the gateway decisions of the journey's recent runs (accord run decisions)"],
        )
    if isinstance(finding.recent, Mix) and isinstance(finding.baseline, Mix):
        return _investigate(
            finding,
            "the distribution shifted; nothing here says which side is right",
            _moved(finding.baseline, finding.recent),
        )
    what = {
        "escalation_rate": "more runs are handed to a person",
        "run_duration": "completed runs take longer",
    }.get(key.metric, "the metric moved")
    return _investigate(
        finding, what, ["the journey's recent runs and their review queues in the console"]
    )


# -- agents -----------------------------------------------------------------------------------


def _agent_rate(metric: str, outputs: Sequence[AgentFact]) -> Rate:
    if metric == "override_rate":
        reviewed = [o for o in outputs if o.review_outcome is not None]
        return Rate(sum(o.review_outcome in CHANGED for o in reviewed), len(reviewed))
    return Rate(sum(o.band == "escalate" for o in outputs), len(outputs))


def _agent(finding: Comparison, evidence: Evidence) -> Candidate:
    key = finding.key
    outputs = [
        o for o in evidence.recent.agents if (o.journey, o.block) == (key.journey, key.point)
    ]
    assert isinstance(finding.baseline, Rate)
    base = finding.baseline.value
    candidates: dict[str, list[AgentFact]] = defaultdict(list)
    for output in outputs:
        if output.arm == "candidate" and output.rollout_id is not None:
            candidates[output.rollout_id].append(output)
    for rollout in evidence.rollouts:
        arm = _agent_rate(key.metric, candidates.get(rollout.rollout_id, []))
        if not arm.total or arm.value - base < evidence.min_rate_change:
            continue
        primary = _agent_rate(
            key.metric,
            [o for o in outputs if o.rollout_id == rollout.rollout_id and o.arm == "primary"],
        )
        figures = (
            f"the candidate v{rollout.candidate_version}'s {key.metric.replace('_', ' ')} is "
            f"{arm.value:.1%} ({arm.events} of {arm.total}) against {base:.1%} in the baseline"
            + (
                f" and {primary.value:.1%} ({primary.events} of {primary.total}) for the "
                f"primary v{rollout.primary_version} meanwhile"
                if primary.total
                else ""
            )
        )
        if rollout.status != "active":
            return _investigate(
                finding,
                f"rollout {rollout.rollout_id} of agent {rollout.agent} sent the rise, and it was "
                f"{rollout.status.replace('_', ' ')} at {_when(rollout.updated_at)} already: "
                + figures,
                ["whether the figures recover once the window holds only later runs"],
            )
        return Candidate(
            "rollback_rollout",
            f"Roll back rollout {rollout.rollout_id} of agent {rollout.agent}: stop sending "
            f"v{rollout.candidate_version} to {rollout.percent:g}% of subjects, so every run "
            f"uses v{rollout.primary_version} again.",
            figures + ".",
            {
                "rollout_id": rollout.rollout_id,
                "agent": rollout.agent,
                "mode": rollout.mode,
                "primary_version": rollout.primary_version,
                "candidate_version": rollout.candidate_version,
                "percent": rollout.percent,
            },
        )
    restored = _restore_agent(finding, evidence, outputs)
    if restored is not None:
        return restored
    if key.metric == "override_rate":
        return _raise_thresholds(finding, evidence, outputs)
    return _investigate(
        finding,
        "the agent is less sure of its answers, and no rollout explains it",
        ["the agent's confidence on the console's dashboard, and what its inputs look like now"],
    )


def _restore_agent(
    finding: Comparison, evidence: Evidence, outputs: Sequence[AgentFact]
) -> Candidate | None:
    key = finding.key
    baseline = [
        o for o in evidence.baseline.agents if (o.journey, o.block) == (key.journey, key.point)
    ]
    promoted = sorted(
        (r for r in evidence.rollouts if r.status == "promoted"),
        key=lambda r: r.updated_at,
        reverse=True,
    )
    for rollout in promoted:
        if rollout.updated_at < evidence.baseline.start:
            continue
        now = Counter(o.version for o in outputs if o.agent == rollout.agent)
        before = Counter(o.version for o in baseline if o.agent == rollout.agent)
        if not now or now.most_common(1)[0][0] != rollout.candidate_version:
            continue
        if before and before.most_common(1)[0][0] == rollout.candidate_version:
            continue
        return Candidate(
            "restore_agent_version",
            f"Make agent {rollout.agent} v{rollout.primary_version} current again "
            f"(v{rollout.candidate_version} became current through rollout "
            f"{rollout.rollout_id} at {_when(rollout.updated_at)}).",
            f"{_figures(finding)}, and the recent outputs are mostly "
            f"v{rollout.candidate_version}'s where the baseline's were not.",
            {
                "agent": rollout.agent,
                "version": rollout.primary_version,
                "current": rollout.candidate_version,
                "promoted_by": rollout.rollout_id,
            },
        )
    return None


def _raise_thresholds(
    finding: Comparison, evidence: Evidence, outputs: Sequence[AgentFact]
) -> Candidate:
    key = finding.key
    versions = evidence.journeys.get(key.journey) or ()
    if not versions:
        return _investigate(finding, "people change the agent's answers more", [])
    record = versions[-1]
    data = JourneySpec.model_validate_json(record.model).model_dump(
        mode="json", exclude_defaults=True
    )
    block = next(
        (b for b in _blocks(data) if b.get("id") == key.point and b.get("kind") == "agent"),
        None,
    )
    if block is None:
        return _investigate(
            finding,
            f"people change the agent's answers more, and v{record.version} of {key.journey} "
            f"has no agent block {key.point!r} any more",
            [],
        )
    bands = block.get("bands")
    current = (
        (float(bands["auto"]), float(bands["confirm"]))
        if isinstance(bands, dict)
        else evidence.bands(str(block["agent"]))
    )
    if current is None:
        return _investigate(finding, "people change the agent's answers more", [])
    auto, confirm = current
    step = evidence.threshold_step
    raised_auto = round(min(1.0, auto + step), 4)
    raised_confirm = round(min(raised_auto, confirm + step), 4)
    if (raised_auto, raised_confirm) == (auto, confirm):
        return _investigate(
            finding,
            "people change the agent's answers more, and its bands cannot go higher",
            ["the agent itself: its prompt, its model, its inputs"],
        )
    changed = copy.deepcopy(data)
    target = next(b for b in _blocks(changed) if b.get("id") == key.point)
    target["bands"] = {"auto": raised_auto, "confirm": raised_confirm}
    before = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    after = yaml.safe_dump(changed, sort_keys=False, allow_unicode=True)
    try:
        load_journey_text(after, source_name=f"<{key.journey} candidate>")
    except JourneyInvalid:
        return _investigate(finding, "people change the agent's answers more", [])
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{key.journey} v{record.version}",
            tofile=f"{key.journey} (candidate)",
        )
    )
    bands_by_band = Counter(o.band for o in outputs if o.review_outcome in CHANGED)
    where = ", ".join(f"{n} in the {band} band" for band, n in sorted(bands_by_band.items()))
    return Candidate(
        "raise_thresholds",
        f"Raise the bands of agent block {key.point} in journey {key.journey} from auto "
        f"{auto:g} / confirm {confirm:g} to auto {raised_auto:g} / confirm {raised_confirm:g}, "
        "so fewer of its answers run without a person; deploy the changed journey as a new "
        "version.",
        f"{_figures(finding)}" + (f" (changed answers: {where})" if where else "") + ".",
        {
            "journey": key.journey,
            "version": record.version,
            "block": key.point,
            "agent": block.get("agent"),
            "bands": {
                "from": {"auto": auto, "confirm": confirm},
                "to": {"auto": raised_auto, "confirm": raised_confirm},
            },
            "diff": diff,
            "yaml": after,
            "deploy": f"save the YAML as {key.journey}.yaml; accord journey deploy "
            f"{key.journey}.yaml",
        },
    )


def _blocks(data: Any) -> Iterator[dict[str, Any]]:
    """Every block of a journey document, nested flows included."""
    if isinstance(data, dict):
        if "id" in data and "kind" in data:
            yield data
        for value in data.values():
            yield from _blocks(value)
    elif isinstance(data, list):
        for item in data:
            yield from _blocks(item)


# -- journeys ---------------------------------------------------------------------------------


def _failures(finding: Comparison, evidence: Evidence) -> Candidate:
    journey = finding.key.journey
    before = [r for r in evidence.baseline.runs if r.journey == journey]
    now = [r for r in evidence.recent.runs if r.journey == journey]
    usual = Counter(r.version for r in before).most_common(1)[0][0]
    latest = Counter(r.version for r in now).most_common(1)[0][0]
    records = {r.version: r for r in evidence.journeys.get(journey) or ()}
    if latest > usual and usual in records:
        previous = records[usual]
        on_latest = Rate(
            sum(r.status in FAILED for r in now if r.version == latest),
            sum(r.version == latest for r in now),
        )
        on_usual = Rate(
            sum(r.status in FAILED for r in before if r.version == usual),
            sum(r.version == usual for r in before),
        )
        newest = max(records)
        return Candidate(
            "restore_journey_version",
            f"Route new runs of {journey} back to v{usual}: deploy v{usual}'s source again "
            f"(it becomes v{newest + 1}, which new runs start on; running instances keep "
            "their versions).",
            f"v{latest} fails {on_latest.value:.1%} of its runs ({on_latest.events} of "
            f"{on_latest.total}) where v{usual} failed {on_usual.value:.1%} ({on_usual.events} "
            f"of {on_usual.total}).",
            {
                "journey": journey,
                "version": usual,
                "current": newest,
                "digest": previous.digest,
                "source_name": previous.source_name,
                "source": previous.source,
                "deploy": f"save the source as {journey}.yaml; accord journey deploy "
                f"{journey}.yaml",
            },
        )
    failed = [r for r in now if r.status in FAILED]
    capabilities = Counter(c for r in failed for c in r.failed_capabilities)
    if failed and capabilities:
        capability, count = capabilities.most_common(1)[0]
        if count >= CONCENTRATED * len(failed):
            return Candidate(
                "kill_switch",
                f"Switch capability {capability} off: runs that reach it wait safely until it "
                "is switched back on, instead of failing.",
                f"{_figures(finding)}; {count} of the {len(failed)} failed runs failed on "
                f"{capability}.",
                {"flag": f"capability:{capability}", "value": False, "capability": capability},
            )
    return _investigate(
        finding,
        "more runs fail",
        [f"{c}: failed in {n} runs" for c, n in capabilities.most_common(3)]
        or ["the errors of the journey's recent failed runs (accord run list --status failed)"],
    )


# -- no change --------------------------------------------------------------------------------


def _investigate(finding: Comparison, what: str, look_at: list[str]) -> Candidate:
    return Candidate(
        "investigate",
        f"No change proposed: {what}. Look into it, then accept (noted) or reject.",
        _figures(finding) + ".",
        {"look_at": look_at},
    )


def _figures(finding: Comparison) -> str:
    metric = finding.key.metric.replace("_", " ")
    before, after = finding.baseline, finding.recent
    if isinstance(before, Rate) and isinstance(after, Rate):
        return (
            f"the {metric} rose from {before.value:.1%} ({before.events} of {before.total}) to "
            f"{after.value:.1%} ({after.events} of {after.total})"
        )
    if isinstance(before, Mix) and isinstance(after, Mix):
        return f"the {metric} shifted (PSI {finding.effect:.2f})"
    return f"the {metric} changed by {finding.effect:+.3g} ({finding.effect_name})"


def _moved(before: Mix, after: Mix) -> list[str]:
    columns = merge_sparse(before, after)
    nb, nr = before.count, after.count
    moves = sorted(columns, key=lambda c: abs(c[2] / nr - c[1] / nb), reverse=True)
    return [f"{name}: {b / nb:.1%} → {r / nr:.1%}" for name, b, r in moves[:3]]


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def candidate_digest(candidate: Candidate) -> dict[str, Any]:
    """The candidate as the ledger keeps it: large texts (YAML, source) by digest."""
    found = candidate.to_json()
    change = dict(found["change"])
    for name in ("yaml", "source"):
        if isinstance(change.get(name), str):
            text = change.pop(name)
            change[f"{name}_digest"] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    found["change"] = json.loads(json.dumps(change))
    return found


__all__ = ["APPLIED", "Candidate", "CandidateKind", "Evidence", "candidate_digest", "choose"]
