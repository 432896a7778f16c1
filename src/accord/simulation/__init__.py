"""The sample enterprise in motion: synthetic customers, scenarios and the demo's mix."""

from accord.simulation._driver import (
    Case,
    Driver,
    Finished,
    Persona,
    refusals_by_reason,
)
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
from accord.simulation._mix import demo_mix, retention_wave
from accord.simulation._response import RetentionResponse
from accord.simulation._scenario import Scenario, ScenarioReport, load_scenario, run_scenario

__all__ = [
    "TENANT",
    "Case",
    "Driver",
    "Enterprise",
    "Finished",
    "Manifest",
    "OffsetClock",
    "Persona",
    "RetentionResponse",
    "Scenario",
    "ScenarioReport",
    "demo_mix",
    "deploy",
    "find_manifest",
    "load_manifest",
    "load_scenario",
    "open_enterprise",
    "refusals_by_reason",
    "retention_wave",
    "run_scenario",
]
