"""A real model server that answers from recorded exchanges, in the OpenAI and Anthropic protocols.

:class:`RecordedModelServer` runs a uvicorn server in a background thread on a free local port.
It speaks OpenAI chat completions (``POST /v1/chat/completions``, ``GET /v1/models``) and the
Anthropic Messages API (``POST /v1/messages``), non-streaming, and answers each request with the
first :class:`Exchange` of its :class:`Recording` that matches and is not used up. Every request
it receives is kept in :attr:`RecordedModelServer.requests`, parsed into one neutral shape, so a
test can check what the prompt said and which tool results came back::

    recording = Recording.load(Path("tests/fixtures/llm/triage.json"))
    with RecordedModelServer(recording, api_key="test-key") as server:
        provider = PydanticAIProvider("openai", base_url=server.url, api_key=SecretStr("test-key"))
        ...
        assert "refused" in server.requests[-1].tool_results[0].text

A recording is JSON::

    {"exchanges": [
      {"name": "ask", "match": {"tool_result": false},
       "reply": {"tool_calls": [{"name": "lookup", "arguments": {"id": "c1"}}],
                 "usage": {"prompt_tokens": 40, "completion_tokens": 8}}},
      {"name": "answer", "match": {"tool_result": true},
       "reply": {"content": "done", "usage": {"prompt_tokens": 60, "completion_tokens": 5}}}
    ]}
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from accord.errors import ConfigurationError

__all__ = [
    "Exchange",
    "Match",
    "ModelProtocol",
    "ReceivedMessage",
    "ReceivedRequest",
    "ReceivedToolCall",
    "RecordedFault",
    "RecordedModelServer",
    "RecordedReply",
    "RecordedToolCall",
    "RecordedUsage",
    "Recording",
]

ModelProtocol = Literal["openai", "anthropic"]
"""The wire protocol a request came in: OpenAI chat completions or Anthropic Messages."""

FinishReason = Literal["stop", "tool_calls", "length", "content_filter"]

_START_TIMEOUT = 10.0
_SHOWN_TEXT = 200


class _Recorded(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordedToolCall(_Recorded):
    """A tool call the recorded model makes."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class RecordedUsage(_Recorded):
    """Tokens the recorded answer reports, in OpenAI's words."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class RecordedReply(_Recorded):
    """What the model answers: text, tool calls, or both.

    ``finish_reason`` defaults to ``tool_calls`` when there are tool calls and ``stop`` otherwise;
    for Anthropic it becomes ``tool_use``, ``end_turn``, ``max_tokens`` or ``refusal``.
    """

    content: str | None = None
    tool_calls: tuple[RecordedToolCall, ...] = ()
    finish_reason: FinishReason | None = None
    usage: RecordedUsage = RecordedUsage()

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.content is None and not self.tool_calls:
            raise ValueError("a reply needs content, tool_calls or both")
        return self

    @property
    def finish(self) -> FinishReason:
        """The finish reason sent."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


class RecordedFault(_Recorded):
    """An error status the server answers instead of a reply."""

    status: int = Field(ge=400, le=599)
    message: str = "the recorded model server was told to fail"
    retry_after: float | None = Field(default=None, ge=0)


class Match(_Recorded):
    """Which requests an exchange answers. Every condition given must hold; none means any.

    Attributes:
        protocol: ``openai`` or ``anthropic``.
        model: the model name asked for, exactly.
        last_message_contains: a substring of the last user or tool message.
        prompt_contains: a substring of any message, the system prompt included.
        tool_result: whether the request carries at least one tool result.
        tool_result_contains: a substring of some tool result.
    """

    protocol: ModelProtocol | None = None
    model: str | None = None
    last_message_contains: str | None = None
    prompt_contains: str | None = None
    tool_result: bool | None = None
    tool_result_contains: str | None = None

    def accepts(self, request: ReceivedRequest) -> bool:
        """Whether ``request`` meets every condition."""
        last = request.last_message
        results = request.tool_results
        checks = (
            self.protocol is None or self.protocol == request.protocol,
            self.model is None or self.model == request.model,
            self.last_message_contains is None
            or (last is not None and self.last_message_contains in last.text),
            self.prompt_contains is None or self.prompt_contains in request.prompt,
            self.tool_result is None or self.tool_result == bool(results),
            self.tool_result_contains is None
            or any(self.tool_result_contains in each.text for each in results),
        )
        return all(checks)


