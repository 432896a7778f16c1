"""Accord as an MCP server: chosen capabilities as tools, every call through the gateway.

An external agent lists the exposed tools and calls them like any MCP tools. Each call is a
direct call (:meth:`accord.service.Accord.invoke`) made by the server's principal, an agent:
the kill switches (``agent:<principal>`` among them), the subject's consent for the exposed
purpose, the policy and the approval gate decide it, and its decision is in the ledger before
the agent has its answer. A call the gateway does not execute is a tool error naming the
status, the reason and the decision.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
import uvicorn
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from starlette.types import ASGIApp, Receive, Scope, Send

from accord.connectors import Capability
from accord.errors import AccordError, ConfigurationError, InputError
from accord.flags import parse_flag_key
from accord.service import Accord, DirectResult

CHANNEL = "mcp"
"""The channel of every call through the MCP server, as kill switches and policies see it."""

_TOOL_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SUBJECT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "description": "the id of the customer or employee the call is about",
}
_INSTRUCTIONS = (
    "Each tool is a capability governed by Accord. Kill switches, the subject's consent for "
    "the tool's purpose and the policy decide every call, and every decision is recorded. "
    "Pass the subject's id as subject_id and the capability's input as input. A call that "
    "is not executed returns an error naming its status (refused, held, approval_required or "
    "failed), its reason and its decision id; a held call may succeed later."
)


@dataclass(frozen=True, slots=True)
class ExposedTool:
    """A capability offered as an MCP tool, with the purpose its calls are made for.

    ``name`` defaults to the capability's name, ``description`` to the capability's.
    A capability that touches personal data needs a purpose: consent is given for one.
    """

    capability: str
    purpose: str | None
    name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class _Exposed:
    spec: ExposedTool
    capability: Capability
    listing: types.Tool


def build_server(
    accord: Accord,
    tools: Sequence[ExposedTool],
    *,
    principal: str,
    tenant: str | None = None,
) -> Server[Any]:
    """An MCP server whose tools are ``tools``, called as the agent ``principal``.

    Each tool's input is ``{"subject_id": ..., "input": <the capability's input>}``
    (``subject_id`` is required when the capability touches personal data); its output schema
    is the capability's, with no field required, because the gateway withholds fields the
    purpose or a policy does not allow.

    Raises:
        CapabilityNotFound: a tool names no registered capability.
        ConfigurationError: the principal cannot name an agent, two tools share a name, a name
            is not a valid MCP tool name, or a capability that touches personal data is
            exposed without a purpose.
    """
    try:
        parse_flag_key(f"agent:{principal}")
    except InputError as exc:
        raise ConfigurationError(
            f"{principal!r} cannot name the agent the server acts as",
            hint="use a name such as support-assistant, so that agent:<name> can switch it off",
        ) from exc
    exposed = _expose(accord, tools)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool.listing for tool in exposed.values()])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = exposed.get(params.name)
        if tool is None:
            return _error(f"no tool named {params.name!r}; list the tools to see what there is")
        arguments = params.arguments or {}
        problem = _envelope_problem(arguments)
        if problem is not None:
            return _error(f"invalid arguments for {params.name!r}: {problem}")
        invoke = partial(
            accord.invoke,
            tool.capability.name,
            arguments.get("input") or {},
            principal=principal,
            subject=arguments.get("subject_id"),
            purpose=tool.spec.purpose,
            channel=CHANNEL,
            idempotency_key=_idempotency_key(params.meta),
            tenant=tenant,
        )
        try:
            result = await anyio.to_thread.run_sync(invoke)
        except AccordError as exc:
            return _error(f"error [{exc.code}]: {exc.message}")
        return _answer(result)

    def input_schema(name: str) -> Mapping[str, Any] | None:
        tool = exposed.get(name)
        return None if tool is None else tool.listing.input_schema

    return Server(
        "accord",
        instructions=_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=input_schema,
    )


def serve_stdio(server: Server[Any]) -> None:
    """Serve ``server`` over this process's stdin and stdout until the client closes them."""
    anyio.run(_serve_stdio, server)


def http_app(server: Server[Any], *, token: str, host: str = "127.0.0.1") -> ASGIApp:
    """``server`` as an ASGI app on ``/mcp`` (streamable HTTP) that asks for ``token``.

    Every request must carry ``Authorization: Bearer <token>``; any other gets 401.
    """
    if not token or token != token.strip():
        raise ConfigurationError(
            "the MCP server needs a bearer token: a non-empty string without spaces",
            hint="e.g. export ACCORD_MCP_TOKEN=$(openssl rand -hex 32)",
        )
    return _BearerAuth(server.streamable_http_app(host=host), token)


