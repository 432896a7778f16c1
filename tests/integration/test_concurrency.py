"""Evidence: many workers on PostgreSQL, some paused past their lease, never double-complete.

Four worker processes share 1,000 runs. The test pauses workers with SIGSTOP for longer than
their lease, so other workers take their runs over, then lets them continue with SIGCONT: their
late commits must be rejected. Afterwards every run has completed exactly once, no block was
recorded twice, and no run was lost.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.storage import Database
from accord.storage._schema import transitions
from tests.integration.test_crash_recovery import (
    Fleet,
    completed_count,
    prepare,
    violations,
)


@pytest.mark.postgres
@pytest.mark.slow
def test_paused_workers_are_fenced_out(postgres_server: str, tmp_path: Path) -> None:
    db = Database(postgres_server)
    with db.transaction() as connection:
        connection.execute(sa.text("TRUNCATE runs, transitions, timers, signals, waits, outbox"))
    n_runs = int(os.environ.get("ACCORD_CONCURRENCY_RUNS", "1000"))
    effects = tmp_path / "effects.db"
    stats = tmp_path / "stats"
    stats.mkdir()
    run_ids = prepare(postgres_server, effects, n_runs)
    fleet = Fleet(
        postgres_server,
        effects,
        stats,
        crash_p=0.0,
        lease_seconds=1.0,
        batch=8,
        step_sleep=0.005,
    )
    fleet.start(4)
    rng = random.Random(7)
    pauses = 0
    deadline = time.monotonic() + 600
    try:
        while completed_count(db) < n_runs:
            assert time.monotonic() < deadline, f"{completed_count(db)}/{n_runs} completed"
            if pauses < 4 and completed_count(db) >= n_runs * (0.02 + 0.1 * pauses):
                victim = rng.choice(fleet.processes)
                victim.send_signal(signal.SIGSTOP)
                time.sleep(1.6)
                victim.send_signal(signal.SIGCONT)
                pauses += 1
            fleet.supervise()
            time.sleep(0.05)
    finally:
        fleet.stop()
    problems = violations(db, effects, run_ids)
    with db.read() as connection:
        completions = connection.execute(
            sa.select(sa.func.count())
            .select_from(transitions)
            .where(transitions.c.kind == "run.completed")
        ).scalar_one()
        workers = connection.execute(
            sa.select(sa.func.count(sa.distinct(transitions.c.worker)))
        ).scalar_one()
    db.dispose()
    assert pauses == 4
    assert fleet.exits == {}, f"no worker may die: {fleet.exits}"
    assert problems == [], "\n".join(problems[:10])
    assert completions == n_runs, "0 double completions, 0 lost runs"
    assert workers >= 4
    rejected = fleet.lease_lost()
    assert rejected >= 1, "paused workers tried to commit late and were refused"
    print(
        f"\nconcurrency evidence: {n_runs} runs, 4 workers, {pauses} pauses past the lease, "
        f"{rejected} late commits rejected, {completions} completions, 0 violations"
    )
