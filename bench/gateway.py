"""The price of governance: one pass through the gateway, and W1 with and without it.

Run it with ``./run bench gateway [--quick]``; ``bench/README.md`` explains the measurements, the
tables and the closing JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import _peers
import cedarpy
import sqlalchemy as sa
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from runtime import (
    CONCURRENCY,
    DEFAULT_PG_URL,
    MAX_IDLE_ROUNDS,
    PG_URL_VARIABLE,
    WIDE_OUTPUT,
    FinishProbe,
    PostgresUnavailableError,
    _ms_since,
    percentile,
    postgres_bytes,
    postgres_database,
    sqlite_bytes,
)

from accord.connectors import CallContext, CapabilityRegistry
from accord.core import TenantId
from accord.gateway import Executed, Gateway, GatewaySession, Governance, Invocation
from accord.journeys import JourneyBuilder, JourneySpec
from accord.policy import Entity, PolicyBundle, PolicyRequest, to_cedar
from accord.runtime import Runtime
from accord.service import Accord, Settings, build
from accord.storage import decisions

TENANT = TenantId("default")
SUBJECT = "cust-bench-1"
PURPOSE = "dpv:ServiceProvision"
CAPABILITY = "bench.echo"
JOURNEY = "bench_gateway_w1"
CHANNEL = "portal"
RISK_TIER = "low"
EMAIL = "ada@example.com"
RESOURCE = {"region": "eu", "tier": "gold"}
W1_STEPS = _peers.W1_STEPS

DEFAULT_PASSES = 5000
QUICK_PASSES = 1000
DEFAULT_RUNS = 200
QUICK_RUNS = 30
WARMUP_PASSES = 200
WARMUP_RUNS = 5
ROUNDS = 2

RATIO_GOAL = 1.5

Backend = Literal["sqlite", "postgresql"]
Mode = Literal["seq", "c16"]

progress = Console(stderr=True)

SCHEMA = """namespace Accord {
  entity Service = { role: String, tier?: String, journey?: String };
  entity Agent = { role: String, tier?: String, model?: String };
  entity Person = { role: String, tier?: String };
  entity Subject = { region?: String, tier?: String };
  type CallContext = {
    purpose?: String, journey?: String, block?: String, channel?: String, time?: Long,
    side_effect?: String, region?: String, amount?: decimal, risk_tier?: String,
    confidence?: decimal
  };
  action "bench.echo", "orders.lookup", "payments.refund", "notify.send", "crm.update_email",
         "helpdesk.resolve"
    appliesTo { principal: [Service, Agent, Person], resource: [Subject], context: CallContext };
}
"""

POLICIES = """
@id("bench-echo-for-journeys")
permit (
  principal is Accord::Service,
  action == Accord::Action::"bench.echo",
  resource is Accord::Subject
)
when {
  context has purpose && context.purpose == "dpv:ServiceProvision" &&
  context has amount && context.amount.lessThanOrEqual(decimal("5000.00"))
};

@id("no-echo-at-high-risk")
forbid (principal, action == Accord::Action::"bench.echo", resource)
when { context has risk_tier && context.risk_tier == "high" };

@id("data-stays-in-its-region")
forbid (principal, action, resource)
when { context has region && resource has region && context.region != resource.region };

@id("lookups-name-a-purpose")
permit (principal is Accord::Service, action == Accord::Action::"orders.lookup", resource)
when { context has purpose };

@id("small-refunds")
@notify("customer")
permit (principal is Accord::Service, action == Accord::Action::"payments.refund", resource)
when { context has amount && context.amount.lessThanOrEqual(decimal("100.00")) };

@id("large-refunds-with-a-supervisor")
@approval("supervisor")
@notify("customer")
permit (principal is Accord::Service, action == Accord::Action::"payments.refund", resource)
when { context has amount && context.amount.greaterThan(decimal("100.00")) };

@id("no-refunds-at-high-risk")
forbid (principal, action == Accord::Action::"payments.refund", resource)
when { context has risk_tier && context.risk_tier == "high" };

@id("agents-message-when-confident")
permit (principal is Accord::Agent, action == Accord::Action::"notify.send", resource)
when { context has confidence && context.confidence.greaterThanOrEqual(decimal("0.80")) };

