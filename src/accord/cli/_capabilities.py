"""``accord capability``: list, show and lint the capabilities the gateway can invoke."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table
from rich.text import Text

from accord.cli._common import as_json, console, errors, handled, opened
from accord.connectors import (
    Capability,
    CapabilityRegistry,
    CatalogueInvalid,
    HttpConnector,
    load_catalogue,
    load_document,
    operations,
)
from accord.consent import validate_categories

app = typer.Typer(
    help="Capabilities the gateway can invoke: contracts, side effects, data categories.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
Files = Annotated[list[Path], typer.Argument(help="catalogue YAML files", show_default=False)]


@app.command("list")
def list_command(json_output: Json = False, database: Database = None) -> None:
    """Registered capabilities: side effect, idempotency, data categories, region and source."""
    with opened(database) as accord, handled():
        capabilities = list(accord.capabilities)
        if json_output:
            console.print(
                as_json([_summary(c) for c in capabilities]), markup=False, soft_wrap=True
            )
            return
        if not capabilities:
            console.print(
                "no capabilities registered; set ACCORD_CAPABILITY_MODULES or "
                "ACCORD_CAPABILITY_CATALOGUES"
            )
            return
        table = Table("capability", "side effect", "idempotent", "data categories", "region")
        table.add_column("source", overflow="fold")
        for capability in capabilities:
            table.add_row(
                Text(capability.name),
                capability.side_effect,
                "yes" if capability.idempotent else "no",
                Text(", ".join(capability.data_categories) or "-"),
                Text(capability.region or "-"),
                Text(capability.source),
            )
        console.print(table)


@app.command("show")
def show_command(name: str, json_output: Json = False, database: Database = None) -> None:
    """One capability: what it does, its governance attributes and its JSON Schema contracts."""
    with opened(database) as accord, handled():
        capability = accord.capabilities.get(name)
        details = {
            **_summary(capability),
            "input_schema": capability.input_schema(),
            "output_schema": capability.output_schema(),
        }
        if json_output:
            console.print(as_json(details), markup=False, soft_wrap=True)
            return
        console.print(Text(capability.name, style="bold"))
        if capability.description:
            console.print(capability.description, markup=False)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column(overflow="fold")
        fields = ", ".join(f"{key} → {value}" for key, value in capability.fields.items())
        for label, value in (
            ("side effect", capability.side_effect),
            ("idempotent", "yes" if capability.idempotent else "no"),
            ("compensation", capability.compensation or "-"),
            ("reads", ", ".join(capability.reads) or "-"),
            ("writes", ", ".join(capability.writes) or "-"),
            ("fields", fields or "-"),
            ("region", capability.region or "-"),
            ("source", capability.source),
        ):
            grid.add_row(label, Text(value))
        console.print(grid)
        for title, schema in (
            ("input", details["input_schema"]),
            ("output", details["output_schema"]),
        ):
            console.print(f"\n[bold]{title} schema[/bold]")
            console.print(
                json.dumps(schema, indent=2, ensure_ascii=False), markup=False, soft_wrap=True
            )


@app.command("lint")
def lint_command(files: Files, database: Database = None) -> None:
    """Check catalogue files against the registered capabilities without adding them.

    Data categories are checked against the DPV terms Accord knows. Exit code 2 when any file
    has problems.
    """
    failed = False
    with opened(database) as accord, handled():
        scratch = CapabilityRegistry()
        for capability in accord.capabilities:
            scratch.add(capability)
        for file in files:
            try:
                loaded = load_catalogue(file, scratch, check_categories=validate_categories)
            except CatalogueInvalid as exc:
                failed = True
                for diagnostic in exc.diagnostics:
                    errors.print(diagnostic.render(), style="red", markup=False)
                continue
            count = len(loaded)
            plural = "capabilities" if count != 1 else "capability"
            console.print(Text.assemble(("ok", "green"), f" {file} ({count} {plural})"))
    if failed:
        raise typer.Exit(2)


def _summary(capability: Capability) -> dict[str, Any]:
    return {
        "name": capability.name,
        "description": capability.description,
        "side_effect": capability.side_effect,
        "idempotent": capability.idempotent,
        "compensation": capability.compensation,
        "reads": list(capability.reads),
        "writes": list(capability.writes),
        "fields": dict(capability.fields),
        "data_categories": list(capability.data_categories),
        "region": capability.region,
        "source": capability.source,
    }


@app.command("import-openapi")
def import_openapi_command(
    source: Annotated[str, typer.Argument(help="the service's base URL, or a document file")],
    connector: Annotated[str, typer.Option("--connector", help="the connector's name")],
    url: Annotated[
        str | None, typer.Option("--url", help="the service's base URL, when SOURCE is a file")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the catalogue here")
    ] = None,
) -> None:
    """Write a catalogue that binds every operation of an OpenAPI 3 document.

    Side effects and idempotency start from what each operation's method and Idempotency-Key
    header say; the personal data each one touches cannot be read from the document, so review
    and add reads, writes and fields before deploying.
    """
    with handled():
        if source.startswith(("http://", "https://")):
            document = HttpConnector(connector, source).fetch_document()
            base = source
        else:
            document = load_document(Path(source))
            base = url or "http://127.0.0.1:8000"
        entries = []
        for op in operations(document, source=source):
            side_effect = "read" if op.reads_only else "write"
            entry: dict[str, Any] = {
                "name": f"{connector}.{op.operation_id}",
                "description": op.summary,
                "connector": connector,
                "operation": op.operation_id,
                "side_effect": side_effect,
            }
            if side_effect != "read":
                entry["idempotent"] = op.accepts_idempotency_key or op.method in ("put", "delete")
            entries.append(entry)
    connector_entry: dict[str, Any] = {"name": connector, "kind": "openapi", "url": base}
    if not source.startswith(("http://", "https://")):
        connector_entry["openapi"] = source
    text = (
        f"# Generated from {source}: review side effects, and declare the personal data\n"
        "# (reads, writes, fields) each capability touches before deploying.\n"
        + yaml.safe_dump(
            {"catalogue": 1, "connectors": [connector_entry], "capabilities": entries},
            sort_keys=False,
            allow_unicode=True,
        )
    )
    if output is None:
        console.print(text, markup=False, highlight=False, end="")
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {len(entries)} capabilities to {output}")
