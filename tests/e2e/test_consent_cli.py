"""``accord consent`` against a real SQLite file, through Typer's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from accord.cli._consent import app

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    runner = CliRunner()
    env = {
        "ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}",
        "ACCORD_TENANT": "default",
        "COLUMNS": "250",
    }

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    return invoke


def test_grant_show_receipt_withdraw_history(run: Run) -> None:
    granted = run(
        "grant",
        "cust-1",
        "--purpose",
        "dpv:Marketing",
        "--categories",
        "pd:EmailAddress, pd:Name",
        "--channel",
        "app",
        "--notice",
        "v7",
        "--expires",
        "365d",
        "--actor",
        "web-form",
        "--json",
    )
    assert granted.exit_code == 0, granted.output
    grant = json.loads(granted.stdout)
    grant_id = grant["grant_id"]
    assert grant["categories"] == ["pd:EmailAddress", "pd:Name"]
    assert grant["status"] == "active" and grant["channel"] == "app"
    assert grant["expires_at"] == pytest.approx(grant["granted_at"] + 365 * 86_400)

    receipt = json.loads(run("receipt", grant_id).stdout)
    assert receipt["consentReceiptID"] == grant_id
    assert receipt["version"] == "KI-CR-v1.1.0" and receipt["piiPrincipalId"] == "cust-1"

    shown = run("show", "cust-1")
    assert shown.exit_code == 0, shown.output
    assert grant_id in shown.stdout and "active" in shown.stdout
    assert "every purpose needs consent" in shown.stdout

    withdrawn = run("withdraw", grant_id, "--reason", "no more mail", "--actor", "cust-1")
    assert withdrawn.exit_code == 0, withdrawn.output
    assert f"withdrew {grant_id}" in withdrawn.stdout
    after = json.loads(run("show", "cust-1", "--json").stdout)
    assert after["grants"][0]["status"] == "withdrawn"

    again = run("withdraw", grant_id)
    assert again.exit_code == 2 and "already withdrawn" in again.stderr

    history = json.loads(run("history", "cust-1", "--json").stdout)
    assert [e["kind"] for e in history] == ["granted", "withdrawn"]
    assert history[1]["detail"]["reason"] == "no more mail"


def test_show_at_a_time_before_anything_was_recorded(run: Run) -> None:
    assert (
        run("grant", "cust-1", "--purpose", "dpv:Marketing", "--categories", "pd:Name").exit_code
        == 0
    )
    past = run("show", "cust-1", "--at", "2001-01-01T00:00:00Z", "--json")
    assert past.exit_code == 0, past.output
    assert json.loads(past.stdout)["grants"] == []
    assert "no consent recorded" in run("show", "cust-1", "--at", "0").stdout
    bad = run("show", "cust-1", "--at", "yesterday")
    assert bad.exit_code == 2 and "neither an ISO 8601 time nor epoch seconds" in bad.stderr


def test_withdraw_a_purpose_for_a_subject(run: Run) -> None:
    for categories in ("pd:Name", "pd:EmailAddress"):
        granted = run("grant", "cust-1", "--purpose", "dpv:Marketing", "--categories", categories)
        assert granted.exit_code == 0, granted.output
    withdrawn = run("withdraw", "cust-1", "--purpose", "dpv:Marketing")
    assert withdrawn.exit_code == 0, withdrawn.output
    assert withdrawn.stdout.count("withdrew ") == 2
    nothing = run("withdraw", "cust-1", "--purpose", "dpv:Marketing")
    assert nothing.exit_code == 0 and "nothing to withdraw" in nothing.stdout


def test_configure_a_basis_then_check_and_remove_it(run: Run) -> None:
    configured = run(
        "basis",
        "dpv:CustomerCare",
        "--basis",
        "contract",
        "--categories",
        "pd:Purchase",
        "--description",
        "order support",
    )
    assert configured.exit_code == 0, configured.output
    assert "contract" in configured.stdout and "pd:Purchase" in configured.stdout
    listed = json.loads(run("bases", "--json").stdout)
    assert listed == [
        {
            "purpose": "dpv:CustomerCare",
            "basis": "contract",
            "categories": ["pd:Purchase"],
            "description": "order support",
        }
    ]
    allowed = json.loads(
        run(
            "check", "cust-9", "--purpose", "dpv:CustomerCare", "--categories", "pd:Purchase",
            "--json",
        ).stdout
    )  # fmt: skip
    assert allowed["allowed"] is True and allowed["basis"] == "contract"
    refused = run("check", "cust-9", "--purpose", "dpv:CustomerCare", "--categories", "pd:Name")
    assert refused.exit_code == 1 and "no consent for dpv:CustomerCare covers pd:Name" in (
        refused.stdout
    )

    removed = run("basis", "dpv:CustomerCare", "--basis", "consent")
    assert removed.exit_code == 0 and "needs each subject's consent" in removed.stdout
    assert json.loads(run("bases", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["grant", "c", "--purpose", "dpv:Marketting", "--categories", "pd:Name"],
            "did you mean 'dpv:Marketing'",
        ),
        (
            ["grant", "c", "--purpose", "dpv:Marketing", "--categories", "pd:DateOfBirth"],
            "did you mean 'pd:BirthDate'",
        ),
        (
            [
                "grant",
                "c",
                "--purpose",
                "dpv:Marketing",
                "--categories",
                "pd:Name",
                "--expires",
                "soon",
            ],
            "neither a duration nor a time",
        ),
        (["withdraw", "grant_nope"], "no consent grant 'grant_nope'"),
        (["receipt", "grant_nope"], "no consent grant 'grant_nope'"),
        (["basis", "dpv:CustomerCare", "--basis", "contrat"], "unknown lawful basis"),
    ],
)
def test_mistakes_exit_2_with_a_message_that_says_what_to_do(
    run: Run, args: list[str], message: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_terms_lists_the_known_vocabulary(run: Run) -> None:
    categories = run("terms", "categories")
    assert categories.exit_code == 0
    assert "pd:Purchase" in categories.stdout and "pd:PaymentCard" in categories.stdout
    assert "dpv:CustomerCare" in run("terms").stdout