@id("journeys-keep-contact-details")
@redact("pd:TelephoneNumber")
permit (
  principal is Accord::Service,
  action in [Accord::Action::"crm.update_email", Accord::Action::"notify.send"],
  resource
);

@id("support-resolves-tickets")
permit (principal is Accord::Person, action == Accord::Action::"helpdesk.resolve", resource)
when { principal.role == "support" };

@id("agents-never-irreversible")
forbid (principal is Accord::Agent, action, resource)
when { context has side_effect && context.side_effect == "irreversible" };
"""


class EchoIn(BaseModel):
    value: int


class EchoOut(BaseModel):
    value: int
    email: str


def bench_capabilities(probe: FinishProbe) -> CapabilityRegistry:
    """``bench.echo``: returns its value and an e-mail address, so a call reads personal data."""
    registry = CapabilityRegistry()

    @registry.capability(CAPABILITY, fields={"email": "pd:EmailAddress"})
    def echo(request: EchoIn, context: CallContext) -> EchoOut:
        probe.saw(context)
        return EchoOut(value=request.value, email=EMAIL)

    return registry


def amount(index: int) -> float:
    """A different amount for every pass or run, always within the permit's limit."""
    return 12.5 + (index * 7.25) % 4900


def put_governance_in_place(accord: Accord) -> PolicyBundle:
    """Consent grants for the subject, one switched-off kill switch, and the policy bundle."""
    accord.consent.grant(
        TENANT, SUBJECT, purpose=PURPOSE, categories=["pd:EmailAddress", "pd:Name"], actor="bench"
    )
    accord.consent.grant(
        TENANT, SUBJECT, purpose="dpv:Marketing", categories=["pd:EmailAddress"], actor="bench"
    )
    accord.set_flag(
        "capability:payments.refund", False, actor="bench", reason="an unrelated switch is off"
    )
    return accord.policies.deploy(
        TENANT, POLICIES, SCHEMA, source_name="bench/gateway.py", actor="bench"
    )


def _settings(url: str) -> Settings:
    return Settings(database_url=url, sqlite_synchronous="FULL")


# -- gateway pass ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassRow:
    """One measured line of the pass table; latencies in microseconds."""

    key: str
    label: str
    latencies_us: list[float]

    @property
    def per_s(self) -> float:
        return len(self.latencies_us) / (sum(self.latencies_us) / 1e6)

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_us, q)


def invocation(index: int) -> Invocation:
    """The call a W1 block makes, with its own run id and amount."""
    run_id = f"run_pass_{index}"
    call = CallContext(
        tenant_id=TENANT,
        run_id=run_id,
        block="echo",
        visit=1,
        attempt=1,
        idempotency_key=f"{run_id}/echo/1",
        subject_id=SUBJECT,
        purpose=PURPOSE,
    )
    return Invocation(
        capability=CAPABILITY,
        payload={"value": index},
        call=call,
        journey=JOURNEY,
        channel=CHANNEL,
        context={"amount": amount(index), "risk_tier": RISK_TIER},
        resource=RESOURCE,
    )


def policy_request(index: int, now: float) -> PolicyRequest:
    """The request the gateway puts to the decision point for ``invocation(index)``."""
    principal = Entity(
        "Service",
        f"journey/{JOURNEY}",
        {"role": "journey", "tier": "automated", "journey": JOURNEY},
    )
    context = {
        "purpose": PURPOSE,
        "journey": JOURNEY,
        "block": "echo",
        "channel": CHANNEL,
        "time": int(now),
        "side_effect": "read",
        "amount": amount(index),
        "risk_tier": RISK_TIER,
    }
    return PolicyRequest(principal, CAPABILITY, Entity("Subject", SUBJECT, RESOURCE), context)


def timed(count: int, one: Callable[[int], Any], check: Callable[[Any], None]) -> list[float]:
    """Time ``one(i)`` for each index, in µs; ``check`` judges each result outside the timing."""
    latencies: list[float] = []
    for index in range(count):
        started = time.perf_counter_ns()
        result = one(index)
        latencies.append((time.perf_counter_ns() - started) / 1000.0)
        check(result)
    return latencies


