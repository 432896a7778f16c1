"""``accord run``: start, show, list, signal, cancel and history."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from accord.cli._common import (
    as_json,
    console,
    drive_if_embedded,
    handled,
    opened,
    parse_json_option,
    tenant_of,
    when,
)
from accord.runtime import RunView

app = typer.Typer(help="Start, inspect, signal and cancel runs.", no_args_is_help=True)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]


def _print_run(view: RunView, *, json_output: bool) -> None:
    if json_output:
        console.print(as_json(view), markup=False, soft_wrap=True)
        return
    colour = {
        "completed": "green",
        "failed": "red",
        "cancelled": "yellow",
        "compensated": "magenta",
    }.get(view.status, "cyan")
    console.print(
        f"[bold]{view.run_id}[/bold]  {view.journey} v{view.version}  "
        f"[{colour}]{view.status}[/{colour}]"
        + (f"  outcome={view.outcome}" if view.outcome else "")
    )
    for position in view.positions:
        wait = f" waiting for {position.waiting_for}" if position.waiting_for else ""
        until = f" until {when(position.until)}" if position.until else ""
        console.print(f"  at {position.block} ({position.status}){wait}{until}")
    if view.error:
        console.print(
            f"  error: {view.error.get('type')}: {view.error.get('message')}",
            style="red",
            markup=False,
        )
    if view.output is not None:
        console.print(f"  output: {as_json(view.output)}", markup=False)


@app.command("start")
def start_command(
    journey: str,
    input: Annotated[str | None, typer.Option("--input", "-i", help="run input as JSON")] = None,
    subject: Annotated[str | None, typer.Option(help="the subject the run is about")] = None,
    version: Annotated[int | None, typer.Option(help="journey version (default: latest)")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="repeat-safe start key")
    ] = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Start a run. Embedded (SQLite) mode also runs it until it waits or ends."""
    data = parse_json_option(input, "--input")
    with opened(database) as accord, handled():
        result = accord.runtime.start(
            tenant_of(accord),
            journey,
            input=data,
            subject=subject,
            version=version,
            idempotency_key=idempotency_key,
        )
        if not result.created:
            console.print(
                f"already started: {result.run_id} (idempotency key {idempotency_key!r}); "
                "nothing new was started"
            )
        view = drive_if_embedded(
            accord, lambda: accord.runtime.get(tenant_of(accord), result.run_id)
        )
        _print_run(view, json_output=json_output)


@app.command("show")
def show_command(run_id: str, json_output: Json = False, database: Database = None) -> None:
    """A run's status, position, error and output."""
    with opened(database) as accord, handled():
        view = drive_if_embedded(
            accord, lambda: accord.runtime.get(tenant_of(accord), run_id), wait=False
        )
        _print_run(view, json_output=json_output)


