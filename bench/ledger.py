"""What the tamper-evident ledger costs: entries appended inside W1's transitions and alone
(beside a SHA-256 hash chain), verifying a million entries, and proofs (beside an O(n) proof).

Run it with ``./run bench ledger [--quick]``; ``bench/README.md`` explains the measurements, the
tables and the closing JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from _peers import W1_STEPS
from rich.console import Console
from rich.table import Table
from runtime import (
    DEFAULT_PG_URL,
    PERMIT_ALL,
    PG_URL_VARIABLE,
    SCHEMA,
    TENANT,
    WARMUP_RUNS,
    WIDE_OUTPUT,
    AccordTarget,
    FinishProbe,
    PostgresUnavailableError,
    accord_w1_concurrent,
    accord_w1_sequential,
    bench_capabilities,
    percentile,
    postgres_database,
    sqlite_bytes,
    w1_spec,
)
from sqlalchemy.engine import Connection

from accord.audit import Entry
from accord.audit._ledger import encode
from accord.audit._merkle import consistency_plan, inclusion_plan
from accord.audit.verifier import node_hash, verify_inclusion
from accord.connectors import CapabilityRegistry
from accord.service import Accord, Settings, build
from accord.storage import Database
from accord.storage._schema import ledger_nodes

APPEND_TENANT = "bench-append"
BATCHES = (1, 16, 256)
TRANSACTIONS = {1: 1000, 16: 250, 256: 60}
QUICK_TRANSACTIONS = {1: 150, 16: 40, 256: 10}
W1_RUNS = 100
QUICK_W1_RUNS = 20
BIG = 1_000_000
QUICK_BIG = 100_000
BUILD_BATCH = 10_000
PROOFS = 2000
QUICK_PROOFS = 500
PROOF_BUDGET = 60.0
QUICK_PROOF_BUDGET = 5.0
NAIVE_PROOFS = 5
QUICK_NAIVE_PROOFS = 3
SEED = 20_260_101


Backend = Literal["sqlite", "postgresql"]

progress = Console(stderr=True)


@dataclass(frozen=True)
class Scale:
    transactions: dict[int, int]
    w1_runs: int
    big: int
    proofs: int
    proof_budget: float
    naive_proofs: int

    @classmethod
    def of(cls, *, quick: bool) -> Scale:
        if quick:
            return cls(
                QUICK_TRANSACTIONS,
                QUICK_W1_RUNS,
                QUICK_BIG,
                QUICK_PROOFS,
                QUICK_PROOF_BUDGET,
                QUICK_NAIVE_PROOFS,
            )
        return cls(TRANSACTIONS, W1_RUNS, BIG, PROOFS, PROOF_BUDGET, NAIVE_PROOFS)


@dataclass(frozen=True)
class AppendRow:
    """Entries appended by one system on one database, timed per transaction (or per run)."""

    system: str
    backend: Backend
    batch: str
    entries: int
    seconds: float
    latencies_ms: list[float]

    @property
    def entries_per_s(self) -> float:
        return self.entries / self.seconds


@dataclass(frozen=True)
class Timed:
    """Per-operation durations of one measure on the big ledger."""

    measure: str
    system: str
    latencies_us: list[float]
    statements: float | None = None
    node_reads: float | None = None
    nodes: float | None = None
    max_nodes: int | None = None

    def p(self, q: float) -> float:
        return percentile(self.latencies_us, q)


def _settings(url: str, keys: Path, *, synchronous: str = "FULL") -> Settings:
    return Settings(database_url=url, sqlite_synchronous=synchronous, keys_dir=keys)


# -- W1 with the ledger ------------------------------------------------------------------------


def w1_rows(workdir: Path, runs: int) -> tuple[list[AppendRow], list[Entry], float]:
    """W1 on SQLite (synchronous FULL): ledger entries appended per second of runs, sequential
    and sixteen in flight. Returns the rows, one run's entries (to append alone, as they are)
    and the entries per run."""
    path = workdir / "w1.db"
    probe = FinishProbe()
    settings = _settings(f"sqlite:///{path}", workdir / "keys")
    rows: list[AppendRow] = []
    with build(settings, capabilities=bench_capabilities(probe)) as accord:
        accord.policies.deploy(TENANT, PERMIT_ALL, SCHEMA, source_name="bench", actor="bench")
        accord.runtime.catalog.deploy(TENANT, w1_spec(), deployed_by="bench")
        target = AccordTarget("sqlite", accord, probe, lambda: sqlite_bytes(path))
        progress.print("W1 with the ledger: warming up")
        accord_w1_sequential(target, WARMUP_RUNS)
        accord_w1_concurrent(target, WARMUP_RUNS)
        per_run = 0.0
        for mode, measure in (("seq", accord_w1_sequential), ("c16", accord_w1_concurrent)):
            progress.print(f"W1 with the ledger: {mode}, {runs} runs")
            before = accord.ledger.size(TENANT)
            row = measure(target, runs)
            entries = accord.ledger.size(TENANT) - before
            assert row.steps_per_s is not None and row.transitions_per_run is not None
            per_run = entries / runs
            rows.append(
                AppendRow(
                    f"accord W1 {mode}",
                    "sqlite",
                    f"{per_run / row.transitions_per_run:.1f}",
                    entries,
                    runs * W1_STEPS / row.steps_per_s,
                    row.latencies_ms,
                )
            )
        (last,) = accord.ledger.entries(TENANT, kinds=["run.transition"])[-1:]
        sample = accord.ledger.entries(TENANT, run_id=last.run_id)
    entries = [
        Entry(e.kind, e.at, e.body, run_id=e.run_id, subject_id=e.subject_id, personal=e.personal)
        for e in sample
    ]
    return rows, entries, per_run


# -- appends alone, beside a hash chain --------------------------------------------------------

_chain_metadata = sa.MetaData()
hash_chain = sa.Table(
    "bench_hash_chain",
    _chain_metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("entry", sa.LargeBinary, nullable=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
)


def chain_append(connection: Connection, tenant: str, entries: Sequence[Entry]) -> None:
    """The peer: each entry's hash is SHA-256 of the previous hash and the entry's bytes (the
    same RFC 8785 bytes Accord stores), one row per entry, after reading the chain's tip."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"bench.chain\x1f{tenant}"},
        )
    tip = connection.execute(
        sa.select(hash_chain.c.idx, hash_chain.c.hash)
        .where(hash_chain.c.tenant_id == tenant)
        .order_by(hash_chain.c.idx.desc())
        .limit(1)
    ).first()
    index, previous = (0, bytes(32)) if tip is None else (int(tip[0]) + 1, bytes(tip[1]))
    rows = []
    for entry in entries:
        data = encode(tenant, entry, {})
        previous = hashlib.sha256(previous + data).digest()
        rows.append({"tenant_id": tenant, "idx": index, "entry": data, "hash": previous})
        index += 1
    connection.execute(hash_chain.insert(), rows)


