"""Capabilities from the tools of an MCP server, called through the official MCP SDK.

Declare a client for the server and turn the tools you want into capabilities::

    crm = McpClient("crm", command=["crm-mcp-server"])
    for capability in mcp_capabilities(
        crm,
        prefix="crm",
        include=["lookup_customer"],
        tools={"lookup_customer": ToolBinding(reads=("pd:Name", "pd:EmailAddress"))},
    ):
        registry.add(capability)

The SDK is asynchronous and workers call capabilities from their own threads, so a client runs
an event loop on a thread of its own and keeps one session open there. Its methods block, and
any number of threads may call them at once.

A tool's governance attributes come from its :class:`ToolBinding` where one is given, else from
the hints the server gives (``readOnlyHint``, ``destructiveHint``, ``idempotentHint``). Hints
are the server's word only: bind every tool of a server you do not control.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
from anyio.from_thread import BlockingPortal

from accord.connectors._capability import CallContext, Capability, SideEffect
from accord.connectors._resilience import Endpoints, Resilience, resilient
from accord.connectors._schema_model import JsonSchemaModel, schema_model
from accord.errors import CapabilityFailed, ConfigurationError

if TYPE_CHECKING:
    from accord.connectors._mcp_connection import Connection

log = logging.getLogger(__name__)

T = TypeVar("T")
_PERMISSIVE: dict[str, Any] = {"type": "object"}
_CLOSE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ToolHints:
    """What a server says about a tool's behaviour. Hints only: a server can be wrong."""

    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None


@dataclass(frozen=True, slots=True)
class McpTool:
    """A tool as the server lists it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    annotations: ToolHints | None


@dataclass(frozen=True, slots=True)
class ToolBinding:
    """Governance attributes of one tool, where the server's hints are not enough.

    ``side_effect`` and ``idempotent`` override the hints when given; the rest are what a
    capability declares (see :class:`~accord.connectors.Capability`): the personal-data
    categories it ``reads`` and ``writes``, the category each output field carries (``fields``),
    its compensating capability and the region its system runs in.
    """

    side_effect: SideEffect | None = None
    idempotent: bool | None = None
    compensation: str | None = None
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    region: str | None = None


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where the server is. ``headers`` and ``env`` may hold secrets: they are never shown."""

    name: str
    command: tuple[str, ...] | None
    url: str | None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


