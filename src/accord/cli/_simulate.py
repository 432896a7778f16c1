"""``accord simulate``: run scenarios against a fresh sample enterprise and check the outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from accord.cli._common import console, errors, handled


def simulate_command(
    scenarios: Annotated[
        list[Path], typer.Argument(help="scenario files (YAML)", exists=True, dir_okay=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the reports as JSON")] = False,
) -> None:
    """Run simulation scenarios against a fresh sample enterprise (sandbox and SQLite) and
    compare every case with what it expects; exit 1 on any mismatch. Every file is read and
    checked before the first scenario runs."""
    from accord.simulation import (  # noqa: PLC0415 - only this command needs them
        find_manifest,
        load_manifest,
        load_scenario,
        run_scenario,
    )

    failed = 0
    documents = []
    with handled():
        manifest = load_manifest(find_manifest())
        loaded = [load_scenario(path, manifest=manifest) for path in scenarios]
        for scenario in loaded:
            path = scenario.path
            report = run_scenario(scenario)
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
        errors.print(f"{failed} case(s) did not go as the scenarios expect", style="red")
        raise typer.Exit(1)
