"""Outbound events: the outbox delivered to the real NATS JetStream server and to a real
webhook receiver, at least once, in order per run, and exactly once where it counts.

NATS tests publish to ``nats://127.0.0.1:4222`` on a stream and subject prefix of their own.
Webhook tests post to an HTTP server on loopback whose signature check is the independent
``standardwebhooks`` library, not Accord's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nats
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from accord.core import TenantId
from accord.events import NatsSink, WebhookEndpoint, new_secret
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage._events import OutboxEvent
from accord.testing import FrozenClock

T = TenantId("default")
NATS_URL = os.environ.get("ACCORD_TEST_NATS_URL", "nats://127.0.0.1:4222")

QUICK = """
journey: quick
input: {n: integer}
blocks:
  - id: choose
    kind: choice
    choices:
      - when: input.n % 2 == 0
        next: even
    default: odd
  - {id: even, kind: end, outcome: even}
  - {id: odd, kind: end, outcome: odd}
"""


@pytest.fixture
def accord(make_accord: Callable[..., Accord]) -> Accord:
    """An instance with no policy bundle, so its outbox holds only the runs' events."""
    return make_accord(policies=None)


def run_many(accord: Accord, count: int) -> list[str]:
    accord.runtime.catalog.deploy(T, load_journey_text(QUICK))
    ids = [accord.runtime.start(T, "quick", input={"n": i}).run_id for i in range(count)]
    accord.runtime.drive()
    return ids


def outbox_ids(accord: Accord) -> list[str]:
    after = None
    found: list[str] = []
    while True:
        batch = accord.events(after=after, limit=1000)
        found += [v.event.event_id for v in batch]
        if len(batch) < 1000:
            return found
        after = (batch[-1].event.created_at, batch[-1].event.event_id)


# -- NATS JetStream ---------------------------------------------------------------------------


@dataclass
class Stream:
    name: str
    prefix: str


@pytest.fixture
def stream() -> Iterator[Stream]:
    tag = uuid.uuid4().hex[:12]
    made = Stream(f"EVT_{tag}", f"t{tag}")
    yield made

    async def drop() -> None:
        client = await nats.connect(NATS_URL)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(made.name)
        await client.close()

    asyncio.run(drop())


def stream_messages(stream: Stream) -> list[tuple[dict[str, str], bytes]]:
    """Every message in the stream, in stream order."""

    async def read() -> list[tuple[dict[str, str], bytes]]:
        client = await nats.connect(NATS_URL)
        js = client.jetstream()
        info = await js.stream_info(stream.name)
        found: list[tuple[dict[str, str], bytes]] = []
        if info.state.messages == 0:
            await client.close()
            return found
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(stream.name, seq)
            found.append((dict(message.headers or {}), message.data or b""))
        await client.close()
        return found

    return asyncio.run(read())