class McpClient:
    """A session with one MCP server, over stdio (``command``) or streamable HTTP (``url``).

    Args:
        name: how Accord names the server in capability sources, logs and errors.
        command: the server's command line; the client starts it and talks over its stdio.
        url: the server's streamable HTTP endpoint, e.g. ``https://crm.example/mcp``.
        headers: HTTP headers for every request, e.g. ``Authorization``. They are credentials:
            no log line, repr or error message shows them.
        env: environment variables for the server process, on top of a minimal safe set.
        timeout: seconds to connect, and to wait for a call that names no timeout of its own.

    The session opens on :meth:`start` or the first request and stays open. When it has ended
    (the server exited or restarted), the next request opens a new one first. A request that
    could not reach the server is sent once more over a new session; one lost in flight fails
    with ``ConnectionFailed`` instead, because the tool may have run.
    """

    def __init__(
        self,
        name: str,
        *,
        command: Sequence[str] | None = None,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        if (command is None) == (url is None):
            raise ConfigurationError(
                f"MCP server {name!r}: give exactly one of command (stdio) or url (HTTP)",
                hint='e.g. McpClient("crm", command=["crm-server"]) or url="http://host/mcp"',
            )
        if command is not None and (isinstance(command, str) or not command):
            raise ConfigurationError(
                f"MCP server {name!r}: command is the program and its arguments, as a list",
                hint='e.g. command=["python", "-m", "crm_server"]',
            )
        if headers and command is not None:
            raise ConfigurationError(
                f"MCP server {name!r}: headers apply to HTTP servers only",
                hint="pass credentials to a stdio server through env",
            )
        if env and url is not None:
            raise ConfigurationError(
                f"MCP server {name!r}: env applies to servers Accord starts (command) only"
            )
        if timeout <= 0:
            raise ConfigurationError(f"MCP server {name!r}: timeout must be positive")
        self.name = name
        self.timeout = timeout
        self._server = ServerAddress(
            name,
            tuple(command) if command is not None else None,
            url,
            dict(headers or {}),
            dict(env or {}),
        )
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._loop: threading.Thread | None = None
        self._connection: Connection | None = None
        self._holding: concurrent.futures.Future[None] | None = None
        self._closed = False

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self._server.command is not None else "http"

    def __repr__(self) -> str:
        server = self._server
        if server.command is not None:
            return f"McpClient({self.name!r}, command={server.command[0]!r})"
        assert server.url is not None
        parts = urlsplit(server.url)
        # userinfo, query and fragment can carry credentials
        host = f"{parts.hostname}:{parts.port}" if parts.port is not None else parts.hostname
        shown = urlunsplit((parts.scheme, host, parts.path, "", ""))
        return f"McpClient({self.name!r}, url={shown!r})"

    def start(self) -> None:
        """Connect now rather than on the first request.

        Raises:
            CapabilityFailed: the server cannot be reached or started.
        """
        self._live()

    def list_tools(self) -> list[McpTool]:
        """Every tool the server offers."""
        from accord.connectors import _mcp_connection as session  # noqa: PLC0415 - see module

        return self._run(partial(session.list_tools, server=self._server, timeout=self.timeout))

    def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        timeout: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call tool ``name`` and return its result as a JSON object.

        The result is the tool's structured content; else its only text item, when that is a
        JSON object; else ``{"content": [text, ...]}``. ``meta`` goes to the server as the
        request's ``_meta``.

        Raises:
            CapabilityFailed: ``ToolError`` (the tool reported an error, not retryable);
                ``ConnectionFailed`` (nothing was sent), ``ConnectionLost`` or ``Timeout`` (the
                tool may have run), all retryable; ``Unauthorized``, ``ProtocolError`` or
                ``ContractViolation`` (not retryable).
        """
        from accord.connectors import _mcp_connection as session  # noqa: PLC0415 - see module

        limit = self.timeout if timeout is None else timeout
        if limit <= 0:
            raise CapabilityFailed(
                f"tool {name!r} of MCP server {self.name!r} was not called: no time is left",
                error_type="Timeout",
                retryable=True,
            )
        return self._run(
            partial(
                session.call_tool,
                server=self._server,
                name=name,
                arguments=dict(arguments),
                timeout=limit,
                meta=meta,
            )
        )

    def close(self) -> None:
        """End the session (stopping a server the client started) and the client's thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._connection is not None:
                self._drop(self._connection)
            if self._portal is not None:
                self._portal.call(self._portal.stop)
            if self._loop is not None:
                self._loop.join(_CLOSE_SECONDS)

    def __enter__(self) -> McpClient:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        from accord.connectors import _mcp_connection as session  # noqa: PLC0415 - see module

        connection = self._live()
        portal = self._portal
        assert portal is not None
        try:
            return portal.call(operation, connection)
        except session.Undelivered:
            log.info("the session with MCP server %r has ended; opening a new one", self.name)
        connection = self._replace(connection)
        try:
            return portal.call(operation, connection)
        except session.Undelivered as exc:
            cause = exc.__cause__ or exc
            raise session.connection_failed(self._server, cause, doing="sending") from exc

    def _live(self) -> Connection:
        with self._lock:
            if self._connection is None or self._connection.ended:
                if self._connection is not None:
                    self._drop(self._connection)
                self._open()
            assert self._connection is not None
            return self._connection

    def _replace(self, ended: Connection) -> Connection:
        with self._lock:
            if self._connection is ended:
                self._drop(ended)
                self._open()
            assert self._connection is not None
            return self._connection

    def _open(self) -> None:
        from accord.connectors import _mcp_connection as session  # noqa: PLC0415 - see module

        if self._closed:
            raise CapabilityFailed(
                f"the client of MCP server {self.name!r} is closed",
                error_type="ConnectionFailed",
                retryable=True,
                hint="Accord is shutting down; the call is retried elsewhere",
            )
        portal = self._portal or self._start_loop()
        try:
            holding, connection = portal.start_task(
                session.hold, self._server, self.timeout, name=f"mcp:{self.name}"
            )
        except Exception as exc:
            raise session.connection_failed(self._server, exc, doing="connecting") from exc
        self._connection = connection
        self._holding = holding
        log.info("connected to MCP server %r over %s", self.name, self.transport)

    def _drop(self, connection: Connection) -> None:
        """Ask the session's task to close it and wait a while for that."""
        assert self._portal is not None
        self._connection = None
        self._portal.call(connection.closing.set)
        if self._holding is not None:
            concurrent.futures.wait([self._holding], timeout=_CLOSE_SECONDS)
            self._holding = None

    def _start_loop(self) -> BlockingPortal:
        started = threading.Event()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                self._portal = portal
                started.set()
                await portal.sleep_until_stopped()

        # a daemon, so that a client nobody closed cannot keep the process from exiting
        self._loop = threading.Thread(
            target=anyio.run, args=(serve,), name=f"accord-mcp-{self.name}", daemon=True
        )
        self._loop.start()
        started.wait()
        assert self._portal is not None
        return self._portal


def mcp_capabilities(
    client: McpClient,
    *,
    prefix: str,
    tools: Mapping[str, ToolBinding] | None = None,
    include: Iterable[str] | None = None,
    resilience: Resilience | None = None,
    endpoints: Endpoints | None = None,
) -> list[Capability]:
    """One capability per tool of the server, named ``<prefix>.<tool>``.

    Each tool call goes through :func:`~accord.connectors.resilient` like an HTTP operation's:
    a breaker and concurrency limit per tool, retries of retryable failures (``resilience``,
    default :class:`~accord.connectors.Resilience`), never of a lost answer for a tool that is
    not idempotent.

    Args:
        client: the server's client; it connects now to list the tools.
        prefix: the first part of every capability name, e.g. ``crm``.
        tools: governance attributes for tools whose hints are not enough, by tool name.
        include: the tools to offer (default: the bound tools when ``tools`` is given, else
            every tool the server lists).

    A tool's input contract is its ``inputSchema``; its output contract its ``outputSchema``,
    or any JSON object when it declares none (or one that is not an object schema).

    Raises:
        ConfigurationError: ``tools`` or ``include`` name a tool the server does not offer, or
            a tool's schema is not a valid contract.
        CapabilityFailed: the server cannot be reached.
    """
    listed = {tool.name: tool for tool in client.list_tools()}
    bindings = dict(tools or {})
    if include is not None:
        wanted = list(include)
    else:
        wanted = list(bindings) if bindings else sorted(listed)
    unknown = sorted((set(wanted) | set(bindings)) - set(listed))
    if unknown:
        raise ConfigurationError(
            f"MCP server {client.name!r} offers no tool named "
            f"{', '.join(repr(name) for name in unknown)}",
            hint=f"it offers: {', '.join(sorted(listed)) or 'no tools'}",
        )
    protection = resilience or Resilience()
    shared = endpoints or Endpoints()
    found = []
    for name in wanted:
        capability = _capability(client, prefix, listed[name], bindings.get(name, ToolBinding()))
        endpoint = shared.get(f"mcp:{client.name} {name}", protection)
        handler = resilient(
            capability.handler,
            endpoint=endpoint,
            resilience=protection,
            idempotent=capability.idempotent,
        )
        found.append(dataclasses.replace(capability, handler=handler))
    return found


def _capability(client: McpClient, prefix: str, tool: McpTool, binding: ToolBinding) -> Capability:
    name = f"{prefix}.{tool.name}"
    side_effect, idempotent = _behaviour(tool.annotations, binding)
    output = tool.output_schema
    if output is None or output.get("type") != "object":
        output = _PERMISSIVE

    def call(request: Any, ctx: CallContext) -> dict[str, Any]:
        timeout = None if ctx.deadline is None else ctx.deadline - time.time()
        return client.call_tool(
            tool.name,
            request.root if isinstance(request, JsonSchemaModel) else {},
            timeout=timeout,
            meta={"idempotency_key": ctx.idempotency_key},
        )

    return Capability(
        name=name,
        input_model=schema_model(f"{name} input", tool.input_schema),
        output_model=schema_model(f"{name} output", output),
        handler=call,
        side_effect=side_effect,
        idempotent=idempotent,
        compensation=binding.compensation,
        reads=binding.reads,
        writes=binding.writes,
        fields=dict(binding.fields),
        region=binding.region,
        description=tool.description,
        source=f"mcp:{client.name}/{tool.name}",
    )


def _behaviour(hints: ToolHints | None, binding: ToolBinding) -> tuple[SideEffect, bool]:
    """Side effect and idempotency: the binding's, else what the hints imply.

    Without hints a tool is taken for the worst: irreversible and not idempotent, as the MCP
    specification's defaults (``destructiveHint: true``) say.
    """
    side_effect: SideEffect
    if binding.side_effect is not None:
        side_effect = binding.side_effect
    elif hints is not None and hints.read_only:
        side_effect = "read"
    elif hints is not None and hints.destructive is False:
        side_effect = "write"
    else:
        side_effect = "irreversible"
    if binding.idempotent is not None:
        return side_effect, binding.idempotent
    if hints is not None and hints.idempotent is not None:
        return side_effect, hints.idempotent
    return side_effect, side_effect == "read"
