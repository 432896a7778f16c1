"""MCP both ways, with the official SDK and real transports.

Accord's connector calls the tools of an SDK server (``tests/mcp_tools_server.py``) over stdio
and streamable HTTP, and journeys call them through the gateway. The SDK's client calls Accord's
own MCP server, in process over streamable HTTP and as ``accord mcp serve`` over stdio: every
call passes the gateway, and a call without consent, against a policy or under a kill switch
comes back as a tool error that names its reason and decision.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from accord.connectors import (
    CapabilityRegistry,
    McpClient,
    ToolBinding,
    mcp_capabilities,
)
from accord.core import TenantId
from accord.errors import CapabilityFailed, ConfigurationError
from accord.journeys import load_journey_text
from accord.mcp import ExposedTool, build_server, serve_http
from accord.service import Accord
from accord.testing import FrozenClock
from tests.capabilities import Calls, register_test_capabilities
from tests.governance import PERMIT_ALL

ROOT = Path(__file__).resolve().parents[2]
TOOLS_SERVER = [sys.executable, str(ROOT / "tests" / "mcp_tools_server.py")]
T = TenantId("default")
SUBJECT = "cust-1"
STRANGER = "cust-2"
SERVICE = "dpv:ServiceProvision"
AGENT = "support-assistant"
TOKEN = "test-token-0123456789abcdef"

POLICIES = (
    PERMIT_ALL
    + """
@id("agents-never-charge")
forbid (principal is Accord::Agent, action == Accord::Action::"test.charge", resource);
"""
)

CRM_JOURNEY = """
journey: crm_lookup
purpose: dpv:ServiceProvision
blocks:
  - id: fetch
    kind: task
    capability: crm.lookup_customer
    input: {customer_id: run.subject}
    retry: {max_attempts: 1}
    on_refusal: {"*": ask}
  - id: note
    kind: task
    capability: crm.add_note
    input: {customer_id: run.subject, note: "'looked up'"}
    retry: {max_attempts: 1}
  - {id: done, kind: end, outcome: done, output: {customer: steps.fetch, note: steps.note}}
  - {id: ask, kind: end, outcome: asked_for_consent, output: {why: errors.fetch.reason}}
"""

PROFILE_JOURNEY = """
journey: profile
purpose: dpv:ServiceProvision
blocks:
  - id: fetch
    kind: task
    capability: test.profile
    input: {customer_id: run.subject}
  - {id: done, kind: end, outcome: fetched}