def _executed(session: GatewaySession) -> None:
    [record] = session.records
    if record.outcome != "executed":
        raise RuntimeError(f"a governed pass ended {record.outcome} ({record.reason})")


def _ungoverned_executed(outcome: Any) -> None:
    if not isinstance(outcome, Executed) or outcome.output.get("email") != EMAIL:
        raise RuntimeError(f"an ungoverned pass gave {outcome!r}")


def _allowed(result: Any) -> None:
    if getattr(result, "allowed", None) is not True:
        raise RuntimeError(f"the policy did not allow the bench request: {result!r}")


def _stored_decisions(accord: Accord) -> int:
    with accord.db.read() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM decisions")).scalar_one())


class PassBench:
    """The pass measurements on one governed and one ungoverned Accord."""

    def __init__(self, governed: Accord, ungoverned: Accord, bundle: PolicyBundle) -> None:
        self.governed = governed
        self.ungoverned = ungoverned
        self.bundle = bundle
        governance = governed.gateway.governance
        assert governance is not None
        self.governance: Governance = governance

    @staticmethod
    def _pass(gateway: Gateway, count: int) -> Callable[[int], GatewaySession]:
        calls = [invocation(index) for index in range(count)]

        def one(index: int) -> GatewaySession:
            session = gateway.session(TENANT, SUBJECT)
            session.invoke(calls[index], now=time.time())
            return session

        return one

    def governed_pass(self, count: int) -> PassRow:
        one = self._pass(self.governed.gateway, count)
        return PassRow("pass", "governed pass", timed(count, one, _executed))

    def governed_pass_warm(self, count: int) -> PassRow:
        """The pass a transition's later calls take: its session read the snapshot already."""
        gateway = self.governed.gateway
        calls = [invocation(index) for index in range(count)]
        sessions = []
        for _ in range(count):
            session = gateway.session(TENANT, SUBJECT)
            session.snapshot(self.governance)
            sessions.append(session)

        def one(index: int) -> GatewaySession:
            session = sessions[index]
            session.invoke(calls[index], now=time.time())
            return session

        return PassRow(
            "pass_warm", "  pass with the snapshot already read", timed(count, one, _executed)
        )

    def governed_pass_recorded(self, count: int) -> PassRow:
        one_pass = self._pass(self.governed.gateway, count)
        db = self.governed.db

        def one(index: int) -> GatewaySession:
            session = one_pass(index)
            with db.transaction() as connection:
                decisions.insert_decisions(connection, TENANT, session.records)
            return session

        before = _stored_decisions(self.governed)
        latencies = timed(count, one, _executed)
        stored = _stored_decisions(self.governed) - before
        if stored != count:
            raise RuntimeError(f"{count} recorded passes stored {stored} decision records")
        return PassRow("pass_record", "governed pass + durable record", latencies)

    def ungoverned_pass(self, count: int) -> PassRow:
        gateway = self.ungoverned.gateway
        calls = [invocation(index) for index in range(count)]

        def one(index: int) -> Any:
            return gateway.session(TENANT, SUBJECT).invoke(calls[index], now=time.time())

        return PassRow("ungoverned", "ungoverned pass", timed(count, one, _ungoverned_executed))

    def snapshot_read(self, count: int) -> PassRow:
        gateway = self.governed.gateway

        def one(_: int) -> Any:
            return gateway.session(TENANT, SUBJECT).snapshot(self.governance)

        def check(snapshot: Any) -> None:
            if snapshot.bundle is None or snapshot.consent is None:
                raise RuntimeError("the session snapshot lacks the bundle or the consent")

        return PassRow("snapshot", "  session snapshot read", timed(count, one, check))

    def decision_point(self, count: int) -> PassRow:
        now = time.time()
        requests = [policy_request(index, now) for index in range(count)]
        pdp = self.governed.pdp

        def one(index: int) -> Any:
            return pdp.decide(self.bundle, requests[index])

        return PassRow("pdp", "  policy decision point", timed(count, one, _allowed))

    def cedar_floor(self, count: int) -> PassRow:
        now = time.time()
        prepared = [to_cedar(policy_request(index, now)) for index in range(count)]
        entities = cedarpy.Entities.from_json_str(json.dumps(prepared[0][1]))
        policy_set = self.bundle.policy_set

        def one(index: int) -> Any:
            return cedarpy.is_authorized(prepared[index][0], policy_set, entities)

        return PassRow("cedar", "  cedarpy.is_authorized (floor)", timed(count, one, _allowed))

    def warm_up(self) -> None:
        self.governed_pass(WARMUP_PASSES)
        self.governed_pass_warm(WARMUP_PASSES)
        self.governed_pass_recorded(WARMUP_PASSES)
        self.ungoverned_pass(WARMUP_PASSES)
        self.cedar_floor(WARMUP_PASSES)

    def rows(self, count: int) -> list[PassRow]:
        progress.print("gateway pass: warming up")
        self.warm_up()
        rows = []
        for name, measure in (
            ("governed", self.governed_pass),
            ("governed + durable record", self.governed_pass_recorded),
            ("ungoverned", self.ungoverned_pass),
            ("snapshot read", self.snapshot_read),
            ("governed, snapshot already read", self.governed_pass_warm),
            ("decision point", self.decision_point),
            ("cedar", self.cedar_floor),
        ):
            progress.print(f"gateway pass: {name}, {count} passes")
            rows.append(measure(count))
        return rows


