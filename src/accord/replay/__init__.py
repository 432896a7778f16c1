"""Replay recorded runs against a candidate, in shadow: what would change, and why.

``replay_candidate`` re-runs the recorded runs of one journey (and tenant) from a window of
time against a candidate journey version, policy bundle or agent version, in a temporary,
isolated Accord whose capabilities answer from the recorded calls. It compares paths,
decision tables, branches, gateway decisions, agent outputs and outcomes, and explains each
decision that changes twice: as recorded, and under the candidate. See ``docs/replay.md``.
"""

from accord.replay._candidate import SYNTAX, Candidate, CandidateKind, parse_candidate, parse_time
from accord.replay._replay import replay_candidate
from accord.replay._report import ChangeKind, DecisionChange, ReplayReport, RunReplay, RunStatus

__all__ = [
    "SYNTAX",
    "Candidate",
    "CandidateKind",
    "ChangeKind",
    "DecisionChange",
    "ReplayReport",
    "RunReplay",
    "RunStatus",
    "parse_candidate",
    "parse_time",
    "replay_candidate",
]
