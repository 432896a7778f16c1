"""``accord replay``: re-run recorded runs against a candidate, in shadow, and report what
would change."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from accord.cli._common import as_json, console, fail, handled, opened, when
from accord.errors import InputError
from accord.replay import SYNTAX, ReplayReport, parse_candidate, parse_time, replay_candidate


def replay_command(
    journey: Annotated[str, typer.Option("--journey", help="the journey whose runs to replay")],
    candidate: Annotated[
        str, typer.Option("--candidate", help=f"what to try: {SYNTAX}", show_default=False)
    ],
    since: Annotated[
        str, typer.Option("--since", help="runs started from: an RFC 3339 time or 7d, 24h, 90m")
    ],
    until: Annotated[
        str | None, typer.Option("--until", help="runs started before: a time or a duration")
    ] = None,
    limit: Annotated[int, typer.Option(help="replay at most this many runs (the newest)")] = 100,
    fail_on_change: Annotated[
        bool,
        typer.Option("--fail-on-change", help="exit 1 when any run changes, diverges or fails"),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    tenant: Annotated[str | None, typer.Option(help="tenant (default: ACCORD_TENANT)")] = None,
    database: Annotated[
        str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
    ] = None,
) -> None:
    """Re-run recorded runs of a journey against a candidate journey version, policy bundle or
    agent version, in shadow (nothing is called or written), and report every decision that
    would change, with the recorded and the candidate's explanation."""
    now = time.time()
    try:
        parsed = parse_candidate(candidate)
        start = parse_time(since, now=now, option="--since")
        end = None if until is None else parse_time(until, now=now, option="--until")
    except InputError as exc:
        fail(exc.message.replace("candidate ", "--candidate ", 1), hint=exc.hint)
    if limit < 1:
        fail(f"--limit must be at least 1, got {limit}")
    with opened(database) as accord, handled():
        if json_output:
            report = replay_candidate(
                accord,
                journey=journey,
                candidate=parsed,
                since=start,
                until=end,
                limit=limit,
                tenant=tenant,
            )
        else:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("replaying runs", total=None)
                report = replay_candidate(
                    accord,
                    journey=journey,
                    candidate=parsed,
                    since=start,
                    until=end,
                    limit=limit,
                    tenant=tenant,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
    if json_output:
        typer.echo(as_json(report.to_json()))
    else:
        print_report(report)
    if fail_on_change and report.differs:
        raise typer.Exit(1)


def print_report(report: ReplayReport) -> None:
    """The report for people: one row per changed decision, then the counts."""
    window = f"runs started {when(report.since)}" + (
        f" to {when(report.until)}" if report.until is not None else " until now"
    )
    console.print(
        f"[bold]replay of {report.journey}[/bold] against {report.candidate}: {window} (UTC)",
        markup=True,
    )
    for note in report.notes:
        console.print(f"  note: {note}", markup=False)
    table = Table("run", "block", "kind", "recorded", "candidate", show_lines=True)
    for run in report.runs:
        if run.status == "failed":
            table.add_row(
                run.run_id, "-", "failed", Text(run.recorded_outcome), Text(run.error or "-")
            )
        for change in run.changes:
            recorded = _cell(change.before, change.recorded)
            candidate = _cell(change.after, change.candidate)
            if change.note:
                candidate += f"\n→ {change.note}"
            table.add_row(
                run.run_id, change.block or "-", change.kind, Text(recorded), Text(candidate)
            )
        for divergence in run.divergences:
            table.add_row(run.run_id, "-", "diverged", "-", Text(divergence))
    if table.rows:
        console.print(table)
    counts = report.counts
    console.print(
        f"{counts['replayed']} runs replayed: {counts['unchanged']} unchanged, "
        f"{counts['changed']} changed, {counts['diverged']} diverged, {counts['failed']} failed; "
        f"{counts['skipped']} skipped (erased subjects)",
        markup=False,
    )


def _cell(value: object, explanation: str | None) -> str:
    text = "-" if value is None else as_json(value).replace("\n", " ")
    text = " ".join(text.split())
    return text + (f"\n{explanation}" if explanation else "")