def serve_http(
    server: Server[Any],
    *,
    token: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``server`` over streamable HTTP at ``http://<host>:<port>/mcp`` (see
    :func:`http_app`) until the process is interrupted or ``stop`` is set."""
    app = http_app(server, token=token, host=host)
    web = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    anyio.run(_serve_http, web, stop)


class _BearerAuth:
    """Lets through only requests whose bearer token equals the configured one."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorised(scope):
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {
                        "code": types.INVALID_REQUEST,
                        "message": "unauthorized: send the header Authorization: Bearer <token>",
                    },
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="accord"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        supplied = b""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                supplied = value
                break
        scheme, _, token = supplied.partition(b" ")
        # compared in constant time, so the answer's timing tells nothing about the token
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._token)


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def _serve_http(web: uvicorn.Server, stop: threading.Event | None) -> None:
    async with anyio.create_task_group() as group:
        if stop is not None:
            group.start_soon(_stop_when_set, web, stop)
        await web.serve()
        group.cancel_scope.cancel()


async def _stop_when_set(web: uvicorn.Server, stop: threading.Event) -> None:
    while not stop.is_set():
        await anyio.sleep(0.05)
    web.should_exit = True


def _expose(accord: Accord, tools: Sequence[ExposedTool]) -> dict[str, _Exposed]:
    exposed: dict[str, _Exposed] = {}
    for spec in tools:
        capability = accord.capabilities.get(spec.capability)
        name = spec.name or capability.name
        if not _TOOL_NAME.fullmatch(name):
            raise ConfigurationError(
                f"{name!r} is not a valid MCP tool name",
                hint="use letters, digits, '.', '_' and '-' (at most 128); set a name for it",
            )
        if name in exposed:
            raise ConfigurationError(f"two exposed tools are named {name!r}")
        if capability.data_categories and not spec.purpose:
            raise ConfigurationError(
                f"{capability.name!r} touches personal data "
                f"({', '.join(capability.data_categories)}) and is exposed without a purpose",
                hint=f"expose it for the purpose consent is asked for, e.g. "
                f"{capability.name}=dpv:ServiceProvision",
            )
        listing = types.Tool(
            name=name,
            description=spec.description or capability.description or capability.name,
            input_schema=_input_schema(capability),
            output_schema=_output_schema(capability),
            annotations=types.ToolAnnotations(
                read_only_hint=capability.side_effect == "read",
                destructive_hint=capability.side_effect == "irreversible",
                idempotent_hint=capability.idempotent,
            ),
        )
        exposed[name] = _Exposed(spec, capability, listing)
    return exposed


def _input_schema(capability: Capability) -> dict[str, Any]:
    contract = _rebased(capability.input_schema(), "#/properties/input")
    required = ["subject_id"] if capability.data_categories else []
    if contract.get("required"):
        required.append("input")
    return {
        "type": "object",
        "properties": {"subject_id": dict(_SUBJECT), "input": contract},
        "required": required,
        "additionalProperties": False,
    }


def _output_schema(capability: Capability) -> dict[str, Any]:
    # the gateway withholds fields a purpose or a policy does not allow, any of them
    schema = capability.output_schema()
    schema.pop("required", None)
    return schema


def _rebased(node: Any, base: str) -> Any:
    """``node`` with its document-local references pointing at where it will be nested."""
    if isinstance(node, dict):
        return {
            key: base + value[1:]
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else _rebased(value, base)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rebased(item, base) for item in node]
    return node


def _envelope_problem(arguments: Mapping[str, Any]) -> str | None:
    extra = sorted(set(arguments) - {"subject_id", "input"})
    if extra:
        return f"unexpected {', '.join(extra)}; pass subject_id and input only"
    subject = arguments.get("subject_id")
    if subject is not None and not isinstance(subject, str):
        return "subject_id must be a string"
    payload = arguments.get("input")
    if payload is not None and not isinstance(payload, dict):
        return "input must be an object"
    return None


def _idempotency_key(meta: Mapping[str, Any] | None) -> str | None:
    key = (meta or {}).get("idempotency_key")
    return key if isinstance(key, str) and key else None


def _answer(result: DirectResult) -> types.CallToolResult:
    if result.status == "executed":
        output = result.output or {}
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(output, ensure_ascii=False))],
            structured_content=output,
        )
    text = f"{result.status} ({result.reason}): {result.message} [decision {result.decision_id}]"
    return types.CallToolResult(
        content=[types.TextContent(text=text)],
        is_error=True,
        _meta={"accord/result": result.to_json()},
    )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
