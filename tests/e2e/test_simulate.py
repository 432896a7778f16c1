"""``accord simulate`` as a real process: every shipped scenario matches; bad input is located."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "examples" / "enterprise" / "scenarios").glob("*.yaml"))


def simulate(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "simulate", *args],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_every_sample_journey_has_a_scenario() -> None:
    journeys = {p.stem for p in (ROOT / "examples" / "enterprise" / "journeys").glob("*.yaml")}
    assert journeys <= {p.stem for p in SCENARIOS}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_the_scenario_goes_as_expected(scenario: Path) -> None:
    result = simulate(str(scenario), "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"ok": true' in result.stdout and '"mismatches": []' in result.stdout


WRONG = (
    "scenario: a wrong expectation\n"
    "cases:\n"
    "  - name: small refund\n"
    "    journey: refund_request\n"
    "    subject: cus_00001\n"
    "    input: {customer_id: cus_00001, order_id: '#W4316152', amount: 50.0}\n"
    "    expect: {status: completed, outcome: declined}\n"
)


def test_a_mismatch_fails_the_command(tmp_path: Path) -> None:
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(WRONG)
    result = simulate(str(scenario))
    assert result.returncode == 1
    assert "MISMATCH" in result.stdout and "completed refunded" in result.stdout
    assert "1 case(s) did not go as the scenarios expect" in result.stderr


def test_a_mismatch_with_json_still_prints_json(tmp_path: Path) -> None:
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(WRONG)
    result = simulate(str(scenario), "--json")
    assert result.returncode == 1
    [report] = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["mismatches"][0]["case"] == "small refund"
    assert "1 case(s) did not go as the scenarios expect" in result.stderr


def test_a_malformed_scenario_names_the_field(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        "scenario: bad\ncases:\n  - name: x\n    journey: refund_request\n    input: {}\n"
        "    persona: {otp: maybe}\n    expect: {status: completed}\n"
    )
    result = simulate(str(scenario))
    assert result.returncode == 2
    assert "cases[0].persona.otp" in result.stderr and "invalid scenario" in result.stderr


def test_every_file_is_checked_before_any_scenario_runs(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(WRONG)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "scenario: bad\ncases:\n  - name: x\n    journey: refund_request\n    input: {}\n"
        "    persona: {withdraw_at: nowhere}\n    expect: {status: completed}\n"
    )
    result = simulate(str(good), str(bad))
    assert result.returncode == 2
    assert f"{bad}: invalid scenario" in result.stderr
    assert "cases[0].persona.withdraw_at: 'nowhere' is not a block of refund_request" in (
        result.stderr
    )
    assert "a wrong expectation" not in result.stdout and "MISMATCH" not in result.stdout
