"""``accord flag``: set, list and trace flags from the command line, on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from accord.cli._flags import app

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(tmp_path: Path) -> Invoke:
    """Runs ``accord flag …`` against a fresh database."""
    runner = CliRunner()
    env = {"ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}", "COLUMNS": "200"}

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    return run


def test_set_list_and_history(invoke: Invoke) -> None:
    empty = invoke("list")
    assert empty.exit_code == 0, empty.output
    assert "no flags set" in empty.stdout

    off = invoke("set", "channel:sms", "off", "--reason", "SMS relay down", "--actor", "ann")
    assert off.exit_code == 0, off.output
    assert "channel:sms off (version 1, by ann)" in off.stdout
    canary = invoke("set", "rollout:refund_request", "25", "--reason", "canary", "--actor", "bob")
    assert canary.exit_code == 0, canary.output
    assert "rollout:refund_request 25 (version 2, by bob)" in canary.stdout
    on = invoke("set", "channel:sms", "ON", "--reason", "relay back", "--actor", "ann")
    assert on.exit_code == 0, on.output

    listed = invoke("list")
    assert listed.exit_code == 0, listed.output
    assert "channel:sms" in listed.stdout and "relay back" in listed.stdout
    rows = json.loads(invoke("list", "--json").stdout)
    assert [(r["key"], r["value"], r["version"], r["updated_by"]) for r in rows] == [
        ("channel:sms", True, 3, "ann"),
        ("rollout:refund_request", 25, 2, "bob"),
    ]

    history = invoke("history", "channel:sms")
    assert history.exit_code == 0, history.output
    assert "(unset) -> off" in history.stdout and "off -> on" in history.stdout
    changes = json.loads(invoke("history", "--json").stdout)
    assert [(c["key"], c["previous"], c["value"], c["reason"]) for c in changes] == [
        ("channel:sms", None, False, "SMS relay down"),
        ("rollout:refund_request", None, 25, "canary"),
        ("channel:sms", False, True, "relay back"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["feature:dark_mode", "on"], "known kinds: capability, journey, channel, agent"),
        (["channel:sms", "maybe"], "takes on, off, true or false, got 'maybe'"),
        (["rollout:refund_request", "150"], "integer from 0 to 100, got 150"),
        (["capability:orders.lookup", "off", "--reason", " "], "needs a reason"),
    ],
)
def test_bad_input_is_explained_and_changes_nothing(
    invoke: Invoke, args: list[str], message: str
) -> None:
    if "--reason" not in args:
        args = [*args, "--reason", "testing"]
    result = invoke("set", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "hint:" in result.stderr
    assert json.loads(invoke("history", "--json").stdout) == []


def test_reason_is_required(invoke: Invoke) -> None:
    result = invoke("set", "channel:sms", "on")
    assert result.exit_code == 2
    assert "--reason" in result.output
