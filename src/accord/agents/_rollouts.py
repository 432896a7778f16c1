"""Canary and shadow rollouts of an agent's candidate version.

A canary sends a sticky share of subjects to the candidate: a subject's bucket (0-9999) comes
from a hash of the rollout and the subject, and the subject goes to the candidate while its
bucket is below the percentage, so raising the share (5 → 25 → 50 → 100) only adds subjects and
nobody flips back and forth. A shadow runs the candidate beside the primary on live inputs with
its side effects suppressed, recording both outputs for comparison. A rollout rolls back by
itself when the candidate's escalation or override rate exceeds the primary's by the declared
margin, once the candidate has enough outputs.
"""

from __future__ import annotations

import hashlib

from accord.storage import OutcomeStats

STAGES: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
BUCKETS = 10_000


def bucket_of(tenant: str, rollout_id: str, subject: str) -> int:
    """The subject's sticky bucket in this rollout, 0 to 9999."""
    raw = hashlib.sha256(f"{tenant}\x1f{rollout_id}\x1f{subject}".encode()).digest()
    return int.from_bytes(raw[:8], "big") % BUCKETS


def in_candidate(bucket: int, percent: float) -> bool:
    return bucket < round(percent * BUCKETS / 100.0)


def next_stage(percent: float) -> float | None:
    """The next percentage of the standard stages, or None at 100%."""
    return next((stage for stage in STAGES if stage > percent), None)


def rollback_reason(
    primary: OutcomeStats | None,
    candidate: OutcomeStats | None,
    *,
    margin: float,
    min_samples: int,
) -> str | None:
    """Why the candidate should be rolled back now, or None while it holds up.

    The candidate is judged once it has ``min_samples`` outputs: on its escalation rate, and on
    its override rate (edits, rejections and overrides among its reviewed outputs) once any of
    its outputs was reviewed.
    """
    if candidate is None or candidate.outputs < min_samples:
        return None
    version = f"v{candidate.version}"
    base_escalation = primary.escalation_rate if primary is not None else 0.0
    if candidate.escalation_rate - base_escalation > margin:
        return (
            f"candidate {version} escalated {candidate.escalation_rate:.1%} of "
            f"{candidate.outputs} outputs against the primary's {base_escalation:.1%}, "
            f"more than the {margin:.1%} margin"
        )
    if candidate.reviewed:
        base_override = primary.override_rate if primary is not None else 0.0
        if candidate.override_rate - base_override > margin:
            return (
                f"people overrode {candidate.override_rate:.1%} of candidate {version}'s "
                f"{candidate.reviewed} reviewed outputs against the primary's "
                f"{base_override:.1%}, more than the {margin:.1%} margin"
            )
    return None
