"""``accord events``: follow the outbox as CloudEvents, dispatch it to a webhook, redeliver,
list the catalogue and write the schemas, on a real SQLite file."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner, Result

from accord.cli._events import app
from accord.cli._flags import app as flag_app
from accord.events import EVENT_TYPES, new_secret

Invoke = Callable[..., Result]
SECRET = new_secret()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            Webhook(SECRET).verify(body, headers)  # raises on a bad signature
            received.append(json.loads(body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/in", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> dict[str, str]:
    url, _ = receiver
    hooks = {"ops": {"url": url, "secret": SECRET, "types": ["flag.*"]}}
    return {
        "ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}",
        "ACCORD_WEBHOOKS": json.dumps(hooks),
        "COLUMNS": "200",
    }


@pytest.fixture
def invoke(env: dict[str, str]) -> Invoke:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    return run


def test_flag_changes_are_events_delivered_to_a_signed_webhook(
    invoke: Invoke, env: dict[str, str], receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    _, received = receiver
    empty = invoke("tail")
    assert empty.exit_code == 0, empty.output
    assert "no events" in empty.stdout

    runner = CliRunner()
    for value in ("off", "on"):
        changed = runner.invoke(
            flag_app,
            ["set", "channel:sms", value, "--reason", "relay", "--actor", "ann"],
            env=env,
        )
        assert changed.exit_code == 0, changed.output

    tailed = invoke("tail", "--json")
    assert tailed.exit_code == 0, tailed.output
    events = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert [e["type"] for e in events] == ["accord.flag.changed", "accord.flag.changed"]
    assert [e["data"]["value"] for e in events] == [False, True]
    assert all(e["deliveries"] == [] for e in events)

    dispatched = invoke("dispatch", "--once", "--json")
    assert dispatched.exit_code == 0, dispatched.output
    assert json.loads(dispatched.stdout) == {"delivered": 2, "retried": 0, "dead": 0, "skipped": 0}
    assert [r["data"]["value"] for r in received] == [False, True]

    shown = invoke("show", events[0]["id"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["deliveries"][0]["status"] == "delivered"

    again = invoke("redeliver", events[0]["id"], "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"redelivered": 1}
    assert json.loads(invoke("dispatch", "--once", "--json").stdout)["delivered"] == 1
    assert len(received) == 3 and received[2]["id"] == events[0]["id"]


def test_bad_requests_say_what_to_do(invoke: Invoke) -> None:
    unknown = invoke("show", "evt_nope")
    assert unknown.exit_code == 2
    assert "no event 'evt_nope'" in unknown.output
    missing = invoke("redeliver", "evt_nope")
    assert missing.exit_code == 2
    assert "nothing was changed" in missing.output
    pattern = invoke("tail", "--type", "nothing.*")
    assert pattern.exit_code != 0
    assert "no event type matches" in pattern.output


def test_the_catalogue_and_its_schemas(invoke: Invoke, tmp_path: Path) -> None:
    listed = invoke("types", "--json")
    assert listed.exit_code == 0, listed.output
    assert [t["type"] for t in json.loads(listed.stdout)] == [
        t.cloudevents_type for t in EVENT_TYPES
    ]
    written = invoke("schemas", "--out", str(tmp_path / "schemas"))
    assert written.exit_code == 0, written.output
    files = sorted(p.name for p in (tmp_path / "schemas").iterdir())
    assert files == sorted(f"{t.name}.v{t.version}.json" for t in EVENT_TYPES)
    published = Path(__file__).parents[2] / "docs" / "schemas" / "events"
    for name in files:
        assert (published / name).read_text() == (tmp_path / "schemas" / name).read_text(), (
            f"docs/schemas/events/{name} is stale: run accord events schemas --out "
            "docs/schemas/events"
        )


def test_a_new_secret_is_a_standard_webhooks_secret(invoke: Invoke) -> None:
    made = invoke("secret")
    assert made.exit_code == 0
    secret = made.stdout.strip()
    assert secret.startswith("whsec_")
    Webhook(secret)  # the independent library accepts it
