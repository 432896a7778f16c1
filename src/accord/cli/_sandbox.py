"""``accord sandbox``: run the sandbox enterprise's HTTP services and inject faults into them."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from accord.cli._common import as_json, console, fail, handled

app = typer.Typer(
    help="The sandbox enterprise: CRM, billing, orders, helpdesk, KYC, notifications and the "
    "employee directory over HTTP.",
    no_args_is_help=True,
)

DEFAULT_PORT_BASE = 8701
Host = Annotated[str, typer.Option(help="interface the services listen on")]
PortBase = Annotated[
    int,
    typer.Option(
        help="port of the first service; the others follow in the order "
        "crm, billing, orders, helpdesk, kyc, notifications, directory"
    ),
]


def _services() -> tuple[str, ...]:
    # Imported on use: the services pull in FastAPI and uvicorn, which other commands never need.
    from accord.sandbox import SERVICES  # noqa: PLC0415

    return SERVICES


def default_ports(port_base: int) -> dict[str, int]:
    """The fixed port of each service: ``port_base`` for crm, then one more for each next one."""
    return {name: port_base + offset for offset, name in enumerate(_services())}


@app.command("serve")
def serve_command(
    directory: Annotated[
        Path, typer.Option("--dir", help="where the services' SQLite files are (reused)")
    ] = Path(".accord/sandbox"),
    host: Host = "127.0.0.1",
    port_base: PortBase = DEFAULT_PORT_BASE,
    only: Annotated[
        str | None,
        typer.Option(help="comma-separated services to run, e.g. crm,billing (default: all)"),
    ] = None,
) -> None:
    """Run the sandbox services until Ctrl-C."""
    from accord.sandbox import SandboxEnterprise  # noqa: PLC0415 - see _services

    names = _selected(only)
    ports = {name: port for name, port in default_ports(port_base).items() if name in names}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with handled(), SandboxEnterprise(directory, host=host, ports=ports, services=names) as running:
        table = Table(title=f"sandbox enterprise ({directory})")
        table.add_column("service")
        table.add_column("URL")
        table.add_column("OpenAPI")
        for name, url in running.urls.items():
            table.add_row(name, url, f"{url}/openapi.json")
        console.print(table)
        console.print("faults: accord sandbox faults SERVICE --set '[...]'; Ctrl-C stops")
        stop.wait()
    console.print("sandbox stopped")


@app.command("faults")
def faults_command(
    service: Annotated[str, typer.Argument(help="crm, billing, orders, helpdesk, kyc, ...")],
    rules: Annotated[
        str | None,
        typer.Option(
            "--set",
            help='JSON list of rules, e.g. \'[{"operation": "issue_refund", "error_rate": 1}]\'',
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove every rule")] = False,
    show: Annotated[bool, typer.Option("--show", help="print the rules (the default)")] = False,
    url: Annotated[
        str | None, typer.Option(help="the service's base URL (default: from --host/--port-base)")
    ] = None,
    host: Host = "127.0.0.1",
    port_base: PortBase = DEFAULT_PORT_BASE,
) -> None:
    """Set, clear or show the fault rules of a running sandbox service."""
    if sum((rules is not None, clear, show)) > 1:
        fail("choose one of --set, --clear and --show")
    base = url or f"http://{host}:{default_ports(port_base)[_selected(service)[0]]}"
    endpoint = base.rstrip("/") + "/_sandbox/faults"
    try:
        if rules is not None:
            response = httpx.put(endpoint, json=_parse_rules(rules), timeout=10)
        elif clear:
            response = httpx.delete(endpoint, timeout=10)
        else:
            response = httpx.get(endpoint, timeout=10)
    except httpx.HTTPError as exc:
        fail(
            f"cannot reach the {service} service at {base}: {exc}",
            hint="start it with `accord sandbox serve`, or pass --url",
        )
    if response.status_code >= 400:
        fail(f"the {service} service refused: {_problem_detail(response)}")
    if clear:
        console.print(f"{service}: every fault rule removed")
        return
    console.print(as_json(response.json()), markup=False, soft_wrap=True)


def _selected(only: str | None) -> list[str]:
    services = _services()
    if only is None:
        return list(services)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in services]
    if unknown or not names:
        fail(
            f"unknown sandbox service {', '.join(unknown) or repr(only)}",
            hint=f"choose from {', '.join(services)}",
        )
    return names


def _parse_rules(text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(
            f"--set is not valid JSON: {exc.msg} at column {exc.colno}",
            hint="""quote it for the shell, e.g. --set '[{"operation": "*", "error_rate": 0.5}]'""",
        )
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        fail(f"--set must be a JSON list of rules, got {type(value).__name__}")
    return value


def _problem_detail(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(problem, dict) and "detail" in problem:
        return f"{problem['detail']} [{problem.get('code', response.status_code)}]"
    return f"HTTP {response.status_code}"