"""

CRM_BINDINGS = {
    "lookup_customer": ToolBinding(
        reads=("pd:Name", "pd:EmailAddress"),
        fields={"name": "pd:Name", "email": "pd:EmailAddress"},
    ),
    "add_note": ToolBinding(writes=("pd:Name",)),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_for_port(port: int, *, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {seconds}s")


# -- Accord's client against an SDK server ---------------------------------------------------


@pytest.fixture(scope="module")
def crm() -> Iterator[McpClient]:
    """One stdio session with the tools server, shared by the tests that do not break it."""
    with McpClient("crm", command=TOOLS_SERVER, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def crm_http_url() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [*TOOLS_SERVER, "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(10)


def test_client_lists_tools_with_their_schemas_and_hints(crm: McpClient) -> None:
    tools = {tool.name: tool for tool in crm.list_tools()}
    assert {"lookup_customer", "add_note", "close_account", "summary"} <= set(tools)
    lookup = tools["lookup_customer"]
    assert lookup.description == "Look a customer up by id."
    assert lookup.input_schema["required"] == ["customer_id"]
    assert lookup.output_schema is not None
    assert lookup.output_schema["required"] == ["customer_id", "name", "email", "tier"]
    assert lookup.annotations is not None
    assert (lookup.annotations.read_only, lookup.annotations.idempotent) == (True, True)
    assert tools["close_account"].annotations is None


def test_results_are_json_objects(crm: McpClient) -> None:
    assert crm.call_tool("lookup_customer", {"customer_id": "c9"}) == {
        "customer_id": "c9",
        "name": "Ada Lovelace",
        "email": "ada@example.org",
        "tier": "gold",
    }
    assert crm.call_tool("summary", {"customer_id": "c9"}) == {"content": ["c9 is a gold customer"]}
    assert set(crm.call_tool("process_id", {})) == {"result"}


def test_the_request_meta_reaches_the_tool(crm: McpClient) -> None:
    answer = crm.call_tool(
        "add_note", {"customer_id": "c7", "note": "hi"}, meta={"idempotency_key": "key-7"}
    )
    assert answer["idempotency_key"] == "key-7"


def test_a_tool_error_is_a_capability_failure_that_is_not_retried(crm: McpClient) -> None:
    with pytest.raises(CapabilityFailed) as failed:
        crm.call_tool("close_account", {"customer_id": "c1"})
    assert failed.value.error_type == "ToolError"
    assert failed.value.retryable is False
    assert "under review" in failed.value.message


def test_a_slow_tool_times_out_and_the_session_survives(crm: McpClient) -> None:
    started = time.monotonic()
    with pytest.raises(CapabilityFailed) as failed:
        crm.call_tool("wait", {"seconds": 5}, timeout=0.3)
    assert time.monotonic() - started < 3
    assert (failed.value.error_type, failed.value.retryable) == ("Timeout", True)
    assert set(crm.call_tool("process_id", {})) == {"result"}


def test_concurrent_calls_share_one_session(crm: McpClient) -> None:
    before = crm.call_tool("process_id", {})
    counts: list[int] = []

    def add(i: int) -> None:
        counts.append(crm.call_tool("add_note", {"customer_id": "busy", "note": str(i)})["notes"])

    threads = [threading.Thread(target=add, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 17))
    assert crm.call_tool("process_id", {}) == before


def test_a_server_that_died_is_started_again_for_the_next_call() -> None:
    with McpClient("crm", command=TOOLS_SERVER, timeout=20) as client:
        first = client.call_tool("process_id", {})["result"]
        with pytest.raises(CapabilityFailed) as lost:
            client.call_tool("exit_process", {})
        # the tool may have acted before the server went away: not silently sent again
        assert lost.value.error_type == "ConnectionLost"
        assert (lost.value.retryable, lost.value.outcome_unknown) == (True, True)
        time.sleep(0.2)
        assert client.call_tool("process_id", {})["result"] != first


def test_streamable_http_with_headers_that_never_show(crm_http_url: str) -> None:
    secret = "Bearer do-not-print-me"
    client = McpClient("crm-http", url=crm_http_url, headers={"Authorization": secret}, timeout=20)
    with client:
        assert client.call_tool("lookup_customer", {"customer_id": "c3"})["tier"] == "gold"
        assert "do-not-print-me" not in repr(client)
    unreachable = McpClient(
        "down", url=f"http://127.0.0.1:{free_port()}/mcp", headers={"X-Key": secret}, timeout=5
    )
    with pytest.raises(CapabilityFailed) as failed:
        unreachable.call_tool("lookup_customer", {"customer_id": "c3"})
    unreachable.close()
    assert (failed.value.error_type, failed.value.retryable) == ("ConnectionFailed", True)
    assert "do-not-print-me" not in str(failed.value)


def test_tools_become_capabilities_with_governance_attributes(crm: McpClient) -> None:
    found = {c.name: c for c in mcp_capabilities(crm, prefix="crm", include=None)}
    assert {"crm.lookup_customer", "crm.add_note", "crm.close_account"} <= set(found)
    lookup, note, close = (
        found["crm.lookup_customer"],
        found["crm.add_note"],
        found["crm.close_account"],
    )
    assert (lookup.side_effect, lookup.idempotent) == ("read", True)
    assert (note.side_effect, note.idempotent) == ("write", True)
    # no hints: the worst is assumed
    assert (close.side_effect, close.idempotent) == ("irreversible", False)
    assert lookup.source == "mcp:crm/lookup_customer"
    assert lookup.input_schema()["required"] == ["customer_id"]
    assert found["crm.summary"].output_schema() == {"type": "object"}

    [bound] = mcp_capabilities(
        crm,
        prefix="crm",
        tools={"close_account": ToolBinding(side_effect="write", idempotent=True, region="eu")},
    )
    assert (bound.name, bound.side_effect, bound.idempotent, bound.region) == (
        "crm.close_account",
        "write",
        True,
        "eu",
    )
    with pytest.raises(ConfigurationError, match="no tool named 'lookup_customers'"):
        mcp_capabilities(crm, prefix="crm", include=["lookup_customers"])


@pytest.fixture
def capabilities(calls: Calls, crm: McpClient) -> CapabilityRegistry:
    """The test capabilities and the tools server's, so policies and journeys know both."""
    registry = CapabilityRegistry()
    register_test_capabilities(registry, calls)
    for capability in mcp_capabilities(crm, prefix="crm", tools=CRM_BINDINGS):
        registry.add(capability)
    return registry


