"""End to end: the sample enterprise's demo mix on SQLite and PostgreSQL, with 1, 2 and 4 workers.

Run it with ``./run bench journeys [--quick]``. Progress goes to stderr; three tables and one
JSON line go to stdout.

**What runs.** Every row is independent: a fresh sandbox enterprise (``open_enterprise``: the
sandbox's services on loopback uvicorn, reseeded, and an Accord deployed in front of them) on a
fresh SQLite file or a fresh PostgreSQL database (``ACCORD_BENCH_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``; a database is created per row and dropped after
it). The row plays ``demo_mix(enterprise, people=P, seed=7)``: the same cases in every row,
first wave then the repeated refunds. ``in flight`` is how many cases are open at once: the bench
starts that many together and starts the next case whenever one ends (so ``in flight`` ≥ the
number of cases starts them all at once).

**Who does what.** Runs are advanced only by Accord worker processes (``Worker.run``, batch 16,
poll interval 20 ms), spawned per row against the row's database; ``workers`` is how many. The
bench's main process is the sandbox and the people: a ``Driver`` starts cases and answers every
wait (codes read from the sandbox, documents, confirmations, review decisions) while the workers
advance runs; it never drives runs itself. SQLite has one writer at a time, so a second worker
only queues behind the first for the write lock (and each SQLite worker learns of new work by
polling, not by notification); its rows show what that costs.

**Simulated time.** Journeys wait on timers (OTP expiry, review SLAs, retries). When nothing
else can happen (no run is due, the driver had nothing to answer and no run changed while it
looked) the bench moves the shared clock to the next timer; the workers' clock follows through
shared memory. Run latency is created→ended as the database recorded it, with those clock jumps
taken out: each timestamp is mapped back to wall time by the offset in force when it was
written. What remains is wall time: workers computing and committing, connector calls, and
waiting for the driver's answers. The clock only jumps once every run in flight is idle, so a
journey that waits on a timer (access provisioning's grant expiry, say) also waits, in wall
time, for the rest of the mix to settle: at high concurrency its latency is mostly that.

**Figures.** ``journeys/s``: cases completed ÷ the row's wall time (first start to last end
seen); sub-runs a case starts are not counted as journeys. ``p50 s``/``p99 s``: nearest-rank
percentiles of completed cases' latency (the third table splits them by journey).
``decisions/s``: rows in the decisions table (every gateway decision, sub-runs' and refusals
included) ÷ wall time; ``ms/dec``: the mean of Accord's ``accord_gateway_decision_seconds``
histogram in the workers. **Where the time goes** (ms per completed journey): the workers record
Accord's own spans (``block``, ``agent``, ``gateway``, its ``kill_switch``/``consent``/``policy``
stages and ``connector``) with an in-process span processor, each counted exclusive of the spans
inside it; ``runtime+db`` is the time the workers spent in ``Worker.step`` outside any span
(claims, snapshot reads, group commits with their ledger entries, leases). ``driver`` is the
main process answering waits and starting cases. Columns: ``http`` (connector calls to the
sandbox, over loopback HTTP), ``snap`` (the gateway's kill-switch stage, which reads the
consent, policy and flag snapshot when the worker's batch read is stale), ``consent``,
``policy`` (Cedar), ``gw`` (the rest of the gateway: approvals, projection, the decision
record), ``agent`` (local models), ``blocks`` (the journey's own logic), ``other`` (any other
span), ``rt+db``, ``driver``, and ``busy%``: worker busy time ÷ (workers x wall time). The
spans Accord records afterwards for the time a person took (``review.wait``,
``confirm.wait``) are simulated time and are left out. Recording spans costs a little
throughput.

Every case must end completed; a row where some did not says how many and why (the driver's
results: status, where the run waits, its error) in the notes.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import queue
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from prometheus_client import Histogram
from rich.console import Console
from rich.table import Table
from runtime import (
    DEFAULT_PG_URL,
    PG_URL_VARIABLE,
    WIDE_OUTPUT,
    PostgresUnavailableError,
    percentile,
    postgres_database,
)

from accord.runtime import Worker
from accord.service import Settings, build
from accord.simulation import TENANT, Case, Driver, Enterprise, demo_mix, open_enterprise
from accord.storage import TERMINAL
from accord.telemetry import Metrics, Telemetry, Tracing

Backend = Literal["sqlite", "postgresql"]

SEED = 7
DEFAULT_PEOPLE = 128
QUICK_PEOPLE = 16
FULL_ROWS: tuple[tuple[Backend, int, int], ...] = (
    *(("sqlite", w, n) for w in (1, 2) for n in (8, 32, 128)),
    *(("postgresql", w, n) for w in (1, 2, 4) for n in (8, 32, 128)),
)
QUICK_ROWS: tuple[tuple[Backend, int, int], ...] = (
    ("sqlite", 1, 8),
    ("sqlite", 1, 16),
    ("postgresql", 1, 16),
    ("postgresql", 2, 16),
)
BATCH_SIZE = 16
POLL_INTERVAL = 0.02
IDLE_SLEEP = 0.005
ROW_DEADLINE = 300.0
STUCK_SECONDS = 10.0
WORKER_START_TIMEOUT = 120.0
WORKER_STOP_TIMEOUT = 60.0
CLOCK_STEP_PAST = 0.001

CATEGORIES = ("connector", "snapshot", "consent", "policy", "gateway", "agent", "blocks", "other")
SPLIT_HEADERS = ("http", "snap", "consent", "policy", "gw", "agent", "blocks", "other")
SPAN_CATEGORY = {
    "connector": "connector",
    "gateway.kill_switch": "snapshot",
    "gateway.consent": "consent",
    "gateway.policy": "policy",
    "gateway.approval": "gateway",
    "gateway": "gateway",
    "agent": "agent",
    "block": "blocks",
}

PERSON_WAITS = frozenset({"confirm.wait", "review.wait"})
"""Spans Accord records afterwards for the time a person took: simulated time, not work."""

progress = Console(stderr=True)


# -- the worker processes ------------------------------------------------------------------


class SharedOffsetClock:
    """System time plus the offset the bench's main process moves forward (shared memory)."""

    def __init__(self, offset: Synchronized[float]) -> None:
        self._offset = offset

    def now(self) -> float:
        return time.time() + self._offset.value


