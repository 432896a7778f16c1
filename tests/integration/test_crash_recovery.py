"""Evidence: workers killed with SIGKILL at random points lose nothing and duplicate nothing.

Worker processes (``tests/integration/crash_worker.py``) kill themselves at random crash points:
after claiming, inside a block before and after its effect, between execution and commit, in the
middle of the commit transaction, and after it. A supervisor restarts them until every run has
completed. Then every run must be complete with a gap-free history of exactly the expected
events, and the external system must hold exactly one effect per block visit.

The same harness with fencing switched off shows what fencing prevents: concurrent workers
execute and record the same blocks twice.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.connectors import CapabilityRegistry
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Settings, build
from accord.storage import Database
from accord.storage._schema import runs, transitions
from tests.governance import PERMIT_ALL, deploy_policies
from tests.integration import crash_worker
from tests.integration.crash_worker import open_effects, register

T = TenantId("default")

JOURNEY = """
journey: crashy
blocks:
  - {id: s1, kind: task, capability: crash.effect, input: {n: 1}}
  - {id: s2, kind: task, capability: crash.effect, input: {n: 2}}
  - id: route
    kind: choice
    choices: [{when: "steps.s2.key != ''", next: s3}]
    default: s4
  - {id: s3, kind: task, capability: crash.effect, input: {n: 3}}
  - {id: s4, kind: task, capability: crash.effect, input: {n: 4}}
  - {id: done, kind: end, outcome: ok}
