"""Peer implementations of the benchmark workloads on LangGraph and DBOS Transact.

Workloads:

* W1: a linear chain of ten trivial durable steps, each incrementing a counter.
* W2: three trivial steps, a wait for a human approval, then two trivial steps.

Each public function runs one workload on one peer engine, persisting to SQLite
file(s) inside the given working directory, and returns a `PeerResult`. The
peer packages (see ``bench/requirements.txt``) are imported lazily, so this
module imports cleanly where they are not installed, and nothing is created or
registered at import time.
"""

from __future__ import annotations

import functools
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypedDict

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph.state import CompiledStateGraph, StateGraph

W1_STEPS = 10
W2_STEPS_BEFORE = 3
W2_STEPS_AFTER = 2
W2_STEPS = W2_STEPS_BEFORE + W2_STEPS_AFTER
APPROVAL = "approve"

_DBOS_APPROVAL_TOPIC = "approval"
_DBOS_RECV_TIMEOUT_SEC = 600.0
_DBOS_DEFAULT_POLL_SEC = 1.0
_PARK_TIMEOUT_SEC = 60.0
_DESYNC_SEED = 20240601

LangGraphDurability = Literal["sync", "async", "exit"]


@dataclass
class PeerResult:
    """Outcome of one workload run on one peer engine.

    Attributes:
        name: Peer and workload label, e.g. ``"langgraph-w1-c16"``.
        runs: Number of workflow runs completed.
        steps: Number of trivial workload steps executed over all runs.
        seconds: Wall time of the whole workload, engine setup excluded.
        latencies_ms: One latency per run, in run order (see each function).
        bytes_stored: Size of the peer's SQLite file(s) after the workload.
    """

    name: str
    runs: int
    steps: int
    seconds: float
    latencies_ms: list[float]
    bytes_stored: int


def _check_args(n_runs: int, concurrency: int) -> None:
    if n_runs < 0:
        raise ValueError(f"n_runs must be >= 0, got {n_runs}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")


def _run_timed(
    job: Callable[[int], None], n_runs: int, concurrency: int
) -> tuple[float, list[float]]:
    """Run ``job(i)`` for each run index, returning total seconds and latencies."""

    def timed(index: int) -> float:
        start = time.perf_counter()
        job(index)
        return (time.perf_counter() - start) * 1000.0

    start = time.perf_counter()
    if concurrency == 1:
        latencies = [timed(index) for index in range(n_runs)]
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            latencies = list(pool.map(timed, range(n_runs)))
    return time.perf_counter() - start, latencies


def _sqlite_bytes(db_path: Path) -> int:
    """Total size of a SQLite database file and its WAL or rollback journal."""
    total = 0
    for suffix in ("", "-wal", "-journal"):
        part = db_path.with_name(db_path.name + suffix)
        if part.is_file():
            total += part.stat().st_size
    return total


class _CounterState(TypedDict):
    counter: int


class _ApprovalState(_CounterState):
    approved: bool


def _lg_increment(state: _CounterState) -> dict[str, int]:
    return {"counter": state["counter"] + 1}


def _lg_approval(state: _ApprovalState) -> dict[str, bool]:
    from langgraph.types import interrupt

    decision = interrupt({"counter": state["counter"]})
    return {"approved": decision == APPROVAL}


def _lg_chain(builder: StateGraph[Any, Any, Any, Any], names: list[str]) -> None:
    from langgraph.graph import END, START

    for previous, current in zip([START, *names], [*names, END], strict=True):
        builder.add_edge(previous, current)