Appender = Callable[[Connection, str, Sequence[Entry]], Any]


def _appends(
    db: Database, append: Appender, entries: Sequence[Entry], batch: int, transactions: int
) -> tuple[float, list[float]]:
    latencies = []
    began = time.perf_counter()
    for t in range(transactions):
        chunk = [entries[(t * batch + i) % len(entries)] for i in range(batch)]
        started = time.perf_counter()
        with db.transaction() as connection:
            append(connection, APPEND_TENANT, chunk)
        latencies.append((time.perf_counter() - started) * 1000)
    return time.perf_counter() - began, latencies


def append_rows(
    backend: Backend, url: str, keys: Path, entries: Sequence[Entry], scale: Scale
) -> list[AppendRow]:
    rows = []
    with build(_settings(url, keys), capabilities=CapabilityRegistry()) as accord:
        with accord.db.transaction() as connection:
            _chain_metadata.create_all(connection)
        systems: tuple[tuple[str, Appender], ...] = (
            ("accord ledger", accord.ledger.append),
            ("hash chain", chain_append),
        )
        for _, append in systems:
            _appends(accord.db, append, entries, 16, 5)
        for batch in BATCHES:
            transactions = scale.transactions[batch]
            progress.print(f"appends on {backend}: {transactions} transactions of {batch}")
            for name, append in systems:
                seconds, latencies = _appends(accord.db, append, entries, batch, transactions)
                rows.append(
                    AppendRow(name, backend, str(batch), batch * transactions, seconds, latencies)
                )
        report = accord.verify_ledger(APPEND_TENANT)
        if not report.ok:
            raise RuntimeError(f"the appended ledger does not verify: {report.first}")
    return rows


# -- the big ledger: verification and proofs ---------------------------------------------------


