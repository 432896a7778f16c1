"""``accord replay``: recorded runs re-run against a candidate in shadow.

Every test records real runs on the test database (SQLite and PostgreSQL), then replays them
against a journey version, a policy bundle or an agent version, and checks what the report
says changed, that nothing was called or written, and that no personal data is printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from accord.agents import load_agent_text
from accord.cli import app
from accord.connectors import CapabilityRegistry
from accord.core import TenantId
from accord.errors import InputError
from accord.journeys import load_journey_text
from accord.replay import ReplayReport, replay_candidate
from accord.service import Accord
from accord.storage._schema import metadata
from tests.capabilities import Calls, register_test_capabilities
from tests.governance import deploy_policies

T = TenantId("default")
EMAIL = "ada.lovelace@example.org"
NAME = "Ada Lovelace"
SUBJECT = "cus-ada-1815"

JOURNEY = """
journey: refund
purpose: dpv:ServiceProvision
input: {amount: number, email: string, name: string}
blocks:
  - id: lookup
    kind: task
    capability: test.echo
    input: {value: input.email, number: input.amount}
  - id: risk
    kind: decide
    hit_policy: first
    inputs: {amount: steps.lookup.number}
    rules:
      - when: {amount: "> THRESHOLD"}
        then: {tier: high}
    default: {tier: low}
  - id: route
    kind: choice
    choices:
      - when: steps.risk.tier == "high"
        next: manual
    default: refund
  - id: refund
    kind: task
    capability: test.double
    input: {amount: input.amount}
    context: {amount: input.amount}
  - {id: done, kind: end, outcome: refunded, output: {paid: steps.refund.amount, who: input.name}}
  - {id: manual, kind: end, outcome: manual_review}
"""

EXTRA_CALL = JOURNEY.replace("    default: refund\n", "    default: notify\n").replace(
    "  - id: refund\n",
    "  - id: notify\n    kind: task\n    capability: test.undo\n    input: {value: input.name}\n"
    "  - id: refund\n",
)


def register(registry: CapabilityRegistry) -> None:
    """The test capabilities, for the ``accord`` processes the CLI tests build."""
    register_test_capabilities(registry, Calls())


def journey(threshold: int = 500, text: str = JOURNEY) -> str:
    return text.replace("THRESHOLD", str(threshold))


def approval_policy(threshold: int) -> str:
    return f"""
