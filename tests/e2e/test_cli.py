"""The ``accord`` command line, run as a real process against a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def accord(*args: str, cwd: Path, database: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if database is not None:
        env["ACCORD_DATABASE_URL"] = f"sqlite:///{database}"
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_runs_the_sample_journeys_end_to_end(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    database.write_text("an earlier demo's database")
    (tmp_path / "demo.db.demo").write_text("made by accord demo\n")
    result = accord("demo", "--exit", "--database", str(database), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo.db.demo").is_file()
    assert database.read_bytes().startswith(b"SQLite format 3")
    out = result.stdout
    for journey in (
        "refund_request",
        "customer_onboarding",
        "support_resolution",
        "retention_offer",
        "access_provisioning",
        "account_recovery",
    ):
        assert f"journey {journey} v1" in out
    assert "refunded" in out and "onboarded" in out and "recovered" in out
    assert "no-duplicate-refund-this-quarter" in out and "consent_missing" in out
    assert "items wait in the review inbox" in out
    assert "audit verify: ok" in out
    assert "http://127.0.0.1:8080/console/sign-in?next=/console/reviews&token=eyJ" in out


def test_demo_leaves_a_database_it_did_not_make_alone(tmp_path: Path) -> None:
    database = tmp_path / "precious.db"
    database.write_text("somebody's data")
    sibling = tmp_path / "demo-enterprise"
    sibling.mkdir()
    (sibling / "notes.txt").write_text("mine")
    result = accord("demo", "--exit", "--database", str(database), cwd=ROOT)
    assert result.returncode == 2
    assert f"{database} already exists and is not a database an earlier `accord demo` made" in (
        " ".join(result.stderr.split())
    )
    assert "choose another --database" in result.stderr
    assert database.read_text() == "somebody's data"
    assert (sibling / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "precious.db.demo").exists()


def test_lint_points_at_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "journey: bad\n"
        "blocks:\n"
        "  - id: a\n"
        "    kind: task\n"
        "    capability: orders.lookup\n"
        "    input: {order_id: input.order}\n"
        "    next: b\n"
        "  - {id: b, kind: tusk}\n"
    )
    result = accord("journey", "lint", str(bad), cwd=tmp_path, database=tmp_path / "a.db")
    assert result.returncode == 2
    assert f"{bad}:8:19: error: unknown block kind 'tusk'" in result.stderr
    assert "did you mean 'task'?" in result.stderr


def test_deploy_start_signal_history_cancel(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    journey = ROOT / "examples" / "journeys"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return accord(*args, cwd=tmp_path, database=db)

    deployed = run(
        "journey",
        "deploy",
        str(journey / "notify_customer.yaml"),
        str(journey / "refund_request.yaml"),
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "deployed refund_request v1" in deployed.stdout
    again = run("journey", "deploy", str(journey / "refund_request.yaml"))
    assert "unchanged refund_request v1" in again.stdout

    def refund(order: str) -> dict[str, object]:
        started = run(
            "run",
            "start",
            "refund_request",
            "--input",
            json.dumps({"order_id": order}),
            "--subject",
            "cust-1",
            "--json",
        )
        assert started.returncode == 0, started.stderr
        view: dict[str, object] = json.loads(started.stdout)
        return view

    no_basis = refund("ord-0042")
    assert isinstance(no_basis["error"], dict)
    assert no_basis["error"]["reason"] == "consent_missing"
    basis = run(
        "consent",
        "basis",
        "dpv:CustomerOrderManagement",
        "--basis",
        "contract",
        "--categories",
        "pd:Purchase,pd:PaymentCard",
    )
    assert basis.returncode == 0, basis.stderr
    no_policy = refund("ord-0042")
    assert isinstance(no_policy["error"], dict)
    assert no_policy["error"]["reason"] == "policy_error"
    policies = ROOT / "examples" / "policies"
    deployed_policies = run(
        "policy",
        "deploy",
        str(policies / "retail.cedar"),
        "--schema",
        str(policies / "accord.cedarschema"),
    )
    assert deployed_policies.returncode == 0, deployed_policies.stderr

    view = refund("ord-0750")
    assert view["status"] == "waiting"
    assert isinstance(view["positions"], list)
    assert view["positions"][0]["waiting_for"] == "human:refund"
    run_id = str(view["run_id"])

    bad_json = run("run", "start", "refund_request", "--input", "{order")
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    added = run("review", "staff", "add", "ann", "--role", "supervisor")
    assert added.returncode == 0, added.stderr
    items = json.loads(run("review", "list", "--run", run_id, "--json").stdout)
    assert [i["queue"] for i in items] == ["supervisor"]
    item_id = items[0]["item_id"]
    shown = run("review", "show", item_id)
    assert shown.returncode == 0, shown.stderr
    assert "refund-up-to-1000-with-supervisor" in shown.stdout and "payments.refund" in shown.stdout
    no_reason = run("review", "decide", item_id, "override", "--as", "ann", "--outcome", "approve")
    assert no_reason.returncode == 2 and "needs a reason" in no_reason.stderr
    stranger = run("review", "decide", item_id, "approve", "--as", "mallory")
    assert stranger.returncode == 2 and "not staff" in stranger.stderr
    unknown = run("review", "decide", "rev_nope", "approve", "--as", "ann")
    assert unknown.returncode == 2 and "no review item 'rev_nope'" in unknown.stderr

    decided = run("review", "decide", item_id, "reject", "--as", "ann", "--reason", "used item")
    assert decided.returncode == 0, decided.stderr
    assert "reject by ann -> decided" in decided.stdout
    again = run("review", "decide", item_id, "reject", "--as", "ann", "--reason", "used item")
    assert again.returncode == 0 and "already decided so" in again.stdout
    conflicting = run("review", "decide", item_id, "approve", "--as", "ann")
    assert conflicting.returncode == 2 and "already decided" in conflicting.stderr
    assert json.loads(run("run", "show", run_id, "--json").stdout)["outcome"] == "declined"

    history = json.loads(run("run", "history", run_id, "--json").stdout)
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    assert history[-1]["kind"] == "run.completed"
    assert "gateway.refused" in [e["kind"] for e in history]
    explained = run("run", "decisions", run_id)
    assert explained.returncode == 0, explained.stderr
    assert "approval_required" in explained.stdout and "contract" in explained.stdout

    listed = run("run", "list")
    assert run_id in listed.stdout
    late = run("run", "cancel", run_id)
    assert late.returncode == 2 and "already ended" in late.stderr


@pytest.mark.parametrize("command", [["journey", "list"], ["capability", "list"]])
def test_listing_commands_work_on_an_empty_database(tmp_path: Path, command: list[str]) -> None:
    result = accord(*command, cwd=tmp_path, database=tmp_path / "a.db")
    assert result.returncode == 0, result.stderr
