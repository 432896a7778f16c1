"""Storage: the schema, the database handle, and tenant-scoped access to every table."""

from accord.storage import _journeys as journeys
from accord.storage import _runs as runs
from accord.storage._database import Backend, Database, Waker
from accord.storage._journeys import JourneyRecord
from accord.storage._runs import (
    ACTIVE,
    TERMINAL,
    CommitResult,
    HistoryEntry,
    HistoryEvent,
    NewEvent,
    NewRun,
    NewSignal,
    NewTimer,
    NewWait,
    RunRecord,
    RunStatus,
    SignalRecord,
    TransitionWrite,
)

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "Backend",
    "CommitResult",
    "Database",
    "HistoryEntry",
    "HistoryEvent",
    "JourneyRecord",
    "NewEvent",
    "NewRun",
    "NewSignal",
    "NewTimer",
    "NewWait",
    "RunRecord",
    "RunStatus",
    "SignalRecord",
    "TransitionWrite",
    "Waker",
    "journeys",
    "runs",
]
