"""Language models behind pydantic-ai: any OpenAI-compatible endpoint, and Anthropic.

:class:`PydanticAIProvider` answers an :class:`~accord.agents._provider.AgentRequest` with a
pydantic-ai :class:`~pydantic_ai.Agent` built for it: the request's instructions and message,
its output schema as the structured output, and one tool per :class:`ToolSpec`, each of which
calls the :class:`ToolRunner` it was handed and nothing else. A refused tool call is shown to
the model as ``refused: <why>`` so it can carry on. Token and tool-call budgets become pydantic-ai
usage limits, and a run that reaches one raises :class:`~accord.errors.BudgetExceeded`; a model
that cannot be asked raises :class:`~accord.errors.ProviderFailed`, which never shows the API key.

Each call runs on an event loop of its own in the calling thread, with HTTP clients opened and
closed inside it, so the provider can be called from any thread without an event loop, from
several threads at once, and as often as needed, without leaking connections.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import re
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_ai import (
    Agent,
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    NativeOutput,
    OutputTokenLimitExceeded,
    PromptedOutput,
    RunTimedOut,
    StructuredDict,
    Tool,
    ToolOutput,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UsageLimits,
    UserError,
    capture_run_messages,
)
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider
from pydantic_ai.settings import ModelSettings

from accord.agents._provider import (
    AgentReply,
    AgentRequest,
    ProviderKind,
    ToolResult,
    ToolRunner,
    ToolSpec,
    Usage,
)
from accord.errors import BudgetExceeded, ConfigurationError, ProviderFailed

__all__ = ["OUTPUT_TOOL", "LLMKind", "OutputMode", "PydanticAIProvider"]

LLMKind = Literal["openai", "anthropic"]
"""The provider kinds :class:`PydanticAIProvider` serves."""

OutputMode = Literal["tool", "native", "prompted"]
"""How the model is asked for its structured output (the ``output_mode`` setting): by calling the
output tool (the default; works wherever tools do), by the API's native JSON-schema response
format, or by a prompt that shows the schema (for models with neither)."""

OUTPUT_TOOL = "final_result"
"""The tool a model calls with its output, in the ``tool`` output mode."""

MAX_MODEL_REQUESTS = 50
"""Model requests one :meth:`PydanticAIProvider.complete` may make, tool round trips included."""

_ANTHROPIC_MAX_OUTPUT_TOKENS = 4096
_SHOWN_DETAIL = 300
_OUTPUT_MODES: tuple[OutputMode, ...] = ("tool", "native", "prompted")

_OutputSpec: TypeAlias = (
    ToolOutput[dict[str, Any]] | NativeOutput[dict[str, Any]] | PromptedOutput[dict[str, Any]]
)


class PydanticAIProvider:
    """A model at an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama...) or at Anthropic.

    Args:
        kind: ``openai`` for any OpenAI-compatible chat-completions endpoint, ``anthropic`` for
            the Anthropic Messages API.
        base_url: the API's base URL (for OpenAI-compatible servers, the one ending in ``/v1``).
            ``None`` means the vendor's own API.
        api_key: the key sent to the API. Required for Anthropic and for OpenAI's own API; a local
            OpenAI-compatible server may need none. Environment variables are never read.
        timeout: seconds one HTTP request to the model may take.
        max_retries: how often the vendor SDK retries a failed request itself. Accord retries at
            the block level, so the default is none.

    Request settings it reads: ``temperature``, ``top_p``, ``seed``, ``max_output_tokens`` and
    ``output_mode`` (see :data:`OutputMode`); others are ignored.

    Raises:
        ConfigurationError: an unknown kind, or a missing key that the API needs.
    """

    def __init__(
        self,
        kind: LLMKind,
        *,
        base_url: str | None = None,
        api_key: SecretStr | None = None,
        timeout: float = 30.0,
        max_retries: int = 0,
    ) -> None:
        if kind not in ("openai", "anthropic"):
            raise ConfigurationError(
                f"PydanticAIProvider serves kinds 'openai' and 'anthropic', not {kind!r}",
                hint="use the local, scripted or obedient providers for the other kinds",
            )
        if api_key is None and (kind == "anthropic" or base_url is None):
            where = "Anthropic" if kind == "anthropic" else "OpenAI's API"
            raise ConfigurationError(
                f"the {kind} provider needs an API key for {where}",
                hint="set the provider's api key in Accord's settings",
            )
        if timeout <= 0 or max_retries < 0:
            raise ConfigurationError(
                f"the {kind} provider needs timeout > 0 and max_retries >= 0 "
                f"(got timeout={timeout}, max_retries={max_retries})",
            )
        self.kind: ProviderKind = kind
        self.base_url = base_url
        self._api_key = api_key
        self._timeout = timeout
        self._max_retries = max_retries
        self._closed = False

    def __repr__(self) -> str:
        return f"PydanticAIProvider({self.kind!r}, base_url={self.base_url!r})"

    def complete(self, request: AgentRequest, tools: ToolRunner) -> AgentReply:
        """Ask the model, calling tools through ``tools`` only.

        Raises:
            ProviderFailed: the model could not be asked, failed, or answered out of protocol.
            BudgetExceeded: the request's token, tool-call or time budget was reached.
            ConfigurationError: the provider was closed, or is called from a running event loop.
        """
        if self._closed:
            raise ConfigurationError(
                f"{self!r} is closed", hint="build a new provider after closing one"
            )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ConfigurationError(
                f"{self!r}.complete() was called from a running event loop",
                hint="call it from a worker thread, e.g. with asyncio.to_thread",
            )
        with asyncio.Runner() as runner:
            return runner.run(self._complete(request, tools))

    def close(self) -> None:
        """Refuse further requests. Connections are closed after each request already."""
        self._closed = True

    def __enter__(self) -> PydanticAIProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def _complete(self, request: AgentRequest, tools: ToolRunner) -> AgentReply:
        try:
            agent = Agent(
                self._model(request.model),
                instructions=request.instructions,
                output_type=_output(request),
                tools=[_tool(spec, tools) for spec in request.tools],
            )
        except UserError as exc:
            raise self._unaskable(request, exc) from exc
        limits = UsageLimits(
            request_limit=MAX_MODEL_REQUESTS,
            total_tokens_limit=request.max_tokens,
            tool_calls_limit=request.max_tool_calls,
        )
        refused: ProviderFailed | None = None
        with capture_run_messages() as messages:
            try:
                async with agent:
                    result = await agent.run(
                        _prompt(request),
                        usage_limits=limits,
                        model_settings=self._settings(request),
                        timeout=request.timeout,
                    )
            except ModelHTTPError as exc:
                if exc.status_code not in (401, 403):
                    raise self._failure(request, exc) from exc
                refused = self._failure(request, exc)
            except UsageLimitExceeded as exc:
                raise _budget(request, messages, exc) from exc
            except RunTimedOut as exc:
                allowed = request.timeout or 0.0
                raise BudgetExceeded(
                    f"agent {request.agent!r} v{request.version} ran out of time: "
                    f"its {allowed:g}s were up before {self._where(request)} answered",
                    limit="wall_time",
                    used=allowed,
                    allowed=allowed,
                ) from exc
            except ModelAPIError as exc:
                raise self._failure(request, exc) from exc
            except UnexpectedModelBehavior as exc:
                hint = (
                    "raise the route's max_output_tokens setting"
                    if isinstance(exc, OutputTokenLimitExceeded)
                    else "retry; if it persists, try output_mode 'native' or 'prompted'"
                )
                raise ProviderFailed(
                    self._scrub(
                        f"{self._where(request)} answered out of protocol: {_shorten(exc.message)}"
                    ),
                    hint=hint,
                ) from exc
            except UserError as exc:
                raise self._unaskable(request, exc) from exc
        if refused is not None:
            # Raised outside the handler so the provider's error is neither cause nor context: an
            # authentication error's body can echo the key it was sent (OpenAI's does, masked),
            # and a traceback prints both.
            raise refused
        _report_unoffered(request, messages, tools)
        output = result.output
        if not isinstance(output, dict):
            raise ProviderFailed(
                f"{self._where(request)} gave a {type(output).__name__}, not an object",
                hint="retry; if it persists, try another output_mode",
            )
        usage = result.usage
        response = result.response
        return AgentReply(
            output=output,
            confidence=_confidence(output),
            usage=Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                requests=usage.requests,
                tool_calls=usage.tool_calls,
            ),
            model=request.model,
            detail={
                "provider": self.kind,
                "response_model": response.model_name,
                "response_id": response.provider_response_id,
                "finish_reason": response.finish_reason,
            },
        )

    def _model(self, name: str) -> Model:
        key = self._api_key.get_secret_value() if self._api_key is not None else None
        if self.kind == "anthropic":
            return AnthropicModel(
                name, provider=AnthropicProvider(api_key=key, base_url=self.base_url)
            )
        if self.base_url is None or _is_openai(self.base_url):
            provider: OpenAIProvider | OpenAICompatibleProvider = OpenAIProvider(
                base_url=self.base_url, api_key=key
            )
        else:
            provider = OpenAICompatibleProvider(
                "openai-compatible", base_url=self.base_url, api_key=key
            )
        return OpenAIChatModel(name, provider=provider)

    def _settings(self, request: AgentRequest) -> ModelSettings:
        settings = ModelSettings(timeout=self._timeout, max_retries=self._max_retries)
        given = request.settings
        if isinstance(given.get("temperature"), int | float):
            settings["temperature"] = float(given["temperature"])
        if isinstance(given.get("top_p"), int | float):
            settings["top_p"] = float(given["top_p"])
        if isinstance(given.get("seed"), int):
            settings["seed"] = given["seed"]
        max_output = given.get("max_output_tokens")
        if isinstance(max_output, int) and max_output > 0:
            settings["max_tokens"] = max_output
        elif self.kind == "anthropic":
            # Anthropic needs a cap, and pydantic-ai's default for known models is large enough to
            # make the SDK stream the request.
            settings["max_tokens"] = _ANTHROPIC_MAX_OUTPUT_TOKENS
        return settings

    def _where(self, request: AgentRequest) -> str:
        return f"{self.kind} model {request.model!r} at {_endpoint(self.kind, self.base_url)}"

    def _scrub(self, text: str) -> str:
        if self._api_key is None:
            return text
        key = self._api_key.get_secret_value()
        return text.replace(key, "***") if key else text

    def _unaskable(self, request: AgentRequest, exc: UserError) -> ProviderFailed:
        return ProviderFailed(
            self._scrub(
                f"cannot ask {self._where(request)} for agent {request.agent!r} "
                f"v{request.version}: {_shorten(exc.message)}"
            ),
            hint="check the agent's output schema (a JSON object schema) and its tool names",
            retryable=False,
        )

    def _failure(self, request: AgentRequest, exc: ModelAPIError) -> ProviderFailed:
        where = self._where(request)
        if isinstance(exc, ModelHTTPError):
            status = exc.status_code
            retryable = status == 429 or status >= 500
            if status in (401, 403):
                return ProviderFailed(
                    f"{where} refused the credentials (HTTP {status})",
                    hint="check the API key set for this provider and its access to the model",
                    retryable=False,
                )
            said = _provider_message(exc.body)
            message = f"{where} answered HTTP {status}" + (f": {said}" if said else "")
            if status == 429:
                wait = f" after {exc.retry_after:g}s" if exc.retry_after is not None else ""
                hint = f"the provider is limiting requests; retry{wait}"
            elif retryable:
                hint = "the provider failed; the block may be retried"
            elif status == 404:
                hint = "check the model name and the base URL"
            else:
                hint = "the provider refused the request: check the model name and the agent spec"
            return ProviderFailed(self._scrub(message), hint=hint, retryable=retryable)
        if isinstance(exc, ModelConnectionError | ModelRequestTimeout):
            return ProviderFailed(
                f"could not reach {where}: {type(exc).__name__}",
                hint="check that the model server is up and reachable; the block may be retried",
            )
        rejected = isinstance(exc, ModelRequestRejectedError)
        return ProviderFailed(
            self._scrub(f"{where} failed: {_shorten(exc.message)}"),
            hint="check the agent spec" if rejected else "the block may be retried",
            retryable=not rejected,
        )


def _output(request: AgentRequest) -> _OutputSpec:
    mode = request.settings.get("output_mode", "tool")
    if mode not in _OUTPUT_MODES:
        raise UserError(f"output_mode {mode!r} is not one of {', '.join(_OUTPUT_MODES)}")
    # StructuredDict writes a title into the schema it is given: hand it a copy.
    schema = StructuredDict(copy.deepcopy(request.output_schema), name=f"{request.agent}_output")
    if mode == "native":
        return NativeOutput(schema)
    if mode == "prompted":
        return PromptedOutput(schema)
    return ToolOutput(schema, name=OUTPUT_TOOL, description="Give your final output.")


def wire_name(name: str) -> str:
    """A capability's name as providers accept tool names (letters, digits, ``_``, ``-``):
    ``orders.get_order`` is offered as ``orders__get_order``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name.replace(".", "__"))[:64]