@app.command("list")
def list_command(
    journey: Annotated[str | None, typer.Option(help="only this journey")] = None,
    status: Annotated[
        str | None, typer.Option(help="ready|waiting|completed|failed|cancelled|compensated")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Runs, newest first."""
    with opened(database) as accord, handled():
        views = drive_if_embedded(
            accord,
            lambda: accord.runtime.list_runs(
                tenant_of(accord), journey=journey, status=status, limit=limit
            ),
            wait=False,
        )
        if json_output:
            console.print(as_json(views), markup=False, soft_wrap=True)
            return
        table = Table("run", "journey", "status", "outcome", "at", "started")
        for view in views:
            table.add_row(
                view.run_id,
                f"{view.journey} v{view.version}",
                view.status,
                view.outcome or "",
                ", ".join(p.block for p in view.positions),
                when(view.created_at),
            )
        console.print(table if views else "no runs")


@app.command("signal")
def signal_command(
    target: Annotated[str, typer.Argument(help="run id (or a correlation key with --correlation)")],
    name: Annotated[str, typer.Argument(help="event name, or the approve/escalate block id")],
    data: Annotated[str | None, typer.Option("--data", "-d", help="payload as JSON")] = None,
    correlation: Annotated[
        bool, typer.Option("--correlation", help="TARGET is a correlation key, not a run id")
    ] = False,
    database: Database = None,
) -> None:
    """Send an external event to a waiting run (people decide with 'accord review decide')."""
    payload = parse_json_option(data, "--data")
    with opened(database) as accord, handled():
        tenant = tenant_of(accord)
        if correlation:
            result = accord.runtime.signal(tenant, name, correlation_key=target, payload=payload)
        else:
            result = accord.runtime.signal(tenant, name, run_id=target, payload=payload)
        if result.parked:
            console.print(
                f"no run waits for {name!r} with key {target!r} yet; the event is "
                "parked and the first run to wait for it will receive it"
            )
        drive_if_embedded(accord, lambda: None)
        for run_id in result.run_ids:
            _print_run(accord.runtime.get(tenant, run_id), json_output=False)


@app.command("cancel")
def cancel_command(
    run_id: str,
    reason: Annotated[str, typer.Option(help="why the run is cancelled")] = "cancelled by operator",
    by: Annotated[str, typer.Option(help="who cancels")] = "cli",
    database: Database = None,
) -> None:
    """Cancel a run; it ends at its next transition."""
    with opened(database) as accord, handled():
        accord.runtime.cancel(tenant_of(accord), run_id, reason=reason, by=by)
        view = drive_if_embedded(accord, lambda: accord.runtime.get(tenant_of(accord), run_id))
        _print_run(view, json_output=False)


@app.command("history")
def history_command(run_id: str, json_output: Json = False, database: Database = None) -> None:
    """Every transition of a run, in order."""
    with opened(database) as accord, handled():
        entries = accord.runtime.history(tenant_of(accord), run_id)
        if json_output:
            console.print(as_json(entries), markup=False, soft_wrap=True)
            return
        wide = console.width >= 110
        table = Table("seq", "at (UTC)", "event", "block", "visit", "try")
        if wide:
            table.add_column(
                "detail", no_wrap=True, overflow="ellipsis", max_width=console.width - 85
            )
        for e in entries:
            row = [
                str(e.seq),
                when(e.at)[11:],
                e.kind,
                e.block or "",
                str(e.visit or ""),
                str(e.attempt or ""),
            ]
            if wide:
                row.append(json.dumps(e.detail, separators=(", ", ": "), default=str))
            table.add_row(*row)
        console.print(table)
        if not wide:
            console.print("(details: a wider terminal, or --json)")


@app.command("decisions")
def decisions_command(run_id: str, json_output: Json = False, database: Database = None) -> None:
    """The gateway's decision for every call of a run: basis, policy, approvals, outcome."""
    with opened(database) as accord, handled():
        records = accord.runtime.decisions(tenant_of(accord), run_id)
        if json_output:
            console.print(as_json(records), markup=False, soft_wrap=True)
            return
        if not records:
            console.print(f"run {run_id} made no gateway calls")
            return
        table = Table("at (UTC)", "block", "capability", "outcome", "basis", "policy")
        for record in records:
            basis = record.record.get("lawful_basis") or {}
            policy = record.record.get("policy") or {}
            outcome = record.outcome + (f" ({record.reason})" if record.reason else "")
            if not basis:
                basis_text = "not checked"
            elif basis.get("required"):
                grants = ", ".join(basis.get("grants") or [])
                basis_text = f"{basis.get('basis') or '-'} {grants}".strip()
            else:
                basis_text = "not needed"
            policy_text = (
                f"v{policy.get('bundle_version')} {', '.join(policy.get('determining') or [])}"
                if policy
                else "-"
            )
            table.add_row(
                when(record.at)[11:],
                record.block or "",
                record.capability,
                outcome,
                basis_text,
                policy_text,
            )
        console.print(table)