"""
TASKS = ("s1", "s2", "s3", "s4")
EXPECTED_HISTORY = [
    ("run.started", None),
    ("block.completed", "s1"),
    ("block.completed", "s2"),
    ("choice.taken", "route"),
    ("block.completed", "s3"),
    ("block.completed", "s4"),
    ("end.reached", "done"),
    ("run.completed", None),
]


# workers fork from a server that imported Accord once: a restart after SIGKILL then costs
# milliseconds, not an interpreter start, so the kills, not imports, fill the test's time
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["tests.integration.crash_worker"])


class WorkerProcess:
    """One worker process, with the few ``subprocess.Popen`` methods the fleet uses."""

    def __init__(self, env: dict[str, str]) -> None:
        self._process = _FORKS.Process(target=crash_worker.main_with, args=(env,))
        self._process.start()
        assert self._process.pid is not None
        self.pid = self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("crash_worker", timeout or 0.0)
        return self._process.exitcode


@dataclass
class Fleet:
    """Worker processes under a supervisor that restarts the ones that die."""

    db_url: str
    effects: Path
    stats_dir: Path
    crash_p: float
    fencing: bool = True
    governed: bool = True
    lease_seconds: float = 1.0
    batch: int = 4
    step_sleep: float = 0.0
    kills: int = 0
    exits: Counter[int] = field(default_factory=Counter)
    spawned: int = 0
    processes: list[WorkerProcess] = field(default_factory=list)

    def spawn(self) -> WorkerProcess:
        self.spawned += 1
        env = {
            "ACCORD_DATABASE_URL": self.db_url,
            "ACCORD_EFFECTS_DB": str(self.effects),
            "ACCORD_STATS_DIR": str(self.stats_dir),
            "ACCORD_CRASH_P": str(self.crash_p),
            "ACCORD_CRASH_SEED": str(self.spawned),
            "ACCORD_TEST_FENCING": "1" if self.fencing else "0",
            "ACCORD_TEST_GOVERNED": "1" if self.governed else "0",
            "ACCORD_LEASE_SECONDS": str(self.lease_seconds),
            "ACCORD_BATCH": str(self.batch),
            "ACCORD_STEP_SLEEP": str(self.step_sleep),
        }
        return WorkerProcess(env)

    def start(self, count: int) -> None:
        self.processes = [self.spawn() for _ in range(count)]

    def supervise(self) -> None:
        for i, process in enumerate(self.processes):
            code = process.poll()
            if code is None:
                continue
            self.exits[code] += 1
            if code == -signal.SIGKILL:
                self.kills += 1
            self.processes[i] = self.spawn()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def lease_lost(self) -> int:
        return sum(json.loads(p.read_text())["lease_lost"] for p in self.stats_dir.glob("*.json"))


def prepare(db_url: str, effects: Path, n_runs: int) -> list[str]:
    registry = CapabilityRegistry()
    register(registry, open_effects(str(effects)), lock=threading.Lock())
    with build(Settings(database_url=db_url), capabilities=registry) as accord:
        deploy_policies(accord, PERMIT_ALL)
        accord.runtime.catalog.deploy(T, load_journey_text(JOURNEY))
        return [accord.runtime.start(T, "crashy").run_id for _ in range(n_runs)]


def completed_count(db: Database) -> int:
    with db.read() as connection:
        query = sa.select(sa.func.count()).select_from(runs).where(runs.c.status == "completed")
        return int(connection.execute(query).scalar_one())


def violations(db: Database, effects: Path, run_ids: list[str]) -> list[str]:
    """Every way the outcome differs from 'each run done once, each effect once'."""
    found: list[str] = []
    with db.read() as connection:
        statuses = {r[0]: r[1] for r in connection.execute(sa.select(runs.c.run_id, runs.c.status))}
        rows = connection.execute(
            sa.select(
                transitions.c.run_id, transitions.c.seq, transitions.c.kind, transitions.c.block
            ).order_by(transitions.c.run_id, transitions.c.seq)
        ).all()
    by_run: dict[str, list[tuple[int, str, str | None]]] = {}
    for run_id, seq, kind, block in rows:
        by_run.setdefault(run_id, []).append((seq, kind, block))
    for run_id in run_ids:
        if statuses.get(run_id) != "completed":
            found.append(f"{run_id} is {statuses.get(run_id)}, not completed")
        entries = by_run.get(run_id, [])
        if [seq for seq, _, _ in entries] != list(range(1, len(entries) + 1)):
            found.append(f"{run_id} history has gaps or repeats: {[s for s, _, _ in entries]}")
        if [(kind, block) for _, kind, block in entries] != EXPECTED_HISTORY:
            found.append(f"{run_id} history differs: {[(k, b) for _, k, b in entries]}")
    with sqlite3.connect(effects) as connection:
        recorded = connection.execute("SELECT run_id, block, visit FROM effects").fetchall()
    per_visit = Counter((run_id, block, visit) for run_id, block, visit in recorded)
    expected = {(run_id, block, 1) for run_id in run_ids for block in TASKS}
    if set(per_visit) != expected:
        extra = set(per_visit) - expected
        missing = expected - set(per_visit)
        found.append(f"effects differ: {len(extra)} unexpected, {len(missing)} missing")
    return found


def run_fleet(fleet: Fleet, db: Database, n_runs: int, workers: int, limit: float) -> None:
    fleet.start(workers)
    deadline = time.monotonic() + limit
    try:
        while completed_count(db) < n_runs:
            assert time.monotonic() < deadline, (
                f"only {completed_count(db)} of {n_runs} runs completed in {limit}s; "
                f"exits: {dict(fleet.exits)}"
            )
            fleet.supervise()
            time.sleep(0.05)
    finally:
        fleet.stop()


@pytest.mark.slow
def test_runs_survive_random_sigkills(database_url: str, tmp_path: Path) -> None:
    n_runs = int(os.environ.get("ACCORD_CRASH_RUNS", "200"))
    min_kills = int(os.environ.get("ACCORD_CRASH_KILLS", "200"))
    effects = tmp_path / "effects.db"
    stats = tmp_path / "stats"
    stats.mkdir()
    run_ids = prepare(database_url, effects, n_runs)
    db = Database(database_url)
    fleet = Fleet(database_url, effects, stats, crash_p=0.05)
    fleet.start(2)
    deadline = time.monotonic() + 600
    try:
        while completed_count(db) < n_runs or fleet.kills < min_kills:
            assert time.monotonic() < deadline, (
                f"{completed_count(db)}/{n_runs} runs, {fleet.kills} kills after 600s; "
                f"exits: {dict(fleet.exits)}"
            )
            if completed_count(db) == n_runs:
                run_ids += prepare(database_url, effects, 20)
                n_runs += 20
            fleet.supervise()
            time.sleep(0.02)
    finally:
        fleet.stop()
    problems = violations(db, effects, run_ids)
    db.dispose()
    assert fleet.kills >= min_kills
    assert set(fleet.exits) <= {-signal.SIGKILL}, f"workers died otherwise: {fleet.exits}"
    assert problems == [], "\n".join(problems[:10])
    with sqlite3.connect(effects) as connection:
        replays = connection.execute("SELECT sum(calls) - count(*) FROM effects").fetchone()[0]
    assert replays > 0, "some blocks ran again after a crash, and their effect was not repeated"
    print(
        f"\ncrash evidence: {n_runs} runs, {fleet.kills} SIGKILLs, {fleet.spawned} worker "
        f"processes, {replays} block re-executions absorbed by idempotency keys, 0 violations"
    )


@pytest.mark.slow
def test_without_fencing_the_same_harness_fails(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'accord.db'}"
    effects = tmp_path / "effects.db"
    stats = tmp_path / "stats"
    stats.mkdir()
    n_runs = 40
    run_ids = prepare(database_url, effects, n_runs)
    db = Database(database_url)
    # governance off too: deterministic decision ids would turn a double commit into a key
    # violation, a second protection that would hide what fencing alone prevents
    fleet = Fleet(
        database_url,
        effects,
        stats,
        crash_p=0.0,
        fencing=False,
        governed=False,
        step_sleep=0.002,
    )
    run_fleet(fleet, db, n_runs, workers=3, limit=300)
    problems = violations(db, effects, run_ids)
    db.dispose()
    assert any("history differs" in p for p in problems), (
        "with fencing off, concurrent workers should have recorded blocks twice"
    )