def pass_rows(workdir: Path, count: int) -> list[PassRow]:
    probe = FinishProbe()
    with (
        build(
            _settings(f"sqlite:///{workdir / 'pass.db'}"), capabilities=bench_capabilities(probe)
        ) as governed,
        build(
            _settings(f"sqlite:///{workdir / 'pass-ungoverned.db'}"),
            capabilities=bench_capabilities(probe),
            governed=False,
        ) as ungoverned,
    ):
        bundle = put_governance_in_place(governed)
        return PassBench(governed, ungoverned, bundle).rows(count)


# -- W1 with and without governance ------------------------------------------------------------


def w1_spec() -> JourneySpec:
    """Ten tasks calling ``bench.echo``, each for a purpose and with an amount in its context."""
    builder = JourneyBuilder(JOURNEY).input(value="integer", amount="number")
    for index in range(W1_STEPS):
        source = "input.value" if index == 0 else f"steps.step_{index - 1}.value"
        builder.task(
            f"step_{index}",
            CAPABILITY,
            input={"value": source},
            purpose=PURPOSE,
            context={"amount": "input.amount", "risk_tier": f"'{RISK_TIER}'"},
            resource={key: f"'{value}'" for key, value in RESOURCE.items()},
        )
    return builder.build()


@dataclass
class W1Target:
    """A wired Accord on one database with W1 deployed, governed or not."""

    backend: Backend
    governed: bool
    accord: Accord
    probe: FinishProbe
    stored_bytes: Callable[[], int]

    @property
    def runtime(self) -> Runtime:
        return self.accord.runtime

    @property
    def label(self) -> str:
        return f"{self.backend}/{'governed' if self.governed else 'ungoverned'}"


@contextmanager
def w1_target(
    backend: Backend, url: str, stored_bytes: Callable[[Accord], int], *, governed: bool
) -> Iterator[W1Target]:
    probe = FinishProbe()
    with build(_settings(url), capabilities=bench_capabilities(probe), governed=governed) as accord:
        accord.runtime.catalog.deploy(TENANT, w1_spec(), deployed_by="bench")
        put_governance_in_place(accord)
        yield W1Target(backend, governed, accord, probe, lambda: stored_bytes(accord))


@dataclass
class Sample:
    """Part of a W1 measurement: latencies in ms, wall seconds, transitions, the runs."""

    latencies_ms: list[float]
    seconds: float
    transitions: int
    run_ids: list[str]
    bytes_grown: int


def _start(runtime: Runtime, index: int) -> str:
    return runtime.start(
        TENANT, JOURNEY, input={"value": 0, "amount": amount(index)}, subject=SUBJECT
    ).run_id


