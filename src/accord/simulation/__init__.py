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

__all__ = [
    "TENANT",
    "Enterprise",
    "Manifest",
    "OffsetClock",
    "deploy",
    "find_manifest",
    "load_manifest",
    "open_enterprise",
]
