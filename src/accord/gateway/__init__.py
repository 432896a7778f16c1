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
    Executed,
    Held,
    Invocation,
    Outcome,
    RefusalReason,
    Refused,
    call_digest,
)

__all__ = [
    "REFUSAL_REASONS",
    "Approval",
    "ApprovalRequired",
    "Executed",
    "Gateway",
    "GatewaySession",
    "Governance",
    "Held",
    "Invocation",
    "Outcome",
    "RefusalReason",
    "Refused",
    "SnapshotBatch",
    "call_digest",
    "project",
    "required_categories",
]