class Exchange(_Recorded):
    """One recorded answer and the requests it fits.

    Exchanges are tried in order; the first that matches and is not used up answers. ``times`` is
    how often it may answer (``null`` for any number), so a list of exchanges with no ``match``
    plays back in sequence.
    """

    name: str | None = None
    match: Match = Match()
    reply: RecordedReply | None = None
    fault: RecordedFault | None = None
    times: int | None = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_answer(self) -> Self:
        if (self.reply is None) == (self.fault is None):
            raise ValueError("an exchange needs exactly one of reply or fault")
        return self


class Recording(_Recorded):
    """The exchanges a :class:`RecordedModelServer` plays back."""

    exchanges: tuple[Exchange, ...]

    @classmethod
    def load(cls, path: Path) -> Recording:
        """Read a recording from a JSON file.

        Raises:
            ConfigurationError: the file is missing, not JSON, or not a recording.
        """
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read recording {path}: {exc.strerror}",
                hint="check the path; recordings for Accord's tests live in tests/fixtures/llm/",
            ) from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigurationError(
                f"{path} is not a valid recording: {problems}",
                hint='a recording is {"exchanges": [{"match": {...}, "reply": {...}}, ...]}',
            ) from exc


@dataclass(frozen=True, slots=True)
class ReceivedToolCall:
    """A tool call the client sent back as part of the conversation."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message of a received request, the same for both protocols.

    ``role`` is ``tool`` for a tool result (an OpenAI ``tool`` message, or an Anthropic
    ``tool_result`` block); ``tool_name`` is then the name of the call it answers, when the
    request holds that call.
    """

    role: Literal["system", "user", "assistant", "tool"]
    text: str
    tool_calls: tuple[ReceivedToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A request the server received, and how it answered.

    Attributes:
        protocol: the protocol it came in.
        path: the URL path.
        model: the model asked for.
        messages: the conversation, system prompt first.
        tools: names of the tools offered.
        body: the JSON body as sent.
        status: the status answered.
        exchange: the name (or ``exchanges[i]``) of the exchange that answered, if one did.
    """

    protocol: ModelProtocol
    path: str
    model: str
    messages: tuple[ReceivedMessage, ...]
    tools: tuple[str, ...]
    body: dict[str, Any]
    status: int = 200
    exchange: str | None = None

    @property
    def prompt(self) -> str:
        """Every message's text, one per line."""
        return "\n".join(message.text for message in self.messages)

    @property
    def last_message(self) -> ReceivedMessage | None:
        """The last user or tool message."""
        for message in reversed(self.messages):
            if message.role in ("user", "tool"):
                return message
        return None

    @property
    def tool_results(self) -> tuple[ReceivedMessage, ...]:
        """The tool results in the conversation, in order."""
        return tuple(message for message in self.messages if message.role == "tool")


class RecordedModelServer:
    """A local OpenAI- and Anthropic-compatible model server that plays back a recording.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    Args:
        recording: the exchanges to answer with.
        api_key: when given, requests must carry it (``Authorization: Bearer`` or Anthropic's
            ``x-api-key``) or get 401. Like some real providers, the 401 message repeats the key it
            was given, so a test can prove the client never shows it.
        host: the interface to listen on.
        port: the port; 0 picks a free one.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.recording = recording
        self.host = host
        self._port = port
        self._api_key = api_key
        self._lock = threading.Lock()
        self._uses = [0] * len(recording.exchanges)
        self._faults: list[RecordedFault] = []
        self._received: list[ReceivedRequest] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._base = ""

    @property
    def url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self._running_base()}/v1"

    @property
    def anthropic_url(self) -> str:
        """The Anthropic base URL (the SDK adds ``/v1/messages``)."""
        return self._running_base()

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    @property
    def unused(self) -> list[str]:
        """Exchanges that have not answered yet."""
        with self._lock:
            return [
                _label(index, exchange)
                for index, exchange in enumerate(self.recording.exchanges)
                if self._uses[index] == 0
            ]

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` authenticated requests with ``status`` instead of a reply."""
        fault = RecordedFault(
            status=status,
            retry_after=retry_after,
            **({"message": message} if message is not None else {}),
        )
        with self._lock:
            self._faults.extend([fault] * times)

    def start(self) -> RecordedModelServer:
        """Start serving and wait until the server accepts connections."""
        if self._server is not None:
            return self
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self._port))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {self.host}:{self._port} for the recorded model server: "
                f"{exc.strerror}",
                hint="choose another port, or 0 for any free one",
            ) from exc
        config = uvicorn.Config(
            self._app(),
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [listener]},
            name="recorded-model-server",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(timeout=5)
                listener.close()
                raise ConfigurationError("the recorded model server did not start")
            time.sleep(0.01)
        bound_host, bound_port = listener.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._server, self._thread = server, thread
        self._base = f"http://{shown}:{bound_port}"
        return self

    def stop(self) -> None:
        """Shut the server down."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join()

    def __enter__(self) -> RecordedModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _running_base(self) -> str:
        if self._server is None:
            raise ConfigurationError(
                "the recorded model server is not running",
                hint="use it as a context manager, or call start() first",
            )
        return self._base

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/models", self._openai_models, methods=["GET"]),
                Route("/v1/messages", self._anthropic_messages, methods=["POST"]),
            ]
        )

    async def _openai_models(self, request: Request) -> JSONResponse:
        if not self._authorized(request, "openai"):
            return _error("openai", 401, _wrong_key(request, "openai"))
        models = sorted(
            {each.match.model for each in self.recording.exchanges if each.match.model is not None}
        )
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "recording"}
                    for name in models
                ],
            }
        )

    async def _openai_chat(self, request: Request) -> JSONResponse:
        return await self._answer(request, "openai")

    async def _anthropic_messages(self, request: Request) -> JSONResponse:
        return await self._answer(request, "anthropic")

    async def _answer(self, request: Request, protocol: ModelProtocol) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(protocol, 400, "the request body is not a JSON object")
        parse = _openai_messages if protocol == "openai" else _anthropic_messages
        received = ReceivedRequest(
            protocol=protocol,
            path=request.url.path,
            model=str(body.get("model", "")),
            messages=parse(body),
            tools=_tool_names(body, protocol),
            body=body,
        )
        if not self._authorized(request, protocol):
            return self._keep(received, None, _error(protocol, 401, _wrong_key(request, protocol)))
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            index = None if fault is not None else self._take(received)
            number = len(self._received) + 1
        if fault is not None:
            return self._keep(received, None, _fault(protocol, fault))
        if index is None:
            return self._keep(received, None, _error(protocol, 400, self._unmatched(received)))
        exchange = self.recording.exchanges[index]
        label = _label(index, exchange)
        if exchange.fault is not None:
            return self._keep(received, label, _fault(protocol, exchange.fault))
        assert exchange.reply is not None
        render = _openai_reply if protocol == "openai" else _anthropic_reply
        return self._keep(received, label, JSONResponse(render(exchange.reply, received, number)))

    def _take(self, received: ReceivedRequest) -> int | None:
        for index, exchange in enumerate(self.recording.exchanges):
            if exchange.times is not None and self._uses[index] >= exchange.times:
                continue
            if exchange.match.accepts(received):
                self._uses[index] += 1
                return index
        return None

    def _keep(
        self, received: ReceivedRequest, label: str | None, response: JSONResponse
    ) -> JSONResponse:
        kept = replace(received, status=response.status_code, exchange=label)
        with self._lock:
            self._received.append(kept)
        return response

    def _unmatched(self, received: ReceivedRequest) -> str:
        last = received.last_message
        asked = (
            f"last {last.role} message {_shorten(last.text)!r}"
            if last is not None
            else "no user or tool message"
        )
        used = sum(
            1
            for index, exchange in enumerate(self.recording.exchanges)
            if exchange.times is not None and self._uses[index] >= exchange.times
        )
        return (
            f"no recorded exchange matches this {received.protocol} request for model "
            f"{received.model!r} ({asked}; {len(received.tool_results)} tool result(s)); "
            f"{used} of {len(self.recording.exchanges)} exchange(s) are used up. "
            "Add an exchange whose match fits this request, or check the recording's order."
        )

    def _authorized(self, request: Request, protocol: ModelProtocol) -> bool:
        if self._api_key is None:
            return True
        bearer = request.headers.get("authorization", "")
        if bearer == f"Bearer {self._api_key}":
            return True
        return protocol == "anthropic" and request.headers.get("x-api-key") == self._api_key


def _label(index: int, exchange: Exchange) -> str:
    return exchange.name or f"exchanges[{index}]"


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_TEXT else text[: _SHOWN_TEXT - 1] + "…"


def _wrong_key(request: Request, protocol: ModelProtocol) -> str:
    given = request.headers.get("authorization", "").removeprefix("Bearer ")
    if protocol == "anthropic" and not given:
        given = request.headers.get("x-api-key", "")
    return f"Incorrect API key provided: {given or '(none)'}"


_ERROR_TYPES: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("invalid_request_error", "authentication_error"),
    403: ("invalid_request_error", "permission_error"),
    404: ("invalid_request_error", "not_found_error"),
    429: ("rate_limit_exceeded", "rate_limit_error"),
    529: ("server_error", "overloaded_error"),
}


def _error(
    protocol: ModelProtocol, status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    openai_type, anthropic_type = _ERROR_TYPES.get(status, ("server_error", "api_error"))
    body: dict[str, Any] = (
        {"error": {"message": message, "type": openai_type, "param": None, "code": None}}
        if protocol == "openai"
        else {"type": "error", "error": {"type": anthropic_type, "message": message}}
    )
    return JSONResponse(body, status_code=status, headers=headers)


def _fault(protocol: ModelProtocol, fault: RecordedFault) -> JSONResponse:
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
    return _error(protocol, fault.status, fault.message, headers)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return json.dumps(content)


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return {"_unparsed": raw}
    return parsed if isinstance(parsed, dict) else {"_unparsed": raw}


def _openai_messages(body: dict[str, Any]) -> tuple[ReceivedMessage, ...]:
    messages: list[ReceivedMessage] = []
    names: dict[str, str] = {}
    for raw in body.get("messages") or []:
        if not isinstance(raw, dict):
            continue
        role = raw.get("role")
        text = _text(raw.get("content"))
        if role in ("system", "developer"):
            messages.append(ReceivedMessage("system", text))
        elif role == "assistant":
            calls = tuple(
                ReceivedToolCall(
                    id=str(call.get("id", "")),
                    name=str(call.get("function", {}).get("name", "")),
                    arguments=_arguments(call.get("function", {}).get("arguments")),
                )
                for call in raw.get("tool_calls") or []
            )
            names.update({call.id: call.name for call in calls})
            messages.append(ReceivedMessage("assistant", text, tool_calls=calls))
        elif role == "tool":
            call_id = str(raw.get("tool_call_id", ""))
            messages.append(
                ReceivedMessage("tool", text, tool_call_id=call_id, tool_name=names.get(call_id))
            )
        else:
            messages.append(ReceivedMessage("user", text))
    return tuple(messages)


def _anthropic_messages(body: dict[str, Any]) -> tuple[ReceivedMessage, ...]:
    messages: list[ReceivedMessage] = []
    if body.get("system"):
        messages.append(ReceivedMessage("system", _text(body["system"])))
    names: dict[str, str] = {}
    for raw in body.get("messages") or []:
        if not isinstance(raw, dict):
            continue
        assistant = raw.get("role") == "assistant"
        content = raw.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        texts: list[str] = []
        calls: list[ReceivedToolCall] = []
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "tool_use":
                call = ReceivedToolCall(
                    id=str(block.get("id", "")),
                    name=str(block.get("name", "")),
                    arguments=_arguments(block.get("input")),
                )
                names[call.id] = call.name
                calls.append(call)
            elif kind == "tool_result":
                call_id = str(block.get("tool_use_id", ""))
                messages.append(
                    ReceivedMessage(
                        "tool",
                        _text(block.get("content")),
                        tool_call_id=call_id,
                        tool_name=names.get(call_id),
                        is_error=bool(block.get("is_error", False)),
                    )
                )
        if assistant:
            messages.append(ReceivedMessage("assistant", "\n".join(texts), tool_calls=tuple(calls)))
        elif texts:
            messages.append(ReceivedMessage("user", "\n".join(texts)))
    return tuple(messages)


def _tool_names(body: dict[str, Any], protocol: ModelProtocol) -> tuple[str, ...]:
    tools: Iterable[Any] = body.get("tools") or []
    if protocol == "openai":
        return tuple(
            str(tool.get("function", {}).get("name", ""))
            for tool in tools
            if isinstance(tool, dict)
        )
    return tuple(str(tool.get("name", "")) for tool in tools if isinstance(tool, dict))


def _openai_reply(reply: RecordedReply, received: ReceivedRequest, number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{number}_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for index, call in enumerate(reply.tool_calls)
        ]
    usage = reply.usage
    return {
        "id": f"chatcmpl-recorded-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": received.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.finish, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        },
    }


_STOP_REASONS: Mapping[FinishReason, str] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def _anthropic_reply(
    reply: RecordedReply, received: ReceivedRequest, number: int
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.content is not None:
        content.append({"type": "text", "text": reply.content})
    content.extend(
        {
            "type": "tool_use",
            "id": call.id or f"toolu_{number}_{index}",
            "name": call.name,
            "input": call.arguments,
        }
        for index, call in enumerate(reply.tool_calls)
    )
    return {
        "id": f"msg_recorded_{number}",
        "type": "message",
        "role": "assistant",
        "model": received.model,
        "content": content,
        "stop_reason": _STOP_REASONS[reply.finish],
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.usage.prompt_tokens,
            "output_tokens": reply.usage.completion_tokens,
        },
    }
