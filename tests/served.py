"""An ASGI application under uvicorn on a free loopback port, in a thread: real HTTP for the
API, console and metrics tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serving(app: Any, *, keep_alive: float = 60.0) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL.

    ``keep_alive`` is long so that heavily concurrent clients never reuse a connection the
    server is closing (uvicorn's 5 s default races them into resets).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, timeout_keep_alive=keep_alive
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        assert thread.is_alive(), "the server failed to start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
