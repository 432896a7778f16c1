"""Accord's durable runtime against LangGraph and DBOS Transact: throughput, latency, storage.

Run it with ``./run bench runtime [--quick]``; ``bench/README.md`` explains the workloads, the
table and the closing JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import _peers
import psycopg
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from accord.connectors import CallContext, CapabilityRegistry
from accord.core import TenantId
from accord.journeys import JourneyBuilder, JourneySpec
from accord.runtime import Runtime
from accord.service import Accord, Settings, build

TENANT = TenantId("default")
W1_JOURNEY = "bench_w1"
W2_JOURNEY = "bench_w2"
CAPABILITY = "bench.echo"
APPROVAL_BLOCK = "approval"
W1_LAST_BLOCK = f"step_{_peers.W1_STEPS - 1}"
CONCURRENCY = 16
WARMUP_RUNS = 5
DEFAULT_RUNS = 200
QUICK_RUNS = 50
DBOS_W2_MAX_RUNS = 40
MAX_IDLE_ROUNDS = 1000
WIDE_OUTPUT = 110
PG_URL_VARIABLE = "ACCORD_BENCH_POSTGRES_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

SEQ_GOAL = 3.0
CONC_GOAL = 10.0
RESUME_GOAL_MS = 5.0

Backend = Literal["sqlite", "postgresql"]
Mode = Literal["seq", "c16", "resume"]

progress = Console(stderr=True)


@dataclass(frozen=True)
class Row:
    """One measured line of the table."""

    system: str
    backend: Backend
    workload: Literal["W1", "W2"]
    mode: Mode
    latencies_ms: list[float]
    steps_per_s: float | None = None
    bytes_per_run: float | None = None
    transitions_per_run: float | None = None
    variant: str = ""

    @property
    def key(self) -> str:
        if self.system.startswith("accord"):
            base = "accord_postgres" if self.backend == "postgresql" else "accord_sqlite"
            return base + (f"_{self.variant}" if self.variant else "")
        return self.system

    @property
    def runs(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` % of values at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


class FinishProbe:
    """Collects the runs whose last W1 block has just executed (see `accord_w1_concurrent`)."""

    def __init__(self) -> None:
        self._seen: list[str] = []

    def saw(self, context: CallContext) -> None:
        if context.block == W1_LAST_BLOCK:
            self._seen.append(context.run_id)

    def drain(self) -> list[str]:
        seen, self._seen = self._seen, []
        return seen


class Payload(BaseModel):
    value: int


def bench_capabilities(probe: FinishProbe) -> CapabilityRegistry:
    registry = CapabilityRegistry()

    @registry.capability(CAPABILITY)
    def echo(request: Payload, context: CallContext) -> Payload:
        probe.saw(context)
        return request

    return registry


# Accord refuses every call until a policy bundle is deployed: the benches permit all
PERMIT_ALL = '@id("bench-permit-all")\npermit(principal, action, resource);\n'
SCHEMA = """namespace Accord {
  entity Service = { "role": String, "tier": String, "journey"?: String };
  entity Agent = { "role": String, "tier": String, "model"?: String };
  entity Person = { "role": String, "tier": String };
  entity Subject = { "region"?: String, "tier"?: String };
  action "bench.echo" appliesTo {
    principal: [Service, Agent, Person],
    resource: [Subject],
    context: {
      "purpose"?: String, "journey"?: String, "channel"?: String, "time"?: Long,
      "side_effect"?: String, "region"?: String, "amount"?: decimal, "risk_tier"?: String,
      "confidence"?: decimal
    }
  };
}
"""


def _add_tasks(builder: JourneyBuilder, first: int, count: int) -> None:
    for index in range(first, first + count):
        source = "input.value" if index == 0 else f"steps.step_{index - 1}.value"
        builder.task(f"step_{index}", CAPABILITY, input={"value": source})


def w1_spec() -> JourneySpec:
    builder = JourneyBuilder(W1_JOURNEY).input(value="integer")
    _add_tasks(builder, 0, _peers.W1_STEPS)
    return builder.build()


def w2_spec() -> JourneySpec:
    builder = JourneyBuilder(W2_JOURNEY).input(value="integer")
    _add_tasks(builder, 0, _peers.W2_STEPS_BEFORE)
    builder.approve(APPROVAL_BLOCK, role="reviewer")
    _add_tasks(builder, _peers.W2_STEPS_BEFORE, _peers.W2_STEPS_AFTER)
    return builder.build()


@dataclass
class AccordTarget:
    """A wired Accord on one database, with both journeys deployed."""

    backend: Backend
    accord: Accord
    probe: FinishProbe
    stored_bytes: Callable[[], int]

    @property
    def runtime(self) -> Runtime:
        return self.accord.runtime


@contextmanager
def accord_target(
    backend: Backend,
    url: str,
    stored_bytes: Callable[[Accord], int],
    *,
    commit_window_ms: float | None = None,
) -> Iterator[AccordTarget]:
    probe = FinishProbe()
    settings = Settings(database_url=url, sqlite_synchronous="FULL")
    if commit_window_ms is not None:
        settings = settings.model_copy(update={"commit_window_ms": commit_window_ms})
    with build(settings, capabilities=bench_capabilities(probe)) as accord:
        accord.policies.deploy(TENANT, PERMIT_ALL, SCHEMA, source_name="bench", actor="bench")
        accord.runtime.catalog.deploy(TENANT, w1_spec(), deployed_by="bench")
        accord.runtime.catalog.deploy(TENANT, w2_spec(), deployed_by="bench")
        yield AccordTarget(backend, accord, probe, lambda: stored_bytes(accord))


def sqlite_bytes(path: Path) -> int:
    """The database file and its WAL, after moving the WAL into the file so pages count once."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


