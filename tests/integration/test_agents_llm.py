"""An agent block backed by an LLM over HTTP: a real local server that speaks the OpenAI and
Anthropic protocols plays back recorded answers, and tool calls pass the gateway."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from accord.agents import LlmEndpoint, load_agent_text
from accord.connectors import CapabilityRegistry
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Accord, Settings, build
from accord.testing import FrozenClock, RecordedModelServer, Recording, SequentialIds
from tests.capabilities import Calls
from tests.governance import PERMIT_ALL, deploy_policies

T = TenantId("default")
SUBJECT = "cust-1"
PURPOSE = "dpv:ServiceProvision"

RECORDING = {
    "exchanges": [
        {
            "name": "look-it-up",
            "match": {"tool_result": False},
            "reply": {
                "tool_calls": [
                    {"name": "test__echo", "arguments": {"value": "order 42"}},
                    {"name": "test__charge", "arguments": {"amount": 900.0}},
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 30},
            },
        },
        {
            "name": "answer",
            "match": {"tool_result_contains": "order 42"},
            "reply": {
                "tool_calls": [
                    {
                        "name": "final_result",
                        "arguments": {"action": "refund", "amount": 12.5, "confidence": 0.93},
                    }
                ],
                "usage": {"prompt_tokens": 200, "completion_tokens": 20},
            },
        },
    ]
}

AGENT = """
agent: remedy
version: 1
purpose: dpv:ServiceProvision
model:
  provider: {provider}
  name: small-model
  endpoint: local
  price: {{input: 0.5, output: 1.5}}
prompt: remedy
input:
  message: {{type: string}}
output:
  schema:
    type: object
    properties:
      action: {{enum: [refund, none]}}
      amount: {{type: number, minimum: 0}}
      confidence: {{type: number, minimum: 0, maximum: 1}}
    required: [action, amount, confidence]
tools: [test.echo]
bands: {{auto: 0.9, confirm: 0.6}}
"""

JOURNEY = """
journey: support
purpose: dpv:ServiceProvision
input: {message: string}
blocks:
  - id: triage
    kind: agent
    agent: remedy
    input: {message: input.message}
  - id: act
    kind: task
    capability: test.double
    input: {amount: steps.triage.output.amount}
  - {id: done, kind: end, outcome: resolved, output: {amount: steps.act.amount}}
"""


@pytest.fixture
def server() -> Iterator[RecordedModelServer]:
    with RecordedModelServer(Recording.model_validate(RECORDING), api_key="sk-test") as running:
        yield running


def wired(
    provider: str,
    server: RecordedModelServer,
    database_url: str,
    clock: FrozenClock,
    capabilities: CapabilityRegistry,
    tmp_path: Path,
) -> Accord:
    base = server.url if provider == "openai" else server.anthropic_url
    settings = Settings(
        database_url=database_url,
        keys_dir=tmp_path / "keys",
        llm_endpoints={
            "local": LlmEndpoint(kind=provider, base_url=base, api_key=SecretStr("sk-test"))
        },
    )
    accord = build(settings, capabilities=capabilities, clock=clock, ids=SequentialIds(0))
    deploy_policies(accord, PERMIT_ALL)
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "remedy.md").write_text(
        "Decide a remedy. Look the order up first.\n<!-- user -->\n{{ input.message }}\n"
    )
    spec = textwrap.dedent(AGENT).format(provider=provider)
    accord.deploy_agent(load_agent_text(spec, source_name="remedy.yaml", base=tmp_path))
    accord.runtime.catalog.deploy(T, load_journey_text(JOURNEY))
    return accord


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_llm_agent_calls_tools_through_the_gateway_and_its_output_drives_the_run(
    provider: str,
    server: RecordedModelServer,
    database_url: str,
    clock: FrozenClock,
    capabilities: CapabilityRegistry,
    calls: Calls,
    tmp_path: Path,
) -> None:
    accord = wired(provider, server, database_url, clock, capabilities, tmp_path)
    try:
        run_id = accord.runtime.start(
            T, "support", input={"message": "refund me at ada@example.org"}, subject=SUBJECT
        ).run_id
        accord.runtime.drive()
        view = accord.runtime.get(T, run_id)
        assert (view.status, view.outcome, view.output) == (
            "completed",
            "resolved",
            {"amount": 25.0},
        )
        # the model asked for a tool it was not given: refused, recorded, and told so
        assert calls.by_capability["test.echo"] == 1
        assert calls.by_capability["test.charge"] == 0
        refused = [d for d in accord.runtime.decisions(T, run_id) if d.capability == "test.charge"]
        assert [(d.outcome, d.reason) for d in refused] == [("refused", "tool_not_allowed")]
        answer = server.requests[-1]
        tool_texts = [m.text for m in answer.messages if m.role == "tool"]
        assert any("order 42" in t for t in tool_texts)
        assert any("Unknown tool name: 'test__charge'" in t for t in tool_texts)
        # the e-mail address never reached the model
        sent = " ".join(m.text for r in server.requests for m in r.messages)
        assert "ada@example.org" not in sent and "[email]" in sent
        usage = accord.run_usage(run_id)
        assert (usage["input_tokens"], usage["output_tokens"]) == (320, 50)
        assert usage["cost"] == pytest.approx((320 * 0.5 + 50 * 1.5) / 1000)
    finally:
        accord.close()


def test_a_failing_model_endpoint_retries_the_block_and_then_fails_the_run(
    server: RecordedModelServer,
    database_url: str,
    clock: FrozenClock,
    capabilities: CapabilityRegistry,
    tmp_path: Path,
) -> None:
    accord = wired("openai", server, database_url, clock, capabilities, tmp_path)
    try:
        server.fail(500, times=10)
        run_id = accord.runtime.start(T, "support", input={"message": "hi"}, subject=SUBJECT).run_id
        for _ in range(5):
            accord.runtime.drive()
            clock.advance(600)
        view = accord.runtime.get(T, run_id)
        assert view.status == "failed" and view.error is not None
        assert view.error["type"] == "ProviderFailed"
        assert "sk-test" not in view.error["message"]
        retried = [
            e for e in accord.runtime.history(T, run_id) if e.kind == "block.retry_scheduled"
        ]
        assert len(retried) == 2
    finally:
        accord.close()
