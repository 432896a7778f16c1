"""``accord journey``: lint, deploy, list, show and schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.syntax import Syntax
from rich.table import Table

from accord.cli._common import console, errors, handled, opened, tenant_of, when
from accord.errors import JourneyInvalid
from accord.journeys import journey_json_schema, load_journey_file

app = typer.Typer(help="Lint, deploy and inspect journeys.", no_args_is_help=True)

Files = Annotated[list[Path], typer.Argument(help="journey YAML files", show_default=False)]
Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]


@app.command("lint")
def lint_command(files: Files, database: Database = None) -> None:
    """Check journey files without deploying them. Exit code 2 when any has errors."""
    failed = False
    with opened(database) as accord:
        for file in files:
            try:
                loaded = load_journey_file(file)
            except JourneyInvalid as exc:
                failed = True
                for diagnostic in exc.diagnostics:
                    errors.print(diagnostic.render(), style="red", markup=False)
                continue
            found = accord.runtime.catalog.lint(tenant_of(accord), loaded)
            for diagnostic in found:
                style = "red" if diagnostic.severity == "error" else "yellow"
                errors.print(diagnostic.render(), style=style, markup=False)
            if any(d.severity == "error" for d in found):
                failed = True
            else:
                console.print(f"[green]ok[/green] {file} ({loaded.spec.journey})")
    if failed:
        raise typer.Exit(2)


@app.command("deploy")
def deploy_command(files: Files, database: Database = None) -> None:
    """Lint and deploy journey files. An unchanged file keeps its current version."""
    with opened(database) as accord, handled():
        for file in files:
            loaded = load_journey_file(file)
            deployment = accord.runtime.catalog.deploy(tenant_of(accord), loaded)
            for warning in deployment.warnings:
                errors.print(warning.render(), style="yellow", markup=False)
            state = "deployed" if deployment.created else "unchanged"
            console.print(
                f"{state} [bold]{deployment.name}[/bold] v{deployment.version} "
                f"({deployment.digest[:19]})"
            )


@app.command("list")
def list_command(database: Database = None) -> None:
    """Deployed journeys and their versions."""
    with opened(database) as accord, handled():
        records = accord.runtime.catalog.versions(tenant_of(accord))
        table = Table("journey", "version", "digest", "deployed", "from")
        for record in records:
            table.add_row(
                record.name,
                str(record.version),
                record.digest[7:19],
                when(record.deployed_at),
                record.source_name,
            )
        console.print(table if records else "no journeys deployed yet")


@app.command("show")
def show_command(
    name: str,
    version: Annotated[int | None, typer.Option(help="a version (default: latest)")] = None,
    source: Annotated[bool, typer.Option(help="print the deployed source")] = False,
    database: Database = None,
) -> None:
    """A deployed journey: its blocks, or its source with --source."""
    with opened(database) as accord, handled():
        record = accord.runtime.catalog.record(tenant_of(accord), name, version)
        compiled = accord.runtime.catalog.get(tenant_of(accord), name, record.version)
        console.print(f"[bold]{record.name}[/bold] v{record.version}  {record.digest}")
        if compiled.spec.description:
            console.print(compiled.spec.description.strip())
        if source:
            console.print(Syntax(record.source, "yaml"))
            return
        table = Table("block", "kind", "flow", "next")
        for block_id, node in compiled.nodes.items():
            table.add_row(block_id, node.block.kind, node.flow or "main", node.block.next or "")
        console.print(table)


@app.command("schema")
def schema_command(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file")] = None,
) -> None:
    """Print the JSON Schema of the journey file format."""
    text = json.dumps(journey_json_schema(), indent=2) + "\n"
    if output is None:
        console.print(text, markup=False, end="")
    else:
        output.write_text(text, encoding="utf-8")
