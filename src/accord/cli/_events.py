"""``accord events``: the domain events Accord emits, where they were delivered, and inbound
events that start and signal runs."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli import _inbound
from accord.cli._common import as_json, console, fail, handled, opened, when
from accord.events import EVENT_TYPES, matches, new_secret
from accord.service import EventView

app = typer.Typer(
    help="Domain events (CloudEvents): follow them, redeliver them, and ingest inbound ones.",
    no_args_is_help=True,
)
_inbound.register(app)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON (one CloudEvent per line)")]


def _types(patterns: list[str]) -> list[str]:
    if not patterns:
        return []
    chosen = [t.name for t in EVENT_TYPES if matches(patterns, t.name)]
    if not chosen:
        fail(
            f"no event type matches {', '.join(patterns)}",
            hint="known types: " + ", ".join(t.name for t in EVENT_TYPES),
        )
    return chosen


@app.command("tail")
def tail(
    type_: Annotated[
        list[str], typer.Option("--type", help="only these types; 'run.*' selects a family")
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    run: Annotated[str | None, typer.Option("--run", help="only this run's events")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="last N events")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new ones")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="seconds")] = 0.5,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Show the tenant's latest events, oldest first, with each sink's delivery state."""
    types = _types(type_)
    stop = threading.Event()
    if follow:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with opened(database) as accord, handled():
        views = accord.events(types=types, run_id=run, limit=limit, newest=True)
        _print(views, json_output=json_output)
        after = (views[-1].event.created_at, views[-1].event.event_id) if views else None
        try:
            while follow and not stop.is_set():
                time.sleep(interval)
                views = accord.events(types=types, run_id=run, after=after, limit=1000)
                if views:
                    _print(views, json_output=json_output, header=False)
                    after = (views[-1].event.created_at, views[-1].event.event_id)
        except KeyboardInterrupt:
            pass


def _print(views: list[EventView], *, json_output: bool, header: bool = True) -> None:
    if json_output:
        for view in views:
            console.print(json.dumps(view.to_json()), markup=False, soft_wrap=True)
        return
    if not views:
        if header:
            console.print("no events")
        return
    table = Table(show_header=header)
    for column in ("time", "type", "id", "subject", "deliveries"):
        table.add_column(column, overflow="fold")
    for view in views:
        states = ", ".join(
            f"{d.sink} {d.status}" + (f" ({d.attempts})" if d.status != "delivered" else "")
            for d in view.deliveries
        )
        table.add_row(
            when(view.event.created_at),
            view.event.type,
            view.event.event_id,
            escape(str(view.cloudevent.get("subject", ""))),
            states or ("pending" if view.event.dispatched_at is None else "dispatched"),
        )
    console.print(table)


@app.command("show")
def show(
    event_id: Annotated[str, typer.Argument(help="the event id")],
    database: Database = None,
) -> None:
    """Print one event as a CloudEvent (structured JSON) with its delivery state."""
    with opened(database) as accord, handled():
        view = accord.event(event_id)
    console.print_json(as_json(view.to_json()))


@app.command("redeliver")
def redeliver(
    event_ids: Annotated[list[str] | None, typer.Argument(help="event ids")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="every dead-lettered event")] = False,
    sink: Annotated[
        str | None, typer.Option("--sink", help="only to this sink (nats, webhook:NAME)")
    ] = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Send events again: to every sink, or to one; the dispatcher picks them up."""
    with opened(database) as accord, handled():
        count = accord.redeliver_events(event_ids or [], dead=dead, sink=sink)
    if json_output:
        console.print_json(json.dumps({"redelivered": count}))
        return
    console.print(f"{count} event(s) will be delivered again" + (f" to {sink}" if sink else ""))


@app.command("dispatch")
def dispatch(
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit")] = False,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Deliver the outbox to the configured sinks (NATS, webhooks) until stopped."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with opened(database) as accord, handled():
        dispatcher = accord.dispatcher()
        if not dispatcher.sinks:
            fail(
                "no event sinks are configured",
                hint="set ACCORD_NATS_URL and/or ACCORD_WEBHOOKS",
            )
        try:
            if once:
                stats = dispatcher.dispatch_once()
                dispatcher.release()
            else:
                console.print(
                    "dispatching to "
                    + ", ".join(s.name for s in dispatcher.sinks)
                    + "; Ctrl-C stops",
                    markup=False,
                )
                stats = dispatcher.run(stop, poll_interval=accord.settings.poll_interval)
        finally:
            dispatcher.close()
    figures = {
        "delivered": stats.delivered,
        "retried": stats.retried,
        "dead": stats.dead,
        "skipped": stats.skipped,
    }
    if json_output:
        console.print_json(json.dumps(figures))
    else:
        console.print(", ".join(f"{v} {k}" for k, v in figures.items()))


@app.command("types")
def types(json_output: Json = False) -> None:
    """The event types Accord emits, with their schema URLs."""
    if json_output:
        rows = [
            {"type": t.cloudevents_type, "dataschema": t.schema_url, "description": t.description}
            for t in EVENT_TYPES
        ]
        console.print_json(json.dumps(rows))
        return
    table = Table()
    for column in ("type", "dataschema", "meaning"):
        table.add_column(column, overflow="fold")
    for t in EVENT_TYPES:
        table.add_row(t.cloudevents_type, t.schema_url, t.description)
    console.print(table)


@app.command("schemas")
def schemas(
    out: Annotated[Path, typer.Option("--out", help="directory to write NAME.vN.json into")],
) -> None:
    """Write the JSON Schema of every event type's data (as published in docs/)."""
    out.mkdir(parents=True, exist_ok=True)
    for t in EVENT_TYPES:
        path = out / f"{t.name}.v{t.version}.json"
        path.write_text(json.dumps(t.json_schema(), indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {len(EVENT_TYPES)} schemas to {out}")


@app.command("secret")
def secret() -> None:
    """Print a new Standard Webhooks secret (whsec_…) for a webhook or an inbound sender."""
    console.print(new_secret(), markup=False)
