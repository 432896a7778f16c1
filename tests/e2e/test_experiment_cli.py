"""``accord experiment``: create from the sample design, report, ship and stop from the
command line, on a real SQLite file; bad designs are refused with the field named."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from accord.cli._experiments import app
from accord.core import TenantId
from accord.service import Settings, build

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "examples" / "enterprise" / "experiments" / "retention-offer.yaml"
Invoke = Callable[..., Result]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'accord.db'}"


@pytest.fixture
def invoke(url: str, tmp_path: Path) -> Invoke:
    runner = CliRunner()
    env = {
        "ACCORD_DATABASE_URL": url,
        "ACCORD_KEYS_DIR": str(tmp_path / "keys"),
        "COLUMNS": "200",
    }

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    return run


def test_create_report_and_ship_from_the_command_line(
    invoke: Invoke, url: str, tmp_path: Path
) -> None:
    created = invoke("create", str(DESIGN), "--actor", "ann")
    assert created.exit_code == 0, created.output
    assert "experiment retention-offer v1 running: usual, generous, holdout 5%" in created.stdout
    again = invoke("create", str(DESIGN))
    assert again.exit_code == 2 and "is running" in again.output

    accord = build(Settings(database_url=url, keys_dir=tmp_path / "keys"))
    try:
        rng = random.Random(11)
        tenant = TenantId(accord.settings.tenant)
        for i in range(400):
            subject = f"cus_{i}"
            arm = accord.experiments.assign(tenant, "retention-offer", subject)
            lift = 0.3 if arm.variant == "generous" else 0.0
            accord.experiments.record(
                tenant, "retention-offer", subject, "retained", float(rng.random() < 0.35 + lift)
            )
    finally:
        accord.db.dispose()

    shown = invoke("report", "retention-offer")
    assert shown.exit_code == 0, shown.output
    assert "verdict: ship generous" in shown.stdout
    assert "mSPRT (normal mixture, tau=0.08), always valid" in shown.stdout
    report = json.loads(invoke("report", "retention-offer", "--json").stdout)
    assert report["status"] == "running" and report["primary"][0]["variant"] == "generous"
    assert sum(report["assigned"].values()) == 400

    shipped = invoke(
        "ship", "retention-offer", "generous", "--reason", "keeps more", "--actor", "ann"
    )
    assert shipped.exit_code == 0, shipped.output
    listed = json.loads(invoke("list", "--json").stdout)
    assert listed[0]["status"] == "shipped" and listed[0]["decision"]["variant"] == "generous"
    stopped = invoke("stop", "retention-offer", "--reason", "late")
    assert stopped.exit_code == 2 and "already ended" in stopped.output


def test_a_bad_design_and_an_unknown_experiment_are_refused(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DESIGN.read_text().replace("control: usual", "control: nobody"))
    refused = invoke("create", str(bad))
    assert refused.exit_code == 2
    assert "control 'nobody' is not one of the variants" in refused.output
    missing = invoke("report", "no-such-experiment")
    assert missing.exit_code == 2 and "no experiment 'no-such-experiment'" in missing.output
