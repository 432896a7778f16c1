"""``accord dlq``: the calls parked after exhausting their retries, and what to do with them."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli._common import (
    as_json,
    console,
    drive_if_embedded,
    handled,
    opened,
    tenant_of,
    when,
)

app = typer.Typer(
    help="The dead-letter queue: calls that exhausted their retries or lost their answer.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
By = Annotated[str | None, typer.Option("--by", help="who acts (default: your login name)")]
Note = Annotated[str | None, typer.Option("--note", help="why, for the ledger")]
STATUSES = ("pending", "retried", "discarded", "all")


@app.command("list")
def list_letters(
    status: Annotated[
        str, typer.Option("--status", help="pending, retried, discarded or all")
    ] = "pending",
    run: Annotated[str | None, typer.Option("--run", help="only this run's letters")] = None,
    capability: Annotated[str | None, typer.Option("--capability", help="only this one")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """List dead letters, oldest first."""
    if status not in STATUSES:
        console.print(f"[red]unknown status {status!r}[/red]; use {', '.join(STATUSES)}")
        raise typer.Exit(2)
    with opened(database) as accord, handled():
        found = accord.dead_letters(
            status=None if status == "all" else status,
            run_id=run,
            capability=capability,
            limit=limit,
        )
    if json_output:
        console.print_json(as_json([letter.to_json() for letter in found]))
        return
    if not found:
        console.print(f"no {'' if status == 'all' else status + ' '}dead letters")
        return
    table = Table()
    for header in ("letter", "run", "block", "capability", "reason", "attempts", "error", "at"):
        table.add_column(header, overflow="fold")
    for letter in found:
        table.add_row(
            letter.letter_id,
            letter.run_id,
            escape(letter.block),
            letter.capability,
            letter.reason if letter.status == "pending" else f"{letter.reason} ({letter.status})",
            str(letter.attempts),
            escape(str(letter.error.get("message", ""))),
            when(letter.created_at),
        )
    console.print(table)


@app.command("show")
def show(letter_id: str, database: Database = None) -> None:
    """Show one dead letter as JSON."""
    with opened(database) as accord, handled():
        letter = accord.runtime.dead_letter(tenant_of(accord), letter_id)
    console.print_json(as_json(letter.to_json()))


@app.command("retry")
def retry(letter_id: str, by: By = None, note: Note = None, database: Database = None) -> None:
    """Call again: the block runs from its first attempt."""
    with opened(database) as accord, handled():
        result = accord.retry_dead_letter(letter_id, by=by or getpass.getuser(), note=note)
        view = drive_if_embedded(
            accord, lambda: accord.runtime.get(tenant_of(accord), result.run_ids[0])
        )
    console.print(f"retried {letter_id}; run {view.run_id} is {view.status}")


@app.command("discard")
def discard(letter_id: str, by: By = None, note: Note = None, database: Database = None) -> None:
    """Give the call up: the block fails and the journey takes its on_error route, or fails
    and compensates."""
    with opened(database) as accord, handled():
        result = accord.discard_dead_letter(letter_id, by=by or getpass.getuser(), note=note)
        view = drive_if_embedded(
            accord, lambda: accord.runtime.get(tenant_of(accord), result.run_ids[0])
        )
    console.print(f"discarded {letter_id}; run {view.run_id} is {view.status}")