def test_a_journey_calls_mcp_tools_through_the_gateway(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(CRM_JOURNEY))
    accord.consent.grant(
        T, SUBJECT, purpose=SERVICE, categories=["pd:Name", "pd:EmailAddress"], actor="test"
    )
    run_id = accord.runtime.start(T, "crm_lookup", subject=SUBJECT).run_id
    refused_id = accord.runtime.start(T, "crm_lookup", subject=STRANGER).run_id
    accord.runtime.drive()

    view = accord.runtime.get(T, run_id)
    assert (view.status, view.outcome) == ("completed", "done")
    assert view.output["customer"]["email"] == "ada@example.org"
    # the connector passed the run's idempotency key to the tool as request metadata
    assert view.output["note"]["idempotency_key"] == f"{run_id}/note/1"
    assert [(d.capability, d.outcome) for d in accord.runtime.decisions(T, run_id)] == [
        ("crm.lookup_customer", "executed"),
        ("crm.add_note", "executed"),
    ]
    calls = accord.ledger.entries(T, run_id=run_id, kinds=["connector.call"])
    assert [e.body["capability"] for e in calls] == ["crm.lookup_customer", "crm.add_note"]

    refused = accord.runtime.get(T, refused_id)
    assert (refused.outcome, refused.output) == ("asked_for_consent", {"why": "consent_missing"})
    assert accord.ledger.entries(T, run_id=refused_id, kinds=["connector.call"]) == []
    assert accord.verify_ledger().ok


# -- the SDK's client against Accord's server ------------------------------------------------


EXPOSED = [
    ExposedTool("test.profile", SERVICE),
    ExposedTool("test.echo", None, name="echo", description="Say it back."),
    ExposedTool("test.charge", SERVICE),
]


@pytest.fixture
def served(make_accord: Callable[..., Accord]) -> Iterator[tuple[Accord, str]]:
    """Accord with the example policies, serving ``EXPOSED`` over streamable HTTP."""
    accord = make_accord(policies=POLICIES)
    server = build_server(accord, EXPOSED, principal=AGENT)
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_http, args=(server,), kwargs={"token": TOKEN, "port": port, "stop": stop}
    )
    thread.start()
    try:
        wait_for_port(port)
        yield accord, f"http://127.0.0.1:{port}/mcp"
    finally:
        stop.set()
        thread.join(10)


def session(url: str, token: str | None = TOKEN) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(20.0))
    return Client(streamable_http_client(url, http_client=http), cache=None)


def agent_calls(
    url: str, *calls: tuple[str, dict[str, Any], dict[str, Any] | None]
) -> tuple[list[Any], list[CallToolResult]]:
    """List the tools and make ``calls`` (tool, arguments, meta) in one session."""

    async def run() -> tuple[list[Any], list[CallToolResult]]:
        async with session(url) as client:
            listed = (await client.list_tools()).tools
            results = [
                await client.call_tool(name, arguments, meta=meta)
                for name, arguments, meta in calls
            ]
            return listed, results

    return anyio.run(run)


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result
    return " ".join(getattr(item, "text", "") for item in result.content)


def grant(accord: Accord, clock: FrozenClock, subject: str, *categories: str) -> str:
    return accord.consent.grant(
        T, subject, purpose=SERVICE, categories=list(categories), actor="test"
    ).grant_id


def test_an_agent_lists_the_exposed_tools_and_calls_them_governed(
    served: tuple[Accord, str], clock: FrozenClock, calls: Calls
) -> None:
    accord, url = served
    grant_id = grant(accord, clock, SUBJECT, "pd:Name", "pd:EmailAddress")
    # a run beside the direct calls: the ledger tells both apart at replay (see conftest)
    accord.runtime.catalog.deploy(T, load_journey_text(PROFILE_JOURNEY))
    accord.runtime.start(T, "profile", subject=SUBJECT)
    accord.runtime.drive()

    listed, [profile, echo] = agent_calls(
        url,
        (
            "test.profile",
            {"subject_id": SUBJECT, "input": {"customer_id": "c1"}},
            {"idempotency_key": "request-1"},
        ),
        ("echo", {"input": {"value": "hello"}}, None),
    )
    tools = {tool.name: tool for tool in listed}
    assert set(tools) == {"test.profile", "echo", "test.charge"}
    assert tools["test.profile"].input_schema["required"] == ["subject_id"]
    assert tools["echo"].input_schema["required"] == []
    assert tools["echo"].description == "Say it back."
    assert "required" not in tools["test.profile"].output_schema
    assert tools["test.profile"].annotations.read_only_hint is True

    assert not profile.is_error, profile
    assert profile.structured_content == {
        "customer_id": "c1",
        "name": "Ada Lovelace",
        "email": "ada@example.org",
        "tier": "gold",
    }
    assert echo.structured_content == {"value": "hello", "number": 0.0}
    assert calls.by_key["request-1"] == 1

    [decision] = accord.ledger.entries(T, subject_id=SUBJECT, kinds=["gateway.decision"])[-1:]
    assert decision.run_id is None
    assert decision.body["capability"] == "test.profile"
    assert decision.body["outcome"] == "executed"
    assert decision.body["lawful_basis"]["grants"] == [grant_id]
    assert decision.personal["principal"] == {"type": "Agent", "id": AGENT}
    assert decision.personal["context"]["channel"] == "mcp"
    assert accord.verify_ledger().ok