@contextmanager
def big_ledger(
    workdir: Path, entries: Sequence[Entry], size: int
) -> Iterator[tuple[Accord, float]]:
    """A SQLite ledger of ``size`` entries, built in transactions of BUILD_BATCH with
    synchronous OFF, with a signed head over all of it. Yields it and the build's entries/s."""
    path = workdir / "big.db"
    settings = _settings(f"sqlite:///{path}", workdir / "keys", synchronous="OFF")
    with build(settings, capabilities=CapabilityRegistry()) as accord:
        ledger = accord.ledger
        began = time.perf_counter()
        ledger.issue_head(TENANT)
        built = ledger.size(TENANT)
        while built < size:
            count = min(BUILD_BATCH - built % BUILD_BATCH, size - built)
            chunk = [entries[(built + i) % len(entries)] for i in range(count)]
            with accord.db.transaction() as connection:
                ledger.append(connection, TENANT, chunk)
            built += count
            if built % 100_000 == 0:
                progress.print(f"big ledger: {built:,} of {size:,} entries")
        head = ledger.issue_head(TENANT)
        rate = size / (time.perf_counter() - began)
        assert head.tree_size == size, head
        with closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        yield accord, rate


def verify_big(accord: Accord, size: int) -> float:
    progress.print(f"verifying {size:,} entries")

    def tick(done: int) -> None:
        if done % 100_000 == 0:
            progress.print(f"  verified {done:,}")

    began = time.perf_counter()
    report = accord.verify_ledger(TENANT, progress=tick)
    seconds = time.perf_counter() - began
    progress.print(f"  {seconds:,.1f} s")
    if not report.ok or report.entries != size:
        raise RuntimeError(f"the big ledger does not verify: {report.first} ({report.entries})")
    return seconds


