"""``accord identity``, ``accord context`` and ``accord retention`` against a real SQLite file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from accord.cli import app

Run = Callable[..., Result]
ROOT = Path(__file__).parents[2]
CUSTOMERS = ROOT / "examples" / "identity" / "customers.jsonl"
FEBRL = ROOT.parent / "shared" / "datasets" / "febrl"


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


def _words(result: Result) -> str:
    return " ".join(result.output.split())


def test_resolve_the_example_links_systems_and_leaves_one_possible_link(run: Run) -> None:
    resolved = run("identity", "resolve", str(CUSTOMERS), "--json")
    assert resolved.exit_code == 0, resolved.output
    report = json.loads(resolved.stdout)
    assert report["counts"] == {"created": 3, "linked": 4, "possible": 1}
    by_record = {r["record_id"]: r for r in report["resolutions"]}
    maria = by_record["cus_10001"]["subject_id"]
    assert by_record["acc_20001"]["subject_id"] == maria
    assert by_record["req_40001"]["subject_id"] == maria
    namesake = by_record["req_40009"]
    assert namesake["outcome"] == "possible" and namesake["other_subject_id"] == maria

    shown = run("identity", "show", maria, "--json")
    assert shown.exit_code == 0, shown.output
    records = {r["record_id"] for r in json.loads(shown.stdout)["records"]}
    assert records == {"cus_10001", "acc_20001", "req_40001"}
    assert run("identity", "show", maria).exit_code == 0

    candidates = run("identity", "candidates", "--json")
    assert [c["candidate_id"] for c in json.loads(candidates.stdout)] == [namesake["candidate_id"]]
    reviews = run("review", "list", "--queue", "identity", "--json")
    assert reviews.exit_code == 0, reviews.output
    [item] = json.loads(reviews.stdout)
    assert item["queue"] == "identity" and item["kind"] == "approval"
    shown_item = run("review", "show", item["item_id"], "--json")
    assert shown_item.exit_code == 0, shown_item.output
    assert "match probability" in shown_item.stdout

    again = run("identity", "resolve", str(CUSTOMERS))
    assert "8 unchanged" in _words(again)


def test_merge_and_split_from_the_command_line(run: Run) -> None:
    report = json.loads(run("identity", "resolve", str(CUSTOMERS), "--json").stdout)
    by_record = {r["record_id"]: r["subject_id"] for r in report["resolutions"]}
    keep, other = by_record["cus_10001"], by_record["cus_10002"]
    merged = run("identity", "merge", keep, other, "--by", "ines", "--reason", "a test")
    assert merged.exit_code == 0, merged.output
    merge_id = merged.output.split("merge ")[-1].strip()
    split = run("identity", "split", keep, "--merge", merge_id, "--by", "ines", "--reason", "undo")
    assert split.exit_code == 0, split.output
    assert other in split.output
    missing = run("identity", "split", keep, "--record", "crm", "--reason", "x")
    assert missing.exit_code == 2 and "SOURCE/ID" in missing.output
    no_reason = run("identity", "merge", keep, other, "--reason", " ")
    assert no_reason.exit_code == 2 and "give a reason" in no_reason.output


def test_context_show_withholds_what_the_purpose_does_not_allow(run: Run) -> None:
    report = json.loads(run("identity", "resolve", str(CUSTOMERS), "--json").stdout)
    maria = report["resolutions"][0]["subject_id"]
    policy = run(
        "policy",
        "deploy",
        str(ROOT / "examples" / "policies" / "retail.cedar"),
        "--schema",
        str(ROOT / "examples" / "policies" / "accord.cedarschema"),
    )
    assert policy.exit_code == 0, policy.output
    basis = run(
        "consent",
        "basis",
        "dpv:CustomerCare",
        "--basis",
        "contract",
        "--categories",
        "pd:Name,pd:EmailAddress",
    )
    assert basis.exit_code == 0, basis.output

    shown = run("context", "show", maria, "--purpose", "dpv:CustomerCare", "--json")
    assert shown.exit_code == 0, shown.output
    read = json.loads(shown.stdout)
    assert sorted(read["output"]) == ["pd:EmailAddress", "pd:Name"]
    email = read["output"]["pd:EmailAddress"]["attributes"]["email"]["value"]
    assert email == "maria.okafor@example.com"
    assert "pd:BirthDate" in read["withheld"] and "pd:TelephoneNumber" in read["withheld"]
    assert "+442079460101" not in shown.stdout
    assert run("context", "show", maria, "--purpose", "dpv:CustomerCare").exit_code == 0

    refused = run(
        "context", "show", maria, "--purpose", "dpv:CustomerCare", "--category", "pd:BirthDate"
    )
    assert refused.exit_code == 1
    assert "consent_missing" in refused.output and "19840317" not in refused.output


def test_retention_rules_and_run(run: Run) -> None:
    assert run("identity", "resolve", str(CUSTOMERS)).exit_code == 0
    set_rule = run("retention", "set", "pd:TelephoneNumber", "30d", "--action", "anonymise")
    assert set_rule.exit_code == 0, set_rule.output
    listed = run("retention", "list", "--json")
    [rule] = json.loads(listed.stdout)
    assert (rule["category"], rule["action"], rule["period_seconds"]) == (
        "pd:TelephoneNumber",
        "anonymise",
        30 * 86400,
    )
    ran = run("retention", "run", "--json")
    assert json.loads(ran.stdout)["anonymised"] == []  # nothing is 30 days old yet
    bad = run("retention", "set", "pd:TelephoneNumber", "30d", "--action", "shred")
    assert bad.exit_code == 2 and "delete or anonymise" in bad.output
    bad_category = run("retention", "set", "Telephone", "30d")
    assert bad_category.exit_code == 2 and "not a DPV term" in bad_category.output


def test_resolve_reports_where_a_bad_file_is_wrong(run: Run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"source": "crm", "id": "1", "email": "a@example.com"}\n{oops\n')
    result = run("identity", "resolve", str(broken))
    assert result.exit_code == 2
    assert f"{broken}:2: not JSON" in _words(result)
    csv_without_source = tmp_path / "people.csv"
    csv_without_source.write_text("id,name\n1,Ann Smith\n")
    result = run("identity", "resolve", str(csv_without_source))
    assert result.exit_code == 2 and "--source" in result.output


def test_eval_prints_precision_recall_and_f1_per_data_set(run: Run, tmp_path: Path) -> None:
    if not (FEBRL / "dataset1.csv").exists():
        pytest.skip(f"FEBRL data not found at {FEBRL}")
    data = tmp_path / "febrl"
    data.mkdir()
    shutil.copy(FEBRL / "dataset1.csv", data / "dataset1.csv")  # truth from the record ids
    result = run("identity", "eval", "--data", str(data), "--json")
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert report["true_pairs"] == 500
    assert report["f1"] >= 0.95
    empty = run("identity", "eval", "--data", str(tmp_path))
    assert empty.exit_code == 2 and "no FEBRL data set" in result.output + empty.output
