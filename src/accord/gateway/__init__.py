"""The gateway: the one path every capability invocation takes."""

from accord.gateway._gateway import (
    Gateway,
    GatewaySession,
    Governance,
    SnapshotBatch,
    project,
    required_categories,
)
from accord.gateway._outcomes import (
    REFUSAL_REASONS,
    Approval,
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
from accord.gateway._residency import START_ACTION, ResidencyDecision, decide_residency

__all__ = [
    "REFUSAL_REASONS",
    "START_ACTION",
    "Approval",
    "ApprovalRequired",
    "Checked",
    "Executed",
    "Gateway",
    "GatewaySession",
    "Governance",
    "Held",
    "Invocation",
    "Outcome",
    "RefusalReason",
    "Refused",
    "ResidencyDecision",
    "SnapshotBatch",
    "call_digest",
    "decide_residency",
    "project",
    "required_categories",
]
