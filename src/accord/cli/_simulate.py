"""``accord simulate``: run scenarios against a fresh sample enterprise and check the outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from accord.cli._common import console, handled


def simulate_command(
    scenarios: Annotated[
        list[Path], typer.Argument(help="scenario files (YAML)", exists=True, dir_okay=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the reports as JSON")] = False,
) -> None:
    """Run simulation scenarios against a fresh sample enterprise (sandbox and SQLite) and
    compare every case with what it expects; exit 1 on any mismatch."""
    from accord.simulation import run_scenario  # noqa: PLC0415 - only this command needs it

    failed = 0
    documents = []
    with handled():
        for path in scenarios:
            report = run_scenario(path)
            failed += len(report.mismatches)
            documents.append(
                {
                    "scenario": report.scenario,
                    "path": str(path),
                    "ok": report.ok,
                    "cases": len(report.checks),
                    "mismatches": [
                        {"case": c.case, "got": c.got, "wanted": c.wanted}
                        for c in report.mismatches
                    ],
                    "refusals": dict(report.refusals),
                }
            )
            if as_json:
                continue
            table = Table(
                "case", "journey", "got", "expected", "", title=f"{report.scenario} ({path})"
            )
            for check in report.checks:
                table.add_row(
                    check.case,
                    check.journey,
                    check.got,
                    check.wanted,
                    "[green]ok[/green]" if check.ok else "[red]MISMATCH[/red]",
                )
            console.print(table)
            refusals = ", ".join(f"{r} {n}" for r, n in report.refusals.most_common())
            console.print(f"   refusals: {refusals or 'none'}", markup=False)
            console.print(
                f"   {len(report.checks) - len(report.mismatches)}/{len(report.checks)} cases "
                f"as expected",
                markup=False,
            )
    if as_json:
        print(json.dumps(documents, indent=1))
    if failed:
        console.print(f"[red]{failed} case(s) did not go as the scenarios expect[/red]")
        raise typer.Exit(1)
