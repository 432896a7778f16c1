"""What a model provider is given and what it answers: the contract every provider keeps.

A provider turns one :class:`AgentRequest` (rendered, redacted instructions and message, the
output's JSON Schema, the tools it may ask for) into one :class:`AgentReply`. It never calls a
capability itself: a tool call goes through the :class:`ToolRunner` it is handed, which sends
it through the gateway with the agent as principal and answers with what the gateway let
through. Providers raise :class:`~accord.errors.ProviderFailed` when the model could not be
asked, and :class:`~accord.errors.BudgetExceeded` when a limit in the request was reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

ProviderKind = Literal["local", "openai", "anthropic", "scripted", "obedient"]
"""Where a model runs: ``local`` (the embedded scikit-learn intent model), ``openai`` (any
OpenAI-compatible endpoint), ``anthropic``, ``scripted`` (answers written in the spec, for
simulations) and ``obedient`` (a scripted model that obeys every instruction it reads, for
attack tests)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to a model: a capability the agent's spec allows."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What the gateway let a tool call return.

    ``ok`` is False when the call was refused (kill switch, consent, policy, not allowed to
    this agent) or failed; ``message`` then says why, in words the model may read. ``output``
    is the call's output projected to the categories the purpose allows, and redacted.
    """

    ok: bool
    output: dict[str, Any] | None = None
    message: str | None = None
    reason: str | None = None


@runtime_checkable
class ToolRunner(Protocol):
    """Runs one tool call through the gateway, with the agent as principal."""

    def __call__(self, name: str, arguments: dict[str, Any]) -> ToolResult: ...


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """One question to a model.

    Attributes:
        agent: the spec's name.
        version: the spec's version.
        provider: the provider kind asked.
        model: the model's name at that provider (for ``local``, the trained model's name).
        instructions: the rendered system prompt.
        message: the rendered user message (PII redacted unless the purpose allows it).
        input: the agent's input as mapped by the journey, redacted like ``message``.
        output_schema: JSON Schema of the output object the model must produce.
        tools: the tools the model may ask for.
        repair: problems found in the previous attempt's output; non-empty on a repair retry.
        previous: the previous attempt's output, on a repair retry.
        max_tokens: tokens (input and output) this request may still use, if limited.
        max_tool_calls: tool calls this request may still make, if limited.
        timeout: seconds this request may still take, if limited.
        settings: provider settings from the spec (temperature, base URL name...).
    """

    agent: str
    version: int
    provider: ProviderKind
    model: str
    instructions: str
    message: str
    input: dict[str, Any]
    output_schema: dict[str, Any]
    tools: tuple[ToolSpec, ...] = ()
    repair: tuple[str, ...] = ()
    previous: Any = None
    max_tokens: int | None = None
    max_tool_calls: int | None = None
    timeout: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one request used."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    tool_calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.requests + other.requests,
            self.tool_calls + other.tool_calls,
        )


@dataclass(frozen=True, slots=True)
class AgentReply:
    """A model's answer.

    Attributes:
        output: the structured output (validated by the engine, not the provider).
        confidence: the provider's confidence that the output is right, in [0, 1]. ``None``
            when the provider has none of its own; the engine then reads a ``confidence``
            field of the output, if the schema has one.
        usage: tokens, requests and tool calls this answer took.
        model: the model that answered.
        detail: provider facts worth recording (e.g. the local model's top scores).
    """

    output: Any
    confidence: float | None
    usage: Usage = Usage()
    model: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    """A model provider. Implementations: local, pydantic-ai (OpenAI-compatible, Anthropic),
    scripted and obedient."""

    kind: ProviderKind

    def complete(self, request: AgentRequest, tools: ToolRunner) -> AgentReply:
        """Answer one request, asking for tools through ``tools`` only.

        Raises:
            ProviderFailed: the model could not be asked or answered out of protocol.
            BudgetExceeded: ``max_tokens`` or ``max_tool_calls`` was reached.
        """
        ...
