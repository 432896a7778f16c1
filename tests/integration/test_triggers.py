"""Inbound triggers: CloudEvents start and signal runs, over HTTP and NATS JetStream, once each.

Every test runs on SQLite and PostgreSQL; the HTTP tests post real requests to a uvicorn server
on loopback, the NATS tests publish to the JetStream server at ``nats://127.0.0.1:4222`` on a
stream of their own.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from standardwebhooks import Webhook
from typer.testing import CliRunner

from accord.api._events import events_router
from accord.core import TenantId
from accord.errors import EventInvalid
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage._schema import inbound_events, runs
from accord.testing import FrozenClock

T = TenantId("default")
NATS_URL = os.environ.get("ACCORD_TEST_NATS_URL", "nats://127.0.0.1:4222")
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
TOKEN = "tok-7f3a9c1e5b2d"

FULFIL = """
journey: fulfil
input: {order: string, amount: integer}
triggers:
  - event: com.shop.order.placed
    when: data.amount > 10
    start:
      subject: data.customer
      input: {order: data.order_id, amount: data.amount}
  - event: com.shop.payment.received
    source: /payments
    signal: {name: payment_received, correlation: data.order_id}
blocks:
  - id: paid
    kind: wait
    event: {name: payment_received, correlation: input.order}
    timeout: 1d
    on_timeout: expired
  - id: ok
    kind: end
    outcome: paid
    output: {order: input.order, paid: steps.paid.paid}
  - {id: expired, kind: end, outcome: expired}
