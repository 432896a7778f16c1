"""``accord mcp``: offer governed capabilities to external agents as MCP tools."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from accord.cli._common import errors, fail, handled, opened

app = typer.Typer(
    help="Accord as an MCP server: agents call capabilities through the gateway.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]


def parse_exposed(text: str) -> tuple[str, str | None]:
    """``CAPABILITY`` or ``CAPABILITY=PURPOSE``."""
    capability, _, purpose = text.partition("=")
    if not capability.strip():
        fail(
            f"--expose {text!r} names no capability",
            hint="e.g. --expose crm.lookup_customer=dpv:ServiceProvision",
        )
    return capability.strip(), purpose.strip() or None


@app.command("serve")
def serve_command(
    expose: Annotated[
        list[str],
        typer.Option(
            "--expose",
            help="CAPABILITY=PURPOSE to offer as a tool (repeat for more); the purpose is what "
            "consent is checked for",
        ),
    ],
    principal: Annotated[
        str,
        typer.Option(
            help="the agent the calls are made as: policies see Agent::<name>, and the kill "
            "switch agent:<name> stops it"
        ),
    ],
    http: Annotated[bool, typer.Option("--http", help="serve streamable HTTP, not stdio")] = False,
    host: Annotated[str, typer.Option(help="HTTP address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8765,
    token_env: Annotated[
        str,
        typer.Option("--token-env", help="environment variable holding the HTTP bearer token"),
    ] = "ACCORD_MCP_TOKEN",
    database: Database = None,
) -> None:
    """Serve the exposed capabilities over MCP (stdio by default) until the client leaves."""
    # only this command needs the MCP server stack (the SDK, Starlette, uvicorn)
    from accord.mcp import ExposedTool, build_server, serve_http, serve_stdio  # noqa: PLC0415

    # stdout carries the protocol on stdio, so everything else goes to stderr
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    tools = [ExposedTool(*parse_exposed(text)) for text in expose]
    token = os.environ.get(token_env, "") if http else ""
    if http and not token:
        fail(
            f"--http needs a bearer token in ${token_env}; it is not set",
            hint=f"export {token_env}=$(openssl rand -hex 32), and give it to the agent",
        )
    with opened(database) as accord, handled():
        server = build_server(accord, tools, principal=principal)
        names = ", ".join(tool.capability for tool in tools)
        if http:
            errors.print(
                f"serving {names} at http://{host}:{port}/mcp as agent {principal}; Ctrl-C stops",
                markup=False,
            )
            serve_http(server, token=token, host=host, port=port)
        else:
            errors.print(f"serving {names} over stdio as agent {principal}", markup=False)
            serve_stdio(server)
