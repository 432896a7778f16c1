"""``accord offers``: deploy the sample catalogue and list it from the command line, on a real
SQLite file; a bad catalogue is refused with the file and field named, and nothing deployed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from accord.cli._offers import app

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "examples" / "enterprise" / "offers" / "customer-offers.yaml"
# a catalogue over Accord's own built-in capabilities, which a bare instance has
SMALL = """
catalogue: thanks
purpose: dpv:ProvidePersonalisedRecommendations
sources:
  context: {capability: context.read, input: {categories: '["pd:Purchase"]'}}
features:
  purchases: {source: context, value: source}
contact:
  channels: {portal: []}
ranking: {method: bandit}
offers:
  - name: thank_you_note
    title: a thank-you note
    channels: [portal]
    reasons:
      - text: '"because we wanted to say thank you"'
  - name: tips
    title: our monthly tips
    channels: [portal]
    reasons:
      - text: '"because customers like you found them useful"'
"""
Invoke = Callable[..., Result]


@pytest.fixture
def invoke(tmp_path: Path) -> Invoke:
    runner = CliRunner()
    env = {
        "ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}",
        "ACCORD_KEYS_DIR": str(tmp_path / "keys"),
        "COLUMNS": "200",
    }

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    return run


def test_deploy_then_list(invoke: Invoke, tmp_path: Path) -> None:
    small = tmp_path / "thanks.yaml"
    small.write_text(SMALL, encoding="utf-8")
    deployed = invoke("deploy", str(small), "--by", "ann")
    assert deployed.exit_code == 0, deployed.output
    assert "offer catalogue thanks v1: 2 offers, ranked by bandit" in deployed.output
    again = invoke("deploy", str(small))
    assert again.exit_code == 0 and "v1" in again.output
    listed = invoke("list", "--json")
    assert listed.exit_code == 0, listed.output
    [catalogue] = json.loads(listed.output)
    assert catalogue["deployed_by"] == "ann" and catalogue["method"] == "bandit"
    assert [o["offer"] for o in catalogue["offers"]] == ["thank_you_note", "tips"]
    assert all(o["trials"] == 0 for o in catalogue["offers"])


def test_a_bad_catalogue_names_the_file_and_field_and_deploys_nothing(
    invoke: Invoke, tmp_path: Path
) -> None:
    bad = tmp_path / "offers.yaml"
    bad.write_text(
        CATALOGUE.read_text(encoding="utf-8").replace("max: 2, per: 7d", "max: 2, per: weekly"),
        encoding="utf-8",
    )
    refused = invoke("deploy", str(bad))
    assert refused.exit_code == 2
    flat = " ".join(refused.output.split())
    assert f"{bad}: contact.caps.0.per" in flat
    assert "'weekly' is not a duration" in flat
    listed = invoke("list", "--json")
    assert json.loads(listed.output) == []


def test_the_sample_catalogue_on_an_instance_without_its_capabilities_is_refused(
    invoke: Invoke,
) -> None:
    result = invoke("deploy", str(CATALOGUE))
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert "sources.profile: no capability 'crm.get_customer'" in flat
    assert "'accord capability list' shows the registered capabilities" in flat
    assert json.loads(invoke("list", "--json").output) == []
