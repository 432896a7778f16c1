"""Storage: the schema, the database handle, and tenant-scoped access to every table.

``runs`` reads and writes runs and their history, ``signals`` the inboxes of runs, and
``transitions`` the leases and fenced commits of workers.
"""

from accord.storage import _agents as agents
from accord.storage import _api as api
from accord.storage import _consent as consent
from accord.storage import _dashboard as dashboards
from accord.storage import _dead_letters as dead_letters
from accord.storage import _decisions as decisions
from accord.storage import _events as events
from accord.storage import _flags as flags
from accord.storage import _governance as governance
from accord.storage import _identity as identity
from accord.storage import _inbound as inbound
from accord.storage import _journeys as journeys
from accord.storage import _ledger as ledger
from accord.storage import _policies as policies
from accord.storage import _reviews as reviews
from accord.storage import _runs as runs
from accord.storage import _signals as signals
from accord.storage import _transitions as transitions
from accord.storage._agents import (
    AgentVersionRecord,
    NewAgentOutcome,
    OutcomeStats,
    RolloutRecord,
)
from accord.storage._database import Backend, Database, Waker
from accord.storage._journeys import JourneyRecord
from accord.storage._records import (
    ACTIVE,
    OPEN_REVIEW,
    TERMINAL,
    CommitResult,
    DeadLetterRecord,
    DecisionRecord,
    HistoryEntry,
    HistoryEvent,
    NewConfirmation,
    NewDeadLetter,
    NewDecision,
    NewEvent,
    NewReviewItem,
    NewRun,
    NewSignal,
    NewTimer,
    NewWait,
    ReviewItemRecord,
    ReviewStatus,
    RunRecord,
    RunStatus,
    SignalRecord,
    TransitionWrite,
)

__all__ = [
    "ACTIVE",
    "OPEN_REVIEW",
    "TERMINAL",
    "AgentVersionRecord",
    "Backend",
    "CommitResult",
    "Database",
    "DeadLetterRecord",
    "DecisionRecord",
    "HistoryEntry",
    "HistoryEvent",
    "JourneyRecord",
    "NewAgentOutcome",
    "NewConfirmation",
    "NewDeadLetter",
    "NewDecision",
    "NewEvent",
    "NewReviewItem",
    "NewRun",
    "NewSignal",
    "NewTimer",
    "NewWait",
    "OutcomeStats",
    "ReviewItemRecord",
    "ReviewStatus",
    "RolloutRecord",
    "RunRecord",
    "RunStatus",
    "SignalRecord",
    "TransitionWrite",
    "Waker",
    "agents",
    "api",
    "consent",
    "dashboards",
    "dead_letters",
    "decisions",
    "events",
    "flags",
    "governance",
    "identity",
    "inbound",
    "journeys",
    "ledger",
    "policies",
    "reviews",
    "runs",
    "signals",
    "transitions",
]