class SpanTotals(SpanProcessor):
    """Seconds spent in Accord's spans, by category, each exclusive of its child spans."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self._children_ns: dict[int, int] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if span.start_time is None or span.end_time is None or span.context is None:
            return
        duration = span.end_time - span.start_time
        key = span.name.split(" ", 1)[0]
        if key in PERSON_WAITS:
            return
        with self._lock:
            own = duration - self._children_ns.pop(span.context.span_id, 0)
            if span.parent is not None:
                parent = span.parent.span_id
                self._children_ns[parent] = self._children_ns.get(parent, 0) + duration
            self.seconds[SPAN_CATEGORY.get(key, "other")] += own / 1e9


class TimedWorker(Worker):
    """A worker that adds up the wall time of its rounds (``step``), idle waits excluded."""

    busy_seconds = 0.0

    def step(self) -> int:
        began = time.perf_counter()
        try:
            return super().step()
        finally:
            self.busy_seconds += time.perf_counter() - began


def _histogram_totals(histogram: Histogram) -> tuple[float, float]:
    seconds = count = 0.0
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                seconds += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return seconds, count


def worker_process(
    index: int,
    settings: dict[str, Any],
    offset: Synchronized[float],
    ready: Any,
    stop: Any,
    results: Any,
) -> None:
    """One Accord worker: advance runs until ``stop`` is set, then report its figures."""
    logging.basicConfig(level=logging.ERROR)
    try:
        spans = SpanTotals()
        provider = TracerProvider(sampler=ALWAYS_ON)
        provider.add_span_processor(spans)
        metrics = Metrics()
        telemetry = Telemetry(
            tracing=Tracing(provider.get_tracer("accord"), provider), metrics=metrics
        )
        accord = build(
            Settings(**settings),
            clock=SharedOffsetClock(offset),
            telemetry=telemetry,
            migrate=False,
        )
    except Exception:
        results.put({"index": index, "error": traceback.format_exc()})
        ready.release()
        return
    worker = TimedWorker(
        accord.runtime,
        name=f"bench-{index}-{os.getpid()}",
        batch_size=BATCH_SIZE,
        poll_interval=POLL_INTERVAL,
    )
    threading.Thread(target=lambda: (stop.wait(), worker.stop()), daemon=True).start()
    ready.release()
    stats = worker.run()
    decision_seconds, decision_count = _histogram_totals(metrics.gateway_decision_seconds)
    results.put(
        {
            "index": index,
            "busy": worker.busy_seconds,
            "spans": dict(spans.seconds),
            "decision_seconds": decision_seconds,
            "decision_count": decision_count,
            "transitions": stats.transitions,
            "commits": stats.commits,
            "lease_lost": stats.lease_lost,
            "conflicts": stats.conflicts,
            "database_errors": stats.database_errors,
            "internal_errors": stats.internal_errors,
        }
    )
    accord.close()


class WorkerStartError(Exception):
    """A worker process could not build its Accord."""


@dataclass
class WorkerPool:
    """``count`` worker processes against one database, sharing the main process's clock."""

    context: SpawnContext
    settings: dict[str, Any]
    count: int
    offset: Synchronized[float]
    processes: list[SpawnProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ready = self.context.Semaphore(0)
        self._stop = self.context.Event()
        self._results = self.context.Queue()

    def start(self) -> None:
        for index in range(self.count):
            process = self.context.Process(
                target=worker_process,
                args=(index, self.settings, self.offset, self._ready, self._stop, self._results),
                daemon=True,
            )
            process.start()
            self.processes.append(process)
        for _ in range(self.count):
            if not self._ready.acquire(timeout=WORKER_START_TIMEOUT):
                raise WorkerStartError("a worker process did not start in time")

    def stop(self) -> list[dict[str, Any]]:
        """Stop every worker and collect the figures each reports."""
        self._stop.set()
        reports = []
        for _ in self.processes:
            try:
                reports.append(self._results.get(timeout=WORKER_STOP_TIMEOUT))
            except queue.Empty:
                break
        for process in self.processes:
            process.join(timeout=WORKER_STOP_TIMEOUT)
            if process.is_alive():
                process.terminate()
                process.join()
        failed = [r["error"] for r in reports if "error" in r]
        if failed:
            raise WorkerStartError(f"a worker process failed:\n{failed[0]}")
        if len(reports) < self.count:
            raise WorkerStartError(f"only {len(reports)} of {self.count} workers reported")
        return reports


@contextmanager
def worker_pool(
    context: SpawnContext, settings: dict[str, Any], count: int, offset: Synchronized[float]
) -> Iterator[WorkerPool]:
    pool = WorkerPool(context, settings, count, offset)
    try:
        pool.start()
        yield pool
    finally:
        pool._stop.set()
        for process in pool.processes:
            if process.is_alive():
                process.join(timeout=WORKER_STOP_TIMEOUT)
            if process.is_alive():
                process.terminate()


# -- the main process: people and the clock --------------------------------------------------


class ClockJumps:
    """Moves the shared clock forward and maps simulated timestamps back to wall time."""

    def __init__(self, enterprise: Enterprise, offset: Synchronized[float]) -> None:
        self._clock = enterprise.clock
        self._offset = offset
        self._offset.value = self._clock.offset
        self._segments: list[tuple[float, float]] = [(float("-inf"), self._clock.offset)]
        self.jumps = 0

    def advance(self, seconds: float) -> None:
        self._offset.value = self._clock.offset + seconds
        self._clock.advance(seconds)
        self._segments.append((self._clock.now(), self._clock.offset))
        self.jumps += 1

    def wall(self, simulated: float) -> float:
        """The wall time at which a clock reading ``simulated`` was taken."""
        offset = next(o for start, o in reversed(self._segments) if start <= simulated)
        return simulated - offset


_ENDED = sa.text(
    "SELECT run_id FROM runs WHERE tenant_id = :tenant AND status IN :ended"
).bindparams(sa.bindparam("ended", expanding=True))
_PROGRESS = sa.text(
    "SELECT count(*), coalesce(sum(seq), 0), coalesce(sum(inbox_version), 0) "
    "FROM runs WHERE tenant_id = :tenant"
)
_DECISIONS = sa.text("SELECT count(*) FROM decisions WHERE tenant_id = :tenant")


@dataclass
class Played:
    """What the main process saw while a row played."""

    wall_seconds: float
    driver_seconds: float
    clock_jumps: int
    stopped: str | None


def play(
    enterprise: Enterprise,
    driver: Driver,
    waves: Sequence[Sequence[Case]],
    in_flight: int,
    jumps: ClockJumps,
) -> Played:
    """Start cases (``in_flight`` open at once, wave after wave) and answer them until all end."""
    accord = enterprise.accord
    open_runs: set[str] = set()
    driver_seconds = 0.0
    stopped = None
    began = time.perf_counter()
    quiet_since = time.perf_counter()
    for wave in waves:
        queue = list(wave)
        while queue or open_runs:
            now_perf = time.perf_counter()
            if now_perf - began > ROW_DEADLINE:
                stopped = f"stopped after {ROW_DEADLINE:.0f} s"
                break
            before = _progress(enterprise)
            spent = time.perf_counter()
            started = 0
            while queue and len(open_runs) < in_flight:
                run_id = driver.start(queue.pop(0))
                started += 1
                if run_id is not None:
                    open_runs.add(run_id)
            acted = driver.act()
            driver_seconds += time.perf_counter() - spent
            with accord.db.read() as connection:
                ended = {
                    row[0]
                    for row in connection.execute(
                        _ENDED, {"tenant": TENANT, "ended": list(TERMINAL)}
                    )
                }
            finished = open_runs & ended
            open_runs -= finished
            if started or acted or finished:
                quiet_since = time.perf_counter()
                continue
            wake = accord.runtime.next_wake_at(TENANT)
            clock_now = enterprise.clock.now()
            if wake is not None and wake <= clock_now:
                time.sleep(IDLE_SLEEP)
                continue
            if _progress(enterprise) != before:
                quiet_since = time.perf_counter()
                continue
            if wake is None:
                if time.perf_counter() - quiet_since > STUCK_SECONDS:
                    stopped = f"nothing moved for {STUCK_SECONDS:.0f} s"
                    break
                time.sleep(IDLE_SLEEP)
                continue
            jumps.advance(wake - clock_now + CLOCK_STEP_PAST)
        if stopped:
            break
    return Played(time.perf_counter() - began, driver_seconds, jumps.jumps, stopped)


def _progress(enterprise: Enterprise) -> tuple[int, ...]:
    with enterprise.accord.db.read() as connection:
        row = connection.execute(_PROGRESS, {"tenant": TENANT}).one()
    return tuple(int(value) for value in row)


# -- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One measured line: a database, a worker count and a concurrency."""

    backend: Backend
    workers: int
    in_flight: int
    cases: int
    completed: int
    wall_seconds: float
    latencies: dict[str, list[float]]
    decisions: int
    decision_ms_mean: float | None
    worker_busy: float
    spans: dict[str, float]
    driver_seconds: float
    transitions: int
    commits: int
    lease_lost: int
    clock_jumps: int
    unfinished: dict[str, int]
    stopped: str | None = None

    @property
    def key(self) -> str:
        return f"{self.backend}_{self.workers}w_{self.in_flight}"

    @property
    def journeys_per_s(self) -> float:
        return self.completed / self.wall_seconds

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.wall_seconds

    @property
    def all_latencies(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]

    def latency(self, q: float, journey: str | None = None) -> float | None:
        values = self.all_latencies if journey is None else self.latencies.get(journey, [])
        return percentile(values, q) if values else None

    @property
    def runtime_db(self) -> float:
        return max(0.0, self.worker_busy - sum(self.spans.values()))

    def per_journey_ms(self, seconds: float) -> float | None:
        return None if not self.completed else seconds * 1000.0 / self.completed

    def split(self) -> dict[str, float]:
        """Seconds by where they went: span categories, runtime and database, the driver."""
        parts = {name: self.spans.get(name, 0.0) for name in CATEGORIES}
        parts["runtime_db"] = self.runtime_db
        parts["driver"] = self.driver_seconds
        return parts


@dataclass(frozen=True)
class Skipped:
    """A row that could not run (PostgreSQL unreachable)."""

    backend: Backend
    workers: int
    in_flight: int
    reason: str


def _unfinished(driver: Driver) -> dict[str, int]:
    reasons: Counter[str] = Counter()
    for result in driver.results():
        if result.status == "completed":
            continue
        where = ", ".join(result.waiting) or result.error or result.outcome or ""
        reasons[f"{result.case.journey} {result.status}" + (f": {where}" if where else "")] += 1
    return dict(reasons)


def _latencies(driver: Driver, jumps: ClockJumps) -> dict[str, list[float]]:
    by_journey: dict[str, list[float]] = defaultdict(list)
    for result in driver.results():
        if result.status != "completed":
            continue
        view = driver.accord.runtime.get(TENANT, result.run_id)
        if view.ended_at is None:
            continue
        seconds = jumps.wall(view.ended_at) - jumps.wall(view.created_at)
        by_journey[result.case.journey].append(seconds)
    return dict(by_journey)


def measure_row(
    context: SpawnContext,
    workdir: Path,
    backend: Backend,
    workers: int,
    in_flight: int,
    people: int,
    database_url: str,
) -> Row:
    """One row on a fresh sandbox and a fresh database."""
    keys = workdir / "keys"
    offset = context.Value("d", 0.0)
    with open_enterprise(
        workdir, database_url=database_url, settings={"keys_dir": str(keys)}
    ) as enterprise:
        first, repeats = demo_mix(enterprise, people=people, seed=SEED)
        main = enterprise.accord.settings
        settings = {
            "database_url": main.database_url,
            "capability_catalogues": list(main.capability_catalogues),
            "connector_urls": dict(main.connector_urls),
            "region": main.region,
            "keys_dir": str(keys),
        }
        jumps = ClockJumps(enterprise, offset)
        driver = Driver(enterprise, advance_time=True)
        try:
            with worker_pool(context, settings, workers, offset) as pool:
                played = play(enterprise, driver, (first, repeats), in_flight, jumps)
                reports = pool.stop()
            results = driver.results()
            with enterprise.accord.db.read() as connection:
                decisions = int(connection.execute(_DECISIONS, {"tenant": TENANT}).scalar_one())
            latencies = _latencies(driver, jumps)
            unfinished = _unfinished(driver)
        finally:
            driver.close()
    spans: Counter[str] = Counter()
    for report in reports:
        spans.update(report["spans"])
    decision_seconds = sum(r["decision_seconds"] for r in reports)
    decision_count = sum(r["decision_count"] for r in reports)
    return Row(
        backend=backend,
        workers=workers,
        in_flight=in_flight,
        cases=len(results),
        completed=sum(1 for r in results if r.status == "completed"),
        wall_seconds=played.wall_seconds,
        latencies=latencies,
        decisions=decisions,
        decision_ms_mean=decision_seconds * 1000.0 / decision_count if decision_count else None,
        worker_busy=sum(r["busy"] for r in reports),
        spans=dict(spans),
        driver_seconds=played.driver_seconds,
        transitions=sum(r["transitions"] for r in reports),
        commits=sum(r["commits"] for r in reports),
        lease_lost=sum(r["lease_lost"] for r in reports),
        clock_jumps=played.clock_jumps,
        unfinished=unfinished,
        stopped=played.stopped,
    )


def measure_all(
    workdir: Path, plan: Sequence[tuple[Backend, int, int]], people: int, postgres_url: str
) -> list[Row | Skipped]:
    context = multiprocessing.get_context("spawn")
    rows: list[Row | Skipped] = []
    unreachable: str | None = None
    for number, (backend, workers, in_flight) in enumerate(plan):
        label = f"{backend}, {workers} worker{'s' if workers > 1 else ''}, {in_flight} in flight"
        if backend == "postgresql" and unreachable is not None:
            rows.append(Skipped(backend, workers, in_flight, unreachable))
            continue
        progress.print(f"{label}: {people} people")
        home = workdir / f"row-{number}"
        with ExitStack() as stack:
            if backend == "sqlite":
                url = f"sqlite:///{home / 'accord.db'}"
            else:
                try:
                    url = stack.enter_context(postgres_database(postgres_url))
                except PostgresUnavailableError as exc:
                    unreachable = str(exc)
                    rows.append(Skipped(backend, workers, in_flight, unreachable))
                    continue
            row = measure_row(context, home, backend, workers, in_flight, people, url)
        progress.print(
            f"{label}: {row.completed}/{row.cases} completed in {row.wall_seconds:.1f} s"
        )
        rows.append(row)
    return rows


# -- output -----------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def results_table(rows: Sequence[Row | Skipped]) -> Table:
    table = Table(title="Accord end to end: the sample enterprise's demo mix")
    headers = ("db", "workers", "in flight", "done", "journeys/s", "p50 s", "p99 s")
    for header in (*headers, "dec/s", "ms/dec", "trans", "jumps"):
        table.add_column(header, justify="left" if header == "db" else "right")
    for row in rows:
        if isinstance(row, Skipped):
            table.add_row(row.backend, str(row.workers), str(row.in_flight), "skipped")
            continue
        table.add_row(
            row.backend,
            str(row.workers),
            str(row.in_flight),
            f"{row.completed}/{row.cases}",
            _fmt(row.journeys_per_s, 2),
            _fmt(row.latency(50), 3),
            _fmt(row.latency(99), 3),
            _fmt(row.decisions_per_s, 1),
            _fmt(row.decision_ms_mean, 2),
            str(row.transitions),
            str(row.clock_jumps),
        )
    return table


def split_table(rows: Sequence[Row]) -> Table:
    table = Table(title="Where the time goes (ms per completed journey; workers summed)")
    table.add_column("db")
    for header in ("w", "n", *SPLIT_HEADERS, "rt+db", "driver", "busy%"):
        table.add_column(header, justify="right")
    for row in rows:
        parts = row.split()
        busy = row.worker_busy / (row.workers * row.wall_seconds) * 100.0
        table.add_row(
            row.backend,
            str(row.workers),
            str(row.in_flight),
            *(_fmt(row.per_journey_ms(parts[name]), 1) for name in CATEGORIES),
            _fmt(row.per_journey_ms(parts["runtime_db"]), 1),
            _fmt(row.per_journey_ms(parts["driver"]), 1),
            _fmt(busy, 0),
        )
    return table


def journey_table(rows: Sequence[Row]) -> Table:
    journeys = sorted({journey for row in rows for journey in row.latencies})
    table = Table(title="Latency by journey (s, p50/p99)")
    table.add_column("db")
    for header in ("w", "n", *journeys):
        table.add_column(header.replace("_", " "), justify="right")
    for row in rows:
        cells = []
        for journey in journeys:
            p50, p99 = row.latency(50, journey), row.latency(99, journey)
            cells.append("—" if p50 is None else f"{p50:.2f}/{_fmt(p99, 2)}")
        table.add_row(row.backend, str(row.workers), str(row.in_flight), *cells)
    return table


def notes_of(rows: Sequence[Row | Skipped]) -> list[str]:
    notes: list[str] = []
    skipped = [r for r in rows if isinstance(r, Skipped)]
    if skipped:
        notes.append(
            f"{skipped[0].reason}; its {len(skipped)} rows are skipped "
            f"(set {PG_URL_VARIABLE} to point elsewhere)."
        )
    for row in rows:
        if isinstance(row, Skipped):
            continue
        label = f"{row.backend} {row.workers}w {row.in_flight}"
        if row.stopped:
            notes.append(f"{label}: {row.stopped}.")
        missing = row.cases - row.completed
        if missing:
            reasons = "; ".join(f"{n}x {reason}" for reason, n in sorted(row.unfinished.items()))
            notes.append(f"{label}: {missing} of {row.cases} cases did not complete: {reasons}")
        if row.lease_lost:
            notes.append(f"{label}: workers lost {row.lease_lost} leases (transitions discarded).")
    return notes


def _best(rows: Sequence[Row], backend: Backend, workers: int | None = None) -> Row | None:
    """The row at the highest concurrency measured for a database (and worker count)."""
    chosen = [r for r in rows if r.backend == backend and workers in (None, r.workers)]
    if not chosen:
        return None
    top = max(r.in_flight for r in chosen)
    return max((r for r in chosen if r.in_flight == top), key=lambda r: r.journeys_per_s)


def _ratio(a: Row | None, b: Row | None) -> float | None:
    if a is None or b is None or not b.journeys_per_s:
        return None
    return round(a.journeys_per_s / b.journeys_per_s, 3)


def ratios(rows: Sequence[Row]) -> dict[str, float | None]:
    pg_workers = sorted({r.workers for r in rows if r.backend == "postgresql"})
    pg_1 = _best(rows, "postgresql", 1)
    pg_most = _best(rows, "postgresql", pg_workers[-1]) if pg_workers else None
    sqlite_1 = _best(rows, "sqlite", 1)
    found: dict[str, float | None] = {
        f"postgres_{pg_workers[-1] if pg_workers else 0}w_vs_1w_journeys_per_s": _ratio(
            pg_most, pg_1
        ),
        "postgres_1w_vs_sqlite_1w_journeys_per_s": _ratio(pg_1, sqlite_1),
        "postgres_best_vs_sqlite_best_journeys_per_s": _ratio(
            _best(rows, "postgresql"), _best(rows, "sqlite")
        ),
        "sqlite_2w_vs_1w_journeys_per_s": _ratio(_best(rows, "sqlite", 2), sqlite_1),
    }
    return found


def _shares(row: Row) -> dict[str, float]:
    parts = row.split()
    total = sum(parts.values())
    return {name: round(seconds / total, 3) for name, seconds in parts.items() if total}


def json_line(rows: Sequence[Row | Skipped], people: int) -> str:
    measured = [r for r in rows if isinstance(r, Row)]
    return json.dumps(
        {
            "bench": "journeys",
            "journeys_per_s": {r.key: round(r.journeys_per_s, 3) for r in measured},
            "p50_s": {r.key: _round(r.latency(50)) for r in measured},
            "p99_s": {r.key: _round(r.latency(99)) for r in measured},
            "decisions_per_s": {r.key: round(r.decisions_per_s, 2) for r in measured},
            "decision_ms_mean": {r.key: _round(r.decision_ms_mean) for r in measured},
            "time_shares": {r.key: _shares(r) for r in measured},
            "p50_s_by_journey": {
                r.key: {j: _round(r.latency(50, j)) for j in sorted(r.latencies)} for r in measured
            },
            "completed": {r.key: r.completed for r in measured},
            "cases": {r.key: r.cases for r in measured},
            "all_completed": all(r.completed == r.cases for r in measured),
            "skipped": sorted(
                {f"{r.backend}_{r.workers}w_{r.in_flight}" for r in rows if isinstance(r, Skipped)}
            ),
            "ratios": ratios(measured),
            "n_people": people,
            "seed": SEED,
        },
        separators=(",", ":"),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_PEOPLE} people per row, SQLite 1 worker at 8 and 16 in flight, "
        "PostgreSQL 1 and 2 workers at 16",
    )
    parser.add_argument(
        "--people", type=_positive, help=f"people in the mix per row (default {DEFAULT_PEOPLE})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    people: int = args.people or (QUICK_PEOPLE if args.quick else DEFAULT_PEOPLE)
    plan = QUICK_ROWS if args.quick else FULL_ROWS
    postgres_url = os.environ.get(PG_URL_VARIABLE, DEFAULT_PG_URL)
    with tempfile.TemporaryDirectory(prefix="accord-bench-journeys-") as workdir:
        rows = measure_all(Path(workdir), plan, people, postgres_url)
    measured = [r for r in rows if isinstance(r, Row)]
    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    console.print(results_table(rows))
    if measured:
        console.print(split_table(measured))
        console.print(journey_table(measured))
    for note in notes_of(rows):
        console.print(f"note: {note}", markup=False)
    print(json_line(rows, people), flush=True)


if __name__ == "__main__":
    main()
