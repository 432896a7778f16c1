"""Traces: a run's spans exported over OTLP/HTTP to a receiver in the test, forming
run → block → gateway → connector, with the trace id carried to the sandbox service."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from accord.connectors import load_catalogue
from accord.consent import validate_categories
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage._schema import outbox, runs
from accord.telemetry import Telemetry, Tracing
from accord.testing import FrozenClock
from tests.governance import PERMIT_ALL, deploy_policies
from tests.sandbox_process import ORDER, sandbox_process

ROOT = Path(__file__).parents[2]
CATALOGUE = ROOT / "examples" / "capabilities" / "sandbox.yaml"
T = TenantId("default")
PURPOSE = "dpv:CustomerRelationshipManagement"

LOOKUP = f"""
journey: lookup
purpose: {PURPOSE}
input: {{customer: string}}
blocks:
  - id: customer
    kind: task
    capability: crm.get_customer
    input: {{customer_id: input.customer}}
    reads: [pd:Name]
  - {{id: done, kind: end, outcome: found}}
"""


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with sandbox_process(tmp_path_factory.mktemp("sandbox"), ORDER) as urls:
        yield urls


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Any]]]:
    """An OTLP/HTTP trace receiver: every span it is sent, decoded from protobuf."""
    spans: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    spans.extend(scope.spans)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()
    server.server_close()


def wired(make_accord: Callable[..., Accord], urls: dict[str, str], **options: Any) -> Accord:
    accord = make_accord(policies=None, **options)
    load_catalogue(
        CATALOGUE,
        accord.capabilities,
        check_categories=validate_categories,
        connector_urls=urls,
        endpoints=accord.endpoints,
    )
    deploy_policies(accord, PERMIT_ALL)
    accord.consent.set_basis(T, PURPOSE, "legitimate_interest", categories=["pd:Name"], actor="dpo")
    accord.runtime.catalog.deploy(T, load_journey_text(LOOKUP))
    return accord


def seen_by_sandbox(url: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = httpx.get(f"{url}/_sandbox/traceparents").json()
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_run_exports_run_block_gateway_connector_spans_and_the_sandbox_sees_the_trace(
    make_accord: Callable[..., Accord],
    systems: dict[str, str],
    collector: tuple[str, list[Any]],
) -> None:
    endpoint, spans = collector
    tracing = Tracing.otlp(endpoint, service_name="accord-test", batch=False)
    accord = wired(make_accord, systems, telemetry=Telemetry(tracing=tracing))
    started = accord.runtime.start(
        T, "lookup", input={"customer": "cus_00001"}, subject="cus_00001"
    )
    accord.runtime.drive()
    assert accord.runtime.get(T, started.run_id).status == "completed"
    tracing.flush()

    by_name = {s.name: s for s in spans}
    run = by_name["run lookup"]
    block = by_name["block customer"]
    gateway = by_name["gateway crm.get_customer"]
    connector = by_name["connector crm.get_customer"]
    assert run.parent_span_id == b""
    assert block.parent_span_id == run.span_id
    assert gateway.parent_span_id == block.span_id
    assert connector.parent_span_id == gateway.span_id
    stages = {s.name for s in spans if s.parent_span_id == gateway.span_id}
    assert {"gateway.kill_switch", "gateway.consent", "gateway.policy"} <= stages
    assert {s.trace_id for s in spans} == {run.trace_id}
    assert by_name["block done"].parent_span_id == run.span_id

    trace_id = run.trace_id.hex()
    received = [
        r for r in seen_by_sandbox(systems["crm"]) if r["traceparent"].split("-")[1] == trace_id
    ]
    assert received, "the sandbox never saw the run's trace id"
    assert received[-1]["traceparent"].split("-")[2] == connector.span_id.hex()

    with accord.db.read() as connection:
        stored = connection.execute(
            sa.select(runs.c.traceparent).where(runs.c.run_id == started.run_id)
        ).scalar_one()
        events = connection.execute(
            sa.select(outbox.c.type, outbox.c.traceparent).where(outbox.c.run_id == started.run_id)
        ).all()
    assert stored.split("-")[1] == trace_id
    assert events and all(tp.split("-")[1] == trace_id for _, tp in events)


def test_with_export_off_the_trace_id_still_reaches_the_sandbox_and_the_events(
    make_accord: Callable[..., Accord], systems: dict[str, str]
) -> None:
    accord = wired(make_accord, systems)
    started = accord.runtime.start(
        T, "lookup", input={"customer": "cus_00002"}, subject="cus_00002"
    )
    accord.runtime.drive()
    assert accord.runtime.get(T, started.run_id).status == "completed"
    with accord.db.read() as connection:
        stored = connection.execute(
            sa.select(runs.c.traceparent).where(runs.c.run_id == started.run_id)
        ).scalar_one()
    trace_id = stored.split("-")[1]
    assert trace_id != "0" * 32
    assert any(r["traceparent"].split("-")[1] == trace_id for r in seen_by_sandbox(systems["crm"]))
    completed = accord.events(types=["run.completed"], run_id=started.run_id)
    assert completed[0].cloudevent["traceparent"].split("-")[1] == trace_id


def test_metrics_move_with_runs_and_refusals(
    make_accord: Callable[..., Accord], systems: dict[str, str]
) -> None:
    accord = wired(make_accord, systems)
    accord.runtime.start(T, "lookup", input={"customer": "cus_00003"}, subject="cus_00003")
    accord.runtime.drive()
    accord.consent.set_basis(T, PURPOSE, "consent", actor="dpo")  # no basis any more
    refused = accord.runtime.start(
        T, "lookup", input={"customer": "cus_00004"}, subject="cus_00004"
    )
    accord.runtime.drive()
    assert accord.runtime.get(T, refused.run_id).status == "failed"

    registry = accord.telemetry.metrics.registry
    sample = registry.get_sample_value
    assert sample("accord_runs_started_total", {"journey": "lookup"}) == 2
    assert (
        sample(
            "accord_gateway_decision_seconds_count",
            {"capability": "crm.get_customer", "outcome": "executed"},
        )
        == 1
    )
    refusals = [
        s
        for family in registry.collect()
        if family.name == "accord_gateway_refusals"
        for s in family.samples
        if s.name == "accord_gateway_refusals_total"
    ]
    assert [(s.labels["capability"], s.value) for s in refusals] == [("crm.get_customer", 1.0)]
    assert sample("accord_block_seconds_count", {"journey": "lookup", "kind": "task"}) == 2


SIGN_OFF = """
journey: sign_off
purpose: dpv:CustomerRelationshipManagement
blocks:
  - id: ask
    kind: escalate
    queue: supervisors
    reason: '"a second look"'
  - {id: done, kind: end, outcome: approved}
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_time_a_person_takes_is_a_review_wait_span_in_the_runs_trace(
    make_accord: Callable[..., Accord],
    clock: FrozenClock,
    collector: tuple[str, list[Any]],
) -> None:
    endpoint, spans = collector
    tracing = Tracing.otlp(endpoint, service_name="accord-test", batch=False)
    accord = make_accord(policies=None, telemetry=Telemetry(tracing=tracing))
    deploy_policies(accord, PERMIT_ALL)
    accord.runtime.catalog.deploy(T, load_journey_text(SIGN_OFF))
    accord.put_person("ann", roles=["supervisor"], actor="test")
    asked_at = clock.now()
    run_id = accord.runtime.start(T, "sign_off", input={}, subject="cus_00001").run_id
    accord.runtime.drive()
    (item,) = accord.review_items(run_id=run_id)

    clock.advance(5400)
    accord.reviews.decide(T, item.item_id, "ann", "approve", reason="fine")
    accord.runtime.drive()
    tracing.flush()

    assert accord.runtime.get(T, run_id).status == "completed"
    by_name = {s.name: s for s in spans}
    run, waited = by_name["run sign_off"], by_name["review.wait ask"]
    assert waited.trace_id == run.trace_id and waited.parent_span_id == run.span_id
    assert waited.start_time_unix_nano == int(asked_at * 1e9)
    assert waited.end_time_unix_nano - waited.start_time_unix_nano == 5400 * 10**9
    attributes = {a.key: a.value for a in waited.attributes}
    assert attributes["accord.item"].string_value == item.item_id
    assert attributes["accord.decision"].string_value == "approve"