@id("reads")
permit(principal, action == Accord::Action::"test.echo", resource);
@id("refund-small")
permit(principal, action == Accord::Action::"test.double", resource)
when {{ context has amount && context.amount.lessThan(decimal("{threshold}.0")) }};
@id("refund-large-with-supervisor")
@approval("supervisor")
permit(principal, action == Accord::Action::"test.double", resource)
when {{ context has amount && context.amount.greaterThanOrEqual(decimal("{threshold}.0")) }};
"""


def record(accord: Accord, amount: float, *, subject: str = SUBJECT) -> str:
    run_id = accord.runtime.start(
        T,
        "refund",
        input={"amount": amount, "email": EMAIL, "name": NAME},
        subject=subject,
    ).run_id
    accord.runtime.drive()
    return run_id


def dump(accord: Accord) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    with accord.db.read() as connection:
        return {
            table.name: sorted(
                (tuple(repr(v) for v in row) for row in connection.execute(sa.select(table))),
            )
            for table in metadata.sorted_tables
        }


def by_run(report: ReplayReport) -> dict[str, Any]:
    return {r.run_id: r for r in report.runs}


@pytest.fixture
def refunds(make_accord: Callable[..., Accord]) -> Accord:
    accord = make_accord(policies=None)
    deploy_policies(accord, approval_policy(100))
    accord.runtime.catalog.deploy(T, load_journey_text(journey()))
    return accord


def test_a_lower_approval_threshold_changes_exactly_the_runs_between_the_thresholds(
    refunds: Accord, calls: Calls
) -> None:
    small, middle, large = (record(refunds, a) for a in (20.0, 70.0, 150.0))
    assert refunds.runtime.get(T, middle).outcome == "refunded"
    assert refunds.runtime.get(T, large).status == "waiting"
    deploy_policies(refunds, approval_policy(50))
    before, called = dump(refunds), dict(calls.by_capability)

    report = replay_candidate(refunds, journey="refund", candidate="policy:2", since=0)

    assert report.counts == {
        "replayed": 3,
        "unchanged": 2,
        "changed": 1,
        "diverged": 0,
        "failed": 0,
        "skipped": 0,
    }
    runs = by_run(report)
    assert runs[small].status == "unchanged" and runs[large].status == "unchanged"
    changed = runs[middle]
    gateway = [c for c in changed.changes if c.kind == "gateway"]
    assert len(gateway) == 1
    change = gateway[0]
    assert change.block == "refund"
    assert change.before["outcome"] == "executed"
    assert change.before["determining"] == ["refund-small"]
    assert change.after["outcome"] == "approval_required"
    assert change.after["determining"] == ["refund-large-with-supervisor"]
    assert change.after["obligations"][0]["value"] == "supervisor"
    assert change.recorded is not None and "policy bundle v1" in change.recorded
    assert "decided by refund-small" in change.recorded
    assert change.candidate is not None and "policy bundle v2" in change.candidate
    assert "required an approval" in change.candidate
    assert changed.recorded_outcome == "completed with outcome refunded"
    assert changed.candidate_outcome == "waiting at refund (human)"
    assert any(c.kind == "outcome" for c in changed.changes)
    assert dump(refunds) == before
    assert dict(calls.by_capability) == called


def test_a_recorded_approval_is_given_again_in_the_shadow(refunds: Accord) -> None:
    run_id = record(refunds, 150.0)
    refunds.runtime.decide(T, run_id, "refund", "approve", by="sam", reason="known customer")
    refunds.runtime.drive()
    assert refunds.runtime.get(T, run_id).outcome == "refunded"
    deploy_policies(refunds, approval_policy(50))

    report = replay_candidate(refunds, journey="refund", candidate="policy:2", since=0)

    assert [r.status for r in report.runs] == ["unchanged"]


def test_a_changed_decision_table_changes_the_expected_paths_and_outcomes(
    make_accord: Callable[..., Accord], calls: Calls
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(journey(500)))
    small, middle, large = (record(accord, a) for a in (20.0, 150.0, 700.0))
    accord.runtime.catalog.deploy(T, load_journey_text(journey(100)))
    before, called = dump(accord), dict(calls.by_capability)

    report = replay_candidate(accord, journey="refund", candidate="journey:refund@2", since=0)

    runs = by_run(report)
    assert (runs[small].status, runs[middle].status, runs[large].status) == (
        "unchanged",
        "changed",
        "unchanged",
    )
    changed = runs[middle]
    assert changed.recorded_path == ("lookup", "risk", "route", "refund", "done")
    assert changed.candidate_path == ("lookup", "risk", "route", "manual")
    kinds = {c.kind: c for c in changed.changes}
    assert kinds["rules"].before == {"rules": [], "output": {"tier": "low"}}
    assert kinds["rules"].after == {"rules": [1], "output": {"tier": "high"}}
    assert kinds["rules"].recorded is not None and "gave {'tier': 'low'}" in kinds["rules"].recorded
    assert kinds["rules"].candidate is not None and "'high'" in kinds["rules"].candidate
    assert kinds["choice"].after == {"next": "manual"}
    assert kinds["outcome"].before == "completed with outcome refunded"
    assert kinds["outcome"].after == "completed with outcome manual_review"
    assert "refund" in (kinds["path"].note or "")
    assert dump(accord) == before
    assert dict(calls.by_capability) == called


def test_a_call_the_recording_never_made_diverges_and_nothing_is_called(
    make_accord: Callable[..., Accord], calls: Calls, tmp_path: Path
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(journey()))
    run_id = record(accord, 20.0)
    candidate = tmp_path / "refund.yaml"
    candidate.write_text(journey(text=EXTRA_CALL))
    before, called = dump(accord), dict(calls.by_capability)

    report = replay_candidate(
        accord, journey="refund", candidate=f"journey-file:{candidate}", since=0
    )

    replayed = by_run(report)[run_id]
    assert replayed.status == "diverged"
    assert replayed.divergences == (
        "would call test.undo at notify (visit 1), which the recorded run never called",
    )
    assert report.counts["diverged"] == 1
    assert calls.by_capability["test.undo"] == 0
    assert dict(calls.by_capability) == called
    assert dump(accord) == before


def test_runs_of_erased_subjects_are_skipped_and_counted(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(journey()))
    kept = record(accord, 20.0, subject="cus-kept")
    record(accord, 30.0, subject="cus-gone")
    accord.erase_subject("cus-gone", actor="dpo", reason="request")
    accord.runtime.catalog.deploy(T, load_journey_text(journey(10)))

    report = replay_candidate(accord, journey="refund", candidate="journey:refund@2", since=0)

    assert [r.run_id for r in report.runs] == [kept]
    assert report.counts["skipped"] == 1


AGENT = """
agent: triage
version: {version}
purpose: dpv:ServiceProvision
model:
  provider: scripted
  name: script
  script:
    - when: "money back"
      output: {{intent: {intent}}}
      confidence: {confidence}
    - output: {{intent: other}}
      confidence: 0.95
prompt: triage
input:
  message: {{type: string}}
output:
  schema:
    type: object
    properties:
      intent: {{type: string}}
    required: [intent]
bands: {{auto: 0.9, confirm: 0.6}}
"""

SUPPORT = """
journey: support
purpose: dpv:ServiceProvision
input: {message: string}
blocks:
  - id: triage
    kind: agent
    agent: triage
    input: {message: input.message}
    on: {confirm: ask, escalate: ask}
  - id: route
    kind: choice
    choices:
      - when: steps.triage.output.intent == "refund"
        next: refund
    default: other
  - {id: refund, kind: end, outcome: refund}
  - {id: other, kind: end, outcome: routed}
  - {id: ask, kind: end, outcome: asked}
