"""The ``accord`` command line."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from accord.cli import (
    _agents,
    _attribution,
    _audit,
    _capabilities,
    _consent,
    _dlq,
    _events,
    _experiments,
    _flags,
    _identity,
    _journeys,
    _mcp,
    _offers,
    _policy,
    _replay,
    _reviews,
    _runs,
    _sandbox,
    _serve,
    _simulate,
    _suite,
    _tokens,
    _watch,
)
from accord.cli._common import console, handled, opened

app = typer.Typer(
    help="Accord: governed, durable journeys for customers and employees.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(_journeys.app, name="journey")
app.add_typer(_runs.app, name="run")
app.add_typer(_capabilities.app, name="capability")
app.add_typer(_consent.app, name="consent")
app.add_typer(_policy.app, name="policy")
app.add_typer(_flags.app, name="flag")
app.add_typer(_reviews.app, name="review")
app.add_typer(_audit.app, name="audit")
app.add_typer(_audit.subjects, name="subject")
app.add_typer(_sandbox.app, name="sandbox")
app.add_typer(_mcp.app, name="mcp")
app.add_typer(_dlq.app, name="dlq")
app.add_typer(_events.app, name="events")
app.add_typer(_agents.app, name="agent")
app.add_typer(_identity.app, name="identity")
app.add_typer(_identity.context_app, name="context")
app.add_typer(_identity.retention_app, name="retention")
app.add_typer(_tokens.app, name="token")
app.add_typer(_suite.app, name="suite")
app.add_typer(_experiments.app, name="experiment")
app.add_typer(_offers.app, name="offers")
app.add_typer(_watch.app, name="watch")
app.command("serve")(_serve.serve_command)
app.command("explain")(_audit.explain_command)
app.command("replay")(_replay.replay_command)
app.command("attribution")(_attribution.attribution_command)
app.command("simulate")(_simulate.simulate_command)
app.command("confirm")(_reviews.confirm_command)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]


@app.command("demo")
def demo_command(
    database: Annotated[
        Path,
        typer.Option(
            help="SQLite file for the demo, recreated on every run; a file an earlier demo did "
            "not make (no DATABASE.demo beside it) is refused and left alone"
        ),
    ] = Path(".accord/demo.db"),
    exit_after: Annotated[
        bool, typer.Option("--exit", help="end after the summary instead of serving")
    ] = False,
    host: Annotated[str, typer.Option(help="address the console listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port the console listens on", min=1, max=65535)] = 8080,
) -> None:
    """Run the sample enterprise's journeys end to end on embedded SQLite, then serve the
    console and API on them until Ctrl-C (``--exit``: stop after the summary)."""
    from accord.cli._demo import run_demo  # noqa: PLC0415 - only the demo needs it

    database.parent.mkdir(parents=True, exist_ok=True)
    run_demo(database, serve=not exit_after, host=host, port=port)


@app.command("worker")
def worker_command(
    batch_size: Annotated[int | None, typer.Option(help="runs held at once")] = None,
    name: Annotated[str | None, typer.Option(help="worker name in leases and history")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="serve /metrics on this port (default: ACCORD_METRICS_PORT)"),
    ] = None,
    database: Database = None,
) -> None:
    """Run a worker until SIGTERM or Ctrl-C. Start as many as you like against PostgreSQL."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with opened(database) as accord, handled():
        worker = accord.runtime.worker(
            name=name,
            batch_size=batch_size or accord.settings.worker_batch_size,
            poll_interval=accord.settings.poll_interval,
        )
        console.print(f"worker {worker.name} on {accord.db.backend}; Ctrl-C stops it")
        services = accord.start_event_services(stop)
        port = metrics_port or accord.settings.metrics_port
        metrics = None if port is None else _serve.serve_metrics(accord, port)
        stats = worker.run(stop=stop)
        stop.set()
        if metrics is not None:
            metrics.should_exit = True
        for thread in services:
            thread.join(timeout=10)
        console.print(
            f"stopped: {stats.transitions} transitions in {stats.commits} commits, "
            f"{stats.lease_lost} lost leases"
        )


@db_app.command("upgrade")
def db_upgrade(database: Database = None) -> None:
    """Apply schema migrations (also done automatically on start)."""
    with opened(database) as accord:
        console.print(f"schema is current on {accord.db.backend}")


def main() -> None:
    app()