_PG_TABLE_BYTES = """
    SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind = 'r'
"""


def postgres_bytes(accord: Accord) -> int:
    """Heap, indexes and TOAST of every table in Accord's schema."""
    with accord.db.read() as connection:
        return int(connection.exec_driver_sql(_PG_TABLE_BYTES).scalar_one())


class PostgresUnavailableError(Exception):
    """The bench's PostgreSQL server cannot be reached."""


@contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A fresh database on the server at ``url``, dropped afterwards.

    Raises:
        PostgresUnavailableError: the server refused or did not answer; nothing was created.
    """
    server = make_url(url).set(drivername="postgresql")
    admin = server.set(database="postgres").render_as_string(hide_password=False)
    name = f"accord_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise PostgresUnavailableError(f"PostgreSQL at {url} is unreachable ({reason})") from exc
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _ms_since(began: float) -> float:
    return (time.perf_counter() - began) * 1000.0


def _start_w1(runtime: Runtime) -> str:
    return runtime.start(TENANT, W1_JOURNEY, input={"value": 0}).run_id


def check_completed(runtime: Runtime, run_ids: list[str]) -> None:
    for run_id in run_ids:
        status = runtime.get(TENANT, run_id).status
        if status != "completed":
            raise RuntimeError(f"bench run {run_id} ended {status}, not completed")


def accord_w1_sequential(target: AccordTarget, runs: int) -> Row:
    """Start a run, drive it to completion with an embedded worker, then the next."""
    runtime = target.runtime
    before = target.stored_bytes()
    run_ids: list[str] = []
    latencies: list[float] = []
    transitions = 0
    began = time.perf_counter()
    for _ in range(runs):
        started = time.perf_counter()
        run_ids.append(_start_w1(runtime))
        transitions += runtime.drive()
        latencies.append(_ms_since(started))
    seconds = time.perf_counter() - began
    check_completed(runtime, run_ids)
    return Row(
        "accord",
        target.backend,
        "W1",
        "seq",
        latencies,
        steps_per_s=runs * _peers.W1_STEPS / seconds,
        bytes_per_run=(target.stored_bytes() - before) / runs,
        transitions_per_run=transitions / runs,
    )


def accord_w1_concurrent(target: AccordTarget, runs: int) -> Row:
    """Keep ``CONCURRENCY`` runs in flight on one worker that group-commits their transitions.

    Completion is taken from the capability itself rather than by polling run status: the
    worker computes a transition (executing the last block) and commits it inside the same
    ``step()``, so when ``step()`` returns after the last block ran, ``run.completed`` is
    durable. Polling would add reads to the loop being measured; every run's status is read
    back afterwards, outside the timing, to prove it.
    """
    runtime = target.runtime
    worker = runtime.worker(batch_size=CONCURRENCY)
    target.probe.drain()
    before = target.stored_bytes()
    in_flight: dict[str, float] = {}
    run_ids: list[str] = []
    latencies: list[float] = []
    idle_rounds = 0
    began = time.perf_counter()
    while len(latencies) < runs:
        while len(in_flight) < CONCURRENCY and len(run_ids) < runs:
            run_id = _start_w1(runtime)
            in_flight[run_id] = time.perf_counter()
            run_ids.append(run_id)
        idle_rounds = 0 if worker.step() else idle_rounds + 1
        if idle_rounds > MAX_IDLE_ROUNDS:
            raise RuntimeError(f"the worker stopped making progress with {len(in_flight)} runs")
        for run_id in target.probe.drain():
            latencies.append(_ms_since(in_flight.pop(run_id)))
    seconds = time.perf_counter() - began
    worker.release_all()
    check_completed(runtime, run_ids)
    return Row(
        "accord",
        target.backend,
        "W1",
        "c16",
        latencies,
        steps_per_s=runs * _peers.W1_STEPS / seconds,
        bytes_per_run=(target.stored_bytes() - before) / runs,
        transitions_per_run=worker.stats.transitions / runs,
    )


def _park_w2(runtime: Runtime) -> str:
    run_id = runtime.start(TENANT, W2_JOURNEY, input={"value": 0}).run_id
    runtime.drive()
    status = runtime.get(TENANT, run_id).status
    if status != "waiting":
        raise RuntimeError(f"bench run {run_id} is {status}, not waiting for its approval")
    return run_id


def accord_w2(target: AccordTarget, runs: int) -> Row:
    """Park each run at its approval, then time the decision and the drive to completion."""
    runtime = target.runtime
    run_ids: list[str] = []
    latencies: list[float] = []
    transitions = 0
    for _ in range(runs):
        run_id = _park_w2(runtime)
        started = time.perf_counter()
        runtime.decide(TENANT, run_id, APPROVAL_BLOCK, "approve", by="bench")
        transitions += runtime.drive()
        latencies.append(_ms_since(started))
        run_ids.append(run_id)
    check_completed(runtime, run_ids)
    return Row(
        "accord", target.backend, "W2", "resume", latencies, transitions_per_run=transitions / runs
    )


def warm_up_accord(target: AccordTarget) -> None:
    accord_w1_sequential(target, WARMUP_RUNS)
    accord_w1_concurrent(target, WARMUP_RUNS)
    accord_w2(target, WARMUP_RUNS)


def accord_rows(target: AccordTarget, runs: int) -> list[Row]:
    label = f"accord/{target.backend}"
    progress.print(f"{label}: warming up")
    warm_up_accord(target)
    rows = []
    for name, measure in (
        ("W1 sequential", accord_w1_sequential),
        ("W1 concurrent", accord_w1_concurrent),
        ("W2 resume", accord_w2),
    ):
        progress.print(f"{label}: {name}, {runs} runs")
        rows.append(measure(target, runs))
    return rows


def accord_sqlite_rows(workdir: Path, runs: int) -> list[Row]:
    path = workdir / "accord.db"
    with accord_target("sqlite", f"sqlite:///{path}", lambda _: sqlite_bytes(path)) as target:
        return accord_rows(target, runs)


def accord_sqlite_per_task_rows(workdir: Path, runs: int) -> list[Row]:
    """W1 with the commit window off: one commit per task, the peers' durability per step."""
    path = workdir / "accord-per-task.db"
    with accord_target(
        "sqlite", f"sqlite:///{path}", lambda _: sqlite_bytes(path), commit_window_ms=0
    ) as target:
        progress.print("accord/sqlite, one task per commit: warming up")
        accord_w1_sequential(target, WARMUP_RUNS)
        rows = []
        for name, measure in (
            ("W1 sequential", accord_w1_sequential),
            ("W1 concurrent", accord_w1_concurrent),
        ):
            progress.print(f"accord/sqlite, one task per commit: {name}, {runs} runs")
            row = measure(target, runs)
            rows.append(replace(row, system="accord 1/commit", variant="per_task"))
        return rows


