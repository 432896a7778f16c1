"""``accord flag``: set, list and trace kill switches, rollouts and shadow mode."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from accord.cli._common import actor_or_user, as_json, console, handled, opened, tenant_of, when
from accord.flags import FlagValue, parse_flag_key, parse_flag_value

app = typer.Typer(
    help="Kill switches (capability, journey, channel, agent), rollouts and shadow mode.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]


def _shown(value: FlagValue | None) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _table(*headers: str) -> Table:
    """A table whose keys fold rather than lose their end; other columns wrap as needed."""
    table = Table()
    for header in headers:
        if header == "key":
            table.add_column(header, overflow="fold")
        else:
            table.add_column(header, no_wrap=header in ("value", "version"))
    return table


def _at(epoch: float) -> str:
    return when(epoch)[:19]


@app.command("set")
def set_command(
    key: Annotated[str, typer.Argument(help="<kind>:<name>, e.g. capability:orders.lookup")],
    value: Annotated[str, typer.Argument(help="on/off/true/false, or 0-100 for rollout:<journey>")],
    reason: Annotated[str, typer.Option("--reason", help="why; recorded with the change")],
    actor: Annotated[
        str | None, typer.Option("--actor", help="who sets it (default: your user name)")
    ] = None,
    database: Database = None,
) -> None:
    """Set a flag for the tenant. A switched-off kill switch holds calls at the gateway;
    switching it back on makes the runs it held ask again at once."""
    with opened(database) as accord, handled():
        parsed = parse_flag_key(key)
        record = accord.set_flag(
            str(parsed),
            parse_flag_value(parsed, value),
            actor=actor_or_user(actor),
            reason=reason,
            tenant=tenant_of(accord),
        )
        console.print(
            f"{record.key} [bold]{_shown(record.value)}[/bold] "
            f"(version {record.version}, by {escape(record.updated_by)})"
        )


@app.command("list")
def list_command(json_output: Json = False, database: Database = None) -> None:
    """The tenant's flags. Kill switches not listed are on; shadow mode not listed is off."""
    with opened(database) as accord, handled():
        records = accord.flags.list(tenant_of(accord))
        if json_output:
            console.print(as_json(records), markup=False, soft_wrap=True)
            return
        table = _table("key", "value", "version", "updated_at", "by", "reason")
        for record in records:
            table.add_row(
                record.key,
                _shown(record.value),
                str(record.version),
                _at(record.updated_at),
                Text(record.updated_by),
                Text(record.reason),
            )
        console.print(table if records else "no flags set: every kill switch is on")


@app.command("history")
def history_command(
    key: Annotated[str | None, typer.Argument(help="one flag (default: all)")] = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Every change of the tenant's flags, oldest first: who, when, from what, to what, why."""
    with opened(database) as accord, handled():
        changes = accord.flags.history(tenant_of(accord), key)
        if json_output:
            console.print(as_json(changes), markup=False, soft_wrap=True)
            return
        table = _table("at", "key", "change", "actor", "reason")
        for change in changes:
            table.add_row(
                _at(change.at),
                change.key,
                f"{_shown(change.previous)} -> {_shown(change.value)}",
                Text(change.actor),
                Text(change.reason),
            )
        console.print(table if changes else "no flag changes yet")
