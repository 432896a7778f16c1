"""The sample enterprise in motion: synthetic customers, scenarios and the demo's mix."""

from accord.simulation._enterprise import (
    TENANT,
    Enterprise,
    Manifest,
    OffsetClock,
    deploy,
    find_manifest,
    load_manifest,
    open_enterprise,
)
from accord.simulation._scenario import ScenarioReport, load_scenario, run_scenario

__all__ = [
    "TENANT",
    "Enterprise",
    "Manifest",
    "OffsetClock",
    "ScenarioReport",
    "deploy",
    "find_manifest",
    "load_manifest",
    "load_scenario",
    "open_enterprise",
    "run_scenario",
]
