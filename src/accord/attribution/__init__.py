"""Attribution: outcomes of a journey's runs linked back to the decisions on each run's path,
with an estimate of each decision point's contribution and the method that made it.

Pure computation, no I/O: the service reads runs and their history and hands them here.
"""

from accord.attribution._attribute import (
    INTERVAL,
    MAX_ADJUST,
    OBSERVATIONAL,
    RANDOMISED,
    RATE_INTERVAL,
    REMOVAL,
    STRATIFIED,
    TOO_FEW,
    UNADJUSTED,
    Attribution,
    Estimate,
    PointAttribution,
    Removal,
    ValueFigures,
    attribute,
)
from accord.attribution._estimates import Difference, difference, wilson
from accord.attribution._markov import removal_effects
from accord.attribution._paths import (
    PATH_EVENT_KINDS,
    Point,
    PointKind,
    RecordedEvent,
    RecordedRun,
    RunPath,
    Step,
    outcome_of,
    paths_of,
)

__all__ = [
    "INTERVAL",
    "MAX_ADJUST",
    "OBSERVATIONAL",
    "PATH_EVENT_KINDS",
    "RANDOMISED",
    "RATE_INTERVAL",
    "REMOVAL",
    "STRATIFIED",
    "TOO_FEW",
    "UNADJUSTED",
    "Attribution",
    "Difference",
    "Estimate",
    "Point",
    "PointAttribution",
    "PointKind",
    "RecordedEvent",
    "RecordedRun",
    "Removal",
    "RunPath",
    "Step",
    "ValueFigures",
    "attribute",
    "difference",
    "outcome_of",
    "paths_of",
    "removal_effects",
    "wilson",
]
