"""A small MCP server built with the official SDK, for the connector tests.

Run it over stdio (``python tests/mcp_tools_server.py``) or over streamable HTTP
(``python tests/mcp_tools_server.py --http PORT``). It imports nothing from Accord, so it
stands for any system that offers its tools over MCP.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel

server = MCPServer("crm-tools", log_level="ERROR")

_NOTES: dict[str, list[str]] = {}


class Customer(BaseModel):
    customer_id: str
    name: str
    email: str
    tier: str


class NoteAdded(BaseModel):
    customer_id: str
    notes: int
    idempotency_key: str | None


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def lookup_customer(customer_id: str) -> Customer:
    """Look a customer up by id."""
    return Customer(
        customer_id=customer_id, name="Ada Lovelace", email="ada@example.org", tier="gold"
    )


@server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True))
def add_note(customer_id: str, note: str, ctx: Context) -> NoteAdded:
    """Add a note to a customer's file; the idempotency key in the request's _meta is echoed."""
    meta: Any = ctx.request_context.meta or {}
    _NOTES.setdefault(customer_id, []).append(note)
    key = meta.get("idempotency_key") if isinstance(meta, dict) else None
    return NoteAdded(customer_id=customer_id, notes=len(_NOTES[customer_id]), idempotency_key=key)


@server.tool()
def close_account(customer_id: str) -> str:
    """Close a customer's account (no hints: destructive as far as a client knows)."""
    raise ToolError(f"account {customer_id} is under review and cannot be closed")


@server.tool(structured_output=False)
def summary(customer_id: str) -> str:
    """A one-line summary, as plain text."""
    return f"{customer_id} is a gold customer"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def process_id() -> int:
    """The server's process id, so a test can tell a restarted server from the first one."""
    return os.getpid()


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def wait(seconds: float) -> float:
    """Answer after ``seconds``."""
    await anyio.sleep(seconds)
    return seconds


@server.tool()
def exit_process() -> str:
    """End the server process in the middle of a call, as a crash would."""
    os._exit(3)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()


if __name__ == "__main__":
    main()