"""


def order_placed(
    order: str = "o-1", *, amount: Any = 25, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or f"evt-{order}",
        "source": "/shop",
        "type": "com.shop.order.placed",
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": {"order_id": order, "amount": amount, "customer": "cus-1"},
    }


def payment(order: str = "o-1", *, paid: int = 25) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"pay-{order}",
        "source": "/payments",
        "type": "com.shop.payment.received",
        "data": {"order_id": order, "paid": paid},
    }


@pytest.fixture
def shop(accord: Accord) -> Accord:
    accord.runtime.catalog.deploy(T, load_journey_text(FULFIL))
    return accord


def run_count(accord: Accord) -> int:
    with accord.db.read() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one())


def inbound_rows(accord: Accord) -> list[dict[str, Any]]:
    with accord.db.read() as connection:
        return [dict(r) for r in connection.execute(sa.select(inbound_events)).mappings()]


# -- ingest: start, filter, de-duplicate, signal, park ------------------------------------------


def test_an_event_starts_a_run_with_its_mapped_input(shop: Accord) -> None:
    outcome = shop.ingest_event(order_placed(), channel="http")

    assert outcome.status == "started" and outcome.run_id is not None
    view = shop.runtime.get(T, outcome.run_id)
    assert (view.journey, view.subject_id) == ("fulfil", "cus-1")
    assert view.input == {"order": "o-1", "amount": 25}
    (record,) = shop.inbound_events()
    assert (record.source, record.event_id, record.channel, record.status) == (
        "/shop",
        "evt-o-1",
        "http",
        "started",
    )
    assert record.detail["actions"][0]["run_id"] == outcome.run_id


def test_the_when_filter_decides_and_unmatched_events_are_ignored(shop: Accord) -> None:
    small = shop.ingest_event(order_placed("o-2", amount=5), channel="http")
    unknown = shop.ingest_event({**order_placed("o-3"), "type": "com.shop.other"}, channel="http")

    assert (small.status, unknown.status) == ("ignored", "ignored")
    assert run_count(shop) == 0
    statuses = {r.event_id: (r.status, r.detail) for r in shop.inbound_events()}
    assert statuses["evt-o-2"] == ("ignored", {"reason": "no trigger matched"})
    assert statuses["evt-o-3"][0] == "ignored"


def test_a_redelivered_event_starts_no_second_run(shop: Accord) -> None:
    first = shop.ingest_event(order_placed(), channel="nats")
    again = shop.ingest_event(order_placed(), channel="http")

    assert again.status == "duplicate" and again.first == "started"
    assert again.run_id == first.run_id
    assert run_count(shop) == 1
    assert len(shop.inbound_events()) == 1
    registry = shop.telemetry.metrics.registry
    counted = {
        (channel, result): registry.get_sample_value(
            "accord_events_received_total", {"channel": channel, "result": result}
        )
        for channel, result in [("nats", "started"), ("http", "duplicate"), ("http", "started")]
    }
    assert counted == {
        ("nats", "started"): 1.0,
        ("http", "duplicate"): 1.0,
        ("http", "started"): None,
    }


def test_twenty_concurrent_deliveries_of_one_event_start_exactly_one_run(shop: Accord) -> None:
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    failures: list[BaseException] = []

    def deliver() -> None:
        barrier.wait()
        try:
            outcomes.append(shop.ingest_event(order_placed(), channel="http").status)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures, failures
    assert sorted(outcomes) == ["duplicate"] * 19 + ["started"]
    assert run_count(shop) == 1
    assert len(inbound_rows(shop)) == 1


def test_a_signal_trigger_reaches_the_waiting_run(shop: Accord) -> None:
    started = shop.ingest_event(order_placed(), channel="http")
    shop.runtime.drive()

    signalled = shop.ingest_event(payment(paid=25), channel="http")
    shop.runtime.drive()

    assert signalled.status == "signalled" and signalled.run_ids == (started.run_id,)
    assert started.run_id is not None
    view = shop.runtime.get(T, started.run_id)
    assert (view.status, view.outcome, view.output) == (
        "completed",
        "paid",
        {"order": "o-1", "paid": 25},
    )


def test_an_event_before_its_run_is_parked_and_consumed_when_the_run_waits(
    shop: Accord,
) -> None:
    early = shop.ingest_event(payment("o-7", paid=30), channel="http")
    assert early.status == "parked" and early.run_ids == ()

    started = shop.ingest_event(order_placed("o-7"), channel="http")
    shop.runtime.drive()

    assert started.run_id is not None
    view = shop.runtime.get(T, started.run_id)
    assert (view.status, view.output) == ("completed", {"order": "o-7", "paid": 30})
    assert {r.event_id: r.status for r in shop.inbound_events()} == {
        "pay-o-7": "parked",
        "evt-o-7": "started",
    }


def test_a_signal_from_another_source_matches_no_trigger(shop: Accord) -> None:
    forged = {**payment(), "source": "/elsewhere"}
    assert shop.ingest_event(forged, channel="http").status == "ignored"


@pytest.mark.parametrize(
    ("change", "attribute"),
    [
        ({"id": None}, "id"),
        ({"source": ""}, "source"),
        ({"type": None}, "type"),
        ({"specversion": "0.3"}, "specversion"),
        ({"time": "yesterday"}, "time"),
        ({"Bad-Name": 1}, "Bad-Name"),
    ],
)
def test_malformed_events_are_refused_naming_the_attribute_and_nothing_is_stored(
    shop: Accord, change: dict[str, Any], attribute: str
) -> None:
    event = {k: v for k, v in {**order_placed(), **change}.items() if v is not None}
    with pytest.raises(EventInvalid) as caught:
        shop.ingest_event(event, channel="http")
    assert caught.value.attribute == attribute
    assert attribute in caught.value.message
    assert run_count(shop) == 0 and inbound_rows(shop) == []


def test_an_event_whose_data_a_trigger_cannot_read_is_refused_and_may_be_sent_again(
    shop: Accord,
) -> None:
    no_object = {**order_placed(), "data": "just text", "datacontenttype": "text/plain"}
    refused = shop.ingest_event(no_object, channel="http")
    wrong_type = shop.ingest_event(order_placed("o-4", amount="lots"), channel="http")

    assert refused.status == "refused"
    assert refused.error is not None and "reads fields of data" in refused.error
    assert wrong_type.status == "refused" and wrong_type.error is not None
    assert run_count(shop) == 0
    (record,) = shop.inbound_events(status="refused", limit=1)
    assert record.detail["error"]

    corrected = shop.ingest_event(order_placed(), channel="http")
    assert corrected.status == "started"
    assert run_count(shop) == 1


# -- HTTP: structured, batch and binary modes, with authentication ------------------------------


@pytest.fixture
def http(shop: Accord) -> Iterator[httpx.Client]:
    shop.settings = shop.settings.model_copy(
        update={
            "ingest_tokens": {"acme/crm": SecretStr(TOKEN)},
            "ingest_secrets": {"shop": SecretStr(SECRET)},
        }
    )
    app = FastAPI()
    app.include_router(events_router(shop))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        while not server.started:
            thread.join(timeout=0.01)
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join()


def signed(body: bytes, clock: FrozenClock, *, secret: str = SECRET) -> dict[str, str]:
    sent = dt.datetime.fromtimestamp(clock.now(), tz=dt.UTC)
    message_id = f"msg_{uuid.uuid4().hex}"
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(clock.now())),
        "webhook-signature": Webhook(secret).sign(message_id, sent, body.decode()),
    }


STRUCTURED = {"content-type": "application/cloudevents+json"}


def test_http_refuses_requests_without_valid_credentials(
    http: httpx.Client, shop: Accord, clock: FrozenClock
) -> None:
    body = json.dumps(order_placed()).encode()
    anonymous = http.post("/v1/events", content=body, headers=STRUCTURED)
    wrong_token = http.post(
        "/v1/events", content=body, headers={**STRUCTURED, "authorization": "Bearer nope"}
    )
    other_secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    forged = http.post(
        "/v1/events",
        content=body,
        headers={**STRUCTURED, **signed(body, clock, secret=other_secret)},
    )
    tampered_headers = {**STRUCTURED, **signed(body, clock)}
    tampered = http.post("/v1/events", content=body.replace(b"25", b"99"), headers=tampered_headers)
    stale_headers = {**STRUCTURED, **signed(body, clock)}
    clock.advance(301)
    stale = http.post("/v1/events", content=body, headers=stale_headers)

    for response in (anonymous, wrong_token, forged, tampered, stale):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401
        assert "shop" not in response.text and "acme" not in response.text
    assert run_count(shop) == 0 and inbound_rows(shop) == []


def test_http_accepts_a_structured_event_signed_with_standard_webhooks(
    http: httpx.Client, shop: Accord, clock: FrozenClock
) -> None:
    body = json.dumps(order_placed()).encode()
    response = http.post("/v1/events", content=body, headers={**STRUCTURED, **signed(body, clock)})
    again = http.post("/v1/events", content=body, headers={**STRUCTURED, **signed(body, clock)})

    assert response.status_code == 202, response.text
    (outcome,) = response.json()["events"]
    assert outcome["status"] == "started"
    assert shop.runtime.get(T, outcome["run_id"]).input == {"order": "o-1", "amount": 25}
    assert again.status_code == 202
    assert again.json()["events"][0]["status"] == "duplicate"
    assert run_count(shop) == 1


def test_http_accepts_a_batch_with_a_bearer_token_into_the_senders_tenant(
    http: httpx.Client, shop: Accord
) -> None:
    shop.runtime.catalog.deploy(TenantId("acme"), load_journey_text(FULFIL))
    batch = [order_placed("o-1"), order_placed("o-2", amount=1), payment("o-1")]
    response = http.post(
        "/v1/events",
        json=batch,
        headers={
            "content-type": "application/cloudevents-batch+json",
            "authorization": f"Bearer {TOKEN}",
        },
    )

    assert response.status_code == 202, response.text
    # the run has not reached its wait yet, so the payment is parked for it
    assert [e["status"] for e in response.json()["events"]] == ["started", "ignored", "parked"]
    assert [r.event_id for r in shop.inbound_events(tenant="acme", status="started")] == ["evt-o-1"]
    assert shop.inbound_events() == []


def test_http_accepts_a_binary_mode_event(
    http: httpx.Client, shop: Accord, clock: FrozenClock
) -> None:
    body = json.dumps({"order_id": "o-5", "amount": 40, "customer": "cus-5"}).encode()
    response = http.post(
        "/v1/events",
        content=body,
        headers={
            **signed(body, clock),
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": "bin-1",
            "ce-source": "%2Fshop",
            "ce-type": "com.shop.order.placed",
            "ce-time": "2026-01-01T00:00:00Z",
        },
    )

    assert response.status_code == 202, response.text
    (outcome,) = response.json()["events"]
    assert (outcome["status"], outcome["source"], outcome["id"]) == ("started", "/shop", "bin-1")


def test_http_answers_bad_input_with_problem_details(http: httpx.Client, shop: Accord) -> None:
    shop.runtime.catalog.deploy(TenantId("acme"), load_journey_text(FULFIL))
    auth = {"authorization": f"Bearer {TOKEN}"}
    unsupported = http.post(
        "/v1/events", content=b"{}", headers={**auth, "content-type": "text/plain"}
    )
    not_json = http.post("/v1/events", content=b"{nope", headers={**auth, **STRUCTURED})
    missing = {k: v for k, v in order_placed().items() if k != "source"}
    invalid = http.post("/v1/events", json=missing, headers={**auth, **STRUCTURED})
    bad_batch = http.post(
        "/v1/events",
        json=[order_placed(), missing],
        headers={**auth, "content-type": "application/cloudevents-batch+json"},
    )
    refused = http.post(
        "/v1/events",
        json=order_placed("o-9", amount="lots"),
        headers={**auth, **STRUCTURED},
    )

    assert unsupported.status_code == 415
    assert not_json.status_code == 400
    assert invalid.status_code == 422 and invalid.json()["attribute"] == "source"
    assert bad_batch.status_code == 422 and "event 1 of the batch" in bad_batch.json()["detail"]
    assert refused.status_code == 422 and refused.json()["events"][0]["status"] == "refused"
    for response in (unsupported, not_json, invalid, bad_batch, refused):
        assert response.headers["content-type"] == "application/problem+json"
    assert run_count(shop) == 0
    assert [r["status"] for r in inbound_rows(shop)] == ["refused"]


# -- NATS JetStream -----------------------------------------------------------------------------


@pytest.fixture
def stream() -> Iterator[tuple[str, str]]:
    """A JetStream stream of this test's own, deleted afterwards: (stream name, subject)."""
    tag = uuid.uuid4().hex[:10]
    name, subject = f"ACCORD_TRIGGERS_{tag}", f"test.{tag}.events"

    async def create() -> None:
        connection = await nats.connect(NATS_URL)
        try:
            await connection.jetstream().add_stream(name=name, subjects=[f"test.{tag}.>"])
        finally:
            await connection.close()

    async def delete() -> None:
        connection = await nats.connect(NATS_URL)
        try:
            await connection.jetstream().delete_stream(name)
        finally:
            await connection.close()

    try:
        asyncio.run(create())
    except (OSError, nats.errors.NoServersError) as exc:
        pytest.skip(f"no NATS JetStream server at {NATS_URL}: {exc}")
    yield name, subject
    asyncio.run(delete())


