"""One open MCP session, held by a task on the client's event loop, and what its answers mean.

:class:`~accord.connectors.McpClient` imports this module when it first connects: the MCP SDK
brings a web stack with it, and only processes that talk to an MCP server need to load it.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import anyio
import httpx2
import mcp_types
from anyio.abc import TaskStatus
from mcp import Client, MCPError, StdioServerParameters
from mcp.client import Transport
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from accord.connectors._mcp import McpTool, ServerAddress, ToolHints
from accord.errors import CapabilityFailed

T = TypeVar("T")
Incoming = SessionMessage | Exception
_SSE_READ_TIMEOUT = 300.0
# the SDK's own read timeout answers first and tells the server to stop; this one is a backstop
_BACKSTOP = 1.0


class Undelivered(Exception):
    """The connection was gone before the request could reach the server; sending it again
    over a new connection cannot apply anything twice."""


class Connection:
    """A live session. ``ended`` turns true once its receive loop stops, for whatever reason."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ended = False
        self.error: BaseException | None = None
        self.closing = anyio.Event()
        self.finished = anyio.Event()


async def hold(
    server: ServerAddress, timeout: float, *, task_status: TaskStatus[Connection]
) -> None:
    """Open a session, hand it over through ``task_status``, and keep it until ``closing``.

    The session's task groups live in this task, which is why one task opens and closes it.
    A failure before the hand-over propagates to whoever started the task; one after it is kept
    in ``Connection.error`` for the calls that notice the session has gone.
    """
    connection: Connection | None = None
    watch = _Watch()
    try:
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            client = Client(
                _watched(_transport(server, timeout), watch),
                cache=None,
                read_timeout_seconds=timeout,
            )
            async with client:
                scope.deadline = math.inf
                connection = Connection(client)
                watch.connection = connection
                task_status.started(connection)
                await connection.closing.wait()
        if connection is None:
            raise TimeoutError(f"MCP server {server.name!r} did not answer within {timeout:g}s")
    except Exception as exc:
        if connection is None:
            raise
        connection.error = exc
    finally:
        if connection is not None:
            connection.ended = True
            connection.finished.set()


