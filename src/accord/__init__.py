"""Accord: durable, governed journeys for customers and employees.

The headline API::

    from accord import Settings, build, JourneyBuilder, load_journey_file

    with build(Settings(database_url="sqlite:///accord.db")) as accord:
        accord.runtime.catalog.deploy("default", load_journey_file("refund.yaml"))
        run = accord.runtime.start("default", "refund_request", input={"order_id": "A-1"})
        accord.runtime.drive()
"""

from accord.agents import AgentSpec, load_agent_file
from accord.connectors import CallContext, Capability, CapabilityRegistry
from accord.errors import AccordError, ErrorCode
from accord.journeys import JourneyBuilder, JourneySpec, load_journey_file, load_journey_text
from accord.runtime import Runtime, RunView, Worker
from accord.service import Accord, Settings, build

__version__ = "0.1.0"

__all__ = [
    "Accord",
    "AccordError",
    "AgentSpec",
    "CallContext",
    "Capability",
    "CapabilityRegistry",
    "ErrorCode",
    "JourneyBuilder",
    "JourneySpec",
    "RunView",
    "Runtime",
    "Settings",
    "Worker",
    "__version__",
    "build",
    "load_agent_file",
    "load_journey_file",
    "load_journey_text",
]
