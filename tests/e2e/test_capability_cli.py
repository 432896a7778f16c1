"""``accord capability``: list, show and lint, run as a real process against a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RETAIL = ROOT / "examples" / "capabilities" / "retail.yaml"


def accord(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "capability", *args],
        check=False,
        cwd=tmp_path,
        env={
            **os.environ,
            "COLUMNS": "200",
            "ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}",
            "ACCORD_CAPABILITY_MODULES": '["accord.sandbox"]',
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_list_shows_each_capability_with_its_governance(tmp_path: Path) -> None:
    result = accord("list", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line}
    assert {"orders.lookup", "payments.refund", "notify.send"} <= set(rows)
    assert "irreversible" in rows["payments.refund"]
    assert "pd:PaymentCard" in rows["payments.refund"]
    assert "accord.sandbox._retail:RetailSystems.refund" in rows["payments.refund"]
    assert "pd:Purchase" in rows["orders.lookup"]


def test_list_as_json(tmp_path: Path) -> None:
    result = accord("list", "--json", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listed["payments.refund"]["side_effect"] == "irreversible"
    assert listed["orders.lookup"]["fields"] == {"items": "pd:Purchase"}


def test_show_prints_governance_and_both_schemas(tmp_path: Path) -> None:
    result = accord("show", "payments.refund", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("payments.refund\n")
    assert "Refund money to the original payment method" in out
    for label, value in (
        ("side effect", "irreversible"),
        ("idempotent", "yes"),
        ("compensation", "-"),
        ("writes", "pd:PaymentCard"),
        ("source", "accord.sandbox._retail:RetailSystems.refund"),
    ):
        assert any(line.split() == [*label.split(), value] for line in out.splitlines()), label
    input_part = out.split("input schema\n", 1)[1].split("\noutput schema\n", 1)[0]
    assert json.loads(input_part)["required"] == ["order_id", "amount"]
    output_part = out.split("output schema\n", 1)[1]
    assert "refund_id" in json.loads(output_part)["properties"]


def test_show_as_json(tmp_path: Path) -> None:
    result = accord("show", "orders.lookup", "--json", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["reads"] == ["pd:Purchase"]
    assert shown["input_schema"]["properties"]["order_id"]["minLength"] == 1


def test_show_a_catalogue_capability_loaded_from_settings(tmp_path: Path) -> None:
    result = accord(
        "show",
        "crm.lookup_customer",
        tmp_path=tmp_path,
        ACCORD_CAPABILITY_CATALOGUES=json.dumps([str(RETAIL)]),
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{RETAIL}:5" in out
    assert any(line.split() == ["region", "eu-west-1"] for line in out.splitlines())
    assert "name → pd:Name" in out
    input_part = out.split("input schema\n", 1)[1].split("\noutput schema\n", 1)[0]
    assert json.loads(input_part)["properties"]["customer_id"]["pattern"] == "^cus_[0-9]{5}$"


def test_a_bad_catalogue_in_settings_stops_the_command_with_its_diagnostics(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        RETAIL.read_text(encoding="utf-8").replace("side_effect: write", "side_effect: wrte"),
        encoding="utf-8",
    )

    result = accord("list", tmp_path=tmp_path, ACCORD_CAPABILITY_CATALOGUES=json.dumps([str(bad)]))

    assert result.returncode == 1
    assert f"{bad}:32:" in result.stderr
    assert "side_effect must be read, write or irreversible, not 'wrte'" in result.stderr
    assert "nothing from it was registered" in result.stderr


def test_show_unknown_capability_suggests_close_names(tmp_path: Path) -> None:
    result = accord("show", "orders.lookpu", tmp_path=tmp_path)

    assert result.returncode == 2
    assert "no capability named 'orders.lookpu'" in result.stderr
    assert "did you mean 'orders.lookup'?" in result.stderr
    assert result.stdout == ""


def test_lint_accepts_the_retail_catalogue(tmp_path: Path) -> None:
    result = accord("lint", str(RETAIL), tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"ok {RETAIL} (4 capabilities)" in result.stdout


def test_lint_locates_problems_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        RETAIL.read_text(encoding="utf-8")
        .replace("name: crm.revert_email", "name: orders.lookup")
        .replace("reads: [pd:OfficialID]", "reads: [pd:OficialID]"),
        encoding="utf-8",
    )

    result = accord("lint", str(bad), tmp_path=tmp_path)

    assert result.returncode == 2
    assert f"{bad}:53:" in result.stderr
    assert "'orders.lookup' is already registered" in result.stderr
    assert f"{bad}:34:" in result.stderr
    assert "compensation 'crm.revert_email' is not a known capability" in result.stderr
    assert f"{bad}:79:" in result.stderr
    assert "unknown DPV-PD category 'pd:OficialID'; did you mean 'pd:OfficialID'" in result.stderr