async def list_tools(
    connection: Connection, server: ServerAddress, timeout: float
) -> list[McpTool]:
    """Every tool the server lists, following its pages."""
    found: list[McpTool] = []
    cursor: str | None = None
    while True:
        page = await _request(
            connection,
            server,
            timeout,
            "listing tools",
            partial(connection.client.list_tools, cursor=cursor),
        )
        found.extend(_tool(t) for t in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return found


async def call_tool(
    connection: Connection,
    server: ServerAddress,
    name: str,
    arguments: dict[str, Any],
    *,
    timeout: float,
    meta: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Call ``name`` and return its result as a JSON object (see :func:`result_data`)."""
    request_meta = cast(mcp_types.RequestParamsMeta, dict(meta)) if meta else None
    result = await _request(
        connection,
        server,
        timeout,
        f"calling tool {name!r}",
        partial(
            connection.client.call_tool,
            name,
            arguments,
            read_timeout_seconds=timeout,
            meta=request_meta,
        ),
    )
    return result_data(server.name, name, result)


def result_data(server: str, tool: str, result: mcp_types.CallToolResult) -> dict[str, Any]:
    """A tool's result as a JSON object.

    Structured content when there is some (a value that is not an object becomes
    ``{"result": value}``); else the single text item when it is a JSON object; else
    ``{"content": [text, ...]}``, the text items in order.

    Raises:
        CapabilityFailed: the tool reported an error (``ToolError``, not retryable).
    """
    texts = [item.text for item in result.content if isinstance(item, mcp_types.TextContent)]
    if result.is_error:
        detail = "; ".join(texts) or "no detail given"
        raise CapabilityFailed(
            f"tool {tool!r} of MCP server {server!r} reported an error: {detail}",
            error_type="ToolError",
            retryable=False,
            hint="the tool ran and refused or failed; its message says why",
        )
    if result.structured_content is not None:
        if isinstance(result.structured_content, dict):
            return result.structured_content
        return {"result": result.structured_content}
    if len(texts) == 1 and len(result.content) == 1:
        try:
            parsed = json.loads(texts[0])
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return {"content": texts}


async def _request(
    connection: Connection,
    server: ServerAddress,
    timeout: float,
    doing: str,
    send: Callable[[], Awaitable[T]],
) -> T:
    if connection.ended:
        raise Undelivered
    try:
        with anyio.fail_after(timeout + _BACKSTOP):
            return await send()
    except MCPError as exc:
        if exc.code == mcp_types.REQUEST_TIMEOUT:
            raise _timeout(server, doing, timeout) from exc
        if exc.code != mcp_types.CONNECTION_CLOSED:
            raise CapabilityFailed(
                f"MCP server {server.name!r} returned error {exc.code} while {doing}: "
                f"{exc.message}",
                error_type="ProtocolError",
                retryable=False,
                hint="check the tool name and arguments against the server's tool list",
            ) from exc
        with anyio.move_on_after(_BACKSTOP):
            await connection.finished.wait()
        if _never_connected(connection.error):
            raise Undelivered from connection.error
        raise connection_failed(
            server, connection.error or exc, doing=doing, in_flight=True
        ) from exc
    except TimeoutError as exc:
        raise _timeout(server, doing, timeout) from exc
    except RuntimeError as exc:
        # the SDK checks structured content against the tool's output schema
        raise CapabilityFailed(
            f"MCP server {server.name!r} gave an unusable answer while {doing}: {exc}",
            error_type="ContractViolation",
            retryable=False,
        ) from exc


def connection_failed(
    server: ServerAddress, exc: BaseException, *, doing: str, in_flight: bool = False
) -> CapabilityFailed:
    """What a transport failure means for the caller; its message never shows the headers.

    ``in_flight``: the request was sent and its answer lost, so the tool may have run.
    """
    cause = _leaf(exc)
    if isinstance(cause, TimeoutError | httpx2.TimeoutException):
        return _timeout(server, doing, None, outcome_unknown=in_flight)
    if isinstance(cause, httpx2.HTTPStatusError) and cause.response.status_code in (401, 403):
        return CapabilityFailed(
            f"MCP server {server.name!r} refused the credentials "
            f"(HTTP {cause.response.status_code}) while {doing}",
            error_type="Unauthorized",
            retryable=False,
            hint="check the headers the connector sends (their values are not shown)",
        )
    if in_flight:
        return CapabilityFailed(
            f"the connection to MCP server {server.name!r} was lost while {doing}",
            error_type="ConnectionLost",
            retryable=True,
            outcome_unknown=True,
            hint="the tool may have run; only an idempotent call is repeated blindly",
        )
    if isinstance(cause, OSError) and server.command is not None:
        reason = f"cannot start {server.command[0]!r}: {cause.strerror or cause}"
    elif isinstance(cause, MCPError):
        reason = f"error {cause.code}: {cause.message}"
    else:
        reason = f"the connection failed ({type(cause).__name__})"
    return CapabilityFailed(
        f"MCP server {server.name!r} is unreachable while {doing}: {reason}",
        error_type="ConnectionFailed",
        retryable=True,
        hint="check that the server runs and answers",
    )


def _timeout(
    server: ServerAddress, doing: str, seconds: float | None, *, outcome_unknown: bool = True
) -> CapabilityFailed:
    within = f" within {seconds:g}s" if seconds is not None else ""
    return CapabilityFailed(
        f"MCP server {server.name!r} did not answer{within} while {doing}",
        error_type="Timeout",
        retryable=True,
        outcome_unknown=outcome_unknown,
        hint="raise the block's timeout or look at the server's health",
    )


def _never_connected(error: BaseException | None) -> bool:
    """A failure to connect at all: the request cannot have reached the server."""
    return error is not None and isinstance(_leaf(error), httpx2.ConnectError)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _tool(tool: mcp_types.Tool) -> McpTool:
    hints = tool.annotations
    return McpTool(
        name=tool.name,
        description=tool.description or "",
        input_schema=dict(tool.input_schema),
        output_schema=dict(tool.output_schema) if tool.output_schema is not None else None,
        annotations=None
        if hints is None
        else ToolHints(hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint),
    )


def _transport(server: ServerAddress, timeout: float) -> Transport:
    if server.command is not None:
        command, *args = server.command
        parameters = StdioServerParameters(command=command, args=args, env=dict(server.env))
        return stdio_client(parameters)
    assert server.url is not None
    return _http(server.url, dict(server.headers), timeout)


@asynccontextmanager
async def _http(
    url: str, headers: dict[str, str], timeout: float
) -> AsyncIterator[tuple[Any, Any]]:
    limits = httpx2.Timeout(timeout, read=max(timeout, _SSE_READ_TIMEOUT))
    async with (
        httpx2.AsyncClient(headers=headers, timeout=limits) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


class _Watch:
    connection: Connection | None = None


@asynccontextmanager
async def _watched(transport: Transport, watch: _Watch) -> AsyncIterator[tuple[Any, Any]]:
    """``transport`` with its read side observed, so a call can tell the session is gone."""
    async with transport as (read, write):
        yield _ObservedRead(read, watch), write


class _ObservedRead:
    """Marks the session ended when the session's receive loop lets go of the stream."""

    def __init__(self, inner: Any, watch: _Watch) -> None:
        self._inner = inner
        self._watch = watch

    @property
    def last_context(self) -> Any:
        # the dispatcher reads the sender's context from the stream, if it has one
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Incoming:
        item: Incoming = await self._inner.receive()
        return item

    async def aclose(self) -> None:
        self._end()
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Incoming:
        try:
            item: Incoming = await self._inner.__anext__()
        except StopAsyncIteration:
            self._end()
            raise
        return item

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        self._end()
        result: bool | None = await self._inner.__aexit__(exc_type, exc_val, exc_tb)
        return result

    def _end(self) -> None:
        if self._watch.connection is not None:
            self._watch.connection.ended = True