def _lg_w1_graph(checkpointer: SqliteSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    from langgraph.graph import StateGraph

    builder = StateGraph(_CounterState)
    names = [f"step_{index}" for index in range(W1_STEPS)]
    for name in names:
        builder.add_node(name, _lg_increment)
    _lg_chain(builder, names)
    return builder.compile(checkpointer=checkpointer)


def _lg_w2_graph(checkpointer: SqliteSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    from langgraph.graph import StateGraph

    builder = StateGraph(_ApprovalState)
    before = [f"step_{index}" for index in range(W2_STEPS_BEFORE)]
    after = [f"step_{index}" for index in range(W2_STEPS_BEFORE, W2_STEPS)]
    for name in [*before, *after]:
        builder.add_node(name, _lg_increment)
    builder.add_node("approval", _lg_approval)
    _lg_chain(builder, [*before, "approval", *after])
    return builder.compile(checkpointer=checkpointer)


@contextmanager
def _lg_saver(db_path: Path) -> Iterator[SqliteSaver]:
    """Yield a set-up ``SqliteSaver`` on ``db_path``, closing its connection after.

    A single connection and saver are shared by every worker thread. The
    connection is opened with ``check_same_thread=False`` and ``SqliteSaver``
    serialises all use of it behind its own ``threading.Lock``, which is the
    multi-threaded usage its documentation prescribes.
    """
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(db_path, check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()


def _lg_config(prefix: str) -> RunnableConfig:
    return {"configurable": {"thread_id": f"{prefix}-{uuid.uuid4()}"}}


def langgraph_w1(
    workdir: Path,
    n_runs: int,
    concurrency: int,
    *,
    durability: LangGraphDurability = "async",
) -> PeerResult:
    """Run workload W1 on LangGraph with a SQLite checkpointer.

    Each run invokes a ten-node linear ``StateGraph`` on a fresh thread id;
    every node's state update is checkpointed by ``SqliteSaver`` into
    ``workdir / "langgraph_w1.sqlite"``.

    Args:
        workdir: Empty directory that receives the SQLite database.
        n_runs: Number of graph runs.
        concurrency: 1 runs them one after another; more runs them on a thread
            pool of that size sharing one checkpointer.
        durability: LangGraph durability mode; ``"async"`` is LangGraph's
            default (checkpoints written while the next node runs), ``"sync"``
            commits each checkpoint before the next node starts.

    Returns:
        The result; latencies are each run's ``invoke`` wall time.

    Raises:
        ValueError: If ``n_runs`` is negative or ``concurrency`` below 1.
        RuntimeError: If a run ends with an unexpected counter.
    """
    _check_args(n_runs, concurrency)
    db_path = workdir / "langgraph_w1.sqlite"
    with _lg_saver(db_path) as saver:
        graph = _lg_w1_graph(saver)

        def run(_index: int) -> None:
            out = graph.invoke({"counter": 0}, _lg_config("w1"), durability=durability)
            if out["counter"] != W1_STEPS:
                raise RuntimeError(f"LangGraph W1 run ended with {out!r}")

        seconds, latencies = _run_timed(run, n_runs, concurrency)
    return PeerResult(
        name=f"langgraph-w1-c{concurrency}",
        runs=n_runs,
        steps=n_runs * W1_STEPS,
        seconds=seconds,
        latencies_ms=latencies,
        bytes_stored=_sqlite_bytes(db_path),
    )


def langgraph_w2(
    workdir: Path,
    n_runs: int,
    *,
    durability: LangGraphDurability = "async",
) -> PeerResult:
    """Run workload W2 on LangGraph: steps, ``interrupt()`` approval, steps.

    Runs are sequential. Each run first invokes the graph until the approval
    node interrupts, then resumes it with ``Command(resume=APPROVAL)`` on the
    same thread id; only the resume call is timed.

    Args:
        workdir: Empty directory that receives the SQLite database.
        n_runs: Number of graph runs.
        durability: LangGraph durability mode, as in `langgraph_w1`.

    Returns:
        The result; latencies are from the resume call to the graph's
        completion, and seconds covers both halves of every run.

    Raises:
        ValueError: If ``n_runs`` is negative.
        RuntimeError: If a run does not interrupt, or ends in an unexpected
            state.
    """
    from langgraph.types import Command

    _check_args(n_runs, 1)
    db_path = workdir / "langgraph_w2.sqlite"
    latencies: list[float] = []
    with _lg_saver(db_path) as saver:
        graph = _lg_w2_graph(saver)
        start = time.perf_counter()
        for _ in range(n_runs):
            config = _lg_config("w2")
            parked = graph.invoke({"counter": 0, "approved": False}, config, durability=durability)
            if "__interrupt__" not in parked:
                raise RuntimeError(f"LangGraph W2 run did not interrupt: {parked!r}")
            resumed = time.perf_counter()
            out = graph.invoke(Command(resume=APPROVAL), config, durability=durability)
            latencies.append((time.perf_counter() - resumed) * 1000.0)
            if out["counter"] != W2_STEPS or not out["approved"]:
                raise RuntimeError(f"LangGraph W2 run ended with {out!r}")
        seconds = time.perf_counter() - start
    return PeerResult(
        name="langgraph-w2",
        runs=n_runs,
        steps=n_runs * W2_STEPS,
        seconds=seconds,
        latencies_ms=latencies,
        bytes_stored=_sqlite_bytes(db_path),
    )


class _DbosWorkflows(NamedTuple):
    w1: Callable[[], int]
    w2: Callable[[], int]


@functools.cache
def _dbos_workflows() -> _DbosWorkflows:
    """Register the DBOS steps and workflows, once per process.

    DBOS keeps registrations in a process-wide registry that survives
    ``DBOS.destroy()`` (its default keeps the registry), so later DBOS
    instances in the same process reuse these functions.
    """
    from dbos import DBOS

    @DBOS.step(name="accord_bench.increment")
    def increment(counter: int) -> int:
        return counter + 1

    @DBOS.workflow(name="accord_bench.w1")
    def w1() -> int:
        counter = 0
        for _ in range(W1_STEPS):
            counter = increment(counter)
        return counter

    @DBOS.workflow(name="accord_bench.w2")
    def w2() -> int:
        counter = 0
        for _ in range(W2_STEPS_BEFORE):
            counter = increment(counter)
        decision = DBOS.recv(_DBOS_APPROVAL_TOPIC, timeout_seconds=_DBOS_RECV_TIMEOUT_SEC)
        if decision != APPROVAL:
            raise RuntimeError(f"DBOS W2 workflow got decision {decision!r}")
        for _ in range(W2_STEPS_AFTER):
            counter = increment(counter)
        return counter

    return _DbosWorkflows(w1=w1, w2=w2)


@contextmanager
def _dbos_session(
    db_path: Path, *, wal: bool, poll_interval_sec: float | None = None
) -> Iterator[_DbosWorkflows]:
    """Launch DBOS on a SQLite system database, destroying it on exit.

    With ``wal`` the database file is switched to WAL journaling before DBOS
    opens it; the mode is persistent, so DBOS's own connections inherit it.
    """
    from dbos import DBOS, DBOSConfig

    workflows = _dbos_workflows()
    if wal:
        with closing(sqlite3.connect(db_path)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    config: DBOSConfig = {
        "name": "accord-bench-peer",
        "system_database_url": f"sqlite:///{db_path}",
        "log_level": "WARNING",
    }
    if poll_interval_sec is not None:
        config["notification_listener_polling_interval_sec"] = poll_interval_sec
    DBOS(config=config)
    try:
        DBOS.launch()
        yield workflows
    finally:
        DBOS.destroy()


def _dbos_wait_parked(workflow_id: str) -> None:
    """Block until the workflow is waiting inside ``DBOS.recv``.

    ``DBOS.recv`` registers its in-memory waiter and then checkpoints its
    timeout as a ``DBOS.sleep`` step before it blocks, so that step being
    recorded means a message sent now is delivered to a parked workflow.
    """
    from dbos import DBOS

    deadline = time.monotonic() + _PARK_TIMEOUT_SEC
    while time.monotonic() < deadline:
        steps = DBOS.list_workflow_steps(workflow_id, load_output=False)
        if any(step["function_name"] == "DBOS.sleep" for step in steps):
            return
        time.sleep(0.001)
    raise RuntimeError(f"DBOS workflow {workflow_id} never reached recv()")


def dbos_w1(workdir: Path, n_runs: int, concurrency: int, *, wal: bool = False) -> PeerResult:
    """Run workload W1 on DBOS Transact with a SQLite system database.

    Each run calls a workflow that invokes a trivial ``@DBOS.step()`` ten
    times in sequence, each step checkpointed in
    ``workdir / "dbos_w1.sqlite"``. DBOS is launched before and destroyed
    after the workload, so the function may be called repeatedly in one
    process.

    Args:
        workdir: Empty directory that receives the SQLite database.
        n_runs: Number of workflow runs.
        concurrency: 1 runs them one after another; more calls the workflow
            from a thread pool of that size.
        wal: Put the database in WAL mode first; DBOS itself leaves SQLite in
            its default rollback-journal mode.

    Returns:
        The result; latencies are each workflow call's wall time.

    Raises:
        ValueError: If ``n_runs`` is negative or ``concurrency`` below 1.
        RuntimeError: If a run returns an unexpected counter.
    """
    _check_args(n_runs, concurrency)
    db_path = workdir / "dbos_w1.sqlite"
    with _dbos_session(db_path, wal=wal) as workflows:

        def run(_index: int) -> None:
            counter = workflows.w1()
            if counter != W1_STEPS:
                raise RuntimeError(f"DBOS W1 run returned {counter!r}")

        seconds, latencies = _run_timed(run, n_runs, concurrency)
    return PeerResult(
        name=f"dbos-w1-c{concurrency}",
        runs=n_runs,
        steps=n_runs * W1_STEPS,
        seconds=seconds,
        latencies_ms=latencies,
        bytes_stored=_sqlite_bytes(db_path),
    )


def dbos_w2(
    workdir: Path,
    n_runs: int,
    *,
    wal: bool = False,
    poll_interval_sec: float | None = None,
    desync_delivery: bool = True,
) -> PeerResult:
    """Run workload W2 on DBOS Transact: steps, ``DBOS.recv()`` approval, steps.

    Runs are sequential. Each run starts the workflow with
    ``DBOS.start_workflow``, waits until it is parked in ``DBOS.recv``, then
    times ``DBOS.send`` of the approval up to the handle's result.

    On SQLite, DBOS wakes a parked ``recv`` from a background poller ticking
    every ``notification_listener_polling_interval_sec`` (1 s by default),
    which dominates the resume latency. Back-to-back runs would send each
    approval just after the tick that finished the previous run, i.e. a
    near-worst-case wait; ``desync_delivery`` sleeps a seeded random fraction
    of the interval (untimed) before each send, so decisions arrive at
    arbitrary points of the poll cycle as real approvals would.

    Args:
        workdir: Empty directory that receives the SQLite database.
        n_runs: Number of workflow runs.
        wal: Put the database in WAL mode first, as in `dbos_w1`.
        poll_interval_sec: Override for DBOS's notification polling interval;
            None keeps the DBOS default.
        desync_delivery: Delay each send by a random part of the interval.

    Returns:
        The result; latencies are from ``DBOS.send`` to the workflow's
        result, and seconds covers every run end to end, delays included.

    Raises:
        ValueError: If ``n_runs`` is negative.
        RuntimeError: If a workflow never parks or returns an unexpected
            counter.
    """
    from dbos import DBOS

    _check_args(n_runs, 1)
    db_path = workdir / "dbos_w2.sqlite"
    interval = _DBOS_DEFAULT_POLL_SEC if poll_interval_sec is None else poll_interval_sec
    rng = random.Random(_DESYNC_SEED)
    latencies: list[float] = []
    with _dbos_session(db_path, wal=wal, poll_interval_sec=poll_interval_sec) as workflows:
        start = time.perf_counter()
        for _ in range(n_runs):
            handle = DBOS.start_workflow(workflows.w2)
            workflow_id = handle.get_workflow_id()
            _dbos_wait_parked(workflow_id)
            if desync_delivery:
                time.sleep(rng.uniform(0.0, interval))
            sent = time.perf_counter()
            DBOS.send(workflow_id, APPROVAL, _DBOS_APPROVAL_TOPIC)
            counter = handle.get_result()
            latencies.append((time.perf_counter() - sent) * 1000.0)
            if counter != W2_STEPS:
                raise RuntimeError(f"DBOS W2 run returned {counter!r}")
        seconds = time.perf_counter() - start
    return PeerResult(
        name="dbos-w2",
        runs=n_runs,
        steps=n_runs * W2_STEPS,
        seconds=seconds,
        latencies_ms=latencies,
        bytes_stored=_sqlite_bytes(db_path),
    )
