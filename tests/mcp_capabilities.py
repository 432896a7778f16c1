"""The test capabilities as a capability module (``ACCORD_CAPABILITY_MODULES``), for the Accord
processes that tests start."""

from __future__ import annotations

from accord.connectors import CapabilityRegistry
from tests.capabilities import Calls, register_test_capabilities


def register(registry: CapabilityRegistry) -> None:
    register_test_capabilities(registry, Calls())