def publish(subject: str, body: bytes, headers: dict[str, str]) -> None:
    async def send() -> None:
        connection = await nats.connect(NATS_URL)
        try:
            await connection.jetstream().publish(subject, body, headers=headers)
        finally:
            await connection.close()

    asyncio.run(send())


@pytest.fixture
def consumer(shop: Accord, stream: tuple[str, str]) -> Iterator[Callable[..., None]]:
    name, subject = stream
    shop.settings = shop.settings.model_copy(
        update={
            "nats_url": NATS_URL,
            "nats_trigger_stream": name,
            "nats_trigger_subjects": [subject],
            "nats_trigger_consumer": f"accord-{name.lower()}",
        }
    )
    stop, ready = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def consume() -> None:
        try:
            shop.consume_triggers(stop, ready=ready)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    assert ready.wait(10) or failures, "the trigger consumer did not start"

    def send(body: bytes, headers: dict[str, str]) -> None:
        publish(subject, body, headers)

    yield send
    stop.set()
    thread.join(10)
    assert not failures, failures


def wait_for_inbound(accord: Accord, count: int, *, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while len(accord.inbound_events()) < count:
        assert time.monotonic() < deadline, f"only {len(accord.inbound_events())} events arrived"
        time.sleep(0.02)


def test_nats_event_starts_exactly_one_run_and_a_duplicate_none(
    consumer: Callable[..., None], shop: Accord
) -> None:
    body = json.dumps(order_placed()).encode()
    consumer(body, {"content-type": "application/cloudevents+json", "Nats-Msg-Id": "m-1"})
    wait_for_inbound(shop, 1)
    # the same CloudEvent published again: JetStream sees a new message (another Nats-Msg-Id)
    consumer(body, {"content-type": "application/cloudevents+json", "Nats-Msg-Id": "m-2"})
    consumer(json.dumps(order_placed("o-2")).encode(), {"Nats-Msg-Id": "m-3"})
    wait_for_inbound(shop, 2)
    time.sleep(0.3)

    assert run_count(shop) == 2
    records = {r.event_id: r for r in shop.inbound_events()}
    assert set(records) == {"evt-o-1", "evt-o-2"}
    assert {r.channel for r in records.values()} == {"nats"}
    assert records["evt-o-1"].status == "started"


def test_nats_binary_mode_signals_and_unreadable_messages_are_refused_once(
    consumer: Callable[..., None], shop: Accord
) -> None:
    started = shop.ingest_event(order_placed(), channel="http")
    shop.runtime.drive()
    consumer(
        json.dumps({"order_id": "o-1", "paid": 25}).encode(),
        {
            "ce-specversion": "1.0",
            "ce-id": "pay-1",
            "ce-source": "/payments",
            "ce-type": "com.shop.payment.received",
            "content-type": "application/json",
        },
    )
    consumer(b"not an event", {"Nats-Msg-Id": "junk-1"})
    wait_for_inbound(shop, 3)
    shop.runtime.drive()

    assert started.run_id is not None
    assert shop.runtime.get(T, started.run_id).output == {"order": "o-1", "paid": 25}
    (junk,) = shop.inbound_events(status="refused")
    assert (junk.event_id, junk.channel) == ("junk-1", "nats")
    assert "no CloudEvent" in junk.detail["error"]


# -- CLI ----------------------------------------------------------------------------------------


def test_the_cli_ingests_a_file_and_lists_what_arrived(
    shop: Accord, tmp_path: Path, database_url: str
) -> None:
    import typer

    from accord.cli._inbound import register

    app = typer.Typer()
    register(app)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps([order_placed(), order_placed("o-2", amount=1)]))
    runner = CliRunner()
    env = {"ACCORD_EMBEDDED_WORKERS": "false", "ACCORD_KEYS_DIR": str(tmp_path / "keys")}

    ingested = runner.invoke(app, ["ingest", str(event_file), "--database", database_url], env=env)
    again = runner.invoke(
        app, ["ingest", str(event_file), "--json", "--database", database_url], env=env
    )
    listed = runner.invoke(app, ["received", "--json", "--database", database_url], env=env)
    broken = runner.invoke(app, ["ingest", "-", "--database", database_url], input="{}", env=env)

    assert ingested.exit_code == 0, ingested.output
    assert "started run" in ingested.output and "ignored: no trigger matched" in ingested.output
    assert [o["status"] for o in json.loads(again.stdout)] == ["duplicate", "duplicate"]
    assert sorted(r["status"] for r in json.loads(listed.stdout)) == ["ignored", "started"]
    assert broken.exit_code == 2 and "no id" in broken.output
    assert run_count(shop) == 1