class CrashAfter(NatsSink):
    """Publishes for real, then dies (like a killed process) before the dispatcher can
    record what it sent."""

    def __init__(self, *args: Any, after: int, message_ids: bool = True, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.after = after
        self.message_ids = message_ids
        self.sent = 0

    def send(self, event: OutboxEvent) -> None:
        if self.message_ids:
            super().send(event)
        else:
            self._send_without_id(event)
        self.sent += 1
        if self.sent >= self.after:
            raise KeyboardInterrupt("dispatcher killed")

    def _send_without_id(self, event: OutboxEvent) -> None:
        from accord.events import structured

        headers, body = structured(event, origin=self.origin)
        self._run(self._publish(self.subject(event), body, headers))


def nats_sink(stream: Stream, cls: type[NatsSink] = NatsSink, **kw: Any) -> NatsSink:
    return cls(NATS_URL, stream=stream.name, prefix=stream.prefix, origin="accord", **kw)


def test_events_reach_jetstream_exactly_once_after_a_dispatcher_crash(
    accord: Accord, stream: Stream
) -> None:
    run_many(accord, 30)
    expected = outbox_ids(accord)
    assert len(expected) == 60  # run.started and run.completed of each

    crashing = nats_sink(stream, CrashAfter, after=35)
    first = accord.dispatcher(sinks=[crashing])
    first.record_every = 20
    with pytest.raises(KeyboardInterrupt):
        first.dispatch_once()
    crashing.close()
    # 35 published, only the first 20 recorded: 15 were sent and not remembered
    assert len(stream_messages(stream)) == 35
    assert all(v.deliveries for v in accord.events(limit=20))

    restarted_sink = nats_sink(stream)
    restarted = accord.dispatcher(sinks=[restarted_sink])
    restarted.holder = first.holder  # the same process name after a restart
    stats = restarted.dispatch_once()
    restarted_sink.close()

    assert stats.delivered == 40
    assert restarted_sink.duplicates == 15  # JetStream recognised them by Nats-Msg-Id
    messages = stream_messages(stream)
    ids = [headers["Nats-Msg-Id"] for headers, _ in messages]
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == set(expected)
    assert all(v.event.dispatched_at is not None for v in accord.events(limit=100))
    assert restarted.dispatch_once().moved == 0

    # in order per run: each run's started precedes its completed
    seen: dict[str, list[str]] = {}
    for headers, body in messages:
        event = from_http(HTTPMessage(headers=headers, body=body), JSONFormat())
        assert event.get_id() == headers["Nats-Msg-Id"]
        seen.setdefault(event.get_extension("partitionkey"), []).append(event.get_type())
        assert headers["content-type"] == "application/cloudevents+json"
    assert len(seen) == 30
    assert all(types == ["accord.run.started", "accord.run.completed"] for types in seen.values())


def test_without_message_ids_the_same_crash_duplicates_events(
    accord: Accord, stream: Stream
) -> None:
    """The protection switched off: the same crash, published without Nats-Msg-Id."""
    run_many(accord, 10)
    crashing = nats_sink(stream, CrashAfter, after=15, message_ids=False)
    first = accord.dispatcher(sinks=[crashing])
    first.record_every = 10
    with pytest.raises(KeyboardInterrupt):
        first.dispatch_once()
    crashing.close()
    again = nats_sink(stream, CrashAfter, after=10_000, message_ids=False)
    restarted = accord.dispatcher(sinks=[again])
    restarted.holder = first.holder
    restarted.dispatch_once()
    again.close()
    assert len(stream_messages(stream)) == 25  # 20 events, 5 of them twice


def test_subjects_are_per_tenant_and_type(accord: Accord, stream: Stream) -> None:
    run_many(accord, 1)
    sink = nats_sink(stream)
    accord.dispatcher(sinks=[sink]).dispatch_once()
    sink.close()

    async def subjects() -> list[str]:
        client = await nats.connect(NATS_URL)
        js = client.jetstream()
        info = await js.stream_info(stream.name)
        found = [
            (await js.get_msg(stream.name, s)).subject
            for s in range(info.state.first_seq, info.state.last_seq + 1)
        ]
        await client.close()
        return found

    assert asyncio.run(subjects()) == [
        f"{stream.prefix}.default.run.started",
        f"{stream.prefix}.default.run.completed",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_killed_dispatcher_process_loses_nothing_and_duplicates_nothing(
    make_accord: Callable[..., Accord], stream: Stream, database_url: str, tmp_path: Path
) -> None:
    accord = make_accord(policies=None)
    run_many(accord, 150)
    expected = set(outbox_ids(accord))
    env = {
        **os.environ,
        "ACCORD_DATABASE_URL": database_url,
        "ACCORD_KEYS_DIR": str(tmp_path / "keys"),
        "ACCORD_NATS_URL": NATS_URL,
        "ACCORD_NATS_STREAM": stream.name,
        "ACCORD_NATS_SUBJECT_PREFIX": stream.prefix,
        "ACCORD_POLL_INTERVAL": "0.05",
        "ACCORD_LEASE_SECONDS": "1",
    }
    for kills in range(3):
        before = len(stream_messages(stream)) if kills else 0
        process = subprocess.Popen(
            [sys.executable, "-m", "accord", "events", "dispatch"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                count = len(stream_messages(stream))
            except nats.js.errors.NotFoundError:
                count = 0
            if count > before + 10 or count >= len(expected):
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    # a restarted dispatcher takes over once the killed holder's lease (1 s) has run out
    deadline = time.monotonic() + 60
    while len(stream_messages(stream)) < len(expected) and time.monotonic() < deadline:
        finisher = subprocess.run(
            [sys.executable, "-m", "accord", "events", "dispatch", "--once", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert finisher.returncode == 0, finisher.stderr
        time.sleep(0.5)
    ids = [headers["Nats-Msg-Id"] for headers, _ in stream_messages(stream)]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected


# -- webhooks ---------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A webhook receiver on loopback that checks signatures with ``standardwebhooks``."""

    secret: str
    fail_first: int = 0
    status: int = 503
    always: int | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    requests: int = 0
    url: str = ""

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        self.requests += 1
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            self.refused.append(str(exc))
            return 401
        if self.always is not None:
            return self.always
        if self.requests <= self.fail_first:
            return self.status
        self.received.append({"headers": headers, "body": body})
        return 204


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(secret=new_secret())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = made.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    made.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield made
    server.shutdown()
    server.server_close()


def hooked(
    make_accord: Callable[..., Accord], receiver: Receiver, **endpoint: Any
) -> tuple[Accord, Any]:
    accord = make_accord(policies=None)
    accord.settings.webhooks = {
        "crm": WebhookEndpoint(url=receiver.url, secret=SecretStr(receiver.secret), **endpoint)
    }
    accord.settings.event_backoff_seconds = 2.0
    accord.settings.event_delivery_attempts = 4
    return accord, accord.dispatcher()


def test_webhooks_are_signed_per_standard_webhooks(
    make_accord: Callable[..., Accord], receiver: Receiver
) -> None:
    accord, dispatcher = hooked(make_accord, receiver)
    run_many(accord, 2)
    stats = dispatcher.dispatch_once()
    dispatcher.close()
    assert stats.delivered == 4
    assert receiver.refused == []
    first = receiver.received[0]
    event = from_http(HTTPMessage(headers=first["headers"], body=first["body"]), JSONFormat())
    assert first["headers"]["webhook-id"] == event.get_id()
    assert first["headers"]["content-type"] == "application/cloudevents+json"
    assert event.get_type() == "accord.run.started"
    assert event.get_dataschema() == "https://accord.dev/schemas/events/run.started/v1.json"
    assert [v.deliveries[0].status for v in accord.events()] == ["delivered"] * 4


def test_a_tampered_webhook_fails_the_independent_check(
    make_accord: Callable[..., Accord], receiver: Receiver
) -> None:
    accord, dispatcher = hooked(make_accord, receiver)
    run_many(accord, 1)
    dispatcher.dispatch_once()
    dispatcher.close()
    original = receiver.received[0]
    tampered = original["body"].replace(b'"quick"', b'"other"')
    assert tampered != original["body"]
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver.secret).verify(tampered, original["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(original["body"], original["headers"])


def test_failed_webhooks_are_retried_with_backoff_in_order(
    make_accord: Callable[..., Accord], receiver: Receiver, clock: FrozenClock
) -> None:
    receiver.fail_first = 2
    accord, dispatcher = hooked(make_accord, receiver)
    run_many(accord, 1)

    first = dispatcher.dispatch_once()
    # run.started failed; run.completed of the same run waits behind it
    assert (first.retried, first.delivered) == (1, 0)
    started, completed = accord.events()
    assert started.deliveries[0].status == "pending"
    assert started.deliveries[0].attempts == 1
    assert "503" in (started.deliveries[0].last_error or "")
    assert completed.deliveries == []
    assert dispatcher.dispatch_once().moved == 0  # not before its retry time

    clock.advance(2.0)
    assert dispatcher.dispatch_once().retried == 1
    clock.advance(4.0)
    assert dispatcher.dispatch_once().delivered == 2
    dispatcher.close()
    assert [v.deliveries[0].attempts for v in accord.events()] == [3, 1]
    ids = [r["headers"]["webhook-id"] for r in receiver.received]
    assert ids == [v.event.event_id for v in accord.events()]


def test_webhooks_that_keep_failing_are_dead_lettered_and_redelivered(
    make_accord: Callable[..., Accord], receiver: Receiver, clock: FrozenClock
) -> None:
    receiver.always = 500
    accord, dispatcher = hooked(make_accord, receiver)
    run_many(accord, 1)
    for _ in range(10):
        dispatcher.dispatch_once()
        clock.advance(60)
    states = [v.deliveries[0] for v in accord.events()]
    assert [s.status for s in states] == ["dead", "dead"]
    assert [s.attempts for s in states] == [4, 4]
    assert receiver.requests == 8
    assert all(v.event.dispatched_at is not None for v in accord.events())

    receiver.always = None
    assert accord.redeliver_events(dead=True) == 2
    assert dispatcher.dispatch_once().delivered == 2
    dispatcher.close()
    assert len(receiver.received) == 2


def test_gone_dead_letters_at_once_and_filters_skip(
    make_accord: Callable[..., Accord], receiver: Receiver
) -> None:
    receiver.always = 410
    accord, dispatcher = hooked(make_accord, receiver, types=("run.completed",))
    run_many(accord, 1)
    stats = dispatcher.dispatch_once()
    dispatcher.close()
    assert (stats.skipped, stats.dead) == (1, 1)
    started, completed = accord.events()
    assert started.deliveries[0].status == "skipped"
    assert completed.deliveries[0].status == "dead"
    assert receiver.requests == 1


def test_one_dispatcher_per_sink_at_a_time(
    make_accord: Callable[..., Accord], receiver: Receiver
) -> None:
    accord, first = hooked(make_accord, receiver)
    second = accord.dispatcher()
    run_many(accord, 2)
    assert first.dispatch_once().delivered == 4
    run_many(accord, 1)
    assert second.dispatch_once().moved == 0  # the first still holds the lease
    first.release()
    assert second.dispatch_once().delivered == 2
    first.close()
    second.close()


def test_bad_webhook_settings_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        WebhookEndpoint(url="https://example.test/h", secret=SecretStr("not base64 !"))
    with pytest.raises(ValueError, match="24 to 64 bytes"):
        WebhookEndpoint(url="https://example.test/h", secret=SecretStr("whsec_YWJj"))
    with pytest.raises(ValueError, match="event type pattern"):
        WebhookEndpoint(
            url="https://example.test/h", secret=SecretStr(new_secret()), types=("run.>",)
        )


def test_redelivering_an_unknown_event_changes_nothing(accord: Accord) -> None:
    from accord.errors import InputError

    run_many(accord, 1)
    with pytest.raises(InputError, match="no event nope"):
        accord.redeliver_events(["nope", accord.events()[0].event.event_id])
    with pytest.raises(InputError, match="not both"):
        accord.redeliver_events(["x"], dead=True)


def test_events_list_as_cloudevents_with_filters(accord: Accord) -> None:
    ids = run_many(accord, 3)
    completed = accord.events(types=["run.completed"])
    assert [v.event.run_id for v in completed] == ids
    assert completed[0].cloudevent["type"] == "accord.run.completed"
    assert completed[0].cloudevent["data"]["outcome"] == "even"
    assert json.loads(json.dumps(completed[0].to_json()))["deliveries"] == []
    assert [v.event.type for v in accord.events(run_id=ids[1])] == [
        "run.started",
        "run.completed",
    ]
    last = accord.events(limit=2, newest=True)
    assert [(v.event.run_id, v.event.type) for v in last] == [
        (ids[1], "run.completed"),
        (ids[2], "run.completed"),
    ]
