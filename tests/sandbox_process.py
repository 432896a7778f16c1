"""The sandbox enterprise in its own process, as a system journeys call would be."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

ORDER = ("crm", "billing", "orders", "helpdesk", "kyc", "notifications", "directory")


def _free_block(size: int) -> int:
    """A first port such that the ``size`` ports from it are free now, below the ephemeral
    range, so that no outgoing connection takes one before the servers listen on it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    chooser = random.Random()
    for _ in range(200):
        base = chooser.randrange(10_000, low - size)
        free = True
        for port in range(base, base + size):
            with socket.socket() as other:
                try:
                    other.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return base
    raise RuntimeError("no block of free ports on loopback")


@contextmanager
def sandbox_process(directory: Path, services: Sequence[str]) -> Iterator[dict[str, str]]:
    """Run ``accord sandbox serve`` for ``services``; yields their base URLs."""
    base = _free_block(len(ORDER))
    urls = {name: f"http://127.0.0.1:{base + ORDER.index(name)}" for name in services}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "accord",
            "sandbox",
            "serve",
            "--dir",
            str(directory),
            "--only",
            ",".join(services),
            "--port-base",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        for url in urls.values():
            while True:
                if process.poll() is not None:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"accord sandbox serve exited: {error}")
                try:
                    httpx.get(f"{url}/_sandbox/health", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        yield urls
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
