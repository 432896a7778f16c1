"""``accord agent``: train, evaluate, deploy, roll out and read metrics, on a real SQLite file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from accord.cli._agents import app

Invoke = Callable[..., Result]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents"
SPEC = EXAMPLES / "support-triage.yaml"
VALIDATION = EXAMPLES / "data" / "support-intents-validation.jsonl"


@pytest.fixture
def invoke(tmp_path: Path) -> Invoke:
    runner = CliRunner()
    env = {"ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}", "COLUMNS": "200"}

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    return run


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """The example agent's directory, copied so that training writes into the copy."""
    target = tmp_path / "agents"
    shutil.copytree(EXAMPLES, target)
    return target / SPEC.name


def test_training_reproduces_the_shipped_model_and_suggests_a_threshold(
    invoke: Invoke, copied: Path
) -> None:
    model = copied.parent / "models" / "support-intents.npz"
    model.unlink()
    trained = invoke(
        "train",
        str(copied),
        "--data",
        str(copied.parent / "data" / "support-intents.jsonl"),
        "--validation",
        str(copied.parent / "data" / "support-intents-validation.jsonl"),
    )
    assert trained.exit_code == 0, trained.output
    # the same data give the same model; numerical libraries may differ in the last bits
    _assert_same_model(model, EXAMPLES / "models" / "support-intents.npz")
    said = " ".join(trained.stdout.split())
    assert "from 403 examples, 9 labels" in said
    assert "set bands.auto to" in said


def test_eval_prints_accuracy_and_the_risk_coverage_table(invoke: Invoke) -> None:
    shown = invoke("eval", str(SPEC), "--data", str(VALIDATION))
    assert shown.exit_code == 0, shown.output
    # Rich wraps long lines at the terminal width, which depends on the path's length
    said = " ".join(shown.stdout.split())
    assert "60 items (48 in scope)" in said
    assert "auto" in shown.stdout and "confirm" in shown.stdout
    report = json.loads(invoke("eval", str(SPEC), "--data", str(VALIDATION), "--json").stdout)
    assert report["agent"] == "support-triage@1" and report["items"] == 60
    at_auto = next(r for r in report["rows"] if r["threshold"] == report["bands"]["auto"])
    # out-of-scope messages never auto-execute, so coverage cannot pass the in-scope share
    assert at_auto["coverage"] <= 48 / 60
    assert at_auto["risk"] <= 0.01


def test_bad_data_gets_a_located_error(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hello", "label": "order_status"}\n{"text": 3}\n')
    shown = invoke("eval", str(SPEC), "--data", str(bad))
    assert shown.exit_code != 0
    assert "bad.jsonl:2: not a labelled example" in " ".join(shown.output.split())


def test_deploy_list_show_roll_out_and_metrics(invoke: Invoke, copied: Path) -> None:
    deployed = invoke("deploy", str(copied), "--by", "ann")
    assert deployed.exit_code == 0, deployed.output
    assert "deployed: support-triage v1" in deployed.stdout
    again = invoke("deploy", str(copied))
    assert "already deployed: support-triage v1" in again.stdout
    listed = json.loads(invoke("list", "--json").stdout)
    assert [(r["agent"], r["version"], r["deployed_by"]) for r in listed] == [
        ("support-triage", 1, "ann")
    ]
    shown = json.loads(invoke("show", "support-triage").stdout)
    assert shown["spec"]["bands"] == {"auto": 0.8, "confirm": 0.5}
    assert list(shown["models"]) == ["models/support-intents.npz"]

    changed = copied.read_text().replace("bands: {auto: 0.8", "bands: {auto: 0.9")
    copied.write_text(changed)
    refused = invoke("deploy", str(copied))
    assert refused.exit_code != 0
    assert "already deployed with other content" in refused.output
    copied.write_text(changed.replace("version: 1", "version: 2"))
    assert invoke("deploy", str(copied)).exit_code == 0

    started = invoke("rollout", "start", "support-triage", "--candidate", "2", "--by", "ann")
    assert started.exit_code == 0, started.output
    assert "support-triage v1 → v2 (5%), active" in started.stdout
    rollout_id = started.stdout.split(":")[0].strip()
    twice = invoke("rollout", "start", "support-triage", "--candidate", "2")
    assert twice.exit_code != 0 and "already has an active rollout" in twice.output
    advanced = invoke("rollout", "advance", rollout_id)
    assert "(25%), active" in advanced.stdout
    stopped = invoke("rollout", "stop", rollout_id, "--reason", "not now")
    assert "stopped: not now" in stopped.stdout
    rollouts = json.loads(invoke("rollout", "list", "--json").stdout)
    assert [(r["status"], r["percent"]) for r in rollouts] == [("stopped", 0.0)]
    assert "no agent outputs recorded yet" in invoke("metrics").stdout


def _assert_same_model(trained: Path, shipped: Path) -> None:
    """Equal arrays and metadata, floating-point values to 1e-9 relative."""
    with np.load(trained, allow_pickle=False) as a, np.load(shipped, allow_pickle=False) as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            if name == "metadata":
                _assert_close(json.loads(bytes(a[name])), json.loads(bytes(b[name])), name)
            elif a[name].dtype.kind == "f":
                np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-12)
            else:
                np.testing.assert_array_equal(a[name], b[name])


def _assert_close(left: object, right: object, where: str) -> None:
    if isinstance(left, dict) and isinstance(right, dict):
        assert sorted(left) == sorted(right), where
        for key in left:
            _assert_close(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list) and isinstance(right, list):
        assert len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            _assert_close(a, b, f"{where}[{index}]")
    elif isinstance(left, float) or isinstance(right, float):
        assert left == pytest.approx(right, rel=1e-9, abs=1e-12), where
    else:
        assert left == right, where
