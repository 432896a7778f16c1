"""PydanticAIProvider against a real local model server that plays back recorded exchanges.

Nothing is patched: the provider talks HTTP to :class:`RecordedModelServer` through pydantic-ai
and the vendor SDKs, in the OpenAI chat-completions and Anthropic Messages protocols.
"""

from __future__ import annotations

import asyncio
import json
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from accord.agents._llm import OUTPUT_TOOL, PydanticAIProvider
from accord.agents._provider import AgentReply, AgentRequest, ToolResult, ToolSpec
from accord.errors import BudgetExceeded, ConfigurationError, ContractViolation, ProviderFailed
from accord.testing import RecordedModelServer, Recording

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llm"
KEY = "sk-test-7f3a9c1e5b"
PROTOCOLS = ("openai", "anthropic")

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": ["billing_dispute", "needs_human", "other"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["intent", "confidence"],
}
LOOKUP = ToolSpec(
    name="lookup_customer",
    description="Find a customer by id.",
    input_schema={
        "type": "object",
        "properties": {"customer_id": {"type": "string"}},
        "required": ["customer_id"],
    },
)


def request(**changes: Any) -> AgentRequest:
    base = AgentRequest(
        agent="triage",
        version=3,
        provider="openai",
        model="triage-model",
        instructions="You sort customer messages into intents.",
        message="Customer says: my card was charged twice for order 1187.",
        input={"text": "my card was charged twice for order 1187"},
        output_schema=OUTPUT_SCHEMA,
    )
    return replace(base, **changes)