class StatementCounter:
    """Counts the SQL statements an engine runs, and those that read ledger nodes."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements = 0
        self.node_reads = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _connection: object, _cursor: object, statement: str, *_: object) -> None:
        self.statements += 1
        self.node_reads += "FROM ledger_nodes" in statement

    def take(self) -> tuple[int, int]:
        counts = (self.statements, self.node_reads)
        self.statements = self.node_reads = 0
        return counts


def _time_calls(
    calls: Sequence[Callable[[], Any]], budget: float, counter: StatementCounter
) -> tuple[list[float], list[Any], float, float]:
    """Time the calls one by one until all ran or ``budget`` seconds are spent. Returns the
    durations (µs), the results, and statements and node reads per call."""
    latencies: list[float] = []
    results: list[Any] = []
    counter.take()
    deadline = time.perf_counter() + budget
    for call in calls:
        started = time.perf_counter()
        results.append(call())
        latencies.append((time.perf_counter() - started) * 1e6)
        if started > deadline:
            break
    statements, node_reads = counter.take()
    return latencies, results, statements / len(results), node_reads / len(results)


def proofs(accord: Accord, size: int, n: int, budget: float) -> tuple[Timed, Timed]:
    """``n`` inclusion proofs of random entries in the whole tree and ``n`` consistency proofs
    between random sizes, each measure stopping early once it has taken ``budget`` seconds."""
    ledger = accord.ledger
    rng = random.Random(SEED)
    counter = StatementCounter(accord.db.engine)
    root = bytes.fromhex(ledger.latest_head(TENANT).root_hash)
    indexes = [rng.randrange(size) for _ in range(n)]
    pairs = []
    for _ in range(n):
        size1 = rng.randint(1, size - 1)
        pairs.append((size1, rng.randint(size1 + 1, size)))
    for index, pair in zip(indexes[:10], pairs, strict=False):
        ledger.inclusion_proof(TENANT, index, tree_size=size)
        ledger.consistency_proof(TENANT, *pair)
    progress.print(f"{n} inclusion and {n} consistency proofs on {size:,} entries")
    timed = []
    for measure, calls, plans in (
        (
            "inclusion proof",
            [partial(ledger.inclusion_proof, TENANT, i, tree_size=size) for i in indexes],
            [inclusion_plan(i, size) for i in indexes],
        ),
        (
            "consistency proof",
            [partial(ledger.consistency_proof, TENANT, a, b) for a, b in pairs],
            [consistency_plan(a, b) for a, b in pairs],
        ),
    ):
        latencies, results, statements, node_reads = _time_calls(calls, budget, counter)
        if len(results) < n:
            progress.print(f"  {measure}: {len(results)} of {n} within {budget:g} s")
        extra = 1 if measure == "inclusion proof" else 0  # the leaf itself
        nodes = [len({node for cover in plan for node in cover}) + extra for plan in plans]
        nodes = nodes[: len(results)]
        timed.append(
            Timed(
                measure,
                "accord (stored nodes)",
                latencies,
                statements,
                node_reads,
                sum(nodes) / len(nodes),
                max(nodes),
            )
        )
        if measure == "inclusion proof":
            for index, proof in zip(indexes, results[:100], strict=False):
                path = [bytes.fromhex(p) for p in proof.path]
                verify_inclusion(index, size, bytes.fromhex(proof.leaf_hash), path, root)
    inclusion, consistency = timed
    return inclusion, consistency


def naive_inclusion_path(db: Database, tenant: str, index: int, size: int) -> list[bytes]:
    """The peer: read every leaf hash and hash the whole tree level by level (an odd node at
    the end of a level moves up as it is), keeping the sibling on the way up: O(n)."""
    with db.read() as connection:
        level = [
            bytes(r[0])
            for r in connection.execute(
                sa.select(ledger_nodes.c.hash)
                .where(
                    ledger_nodes.c.tenant_id == tenant,
                    ledger_nodes.c.level == 0,
                    ledger_nodes.c.idx < size,
                )
                .order_by(ledger_nodes.c.idx)
            )
        ]
    path = []
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = [
            node_hash(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        position //= 2
    return path


def naive_proofs(accord: Accord, size: int, n: int) -> Timed:
    rng = random.Random(SEED + 1)
    latencies = []
    progress.print(f"{n} O(n) inclusion proofs over {size:,} leaves")
    for _ in range(n):
        index = rng.randrange(size)
        started = time.perf_counter()
        path = naive_inclusion_path(accord.db, TENANT, index, size)
        latencies.append((time.perf_counter() - started) * 1e6)
        stored = accord.ledger.inclusion_proof(TENANT, index, tree_size=size)
        if [p.hex() for p in path] != stored.path:
            raise RuntimeError(f"the O(n) proof of entry {index} differs from the ledger's")
    return Timed("inclusion proof", "O(n) from all leaves", latencies)


# -- output ------------------------------------------------------------------------------------


def append_table(rows: list[AppendRow]) -> Table:
    table = Table(title="Ledger appends: entries per second (SQLite and PostgreSQL durable)")
    for header in ("system", "db", "entries/txn", "entries", "entries/s", "p50 ms", "p99 ms"):
        table.add_column(header, justify="left" if header in ("system", "db") else "right")
    for row in rows:
        table.add_row(
            row.system,
            row.backend,
            row.batch,
            f"{row.entries:,}",
            f"{row.entries_per_s:,.0f}",
            f"{percentile(row.latencies_ms, 50):,.2f}",
            f"{percentile(row.latencies_ms, 99):,.2f}",
        )
    return table


def big_table(size: int, build_rate: float, verify_seconds: float, timed: list[Timed]) -> Table:
    table = Table(title=f"A ledger of {size:,} entries on SQLite")
    for header in ("measure", "system", "n", "p50 µs", "p99 µs", "SQL/proof", "nodes/proof"):
        table.add_column(header, justify="left" if header in ("measure", "system") else "right")
    table.add_row("build", "append, 10,000/txn, sync OFF", f"{size:,}", f"{build_rate:,.0f}/s")
    table.add_row(
        "verify_ledger",
        "accord",
        f"{size:,}",
        f"{verify_seconds:,.1f} s",
        f"{size / verify_seconds:,.0f}/s",
    )
    for t in timed:
        table.add_row(
            t.measure,
            t.system,
            str(len(t.latencies_us)),
            f"{t.p(50):,.0f}",
            f"{t.p(99):,.0f}",
            "—" if t.statements is None else f"{t.statements:.1f} ({t.node_reads:.1f} nodes)",
            "—" if t.nodes is None else f"{t.nodes:.1f} (max {t.max_nodes})",
        )
    return table


def _rate(rows: list[AppendRow], system: str) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.system == system:
            figures.setdefault(row.backend, {})[row.batch] = round(row.entries_per_s, 1)
    return figures


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def json_line(
    appends: list[AppendRow],
    per_run: float,
    size: int,
    build_rate: float,
    verify_seconds: float,
    timed: list[Timed],
    quick: bool,
) -> str:
    accord_rates = _rate(appends, "accord ledger")
    chain_rates = _rate(appends, "hash chain")
    w1 = {r.system.removeprefix("accord W1 "): round(r.entries_per_s, 1) for r in appends}
    w1 = {k: v for k, v in w1.items() if k in ("seq", "c16")}
    inclusion, consistency, naive = timed
    alone = accord_rates.get("sqlite", {}).get("256")
    seq_p50_ms = percentile(
        next(r for r in appends if r.system == "accord W1 seq").latencies_ms, 50
    )
    ledger_ms_per_run = None if alone is None else per_run / alone * 1000
    return json.dumps(
        {
            "bench": "ledger",
            "append_entries_per_s": accord_rates,
            "chain_append_entries_per_s": chain_rates,
            "w1_entries_per_s": w1,
            "w1_entries_per_run": round(per_run, 1),
            "verify_entries": size,
            "verify_seconds": round(verify_seconds, 2),
            "verify_entries_per_s": round(size / verify_seconds, 1),
            "build_entries_per_s": round(build_rate, 1),
            "inclusion_p50_us": round(inclusion.p(50), 1),
            "inclusion_p99_us": round(inclusion.p(99), 1),
            "consistency_p50_us": round(consistency.p(50), 1),
            "consistency_p99_us": round(consistency.p(99), 1),
            "inclusion_statements_per_proof": inclusion.statements,
            "consistency_statements_per_proof": consistency.statements,
            "inclusion_node_statements_per_proof": inclusion.node_reads,
            "consistency_node_statements_per_proof": consistency.node_reads,
            "n_inclusion_proofs": len(inclusion.latencies_us),
            "n_consistency_proofs": len(consistency.latencies_us),
            "inclusion_nodes_per_proof": _round(inclusion.nodes, 2),
            "consistency_nodes_per_proof": _round(consistency.nodes, 2),
            "naive_inclusion_p50_us": round(naive.p(50), 1),
            "ratios": {
                "accord_vs_chain_append": {
                    backend: {
                        batch: round(rate / chain_rates[backend][batch], 3)
                        for batch, rate in rates.items()
                    }
                    for backend, rates in accord_rates.items()
                },
                "naive_vs_stored_inclusion_p50": round(naive.p(50) / inclusion.p(50), 1),
                "w1_seq_ledger_ms_per_run_est": (
                    None if ledger_ms_per_run is None else round(ledger_ms_per_run, 3)
                ),
                "w1_seq_ledger_share_est": (
                    None if ledger_ms_per_run is None else round(ledger_ms_per_run / seq_p50_ms, 3)
                ),
            },
            "w1_seq_p50_ms": round(seq_p50_ms, 3),
            "quick": quick,
        },
        separators=(",", ":"),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_BIG:,} entries to verify, fewer of the rest"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    scale = Scale.of(quick=args.quick)
    postgres_url = os.environ.get(PG_URL_VARIABLE, DEFAULT_PG_URL)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="accord-bench-ledger-") as name:
        workdir = Path(name)
        appends, entries, per_run = w1_rows(workdir, scale.w1_runs)
        appends += append_rows(
            "sqlite", f"sqlite:///{workdir / 'appends.db'}", workdir / "keys", entries, scale
        )
        try:
            with postgres_database(postgres_url) as url:
                appends += append_rows("postgresql", url, workdir / "keys", entries, scale)
        except PostgresUnavailableError as exc:
            notes.append(f"{exc}; its rows are skipped (set {PG_URL_VARIABLE} to point elsewhere).")
        with big_ledger(workdir, entries, scale.big) as (accord, build_rate):
            verify_seconds = verify_big(accord, scale.big)
            inclusion, consistency = proofs(accord, scale.big, scale.proofs, scale.proof_budget)
            naive = naive_proofs(accord, scale.big, scale.naive_proofs)
    timed = [inclusion, consistency, naive]
    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    console.print(append_table(appends))
    console.print(big_table(scale.big, build_rate, verify_seconds, timed))
    for note in notes:
        console.print(f"note: {note}", markup=False)
    print(
        json_line(appends, per_run, scale.big, build_rate, verify_seconds, timed, args.quick),
        flush=True,
    )


if __name__ == "__main__":
    main()