def w1_sequential(target: W1Target, runs: int) -> Sample:
    """Start a run, drive it to completion with an embedded worker, then the next."""
    runtime = target.runtime
    before = target.stored_bytes()
    run_ids: list[str] = []
    latencies: list[float] = []
    transitions = 0
    began = time.perf_counter()
    for index in range(runs):
        started = time.perf_counter()
        run_ids.append(_start(runtime, index))
        transitions += runtime.drive()
        latencies.append(_ms_since(started))
    seconds = time.perf_counter() - began
    return Sample(latencies, seconds, transitions, run_ids, target.stored_bytes() - before)


def w1_concurrent(target: W1Target, runs: int) -> Sample:
    """Keep ``CONCURRENCY`` runs in flight on one worker, as bench/runtime.py does.

    A run is complete when its last block has executed: the worker commits that transition in
    the same ``step()``. Every run's status is read back afterwards, outside the timing.
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
            run_id = _start(runtime, len(run_ids))
            in_flight[run_id] = time.perf_counter()
            run_ids.append(run_id)
        idle_rounds = 0 if worker.step() else idle_rounds + 1
        if idle_rounds > MAX_IDLE_ROUNDS:
            raise RuntimeError(f"the worker stopped making progress with {len(in_flight)} runs")
        for run_id in target.probe.drain():
            latencies.append(_ms_since(in_flight.pop(run_id)))
    seconds = time.perf_counter() - began
    worker.release_all()
    return Sample(
        latencies, seconds, worker.stats.transitions, run_ids, target.stored_bytes() - before
    )


def check_runs(target: W1Target, run_ids: list[str]) -> None:
    """Every run completed; a governed run left ten executed decisions, an ungoverned none."""
    runtime = target.runtime
    wanted = W1_STEPS if target.governed else 0
    for run_id in run_ids:
        status = runtime.get(TENANT, run_id).status
        if status != "completed":
            raise RuntimeError(f"{target.label}: run {run_id} ended {status}, not completed")
        taken = runtime.decisions(TENANT, run_id)
        executed = sum(1 for d in taken if d.outcome == "executed")
        if len(taken) != wanted or executed != wanted:
            raise RuntimeError(
                f"{target.label}: run {run_id} has {len(taken)} decision records "
                f"({executed} executed), expected {wanted}"
            )


@dataclass(frozen=True)
class W1Row:
    """One measured line of the W1 table."""

    backend: Backend
    mode: Mode
    governed: bool
    latencies_ms: list[float]
    seconds: float
    transitions: int
    bytes_grown: int

    @property
    def runs(self) -> int:
        return len(self.latencies_ms)

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.seconds

    @property
    def transitions_per_run(self) -> float:
        return self.transitions / self.runs

    @property
    def bytes_per_run(self) -> float:
        return self.bytes_grown / self.runs

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


MEASURES: dict[Mode, Callable[[W1Target, int], Sample]] = {
    "seq": w1_sequential,
    "c16": w1_concurrent,
}


def w1_rows(targets: tuple[W1Target, W1Target], runs: int) -> list[W1Row]:
    """Both modes on the ungoverned and the governed target, alternating in ``ROUNDS`` rounds."""
    backend = targets[0].backend
    for target in targets:
        progress.print(f"W1 {target.label}: warming up")
        for measure in MEASURES.values():
            check_runs(target, measure(target, WARMUP_RUNS).run_ids)
    rows = []
    per_round = [runs // ROUNDS + (1 if r < runs % ROUNDS else 0) for r in range(ROUNDS)]
    for mode, measure in MEASURES.items():
        samples: dict[bool, list[Sample]] = {False: [], True: []}
        for count in per_round:
            for target in targets:
                progress.print(f"W1 {target.label}: {mode}, {count} runs")
                sample = measure(target, count)
                check_runs(target, sample.run_ids)
                samples[target.governed].append(sample)
        for governed, parts in samples.items():
            rows.append(
                W1Row(
                    backend,
                    mode,
                    governed,
                    [ms for part in parts for ms in part.latencies_ms],
                    sum(part.seconds for part in parts),
                    sum(part.transitions for part in parts),
                    sum(part.bytes_grown for part in parts),
                )
            )
    return rows


def _size_of(path: Path) -> Callable[[Accord], int]:
    return lambda _: sqlite_bytes(path)


def sqlite_w1_rows(workdir: Path, runs: int) -> list[W1Row]:
    with ExitStack() as stack:
        targets = []
        for governed in (False, True):
            path = workdir / f"w1-{'governed' if governed else 'ungoverned'}.db"
            targets.append(
                stack.enter_context(
                    w1_target("sqlite", f"sqlite:///{path}", _size_of(path), governed=governed)
                )
            )
        return w1_rows((targets[0], targets[1]), runs)


def postgres_w1_rows(server_url: str, runs: int) -> list[W1Row]:
    with ExitStack() as stack:
        targets = []
        for governed in (False, True):
            url = stack.enter_context(postgres_database(server_url))
            targets.append(
                stack.enter_context(w1_target("postgresql", url, postgres_bytes, governed=governed))
            )
        return w1_rows((targets[0], targets[1]), runs)


# -- output ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def pass_table(rows: list[PassRow]) -> Table:
    table = Table(
        title="One gateway pass, SQLite file (new session per pass, a new amount every pass)"
    )
    table.add_column("measure")
    for header in ("passes", "decisions/s", "p50 µs", "p99 µs"):
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(
            row.label,
            str(len(row.latencies_us)),
            _fmt(row.per_s, 0),
            _fmt(row.percentile(50), 1),
            _fmt(row.percentile(99), 1),
        )
    return table


def w1_table(rows: list[W1Row]) -> Table:
    table = Table(title="W1 (ten tasks reading pd:EmailAddress) with and without governance")
    headers = ("db", "mode", "gateway", "runs", "runs/s", "p50 ms", "p99 ms", "trans/run")
    for header in (*headers, "B/run", "cost x"):
        table.add_column(header, justify="left" if header in ("db", "gateway") else "right")
    for row in rows:
        ratio = w1_ratio(rows, row.backend, row.mode) if row.governed else None
        table.add_row(
            row.backend,
            row.mode,
            "governed" if row.governed else "ungoverned",
            str(row.runs),
            _fmt(row.runs_per_s, 1),
            _fmt(row.percentile(50), 2),
            _fmt(row.percentile(99), 2),
            _fmt(row.transitions_per_run, 1),
            _fmt(row.bytes_per_run, 0),
            "" if ratio is None else f"{ratio:.2f}",
        )
    return table


def _w1_row(rows: list[W1Row], backend: Backend, mode: Mode, *, governed: bool) -> W1Row | None:
    for row in rows:
        if (row.backend, row.mode, row.governed) == (backend, mode, governed):
            return row
    return None


def w1_ratio(rows: list[W1Row], backend: Backend, mode: Mode) -> float | None:
    """Governed cost per run ÷ ungoverned: ungoverned runs/s ÷ governed runs/s."""
    governed = _w1_row(rows, backend, mode, governed=True)
    ungoverned = _w1_row(rows, backend, mode, governed=False)
    if governed is None or ungoverned is None:
        return None
    return ungoverned.runs_per_s / governed.runs_per_s


def _p50_ratio(rows: list[W1Row], backend: Backend, mode: Mode) -> float | None:
    governed = _w1_row(rows, backend, mode, governed=True)
    ungoverned = _w1_row(rows, backend, mode, governed=False)
    if governed is None or ungoverned is None:
        return None
    return governed.percentile(50) / ungoverned.percentile(50)


def _verdict(met: bool) -> str:
    return "[green]met[/]" if met else "[red]not met[/]"


def _short(backend: Backend) -> str:
    return "pg" if backend == "postgresql" else backend


def print_goals(console: Console, rows: list[W1Row]) -> dict[str, bool]:
    goals: dict[str, bool] = {}
    for backend in ("sqlite", "postgresql"):
        for mode in MEASURES:
            ratio = w1_ratio(rows, backend, mode)
            if ratio is None:
                continue
            key = f"w1_{_short(backend)}_{mode}"
            goals[key] = ratio <= RATIO_GOAL
            governed = _w1_row(rows, backend, mode, governed=True)
            ungoverned = _w1_row(rows, backend, mode, governed=False)
            assert governed is not None and ungoverned is not None
            console.print(
                f"W1 {mode} on {backend}: governed {governed.runs_per_s:,.1f} runs/s vs "
                f"ungoverned {ungoverned.runs_per_s:,.1f}: costs {ratio:.2f}x per run "
                f"(p50 {_p50_ratio(rows, backend, mode):.2f}x); goal ≤ {RATIO_GOAL:g}x: "
                f"{_verdict(goals[key])}"
            )
    return goals


def json_line(
    pass_rows: list[PassRow], w1: list[W1Row], goals: dict[str, bool], passes: int, runs: int
) -> str:
    figures: dict[str, Any] = {"bench": "gateway"}
    for measured in pass_rows:
        figures[f"{measured.key}_per_s"] = round(measured.per_s, 1)
        figures[f"{measured.key}_p50_us"] = round(measured.percentile(50), 1)
        figures[f"{measured.key}_p99_us"] = round(measured.percentile(99), 1)
    for backend in ("sqlite", "postgresql"):
        for mode in MEASURES:
            ratio = w1_ratio(w1, backend, mode)
            figures[f"w1_{_short(backend)}_{mode}_ratio"] = (
                None if ratio is None else round(ratio, 3)
            )
    details: dict[str, dict[str, float]] = {}
    for row in w1:
        side = "gov" if row.governed else "ungov"
        figures_of = details.setdefault(f"{_short(row.backend)}_{row.mode}", {})
        figures_of[f"{side}_runs_per_s"] = round(row.runs_per_s, 2)
        figures_of[f"{side}_p50_ms"] = round(row.percentile(50), 3)
        figures_of[f"{side}_p99_ms"] = round(row.percentile(99), 3)
        figures_of[f"{side}_transitions_per_run"] = round(row.transitions_per_run, 2)
    figures["w1"] = details
    figures["ratio_goal"] = RATIO_GOAL
    figures["goals_met"] = goals
    figures["n_passes"] = passes
    figures["n_runs"] = runs
    figures["concurrency"] = CONCURRENCY
    return json.dumps(figures, separators=(",", ":"))


def measure_all(
    workdir: Path, passes: int, runs: int, postgres_url: str
) -> tuple[list[PassRow], list[W1Row], list[str]]:
    """Every row, and notes on what was skipped."""
    passes_measured = pass_rows(workdir, passes)
    w1 = sqlite_w1_rows(workdir, runs)
    notes = [
        "every pass opens a new session, so the snapshot read (consent, policy version, flag "
        "version) is paid each time and the session's policy memo never hits; the amount "
        "differs on every pass as well.",
        "decisions/s = passes ÷ the sum of their timed durations; W1 runs/s = runs ÷ wall time.",
    ]
    try:
        w1 += postgres_w1_rows(postgres_url, runs)
    except PostgresUnavailableError as exc:
        notes.append(f"{exc}; its W1 rows are skipped (set {PG_URL_VARIABLE} to point elsewhere).")
    return passes_measured, w1, notes


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
        help=f"{QUICK_PASSES} passes per measure and {QUICK_RUNS} W1 runs per row",
    )
    parser.add_argument(
        "--passes", type=_positive, help=f"passes per measure (default {DEFAULT_PASSES})"
    )
    parser.add_argument("--runs", type=_positive, help=f"W1 runs per row (default {DEFAULT_RUNS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    passes: int = args.passes or (QUICK_PASSES if args.quick else DEFAULT_PASSES)
    runs: int = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    postgres_url = os.environ.get(PG_URL_VARIABLE, DEFAULT_PG_URL)
    with tempfile.TemporaryDirectory(prefix="accord-bench-gateway-") as workdir:
        passes_measured, w1, notes = measure_all(Path(workdir), passes, runs, postgres_url)
    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    console.print(pass_table(passes_measured))
    console.print(w1_table(w1))
    for note in notes:
        console.print(f"note: {note}", markup=False)
    goals = print_goals(console, w1)
    print(json_line(passes_measured, w1, goals, passes, runs), flush=True)


if __name__ == "__main__":
    main()