def accord_postgres_rows(server_url: str, runs: int) -> list[Row]:
    with (
        postgres_database(server_url) as url,
        accord_target("postgresql", url, postgres_bytes) as target,
    ):
        return accord_rows(target, runs)


PeerW1 = Callable[[Path, int, int], _peers.PeerResult]
PeerW2 = Callable[[Path, int], _peers.PeerResult]


@dataclass(frozen=True)
class Peer:
    """A peer engine's workload functions from ``_peers``."""

    name: str
    w1: PeerW1
    w2: PeerW2
    w2_max_runs: int | None = None
    w2_note: str = ""


PEERS = (
    Peer("langgraph", _peers.langgraph_w1, _peers.langgraph_w2),
    Peer(
        "dbos",
        _peers.dbos_w1,
        _peers.dbos_w2,
        w2_max_runs=DBOS_W2_MAX_RUNS,
        w2_note=(
            f"dbos W2 is capped at {DBOS_W2_MAX_RUNS} runs: on SQLite each approval waits for "
            "DBOS's 1 s notification poller."
        ),
    ),
)


def _peer_w1_row(peer: Peer, result: _peers.PeerResult, bytes_before: int, mode: Mode) -> Row:
    return Row(
        peer.name,
        "sqlite",
        "W1",
        mode,
        result.latencies_ms,
        steps_per_s=result.steps / result.seconds,
        bytes_per_run=(result.bytes_stored - bytes_before) / result.runs,
    )


