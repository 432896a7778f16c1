"""Run the sandbox services as real HTTP servers, each on its own port and thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from accord.core import Clock, SystemClock
from accord.errors import ConfigurationError
from accord.sandbox._faults import CONNECTION_EXTENSION
from accord.sandbox._service import SandboxService
from accord.sandbox._systems import SERVICES, create_service, orders

_START_TIMEOUT = 15.0


class _Connections:
    """The open client connections of one server, by peer address, so a fault can abort one."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], asyncio.Transport] = {}

    def opened(self, transport: asyncio.Transport) -> None:
        self._open[_peer(transport)] = transport

    def closed(self, transport: asyncio.Transport) -> None:
        peer = _peer(transport)
        if self._open.get(peer) is transport:
            del self._open[peer]

    def abort(self, peer: tuple[str, int]) -> None:
        transport = self._open.get(peer)
        if transport is not None:
            transport.abort()


def _peer(transport: asyncio.BaseTransport) -> tuple[str, int]:
    peer = transport.get_extra_info("peername") or ("", 0)
    return (str(peer[0]), int(peer[1]))


def _protocol_for(connections: _Connections) -> type[H11Protocol]:
    """uvicorn's h11 protocol, telling ``connections`` when a client connects and leaves."""

    class TrackedH11Protocol(H11Protocol):
        # Typed as H11Protocol types it, which is narrower than asyncio's BaseProtocol.
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            connections.opened(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.transport is not None:
                connections.closed(self.transport)
            super().connection_lost(exc)

    return TrackedH11Protocol


class _WithAbort:
    """ASGI wrapper putting the abort of the request's own connection into its scope."""

    def __init__(self, app: ASGIApp, connections: _Connections) -> None:
        self.app = app
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client:
            peer = (str(client[0]), int(client[1]))
            extensions: dict[str, Any] = dict(scope.get("extensions") or {})
            extensions[CONNECTION_EXTENSION] = {"abort": lambda: self.connections.abort(peer)}
            scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


@dataclass
class _Running:
    service: SandboxService
    server: uvicorn.Server
    thread: threading.Thread
    url: str


class SandboxEnterprise:
    """The sandbox enterprise's services, each a real uvicorn server in a background thread.

    Databases live in ``directory/<name>.sqlite3``; they are created and seeded on first start and
    reused afterwards. Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with SandboxEnterprise(tmp_path) as enterprise:
            httpx.get(enterprise.url("crm") + "/customers/cus_00001")

    Args:
        directory: where the databases are.
        host: the interface to listen on.
        ports: port per service name; 0 (the default for any not given) picks a free port.
        services: which services to run (default: all of :data:`SERVICES`, in that order).
        clock: the time effects are stamped with (default: the system clock).
        retail_data: a tau-bench retail data directory (``users.json``, ``orders.json``,
            ``products.json``) to seed a new orders database from, instead of the packaged
            subset of 200 users.
    """

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        services: Iterable[str] | None = None,
        clock: Clock | None = None,
        retail_data: Path | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.host = host
        self.names = tuple(services) if services is not None else SERVICES
        unknown = [name for name in [*self.names, *(ports or {})] if name not in SERVICES]
        if unknown:
            raise ConfigurationError(
                f"there is no sandbox service {unknown[0]!r}",
                hint=f"choose from {', '.join(SERVICES)}",
            )
        self._ports = dict(ports or {})
        self._clock = clock
        self._retail_data = retail_data
        self._running: dict[str, _Running] = {}

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of each running service, by name."""
        return {name: running.url for name, running in self._running.items()}

    def url(self, name: str) -> str:
        """Base URL of running service ``name``."""
        running = self._running.get(name)
        if running is None:
            raise ConfigurationError(
                f"sandbox service {name!r} is not running",
                hint=f"running: {', '.join(self._running) or 'none'}",
            )
        return running.url

    def start(self) -> SandboxEnterprise:
        """Start every selected service and wait until each accepts connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            for name in self.names:
                if name not in self._running:
                    self._running[name] = self._start(name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Shut every service down and close its database."""
        running = list(self._running.values())
        self._running.clear()
        for each in running:
            each.server.should_exit = True
        for each in running:
            each.thread.join()
            each.service.close()

    def __enter__(self) -> SandboxEnterprise:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self, name: str) -> _Running:
        database = self.directory / f"{name}.sqlite3"
        if name == "orders" and self._retail_data is not None:
            service = orders.create_service(
                database, clock=self._clock or SystemClock(), data=self._retail_data
            )
        else:
            service = create_service(name, database, clock=self._clock)
        port = self._ports.get(name, 0)
        try:
            # IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets that say TCP, and
            # with it on every small response waits for a delayed ACK.
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, port))
        except OSError as exc:
            service.close()
            raise ConfigurationError(
                f"cannot listen on {self.host}:{port} for the {name} service: {exc.strerror}",
                hint="choose another port, or 0 for any free one",
            ) from exc
        connections = _Connections()
        config = uvicorn.Config(
            _WithAbort(service.app, connections),
            http=_protocol_for(connections),
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [listener]},
            name=f"sandbox-{name}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(timeout=5)
                listener.close()
                service.close()
                raise ConfigurationError(f"the {name} sandbox service did not start")
            time.sleep(0.01)
        bound_host, bound_port = listener.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        return _Running(service, server, thread, f"http://{shown}:{bound_port}")
