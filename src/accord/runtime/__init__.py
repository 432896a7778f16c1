"""The durable runtime: transitions, workers, leases, timers and signals."""

from accord.runtime._advance import child_run_id, initial_state
from accord.runtime._agents import AgentServices
from accord.runtime._catalog import Deployment, JourneyCatalog
from accord.runtime._offers import OfferServices
from accord.runtime._runtime import (
    Position,
    Runtime,
    RunView,
    SignalResult,
    StartResult,
)
from accord.runtime._state import RunState
from accord.runtime._worker import FaultHook, Worker, WorkerStats

__all__ = [
    "AgentServices",
    "Deployment",
    "FaultHook",
    "JourneyCatalog",
    "OfferServices",
    "Position",
    "RunState",
    "RunView",
    "Runtime",
    "SignalResult",
    "StartResult",
    "Worker",
    "WorkerStats",
    "child_run_id",
    "initial_state",
]