def test_calls_the_gateway_does_not_execute_are_tool_errors_with_their_reason(
    served: tuple[Accord, str], clock: FrozenClock, calls: Calls
) -> None:
    accord, url = served
    grant(accord, clock, SUBJECT, "pd:PaymentCard")
    _, [unconsented, forbidden] = agent_calls(
        url,
        ("test.profile", {"subject_id": STRANGER, "input": {"customer_id": "c2"}}, None),
        ("test.charge", {"subject_id": SUBJECT, "input": {"amount": 10.0}}, None),
    )
    assert "refused (consent_missing)" in error_text(unconsented)
    assert "refused (policy_denied)" in error_text(forbidden)
    assert "agents-never-charge" in error_text(forbidden)
    assert calls.by_capability["test.profile"] == calls.by_capability["test.charge"] == 0

    reported = forbidden.meta["accord/result"]
    assert (reported["status"], reported["reason"]) == ("refused", "policy_denied")
    assert f"[decision {reported['decision_id']}]" in error_text(forbidden)
    found = {
        e.body["decision_id"]: e.body for e in accord.ledger.entries(T, kinds=["gateway.decision"])
    }
    assert found[reported["decision_id"]]["reason"] == "policy_denied"
    assert found[reported["decision_id"]]["policy"]["determining"] == ["agents-never-charge"]
    assert accord.verify_ledger().ok


def test_the_agents_kill_switch_holds_its_calls(served: tuple[Accord, str], calls: Calls) -> None:
    accord, url = served
    accord.set_flag(f"agent:{AGENT}", False, actor="ops", reason="misbehaving")
    _, [held] = agent_calls(url, ("echo", {"input": {"value": "x"}}, None))
    assert "held (kill_switch)" in error_text(held)
    assert f"agent:{AGENT}" in error_text(held)
    assert calls.by_capability["test.echo"] == 0

    accord.set_flag(f"agent:{AGENT}", True, actor="ops", reason="fixed")
    _, [answered] = agent_calls(url, ("echo", {"input": {"value": "x"}}, None))
    assert answered.structured_content == {"value": "x", "number": 0.0}


def test_http_needs_the_bearer_token(served: tuple[Accord, str]) -> None:
    _, url = served
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = httpx.post(url, json=ping, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"].startswith("Bearer")

    async def without_token() -> None:
        async with session(url, token=None) as client:
            await client.list_tools()

    with pytest.raises(Exception) as refused:
        anyio.run(without_token)
    leaf: BaseException = refused.value
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, MCPError)
    assert "unauthorized" in leaf.message


def test_a_capability_with_personal_data_needs_a_purpose_to_be_exposed(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord()
    with pytest.raises(ConfigurationError, match="exposed without a purpose"):
        build_server(accord, [ExposedTool("test.profile", None)], principal=AGENT)
    with pytest.raises(ConfigurationError, match="cannot name the agent"):
        build_server(accord, [ExposedTool("test.echo", None)], principal="two words")


def test_accord_mcp_serve_over_stdio(
    make_accord: Callable[..., Accord], database_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    accord = make_accord(policies=POLICIES)
    grant(accord, clock, SUBJECT, "pd:Name", "pd:EmailAddress")
    environment = {
        "ACCORD_DATABASE_URL": database_url,
        "ACCORD_KEYS_DIR": str(tmp_path / "keys"),
        "ACCORD_CAPABILITY_MODULES": '["tests.mcp_capabilities"]',
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }
    command = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "accord",
            "mcp",
            "serve",
            "--expose",
            f"test.profile={SERVICE}",
            "--principal",
            AGENT,
        ],
        env=environment,
        cwd=ROOT,
    )

    async def run() -> tuple[list[str], CallToolResult, CallToolResult]:
        async with Client(command, cache=None, read_timeout_seconds=30) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            arguments = {"input": {"customer_id": "c1"}}
            allowed = await client.call_tool("test.profile", {"subject_id": SUBJECT, **arguments})
            refused = await client.call_tool("test.profile", {"subject_id": STRANGER, **arguments})
            return names, allowed, refused

    names, allowed, refused = anyio.run(run)
    assert names == ["test.profile"]
    assert allowed.structured_content is not None
    assert allowed.structured_content["email"] == "ada@example.org"
    assert "refused (consent_missing)" in error_text(refused)
    outcomes = [
        (e.subject_id, e.body["outcome"], e.body["reason"])
        for e in accord.ledger.entries(T, kinds=["gateway.decision"])
    ]
    assert outcomes == [(SUBJECT, "executed", None), (STRANGER, "refused", "consent_missing")]
    assert accord.verify_ledger().ok