def _tool(spec: ToolSpec, run: ToolRunner) -> Tool[None]:
    # A coroutine that calls the runner directly, so the gateway runs in the caller's thread
    # (pydantic-ai would send a plain function to a worker thread).
    async def call(**arguments: Any) -> Any:
        return _shown(run(spec.name, arguments))

    return Tool[None].from_schema(
        call,
        name=wire_name(spec.name),
        description=spec.description,
        json_schema=copy.deepcopy(spec.input_schema),
    )


def _report_unoffered(
    request: AgentRequest, messages: Sequence[ModelMessage], tools: ToolRunner
) -> None:
    """Send the calls the model made to tools it was not offered through the runner too.

    pydantic-ai answers such a call itself ("unknown tool"); passing it to the runner puts the
    attempt before the gateway, which refuses and records it like any other.
    """
    offered = {wire_name(spec.name): spec.name for spec in request.tools}
    for message in messages:
        if not isinstance(message, ModelResponse):
            continue
        for part in message.parts:
            if not isinstance(part, ToolCallPart) or part.tool_name == OUTPUT_TOOL:
                continue
            if part.tool_name in offered:
                continue
            try:
                arguments = part.args_as_dict()
            except ValueError:
                arguments = {"raw": str(part.args)}
            tools(part.tool_name.replace("__", "."), arguments)


