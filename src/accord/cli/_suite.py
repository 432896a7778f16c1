"""``accord suite``: benchmark policy suites driven through the gateway."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from accord.cli._common import console, fail, handled
from accord.suites.retail import (
    DEFAULT_DATASET,
    RetailSuite,
    SuiteReport,
    Task,
    default_task_files,
    find_suite_files,
    load_tasks,
)

app = typer.Typer(help="Policy suites: benchmark tasks driven through the gateway.")


@app.command("retail")
def retail(
    tasks: Annotated[
        list[Path] | None,
        typer.Option(
            "--tasks",
            help="a tau-bench retail task file (repeatable; default: the train and dev files "
            "of ../shared/datasets/tau_bench/retail)",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="the tau-bench retail data directory to seed the orders service from"),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="drive at most this many tasks, in file order")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON line")] = False,
) -> None:
    """Drive tau-bench retail tasks and policy-violating variants of them through the gateway.

    Exits with 1 when a compliant action is not permitted, a final state differs from the
    oracle's, or a violation is not refused by its rule.
    """
    with handled():
        files = list(tasks) if tasks else default_task_files()
        data_dir = data or DEFAULT_DATASET / "data"
        if not data_dir.is_dir():
            fail(
                f"the tau-bench retail data directory {data_dir} does not exist",
                hint="give it with --data (it holds users.json, orders.json, products.json)",
            )
        loaded: list[Task] = [task for path in files for task in load_tasks(path)]
        if limit is not None:
            loaded = loaded[:limit]
        suite_files = find_suite_files()
        with (
            tempfile.TemporaryDirectory(prefix="accord-suite-") as workdir,
            RetailSuite(data=data_dir, suite=suite_files, workdir=Path(workdir)) as suite,
        ):
            if as_json:
                report = suite.run(loaded)
            else:
                with console.status(f"driving {len(loaded)} tasks…"):
                    report = suite.run(loaded)
    summary = report.to_json()
    if not as_json:
        _print(report, summary)
    console.print(json.dumps(summary, separators=(",", ":")), markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def _print(report: SuiteReport, summary: dict[str, Any]) -> None:
    table = Table(title=f"retail policy suite: {report.tasks} tasks in {report.seconds:.1f}s")
    table.add_column("case", overflow="fold")
    table.add_column("rule (policy id)", overflow="fold")
    table.add_column("passed", justify="right")
    table.add_column("total", justify="right")
    compliant = summary["compliant"]
    table.add_row("[bold]compliant actions permitted[/bold]", "", "", "")
    for name, counts in compliant["by_action"].items():
        table.add_row(f"  {name}", "", str(counts["permitted"]), str(counts["total"]))
    table.add_row(
        "  all", "", str(compliant["permitted"]), str(compliant["total"]), end_section=True
    )
    state = summary["final_state"]
    table.add_row(
        "[bold]final states matching the oracle[/bold]",
        "",
        str(state["matched"]),
        str(state["total"]),
        end_section=True,
    )
    violations = summary["violations"]
    table.add_row("[bold]violations refused by their rule[/bold]", "", "", "")
    for kind, counts in violations["by_kind"].items():
        table.add_row(f"  {kind}", counts["policy"], str(counts["refused"]), str(counts["total"]))
    table.add_row("  all", "", str(violations["refused"]), str(violations["total"]))
    console.print(table)
    misses = summary["misses"]
    for line in misses[:50]:
        console.print(f"[red]miss[/red] {line}", highlight=False, soft_wrap=True)
    if len(misses) > 50:
        console.print(f"… and {len(misses) - 50} more (see the JSON line)")
    if misses:
        console.print(f"[red]{len(misses)} miss(es)[/red]")