def peer_rows(peer: Peer, workdir: Path, runs: int) -> list[Row]:
    """W1 sequential and concurrent on one SQLite file (sizes measured as growth), then W2."""
    home = workdir / peer.name
    home.mkdir()
    progress.print(f"{peer.name}: warming up")
    warm = peer.w1(home, WARMUP_RUNS, 1)
    peer.w2(home, WARMUP_RUNS)
    progress.print(f"{peer.name}: W1 sequential, {runs} runs")
    sequential = peer.w1(home, runs, 1)
    progress.print(f"{peer.name}: W1 concurrent, {runs} runs")
    concurrent = peer.w1(home, runs, CONCURRENCY)
    w2_runs = min(runs, peer.w2_max_runs or runs)
    progress.print(f"{peer.name}: W2 resume, {w2_runs} runs")
    resumed = peer.w2(home, w2_runs)
    return [
        _peer_w1_row(peer, sequential, warm.bytes_stored, "seq"),
        _peer_w1_row(peer, concurrent, sequential.bytes_stored, "c16"),
        Row(peer.name, "sqlite", "W2", "resume", resumed.latencies_ms),
    ]


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def results_table(rows: list[Row]) -> Table:
    table = Table(title="Accord durable runtime vs peers (W1: 10 steps; W2: resume after approval)")
    headers = ("system", "db", "work", "mode", "runs", "steps/s", "p50 ms", "p99 ms", "B/run")
    for header in (*headers, "trans/run"):
        table.add_column(header, justify="left" if header in ("system", "db") else "right")
    for row in rows:
        table.add_row(
            row.system,
            row.backend,
            row.workload,
            row.mode,
            str(row.runs),
            _fmt(row.steps_per_s, 0),
            _fmt(row.percentile(50), 2),
            _fmt(row.percentile(99), 2),
            _fmt(row.bytes_per_run, 0),
            _fmt(row.transitions_per_run, 1),
        )
    return table


@dataclass(frozen=True)
class Headline:
    """The figures the goals and the JSON line are made of."""

    w1_seq: dict[str, float]
    w1_conc: dict[str, float]
    w2_p50: dict[str, float]
    w2_p99: dict[str, float]
    bytes_per_run: dict[str, float]
    transitions_per_run: dict[str, float]

    @classmethod
    def of(cls, rows: list[Row]) -> Headline:
        def pick(mode: Mode, value: Callable[[Row], float | None]) -> dict[str, float]:
            picked = {r.key: value(r) for r in rows if r.mode == mode}
            return {key: round(v, 3) for key, v in picked.items() if v is not None}

        return cls(
            w1_seq=pick("seq", lambda r: r.steps_per_s),
            w1_conc=pick("c16", lambda r: r.steps_per_s),
            w2_p50=pick("resume", lambda r: r.percentile(50)),
            w2_p99=pick("resume", lambda r: r.percentile(99)),
            bytes_per_run=pick("seq", lambda r: r.bytes_per_run),
            transitions_per_run=pick("seq", lambda r: r.transitions_per_run),
        )


def _vs_fastest_peer(
    figures: dict[str, float], accord_key: str = "accord_sqlite"
) -> tuple[float, str, float] | None:
    peers = {k: v for k, v in figures.items() if not k.startswith("accord")}
    if accord_key not in figures or not peers:
        return None
    fastest = max(peers, key=peers.__getitem__)
    return figures[accord_key] / peers[fastest], fastest, peers[fastest]