"""


def test_an_agent_candidate_is_asked_again_and_its_changes_reported(
    accord: Accord, tmp_path: Path
) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "triage.md").write_text(
        "Sort the message.\n<!-- user -->\n{{ input.message }}\n"
    )
    for version, intent, confidence in ((1, "refund", 0.95), (2, "refund", 0.7)):
        text = AGENT.format(version=version, intent=intent, confidence=confidence)
        accord.deploy_agent(load_agent_text(text, source_name="triage.yaml", base=tmp_path))
    accord.runtime.catalog.deploy(T, load_journey_text(SUPPORT))
    runs = []
    for message in ("I want my money back", "where is my parcel"):
        runs.append(
            accord.runtime.start(T, "support", input={"message": message}, subject=SUBJECT).run_id
        )
    accord.runtime.drive()
    assert accord.runtime.get(T, runs[0]).outcome == "refund"
    before = dump(accord)

    report = replay_candidate(accord, journey="support", candidate="agent:triage@2", since=0)

    result = by_run(report)
    assert result[runs[1]].status == "unchanged"
    changed = result[runs[0]]
    assert changed.status == "changed"
    agent = next(c for c in changed.changes if c.kind == "agent")
    assert agent.before["band"] == "auto" and agent.after["band"] == "confirm"
    assert agent.after["confidence"] == 0.7
    assert agent.candidate is not None and "triage" in agent.candidate
    assert changed.candidate_outcome == "completed with outcome asked"
    assert dump(accord) == before


def test_the_report_holds_no_personal_data(
    make_accord: Callable[..., Accord], tmp_path: Path
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(journey(500)))
    record(accord, 150.0)
    accord.runtime.catalog.deploy(T, load_journey_text(journey(100)))
    report = replay_candidate(accord, journey="refund", candidate="journey:refund@2", since=0)
    assert report.counts["changed"] == 1
    text = json.dumps(report.to_json())
    for secret in (EMAIL, NAME, "Lovelace", SUBJECT):
        assert secret not in text
    printed = _cli(accord, tmp_path, "--candidate", "journey:refund@2")
    assert printed.exit_code == 0, printed.output
    assert "1 changed" in printed.output
    for secret in (EMAIL, NAME, "Lovelace", SUBJECT):
        assert secret not in printed.output
    as_json = _cli(accord, tmp_path, "--candidate", "journey:refund@2", "--json")
    assert json.loads(as_json.stdout)["counts"]["changed"] == 1
    assert EMAIL not in as_json.output and NAME not in as_json.output


def _cli(accord: Accord, tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        app,
        [
            "replay",
            "--journey",
            "refund",
            "--since",
            "1970-01-01T00:00:00Z",
            "--database",
            accord.settings.database_url,
            *args,
        ],
        env={
            "ACCORD_KEYS_DIR": str(tmp_path / "keys"),
            "ACCORD_TENANT": "default",
            "ACCORD_CAPABILITY_MODULES": json.dumps([__name__]),
        },
    )


def test_fail_on_change_gates_ci(make_accord: Callable[..., Accord], tmp_path: Path) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(journey(500)))
    record(accord, 150.0)
    accord.runtime.catalog.deploy(T, load_journey_text(journey(100)))
    same = _cli(accord, tmp_path, "--candidate", "journey:refund@1", "--fail-on-change")
    assert same.exit_code == 0, same.output
    changed = _cli(accord, tmp_path, "--candidate", "journey:refund@2", "--fail-on-change")
    assert changed.exit_code == 1, changed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--candidate", "journey:refund"], "expected journey:NAME@VERSION"),
        (["--candidate", "bogus:1"], "unknown kind 'bogus'"),
        (["--candidate", "policy:seven"], "is not a positive integer"),
        (["--candidate", "refund@2"], "has no kind"),
        (["--candidate", "journey-file:/nowhere/refund.yaml"], "no file"),
        (["--candidate", "journey:refund@1", "--since", "yesterday"], "neither an RFC 3339"),
    ],
)
def test_malformed_options_are_clear_errors(args: list[str], message: str) -> None:
    full = ["replay", "--journey", "refund", "--since", "7d", *args]
    result = CliRunner().invoke(app, full)
    assert result.exit_code == 2
    assert message in result.output
    assert "hint:" in result.output


def test_unknown_candidates_name_what_exists(refunds: Accord) -> None:
    with pytest.raises(InputError, match="has no version 9") as found:
        replay_candidate(refunds, journey="refund", candidate="journey:refund@9", since=0)
    assert found.value.hint is not None and "deployed versions: 1" in found.value.hint
    with pytest.raises(InputError, match="no policy bundle version 4"):
        replay_candidate(refunds, journey="refund", candidate="policy:4", since=0)
    with pytest.raises(InputError, match="runs replayed are of 'refund'"):
        replay_candidate(refunds, journey="refund", candidate="journey:other@1", since=0)
    with pytest.raises(InputError, match=r"no version 1 in tenant"):
        replay_candidate(refunds, journey="refund", candidate="agent:nobody@1", since=0)
