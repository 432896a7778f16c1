"""``accord events ingest`` and ``accord events received``: CloudEvents in, and what they did."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli._common import as_json, console, drive_if_embedded, fail, handled, opened, when
from accord.events import read_event
from accord.storage._inbound import InboundStatus

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
STATUSES: dict[str, InboundStatus | None] = {
    "started": "started",
    "signalled": "signalled",
    "parked": "parked",
    "ignored": "ignored",
    "refused": "refused",
    "all": None,
}


def ingest(
    file: Annotated[
        str,
        typer.Argument(
            help="a structured CloudEvent (JSON object) or a batch (array); - reads stdin"
        ),
    ],
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Deliver CloudEvents from a file, through the same path as HTTP and NATS."""
    text = sys.stdin.read() if file == "-" else _read(file)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(
            f"{file} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            hint='a structured CloudEvent: {"specversion": "1.0", "id": ..., "source": ..., '
            '"type": ..., "data": {...}}',
        )
    items = value if isinstance(value, list) else [value]
    with opened(database) as accord, handled():
        events = [read_event(item) for item in items]
        outcomes = [accord.ingest_event(event, channel="cli").to_json() for event in events]
        drive_if_embedded(accord, lambda: None)
    if json_output:
        console.print_json(as_json(outcomes))
        return
    for outcome in outcomes:
        console.print(_sentence(outcome), markup=False)
    if any(o["status"] == "refused" for o in outcomes):
        raise typer.Exit(2)


def received(
    status: Annotated[
        str, typer.Option("--status", help="started, signalled, parked, ignored, refused or all")
    ] = "all",
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """List inbound events, newest first, with what each did."""
    if status not in STATUSES:
        fail(f"unknown status {status!r}", hint=f"use {', '.join(STATUSES)}")
    with opened(database) as accord, handled():
        found = accord.inbound_events(
            status=STATUSES[status],
            limit=limit,
        )
    if json_output:
        console.print_json(as_json(found))
        return
    if not found:
        console.print("no inbound events" if status == "all" else f"no {status} inbound events")
        return
    table = Table()
    for header in ("received", "channel", "source", "id", "type", "status", "detail"):
        table.add_column(header, overflow="fold")
    for record in found:
        table.add_row(
            when(record.received_at),
            record.channel,
            escape(record.source),
            escape(record.event_id),
            escape(record.type),
            record.status,
            escape(_detail(record.detail)),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``ingest`` and ``received`` to a command group."""
    app.command("ingest")(ingest)
    app.command("received")(received)


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        fail(
            f"cannot read {file}: {exc.strerror}", hint="give a path to a JSON file, or - for stdin"
        )


def _sentence(outcome: dict[str, Any]) -> str:
    head = f"{outcome['source']} {outcome['id']} ({outcome['type']}): "
    status = outcome["status"]
    if status == "started":
        return head + f"started run {outcome['run_id']}"
    if status == "signalled":
        return head + "signalled run(s) " + ", ".join(outcome.get("run_ids", []))
    if status == "parked":
        return head + "parked until a run waits for it"
    if status == "ignored":
        return head + "ignored: no trigger matched"
    if status == "duplicate":
        return head + f"duplicate, already {outcome.get('first')}; nothing done"
    return head + f"refused: {outcome.get('error')}"


def _detail(detail: dict[str, Any]) -> str:
    if "error" in detail:
        return str(detail["error"])
    parts = []
    for action in detail.get("actions", []):
        if action.get("action") == "start":
            parts.append(f"{action['journey']}: run {action.get('run_id', '-')}")
        else:
            runs = ", ".join(action.get("run_ids", [])) or "parked"
            parts.append(f"{action['journey']}: {action.get('name')} → {runs}")
    return "; ".join(parts) or str(detail.get("reason", ""))