def ratios(headline: Headline) -> dict[str, float | None]:
    seq = _vs_fastest_peer(headline.w1_seq)
    conc = _vs_fastest_peer(headline.w1_conc)
    per_task_seq = _vs_fastest_peer(headline.w1_seq, "accord_sqlite_per_task")
    per_task_conc = _vs_fastest_peer(headline.w1_conc, "accord_sqlite_per_task")
    return {
        "w1_seq_accord_sqlite_vs_fastest_peer": None if seq is None else round(seq[0], 3),
        "w1_conc_accord_sqlite_vs_fastest_peer": None if conc is None else round(conc[0], 3),
        "w1_seq_accord_per_task_commit_vs_fastest_peer": (
            None if per_task_seq is None else round(per_task_seq[0], 3)
        ),
        "w1_conc_accord_per_task_commit_vs_fastest_peer": (
            None if per_task_conc is None else round(per_task_conc[0], 3)
        ),
        "w2_resume_p50_ms_accord_sqlite": headline.w2_p50.get("accord_sqlite"),
    }


def _verdict(met: bool) -> str:
    return "[green]met[/]" if met else "[red]not met[/]"


def print_goals(console: Console, headline: Headline) -> dict[str, bool]:
    goals: dict[str, bool] = {}
    for key, label, figures, goal in (
        ("w1_seq", "sequential W1", headline.w1_seq, SEQ_GOAL),
        ("w1_conc", "concurrent W1", headline.w1_conc, CONC_GOAL),
    ):
        compared = _vs_fastest_peer(figures)
        if compared is None:
            continue
        ratio, peer, peer_value = compared
        goals[key] = ratio >= goal
        console.print(
            f"{label}: Accord/SQLite {figures['accord_sqlite']:,.0f} steps/s ÷ fastest peer "
            f"({peer} {peer_value:,.0f}) = {ratio:.2f}x; goal ≥ {goal:g}x: {_verdict(goals[key])}"
        )
    resume = headline.w2_p50.get("accord_sqlite")
    if resume is not None:
        goals["w2_resume"] = resume <= RESUME_GOAL_MS
        console.print(
            f"W2 resume p50: Accord/SQLite {resume:.2f} ms; goal ≤ {RESUME_GOAL_MS:g} ms: "
            f"{_verdict(goals['w2_resume'])}"
        )
    return goals


def json_line(headline: Headline, goals: dict[str, bool], runs: int) -> str:
    return json.dumps(
        {
            "bench": "runtime",
            "w1_seq_steps_per_s": headline.w1_seq,
            "w1_conc_steps_per_s": headline.w1_conc,
            "w2_resume_p50_ms": headline.w2_p50,
            "w2_resume_p99_ms": headline.w2_p99,
            "w1_bytes_per_run": headline.bytes_per_run,
            "w1_transitions_per_run": headline.transitions_per_run,
            "ratios": ratios(headline),
            "goals_met": goals,
            "n_runs": runs,
            "concurrency": CONCURRENCY,
        },
        separators=(",", ":"),
    )


def measure_all(workdir: Path, runs: int, postgres_url: str) -> tuple[list[Row], list[str]]:
    """Every row, and notes on what was skipped or capped."""
    rows = accord_sqlite_rows(workdir, runs)
    rows += accord_sqlite_per_task_rows(workdir, runs)
    notes: list[str] = [
        "accord 1/commit: the commit window set to 0, so every task commits (and fsyncs) alone."
    ]
    try:
        rows += accord_postgres_rows(postgres_url, runs)
    except PostgresUnavailableError as exc:
        notes.append(f"{exc}; its rows are skipped (set {PG_URL_VARIABLE} to point elsewhere).")
    for peer in PEERS:
        rows += peer_rows(peer, workdir, runs)
        if peer.w2_max_runs is not None and peer.w2_max_runs < runs:
            notes.append(peer.w2_note)
    return rows, notes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1 run, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs per row")
    parser.add_argument("--runs", type=_positive, help=f"runs per row (default {DEFAULT_RUNS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs: int = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    postgres_url = os.environ.get(PG_URL_VARIABLE, DEFAULT_PG_URL)
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as workdir:
        rows, notes = measure_all(Path(workdir), runs, postgres_url)
    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    console.print(results_table(rows))
    for note in notes:
        console.print(f"note: {note}", markup=False)
    headline = Headline.of(rows)
    goals = print_goals(console, headline)
    print(json_line(headline, goals, runs), flush=True)


if __name__ == "__main__":
    main()