def _shown(result: ToolResult) -> Any:
    if not result.ok:
        return f"refused: {result.message or result.reason or 'the gateway gave no reason'}"
    return result.output if result.output is not None else {}


def _prompt(request: AgentRequest) -> str:
    if not request.repair:
        return request.message
    problems = "\n".join(f"- {problem}" for problem in request.repair)
    previous = json.dumps(request.previous, indent=2, sort_keys=True, default=str)
    return (
        f"{request.message}\n\n"
        f"Your previous output was rejected because of these problems:\n{problems}\n\n"
        f"Your previous output was:\n{previous}\n\n"
        "Give a corrected output that fixes every problem listed above."
    )


def _budget(
    request: AgentRequest, messages: Sequence[ModelMessage], exc: UsageLimitExceeded
) -> BudgetExceeded:
    responses = [message for message in messages if isinstance(message, ModelResponse)]
    tokens = sum(each.usage.input_tokens + each.usage.output_tokens for each in responses)
    offered = {wire_name(spec.name) for spec in request.tools}
    asked = sum(
        1
        for each in responses
        for part in each.parts
        if isinstance(part, ToolCallPart) and part.tool_name in offered
    )
    agent = f"agent {request.agent!r} v{request.version}"
    if request.max_tokens is not None and tokens > request.max_tokens:
        return BudgetExceeded(
            f"{agent} used {tokens} tokens of the {request.max_tokens} it may use",
            limit="tokens",
            used=tokens,
            allowed=request.max_tokens,
        )
    if request.max_tool_calls is not None and asked > request.max_tool_calls:
        return BudgetExceeded(
            f"{agent}'s model asked for {asked} tool calls; it may make {request.max_tool_calls}",
            limit="tool_calls",
            used=asked,
            allowed=request.max_tool_calls,
        )
    return BudgetExceeded(
        f"{agent}'s model did not finish within {MAX_MODEL_REQUESTS} requests ({exc.message})",
        limit="requests",
        used=len(responses),
        allowed=MAX_MODEL_REQUESTS,
    )


def _confidence(output: dict[str, Any]) -> float | None:
    value = output.get("confidence")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def _provider_message(body: object) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _shorten(error["message"])
        if isinstance(body.get("message"), str):
            return _shorten(body["message"])
    return ""


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_DETAIL else text[: _SHOWN_DETAIL - 1] + "…"


def _is_openai(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "api.openai.com"


def _endpoint(kind: ProviderKind, base_url: str | None) -> str:
    if base_url is None:
        return "api.anthropic.com" if kind == "anthropic" else "api.openai.com"
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
