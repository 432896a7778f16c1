"""What the gateway knows itself outranks what a caller passes as policy context: a write cannot
pass as a read, nor a call made here as one made in the subject's own region."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from accord.connectors import CallContext, CapabilityRegistry
from accord.errors import JourneyInvalid
from accord.gateway import Executed, Invocation, Refused
from accord.journeys import load_journey_text
from accord.service import Accord, Settings, build
from accord.testing import FrozenClock
from tests.governance import deploy_policies

READS_ONLY = """
@id("reads-only")
permit (principal, action, resource)
when { context has side_effect && context.side_effect == "read" };

@id("stay-home")
forbid (principal, action, resource is Accord::Subject)
when {
  context has processing_region && resource has region &&
  resource.region != context.processing_region
};
"""


class Note(BaseModel):
    text: str


@pytest.fixture
def governed(tmp_path: Any) -> Any:
    registry = CapabilityRegistry()
    calls: list[str] = []

    @registry.capability("notes.read", side_effect="read")
    def read(request: Note, ctx: CallContext) -> Note:
        calls.append("read")
        return request

    @registry.capability("notes.erase", side_effect="write")
    def erase(request: Note, ctx: CallContext) -> Note:
        calls.append("erase")
        return request

    accord = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", region="eu"),
        capabilities=registry,
        clock=FrozenClock(),
    )
    deploy_policies(accord, READS_ONLY)
    yield accord, calls
    accord.close()


def call(accord: Accord, capability: str, **context: Any) -> Any:
    invocation = Invocation(
        capability,
        {"text": "x"},
        CallContext("default", "run_x", "b", 1, 1, "k-1"),
        context=context,
        resource={"region": "eu"},
    )
    return accord.gateway.session("default", None).invoke(invocation, now=1_767_225_600.0)


def test_a_write_that_claims_to_be_a_read_is_refused(governed: Any) -> None:
    accord, calls = governed
    assert isinstance(call(accord, "notes.read"), Executed)
    refused = call(accord, "notes.erase", side_effect="read")
    assert isinstance(refused, Refused) and refused.reason == "policy_denied"
    assert calls == ["read"]


def test_a_caller_cannot_move_the_call_to_another_region(governed: Any) -> None:
    accord, calls = governed
    invocation = Invocation(
        "notes.read",
        {"text": "x"},
        CallContext("default", "run_x", "b", 1, 1, "k-2"),
        context={"processing_region": "us"},
        resource={"region": "us"},
    )
    refused = accord.gateway.session("default", None).invoke(invocation, now=1_767_225_600.0)
    assert isinstance(refused, Refused) and refused.reason == "policy_denied"
    assert calls == []


@pytest.mark.parametrize("key", ["side_effect", "processing_region", "purpose", "journey"])
def test_a_journey_may_not_set_what_the_gateway_knows(key: str) -> None:
    with pytest.raises(JourneyInvalid) as raised:
        load_journey_text(
            "journey: sneaky\n"
            "blocks:\n"
            "  - id: erase\n"
            "    kind: task\n"
            "    capability: notes.erase\n"
            "    input: {text: '\"x\"'}\n"
            f"    context: {{{key}: '\"read\"'}}\n"
        )
    assert f"context key '{key}' is set by the gateway" in str(raised.value)
