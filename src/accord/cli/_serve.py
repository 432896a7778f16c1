"""``accord serve``: the API, the staff console and the customer portal, with in-process
workers unless told otherwise, the deliverer of confirmation notices by e-mail and SMS, and the
degradation watch's periodic check."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
import uvicorn

from accord.api import create_app
from accord.cli._common import console, handled, opened
from accord.console import web_app
from accord.portal import ConfirmationNotices
from accord.service import Accord

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]


def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8080,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="serve only; run `accord worker` elsewhere")
    ] = False,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="where customers reach this server, for the links in e-mail and SMS "
            "(default: http://HOST:PORT)",
        ),
    ] = None,
    watch_interval: Annotated[
        float,
        typer.Option(
            "--watch-interval",
            help="seconds between the degradation watch's checks of the default tenant "
            "(0: no checks)",
            min=0,
        ),
    ] = 3600.0,
    database: Database = None,
) -> None:
    """Serve the API (/v1, /openapi.json), the console (/console), the portal (/portal),
    /health, /ready and /metrics; send confirmation notices by e-mail and SMS; check for
    degradation every --watch-interval seconds; drive runs in-process too unless
    --no-workers."""
    with opened(database) as accord, handled():
        serve_until_stopped(
            accord,
            host=host,
            port=port,
            workers=not no_workers,
            public_url=public_url,
            watch_interval=watch_interval,
        )


def serve_until_stopped(
    accord: Accord,
    *,
    host: str,
    port: int,
    workers: bool = True,
    public_url: str | None = None,
    watch_interval: float = 0.0,
) -> None:
    """Serve the API, the console and the portal (with in-process workers) until SIGTERM or
    Ctrl-C, sending confirmation notices with links to ``public_url`` meanwhile, and checking
    the default tenant for degradation every ``watch_interval`` seconds (0: never)."""
    stop = threading.Event()
    # uvicorn hands a signal it caught back to these after its shutdown: stop, not die
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = uvicorn.Server(
        uvicorn.Config(
            web_app(accord), host=host, port=port, log_config=None, timeout_keep_alive=30
        )
    )
    threads = _background(accord, stop) if workers else []
    threads.append(_notices(accord, stop, public_url or f"http://{host}:{port}"))
    if watch_interval > 0:
        threads.append(_watch(accord, stop, watch_interval))

    def on_stop() -> None:
        # a signal caught before uvicorn installs its own handlers only sets ``stop``
        stop.wait()
        server.should_exit = True

    threading.Thread(target=on_stop, name="accord-serve-stop", daemon=True).start()
    console.print(
        f"serving on http://{host}:{port} ({accord.db.backend}"
        + (", with workers)" if workers else ", no workers)")
        + f"; console at http://{host}:{port}/console; Ctrl-C stops",
        markup=False,
    )
    console.file.flush()  # what came before is read while the server runs, e.g. through a pipe
    try:
        server.run()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


def _background(accord: Accord, stop: threading.Event) -> list[threading.Thread]:
    worker = accord.runtime.worker(
        batch_size=accord.settings.worker_batch_size,
        poll_interval=accord.settings.poll_interval,
    )
    thread = threading.Thread(
        target=worker.run, kwargs={"stop": stop}, name="accord-worker", daemon=True
    )
    thread.start()
    return [thread, *accord.start_event_services(stop)]


def _notices(accord: Accord, stop: threading.Event, base_url: str) -> threading.Thread:
    notices = ConfirmationNotices(accord, base_url=base_url)
    thread = threading.Thread(target=notices.run, args=(stop,), name="accord-notices", daemon=True)
    thread.start()
    return thread


def _watch(accord: Accord, stop: threading.Event, interval: float) -> threading.Thread:
    thread = threading.Thread(
        target=accord.watch.run,
        args=(stop,),
        kwargs={"tenant": accord.settings.tenant, "interval": interval},
        name="accord-watch",
        daemon=True,
    )
    thread.start()
    return thread


def serve_metrics(accord: Accord, port: int) -> uvicorn.Server:
    """Serve the HTTP application (for ``/metrics``) from a worker process, in a thread."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(accord), host="0.0.0.0", port=port, log_config=None)
    )
    threading.Thread(target=server.run, name="accord-metrics", daemon=True).start()
    return server
