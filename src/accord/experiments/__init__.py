"""Experiments: A/B/n designs with a holdout over a journey version, decision table, policy
candidate or agent version; sticky assignment by subject; outcomes analysed with an
always-valid sequential test; guardrails that stop an experiment on a breach; every assignment
and decision in the ledger."""

from accord.experiments._analysis import (
    Comparison,
    Observation,
    compare,
    default_tau,
    required_sample,
)
from accord.experiments._spec import ExperimentSpec, load_experiment, parse_experiment
from accord.experiments._store import (
    HOLDOUT,
    Assignment,
    ExperimentNotFound,
    Experiments,
    GuardrailCheck,
    Report,
    bucket,
    choose,
)

__all__ = [
    "HOLDOUT",
    "Assignment",
    "Comparison",
    "ExperimentNotFound",
    "ExperimentSpec",
    "Experiments",
    "GuardrailCheck",
    "Observation",
    "Report",
    "bucket",
    "choose",
    "compare",
    "default_tau",
    "load_experiment",
    "parse_experiment",
    "required_sample",
]
