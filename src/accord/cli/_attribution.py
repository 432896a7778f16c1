"""``accord attribution``: a journey's outcomes attributed to the decisions on its runs' paths,
each figure with its interval and the method that made it."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from accord.attribution import TOO_FEW, Attribution, Estimate, PointAttribution
from accord.cli._common import console, handled, opened, when


def attribution_command(
    journey: Annotated[str, typer.Argument(help="the journey whose outcomes to attribute")],
    success: Annotated[
        str,
        typer.Option(
            "--success",
            help="the outcomes that count as success, comma-separated "
            "(e.g. retained,retained_without_follow_up)",
            show_default=False,
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option("--since", help="runs started from: an RFC 3339 time or 7d, 24h, 90m"),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="runs started before: a time or a duration")
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", help="only runs of this journey version", min=1)
    ] = None,
    min_runs: Annotated[
        int, typer.Option("--min-runs", help="the fewest runs a figure needs", min=1)
    ] = 30,
    confidence: Annotated[
        float, typer.Option("--confidence", help="of every interval", min=0.5, max=0.999)
    ] = 0.95,
    json_output: Annotated[
        bool, typer.Option("--json", help="after the table, print the result as one JSON line")
    ] = False,
    tenant: Annotated[str | None, typer.Option(help="tenant (default: ACCORD_TENANT)")] = None,
    database: Annotated[
        str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
    ] = None,
) -> None:
    """Link the outcomes of a journey's ended runs back to the decisions on each run's path:
    per decision point and value, the difference in success rate against the point's reference
    value with its interval and method (causal only for experiment arms), and each point's
    share of the credit by its removal effect in a Markov chain of the paths."""
    with opened(database) as accord, handled():
        found = accord.attribution(
            journey,
            success=success,
            version=version,
            since=since,
            until=until,
            min_runs=min_runs,
            confidence=confidence,
            tenant=tenant,
        )
    show(found)
    if json_output:
        typer.echo(json.dumps(found.to_json(), ensure_ascii=False, separators=(",", ":")))


def show(found: Attribution) -> None:
    """The attribution as a table, then what its methods assume."""
    window = f"runs started {when(found.since) if found.since is not None else 'at any time'}" + (
        f" to {when(found.until)}" if found.until is not None else ""
    )
    rate = "-" if found.success_rate is None else f"{found.success_rate:.1%}"
    version = f" v{found.version}" if found.version is not None else ""
    console.print(
        f"[bold]attribution of {found.journey}{version}[/bold]: {window} (UTC); "
        f"{found.runs} ended runs, {found.successes} counted as success "
        f"({', '.join(found.success)}): {rate}",
        markup=True,
    )
    level = f"{found.confidence:.0%}"
    table = Table(
        "decision point",
        "value",
        "runs",
        "success rate",
        f"difference, points ({level} interval)",
        "method",
        "credit",
        show_lines=True,
    )
    for point in found.points:
        _rows(table, point, found)
    if found.points:
        console.print(table)
    else:
        console.print("  the runs passed no decision point", markup=False)
    console.print(f"  credit: {found.removal.method}", markup=False)
    if found.removal.note:
        console.print(f"  credit: {found.removal.note}", markup=False)
    for note in found.notes:
        console.print(f"  note: {note}", markup=False)


def _rows(table: Table, point: PointAttribution, found: Attribution) -> None:
    credit = "-" if point.share is None else f"{point.share:.1f}%"
    if point.share is None and found.removal.note:
        credit = TOO_FEW if found.removal.note.startswith(TOO_FEW) else "-"
    for index, figures in enumerate(point.values):
        estimate = point.estimate_for(figures.value)
        difference, method = "-", ""
        if figures.value == point.reference:
            difference = "reference"
        elif estimate is not None:
            difference = _difference(estimate)
            method = "" if estimate.difference is None else estimate.method
        table.add_row(
            point.point.label if index == 0 else "",
            figures.value,
            str(figures.runs),
            f"{figures.rate:.1%} ({figures.low:.1%} to {figures.high:.1%})",
            difference,
            method,
            credit if index == 0 else "",
        )
    if point.note:
        table.add_row("", f"({point.note})", "", "", "", "", "")


def _difference(estimate: Estimate) -> str:
    """The difference with its interval, or why there is none."""
    shown, low, high = estimate.difference, estimate.low, estimate.high
    if shown is None or low is None or high is None:
        return estimate.note or TOO_FEW
    text = f"{_points(shown)} ({_points(low)} to {_points(high)})"
    if estimate.adjusted_for and estimate.raw_difference is not None:
        text += f"\nunadjusted {_points(estimate.raw_difference)}"
        text += "; by " + ", ".join(estimate.adjusted_for)
    return text


def _points(share: float) -> str:
    """A difference of two rates in percentage points."""
    return f"{share * 100:+.1f}"