@dataclass
class Gateway:
    """A ToolRunner double: records calls, answers from a script."""

    answers: dict[str, ToolResult] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)

    def __call__(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        self.calls.append((name, arguments))
        self.threads.append(threading.get_ident())
        return self.answers.get(name, ToolResult(ok=False, message=f"no answer for {name}"))


def found_customer() -> ToolResult:
    return ToolResult(ok=True, output={"customer_id": "cus_00042", "plan": "pro"})


@pytest.fixture
def triage() -> Iterator[RecordedModelServer]:
    with RecordedModelServer(Recording.load(FIXTURES / "triage.json"), api_key=KEY) as server:
        yield server


@pytest.fixture
def lookup() -> Iterator[RecordedModelServer]:
    with RecordedModelServer(Recording.load(FIXTURES / "lookup.json"), api_key=KEY) as server:
        yield server


def provider_for(
    server: RecordedModelServer, protocol: str, *, key: str = KEY
) -> PydanticAIProvider:
    if protocol == "openai":
        return PydanticAIProvider("openai", base_url=server.url, api_key=SecretStr(key))
    return PydanticAIProvider("anthropic", base_url=server.anthropic_url, api_key=SecretStr(key))


def ask(
    server: RecordedModelServer,
    protocol: str,
    the_request: AgentRequest,
    gateway: Gateway | None = None,
) -> AgentReply:
    with provider_for(server, protocol) as provider:
        return provider.complete(
            replace(the_request, provider="openai" if protocol == "openai" else "anthropic"),
            gateway or Gateway(),
        )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_structured_output_round_trip(triage: RecordedModelServer, protocol: str) -> None:
    reply = ask(triage, protocol, request())

    assert reply.output == {"intent": "billing_dispute", "confidence": 0.82}
    assert reply.confidence == 0.82
    assert reply.model == "triage-model"
    assert reply.usage.input_tokens == 120
    assert reply.usage.output_tokens == 14
    assert reply.usage.requests == 1
    assert reply.detail["provider"] == protocol
    (sent,) = triage.requests
    assert sent.protocol == protocol
    assert sent.model == "triage-model"
    assert sent.exchange == "classify"
    assert sent.messages[0].role == "system"
    assert "You sort customer messages into intents." in sent.messages[0].text
    assert sent.last_message is not None
    assert sent.last_message.text == request().message
    assert OUTPUT_TOOL in sent.tools


def test_output_schema_is_sent_and_not_modified(triage: RecordedModelServer) -> None:
    schema = json.loads(json.dumps(OUTPUT_SCHEMA))

    ask(triage, "openai", request(output_schema=schema))

    assert schema == OUTPUT_SCHEMA
    (tool,) = [
        each for each in triage.requests[0].body["tools"] if each["function"]["name"] == OUTPUT_TOOL
    ]
    assert tool["function"]["parameters"]["properties"]["intent"]["enum"] == [
        "billing_dispute",
        "needs_human",
        "other",
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tool_call_goes_through_the_runner_and_its_result_back_to_the_model(
    lookup: RecordedModelServer, protocol: str
) -> None:
    gateway = Gateway(answers={"lookup_customer": found_customer()})

    reply = ask(lookup, protocol, request(tools=(LOOKUP,)), gateway)

    assert gateway.calls == [("lookup_customer", {"customer_id": "cus_00042"})]
    assert gateway.threads == [threading.get_ident()]
    first, second = lookup.requests
    assert set(first.tools) == {"lookup_customer", OUTPUT_TOOL}
    assert first.tool_results == ()
    (result,) = second.tool_results
    assert result.tool_name == "lookup_customer"
    assert json.loads(result.text) == {"customer_id": "cus_00042", "plan": "pro"}
    assert second.exchange == "answer-with-customer"
    assert reply.output == {"intent": "billing_dispute", "confidence": 0.91}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_usage_is_summed_over_the_run(lookup: RecordedModelServer, protocol: str) -> None:
    gateway = Gateway(answers={"lookup_customer": found_customer()})

    reply = ask(lookup, protocol, request(tools=(LOOKUP,)), gateway)

    assert reply.usage.input_tokens == 150 + 210
    assert reply.usage.output_tokens == 20 + 15
    assert reply.usage.requests == 2
    assert reply.usage.tool_calls == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_tool_call_is_shown_to_the_model_and_the_run_goes_on(
    lookup: RecordedModelServer, protocol: str
) -> None:
    refused = ToolResult(ok=False, message="consent for support_triage was withdrawn")
    gateway = Gateway(answers={"lookup_customer": refused})

    reply = ask(lookup, protocol, request(tools=(LOOKUP,)), gateway)

    assert len(gateway.calls) == 1
    (result,) = lookup.requests[1].tool_results
    assert result.text == "refused: consent for support_triage was withdrawn"
    assert lookup.requests[1].exchange == "answer-after-refusal"
    assert reply.output == {"intent": "needs_human", "confidence": 0.4}


def test_a_refusal_without_a_message_still_says_refused(lookup: RecordedModelServer) -> None:
    gateway = Gateway(answers={"lookup_customer": ToolResult(ok=False, reason="kill_switch")})

    ask(lookup, "openai", request(tools=(LOOKUP,)), gateway)

    assert lookup.requests[1].tool_results[0].text == "refused: kill_switch"


def test_an_error_the_runner_raises_is_not_swallowed(lookup: RecordedModelServer) -> None:
    def gateway(name: str, arguments: dict[str, Any]) -> ToolResult:
        raise ContractViolation(f"{name}: customer_id must match cus_\\d+")

    with (
        provider_for(lookup, "openai") as provider,
        pytest.raises(ContractViolation, match="customer_id"),
    ):
        provider.complete(request(tools=(LOOKUP,)), gateway)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_token_budget_smaller_than_the_usage_raises(
    triage: RecordedModelServer, protocol: str
) -> None:
    with pytest.raises(BudgetExceeded) as caught:
        ask(triage, protocol, request(max_tokens=100))

    assert caught.value.limit == "tokens"
    assert caught.value.used == 134
    assert caught.value.allowed == 100
    assert caught.value.retryable is False
    assert "134 tokens of the 100" in caught.value.message


def test_a_token_budget_the_run_fits_in_is_fine(triage: RecordedModelServer) -> None:
    reply = ask(triage, "openai", request(max_tokens=134))

    assert reply.usage.tokens == 134


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_tool_call_budget_of_one_stops_a_model_asking_for_two(protocol: str) -> None:
    recording = Recording.load(FIXTURES / "two_lookups.json")
    gateway = Gateway(answers={"lookup_customer": found_customer()})

    with (
        RecordedModelServer(recording, api_key=KEY) as server,
        pytest.raises(BudgetExceeded) as caught,
    ):
        ask(server, protocol, request(tools=(LOOKUP,), max_tool_calls=1), gateway)

    assert caught.value.limit == "tool_calls"
    assert caught.value.used == 2
    assert caught.value.allowed == 1
    assert gateway.calls == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_error_is_a_retryable_provider_failure(
    triage: RecordedModelServer, protocol: str
) -> None:
    triage.fail(500, message="upstream model crashed")

    with pytest.raises(ProviderFailed) as caught:
        ask(triage, protocol, request())

    assert caught.value.retryable is True
    assert "HTTP 500" in caught.value.message
    assert "'triage-model'" in caught.value.message
    assert protocol in caught.value.message
    assert "upstream model crashed" in caught.value.message
    assert [each.status for each in triage.requests] == [500]


def test_the_sdk_does_not_retry_by_default(triage: RecordedModelServer) -> None:
    triage.fail(503, times=1)

    with pytest.raises(ProviderFailed):
        ask(triage, "openai", request())

    assert len(triage.requests) == 1


def test_sdk_retries_when_asked(triage: RecordedModelServer) -> None:
    triage.fail(503, times=1, retry_after=0)
    provider = PydanticAIProvider(
        "openai", base_url=triage.url, api_key=SecretStr(KEY), max_retries=1
    )

    reply = provider.complete(request(), Gateway())

    assert reply.output["intent"] == "billing_dispute"
    assert [each.status for each in triage.requests] == [503, 200]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rate_limiting_is_retryable_and_says_how_long_to_wait(
    triage: RecordedModelServer, protocol: str
) -> None:
    triage.fail(429, retry_after=7, message="slow down")

    with pytest.raises(ProviderFailed) as caught:
        ask(triage, protocol, request())

    assert caught.value.retryable is True
    assert "HTTP 429" in caught.value.message
    assert caught.value.hint is not None
    assert "7s" in caught.value.hint


def test_a_recorded_fault_answers_like_an_injected_one() -> None:
    recording = Recording.model_validate(
        {"exchanges": [{"name": "overloaded", "fault": {"status": 529, "message": "overloaded"}}]}
    )

    with RecordedModelServer(recording) as server, pytest.raises(ProviderFailed) as caught:
        ask(server, "anthropic", request())

    assert caught.value.retryable is True
    assert server.requests[0].exchange == "overloaded"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_wrong_key_is_not_retryable_and_never_shown(
    triage: RecordedModelServer, protocol: str
) -> None:
    wrong = "sk-wrong-0d9e8f7a6b"
    with (
        provider_for(triage, protocol, key=wrong) as provider,
        pytest.raises(ProviderFailed) as caught,
    ):
        provider.complete(request(), Gateway())

    assert caught.value.retryable is False
    assert "HTTP 401" in caught.value.message
    shown = "".join(traceback.format_exception(caught.value))
    assert wrong not in shown
    assert wrong not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert [each.status for each in triage.requests] == [401]


def test_the_server_echoes_a_wrong_key_so_the_protection_above_is_tested(
    triage: RecordedModelServer,
) -> None:
    answer = httpx.post(
        f"{triage.url}/chat/completions",
        headers={"Authorization": "Bearer sk-wrong-0d9e8f7a6b"},
        json={"model": "triage-model", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert answer.status_code == 401
    assert "sk-wrong-0d9e8f7a6b" in answer.json()["error"]["message"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unmatched_request_gets_a_clear_error(
    triage: RecordedModelServer, protocol: str
) -> None:
    with pytest.raises(ProviderFailed) as caught:
        ask(triage, protocol, request(message="Where is my parcel?"))

    message = caught.value.message
    assert caught.value.retryable is False
    assert "HTTP 400" in message
    assert "no recorded exchange matches" in message
    assert "'triage-model'" in message
    assert "Where is my parcel?" in message
    assert triage.requests[0].status == 400
    assert triage.requests[0].exchange is None


def test_a_repair_retry_shows_the_problems_and_the_previous_output(
    triage: RecordedModelServer,
) -> None:
    previous = {"intent": "refund", "confidence": 1.7}
    repair = ("intent: 'refund' is not one of the allowed values", "confidence: 1.7 > 1")

    reply = ask(triage, "openai", request(repair=repair, previous=previous))

    prompt = triage.requests[0].last_message
    assert prompt is not None
    assert prompt.text.startswith(request().message)
    for problem in repair:
        assert f"- {problem}" in prompt.text
    assert json.dumps(previous, indent=2, sort_keys=True) in prompt.text
    assert "corrected output" in prompt.text
    assert reply.output["intent"] == "billing_dispute"


def test_native_output_mode_reads_the_answer_text() -> None:
    recording = Recording.model_validate(
        {
            "exchanges": [
                {
                    "reply": {
                        "content": '{"intent": "other", "confidence": 0.6}',
                        "usage": {"prompt_tokens": 30, "completion_tokens": 9},
                    }
                }
            ]
        }
    )
    with RecordedModelServer(recording) as server:
        reply = PydanticAIProvider("openai", base_url=server.url).complete(
            request(settings={"output_mode": "native", "temperature": 0}), Gateway()
        )

    assert reply.output == {"intent": "other", "confidence": 0.6}
    body = server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["temperature"] == 0
    assert "tools" not in body


def test_an_unknown_output_mode_is_refused_before_asking(triage: RecordedModelServer) -> None:
    with pytest.raises(ProviderFailed, match="output_mode") as caught:
        ask(triage, "openai", request(settings={"output_mode": "telepathy"}))

    assert caught.value.retryable is False
    assert triage.requests == []


def test_confidence_outside_zero_to_one_is_not_reported() -> None:
    recording = Recording.model_validate(
        {
            "exchanges": [
                {
                    "reply": {
                        "tool_calls": [
                            {"name": OUTPUT_TOOL, "arguments": {"intent": "other", "confidence": 3}}
                        ]
                    }
                }
            ]
        }
    )
    with RecordedModelServer(recording) as server:
        reply = PydanticAIProvider("openai", base_url=server.url).complete(request(), Gateway())

    assert reply.output["confidence"] == 3
    assert reply.confidence is None


def test_an_unreachable_server_is_a_retryable_failure() -> None:
    with RecordedModelServer(Recording(exchanges=())) as server:
        url = server.url
    provider = PydanticAIProvider("openai", base_url=url, api_key=SecretStr(KEY))

    with pytest.raises(ProviderFailed) as caught:
        provider.complete(request(), Gateway())

    assert caught.value.retryable is True
    assert "could not reach" in caught.value.message


def test_works_from_threads_without_an_event_loop_and_repeatedly(
    triage: RecordedModelServer,
) -> None:
    provider = provider_for(triage, "openai")
    replies: list[AgentReply] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            replies.extend(provider.complete(request(), Gateway()) for _ in range(3))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replies.extend(provider.complete(request(), Gateway()) for _ in range(2))

    assert errors == []
    assert [reply.output["intent"] for reply in replies] == ["billing_dispute"] * 11
    assert len(triage.requests) == 11


def test_calling_from_a_running_event_loop_is_refused(triage: RecordedModelServer) -> None:
    provider = provider_for(triage, "openai")

    async def inside() -> None:
        provider.complete(request(), Gateway())

    with pytest.raises(ConfigurationError, match="running event loop"):
        asyncio.run(inside())


def test_a_closed_provider_refuses_requests(triage: RecordedModelServer) -> None:
    provider = provider_for(triage, "openai")
    provider.close()

    with pytest.raises(ConfigurationError, match="closed"):
        provider.complete(request(), Gateway())


@pytest.mark.parametrize(
    ("kind", "base_url"),
    [("anthropic", "http://127.0.0.1:9"), ("openai", None)],
)
def test_a_key_is_required_where_the_api_needs_one(kind: Any, base_url: str | None) -> None:
    with pytest.raises(ConfigurationError, match="needs an API key"):
        PydanticAIProvider(kind, base_url=base_url, api_key=None)


def test_a_missing_recording_field_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"exchanges": [{"name": "x", "reply": {"usage": {}}}]}))

    with pytest.raises(ConfigurationError) as caught:
        Recording.load(broken)

    assert str(broken) in caught.value.message
    assert "exchanges.0.reply" in caught.value.message
    assert "content, tool_calls or both" in caught.value.message


def test_exchanges_play_in_sequence_and_the_unused_are_listed() -> None:
    recording = Recording.model_validate(
        {
            "exchanges": [
                {"name": "first", "reply": {"content": "one"}},
                {"name": "second", "reply": {"content": "two"}},
                {"name": "third", "reply": {"content": "three"}},
            ]
        }
    )
    with RecordedModelServer(recording) as server:
        answers = [
            httpx.post(
                f"{server.url}/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            ).json()["choices"][0]["message"]["content"]
            for _ in range(2)
        ]
        models = httpx.get(f"{server.url}/models").json()

        assert answers == ["one", "two"]
        assert server.unused == ["third"]
        assert models["object"] == "list"


def test_an_answer_cut_off_at_the_output_cap_is_a_provider_failure() -> None:
    recording = Recording.model_validate(
        {
            "exchanges": [
                {"reply": {"content": '{"intent": "oth', "finish_reason": "length"}, "times": None}
            ]
        }
    )
    with RecordedModelServer(recording) as server, pytest.raises(ProviderFailed) as caught:
        PydanticAIProvider("openai", base_url=server.url).complete(
            request(settings={"max_output_tokens": 5, "output_mode": "native"}), Gateway()
        )

    assert "out of protocol" in caught.value.message
    assert caught.value.hint == "raise the route's max_output_tokens setting"
    assert server.requests[0].body["max_completion_tokens"] == 5
