"""The retail policy suite: every tau-bench train and dev task, and its violations, through
Accord's gateway against the sandbox orders service seeded from the full benchmark data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli import app
from accord.suites.retail import (
    DEFAULT_DATASET,
    VIOLATION_KINDS,
    RetailSuite,
    SuiteReport,
    Task,
    TaskFileInvalid,
    default_task_files,
    find_suite_files,
    load_tasks,
)

DATA = DEFAULT_DATASET / "data"

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"no tau-bench retail dataset at {DEFAULT_DATASET}"
)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RetailSuite]:
    workdir = tmp_path_factory.mktemp("retail-suite")
    with RetailSuite(data=DATA, suite=find_suite_files(), workdir=workdir) as running:
        yield running


@pytest.fixture(scope="module")
def full_run(suite: RetailSuite) -> tuple[SuiteReport, list[Task]]:
    tasks = [task for path in default_task_files() for task in load_tasks(path)]
    return suite.run(tasks), tasks


def test_every_train_and_dev_task_is_permitted_matches_and_every_violation_is_refused(
    full_run: tuple[SuiteReport, list[Task]],
) -> None:
    report, tasks = full_run
    assert len(tasks) == 520 and report.tasks == 520
    assert report.misses() == []
    summary = report.to_json()
    assert summary["ok"] is True
    permitted = summary["compliant"]
    assert permitted["permitted"] == permitted["total"] > 700
    assert set(permitted["by_action"]) == {
        "cancel_pending_order",
        "modify_pending_order_address",
        "modify_pending_order_payment",
        "modify_pending_order_items",
        "return_delivered_order_items",
        "exchange_delivered_order_items",
    }
    assert summary["final_state"] == {"matched": 520, "total": 520}
    violations = summary["violations"]
    assert violations["refused"] == violations["total"] > 4000


@pytest.mark.parametrize("kind", sorted(VIOLATION_KINDS))
def test_each_violation_kind_occurs_and_is_refused_by_its_own_rule(
    full_run: tuple[SuiteReport, list[Task]], kind: str
) -> None:
    report, _ = full_run
    found = [v for v in report.variants if v.kind == kind]
    assert found, f"no task gave a {kind} variant"
    assert all(v.policy == VIOLATION_KINDS[kind] for v in found)
    assert [v for v in found if not v.refused] == []


def test_ground_truth_actions_that_break_a_rule_are_refused_by_it_and_change_nothing(
    full_run: tuple[SuiteReport, list[Task]],
) -> None:
    # a few tasks pay with a gift card too small for the order: the oracle expects no change
    report, _ = full_run
    broken = [v for v in report.variants if v.kind == "ground_truth_not_allowed"]
    assert broken and all(v.refused for v in broken)
    assert {v.policy for v in broken} == {"gift-card-covers-amount"}


def test_with_the_rules_switched_off_the_violations_reach_the_shop(
    tmp_path: Path,
) -> None:
    """The protection can fail: with a permit-all bundle, the suite reports the misses."""
    files = tmp_path / "suite"
    source = find_suite_files()
    (files / "policies").mkdir(parents=True)
    (files / "journeys").mkdir()
    (files / "capabilities.yaml").write_text((source / "capabilities.yaml").read_text())
    journey = source / "journeys" / "retail_order_request.yaml"
    (files / "journeys" / journey.name).write_text(journey.read_text())
    schema = source / "policies" / "retail-suite.cedarschema"
    (files / "policies" / schema.name).write_text(schema.read_text())
    (files / "policies" / "retail-suite.cedar").write_text(
        '@id("permit-all")\npermit (principal, action, resource);\n'
    )
    task = load_tasks(DEFAULT_DATASET / "tasks_train.json")[0]
    with RetailSuite(data=DATA, suite=files, workdir=tmp_path / "work") as unguarded:
        report = unguarded.run([task])
    assert not report.ok
    slipped = {v.kind for v in report.variants if not v.refused}
    assert {"unauthenticated", "other_users_order"} <= slipped


def test_a_malformed_task_file_names_the_task_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "tasks.json"
    good = {"user_id": "omar_anderson_3203", "actions": []}
    wrong = {
        "user_id": "omar_anderson_3203",
        "actions": [{"name": "cancel_pending_order", "kwargs": {"order_id": "W1"}}],
    }
    bad.write_text(json.dumps([good, wrong]))
    with pytest.raises(TaskFileInvalid) as caught:
        load_tasks(bad)
    assert "task 1: actions[0].kwargs.order_id" in caught.value.message
    bad.write_text(json.dumps([{"user_id": "x", "actions": []}]))
    with pytest.raises(TaskFileInvalid, match="task 0: field user_id"):
        load_tasks(bad)
    bad.write_text(json.dumps([{**good, "actions": [{"name": "drop_table", "kwargs": {}}]}]))
    with pytest.raises(TaskFileInvalid, match=r"task 0: actions\[0\]\.name: 'drop_table'"):
        load_tasks(bad)


def test_the_command_exits_non_zero_with_a_message_on_a_bad_task_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('[{"user_id": "omar_anderson_3203", "actions": {}}]')
    result = CliRunner().invoke(app, ["suite", "retail", "--tasks", str(bad)])
    assert result.exit_code == 2
    assert "task 0: field actions must be a list" in result.output
    missing = CliRunner().invoke(app, ["suite", "retail", "--tasks", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "none.json" in missing.output
    no_data = CliRunner().invoke(
        app, ["suite", "retail", "--tasks", str(bad), "--data", str(tmp_path / "nodata")]
    )
    assert no_data.exit_code == 2 and "nodata" in no_data.output


def test_the_command_prints_a_table_and_one_json_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["suite", "retail", "--limit", "2", "--json"])
    assert result.exit_code == 0, result.output
    [line] = [text for text in result.output.splitlines() if text.startswith("{")]
    summary = json.loads(line)
    assert summary["ok"] and summary["tasks"] == 2
    assert summary["final_state"] == {"matched": 2, "total": 2}
