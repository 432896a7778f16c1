"""A worker process for the crash and concurrency tests.

It kills itself with SIGKILL at random crash points (``ACCORD_CRASH_P`` per point) and records
every effect of its capability, by idempotency key, in a separate SQLite file: the "system"
whose state must show exactly one effect per block visit. On SIGTERM it writes its statistics
to ``ACCORD_STATS_DIR`` and exits.

Run as ``python -m tests.integration.crash_worker``, or fork it (``main_with``) from a
multiprocessing fork server that preloads this module, so a restart costs no imports.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from accord.connectors import CallContext, CapabilityRegistry
from accord.service import Settings, build


class Step(BaseModel):
    n: int


class Effect(BaseModel):
    key: str


def open_effects(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, run_id TEXT, block TEXT, "
        "visit INTEGER, calls INTEGER NOT NULL)"
    )
    return connection


def register(
    registry: CapabilityRegistry,
    effects: sqlite3.Connection,
    *,
    lock: threading.Lock,
    step_sleep: float = 0.0,
    maybe_crash: Callable[[str], None] = lambda _: None,
) -> None:
    """Register ``crash.effect``: record one effect per idempotency key, counting every call."""

    @registry.capability("crash.effect", side_effect="write")
    def effect(request: Step, ctx: CallContext) -> Effect:
        maybe_crash("before_effect")
        if step_sleep:
            time.sleep(step_sleep)
        with lock:
            effects.execute(
                "INSERT INTO effects VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT(key) DO UPDATE SET calls = calls + 1",
                (ctx.idempotency_key, ctx.run_id, ctx.block, ctx.visit),
            )
        maybe_crash("after_effect")
        return Effect(key=ctx.idempotency_key)


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    crash_p = float(os.environ.get("ACCORD_CRASH_P", "0"))
    seed = int(os.environ.get("ACCORD_CRASH_SEED", "0"))
    rng = random.Random(seed)
    effects = open_effects(os.environ["ACCORD_EFFECTS_DB"])
    lock = threading.Lock()
    step_sleep = float(os.environ.get("ACCORD_STEP_SLEEP", "0"))

    def maybe_crash(point: str) -> None:
        if crash_p and rng.random() < crash_p:
            os.kill(os.getpid(), signal.SIGKILL)

    registry = CapabilityRegistry()
    register(registry, effects, lock=lock, step_sleep=step_sleep, maybe_crash=maybe_crash)

    settings = Settings(
        database_url=os.environ["ACCORD_DATABASE_URL"],
        lease_seconds=float(os.environ.get("ACCORD_LEASE_SECONDS", "1")),
    )
    fencing = os.environ.get("ACCORD_TEST_FENCING", "1") == "1"
    governed = os.environ.get("ACCORD_TEST_GOVERNED", "1") == "1"
    accord = build(
        settings, capabilities=registry, fencing=fencing, migrate=False, governed=governed
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = accord.runtime.worker(
        name=f"w{os.getpid()}",
        batch_size=int(os.environ.get("ACCORD_BATCH", "4")),
        poll_interval=0.05,
        claim_interval=0.01,
        fault=maybe_crash,
    )
    stats = worker.run(stop=stop)
    stats_dir = os.environ.get("ACCORD_STATS_DIR")
    if stats_dir:
        Path(stats_dir, f"{os.getpid()}.json").write_text(
            json.dumps(
                {
                    "lease_lost": stats.lease_lost,
                    "transitions": stats.transitions,
                    "lost_runs": stats.lost_runs,
                }
            )
        )
    accord.close()


def main_with(env: dict[str, str]) -> None:
    """``main`` in a process forked from a server that has imported Accord already."""
    os.environ.update(env)
    main()


if __name__ == "__main__":
    main()
