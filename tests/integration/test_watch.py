"""The degradation watch on SQLite and PostgreSQL: real runs of small journeys, a scripted agent
whose answers people change more once a canary sends a new version, a capability that starts
failing, a journey version that fails more; then the watch. One proposal per degraded metric,
never a duplicate, nothing changed before a person accepts, and the decision in the ledger."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from accord.agents import LoadedAgent, load_agent_text
from accord.api import issue_token
from accord.cli._watch import app
from accord.connectors import CallContext, CapabilityRegistry
from accord.console import COOKIE, csrf_token
from accord.core import TenantId
from accord.errors import CapabilityFailed, InputError
from accord.journeys import load_journey_text
from accord.service import Accord, Settings, build
from accord.storage import RolloutRecord
from accord.testing import FrozenClock
from accord.watch import JOURNEY, MetricKey, ProposalConflict, ProposalNotFound
from tests.e2e.browser import served
from tests.governance import PERMIT_ALL, deploy_policies

T = TenantId("default")
DAY = 86_400.0

AGENT = """
agent: remedy
version: {version}
purpose: dpv:ServiceProvision
model:
  provider: scripted
  name: script-small
  script:
    - output: {{action: refund}}
      confidence: 0.7
prompt: remedy
input:
  message: {{type: string}}
output:
  schema:
    type: object
    properties:
      action: {{enum: [refund, none]}}
    required: [action]
bands: {{auto: 0.9, confirm: 0.6}}
"""

SUPPORT = """
journey: support
purpose: dpv:ServiceProvision
input: {message: string}
blocks:
  - id: triage
    kind: agent
    agent: remedy
    input: {message: input.message}
  - {id: done, kind: end, outcome: resolved}
"""

CHECKOUT = """
journey: checkout
input: {{n: integer}}
blocks:
  - id: pay
    kind: task
    capability: {capability}
    input: {{n: input.n}}
  - {{id: done, kind: end, outcome: paid}}
"""


class Payment(BaseModel):
    n: int


class Paid(BaseModel):
    n: int


class Till:
    """``watch.pay`` and ``watch.pay_v2``: pay, or fail for the orders ``failing`` picks."""

    def __init__(self) -> None:
        self.failing: Callable[[int], bool] = lambda n: False

    def register(self, registry: CapabilityRegistry) -> None:
        for name in ("watch.pay", "watch.pay_v2"):

            def pay(request: Payment, ctx: CallContext) -> Paid:
                if self.failing(request.n):
                    raise CapabilityFailed("the till is down", retryable=False)
                return Paid(n=request.n)

            registry.capability(name)(pay)


@pytest.fixture
def till(capabilities: CapabilityRegistry) -> Till:
    found = Till()
    found.register(capabilities)
    return found


# -- helpers ----------------------------------------------------------------------------------


def deploy_agent(accord: Accord, tmp_path: Path, version: int) -> None:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "remedy.md").write_text(
        "Sort it.\n<!-- user -->\n{{ input.message }}\n"
    )
    loaded: LoadedAgent = load_agent_text(
        textwrap.dedent(AGENT.format(version=version)), source_name="remedy.yaml", base=tmp_path
    )
    accord.deploy_agent(loaded)


def support_runs(accord: Accord, count: int, *, start: int, change: Callable[[str], bool]) -> None:
    """``count`` runs of ``support``; a person confirms each answer, or edits it when
    ``change(version)`` says so."""
    accord.put_person("sue", roles=["support"], actor="test")
    started = [
        accord.runtime.start(
            T, "support", input={"message": "refund please"}, subject=f"cus-{i}"
        ).run_id
        for i in range(start, start + count)
    ]
    accord.runtime.drive()
    for run_id in started:
        (item,) = accord.review_items(run_id=run_id)
        version = str(item.packet["recommendation"]["source"]["version"])
        if change(version):
            accord.decide_review(
                item.item_id, "sue", "edit", value={"action": "none"}, reason="not a refund"
            )
        else:
            accord.decide_review(item.item_id, "sue", "approve", reason="fine")
    accord.runtime.drive()


def overridden_canary(accord: Accord, clock: FrozenClock, tmp_path: Path) -> RolloutRecord:
    """Forty v1 answers people confirm; three days later sixty runs under a 50% canary of v2,
    whose answers people change. The clock ends an hour after the last run."""
    deploy_agent(accord, tmp_path, 1)
    accord.runtime.catalog.deploy(T, load_journey_text(SUPPORT))
    support_runs(accord, 40, start=0, change=lambda v: False)
    deploy_agent(accord, tmp_path, 2)
    # the margin of 1.0 keeps the rollout's own automatic rollback out of the way
    rollout = accord.start_rollout("remedy", 2, percent=50.0, margin=1.0, by="rita")
    clock.advance(3 * DAY)
    support_runs(accord, 60, start=100, change=lambda v: v == "2")
    clock.advance(3600)
    return rollout


def checkout_runs(accord: Accord, numbers: range) -> None:
    for n in numbers:
        accord.runtime.start(T, "checkout", input={"n": n})
    accord.runtime.drive()


def kinds(accord: Accord, kind: str) -> list[dict[str, Any]]:
    return [e.body for e in accord.ledger.entries(T, kinds=[kind])]


# -- an agent canary that people override -----------------------------------------------------


def test_a_canary_people_override_is_proposed_for_rollback_once_and_rolled_back_on_accept(
    accord: Accord, clock: FrozenClock, tmp_path: Path
) -> None:
    rollout = overridden_canary(accord, clock, tmp_path)
    report = accord.watch.check(T)
    (proposal,) = report.opened
    assert [f.key for f in report.detection.findings] == [
        MetricKey("support", "triage", "override_rate")
    ]
    assert proposal.candidate.kind == "rollback_rollout" and proposal.candidate.applies
    assert proposal.candidate.change["rollout_id"] == rollout.rollout_id
    finding = proposal.finding
    assert finding["test"] == "two-proportion z-test" and finding["adjusted_p"] < 1e-6
    assert finding["baseline"] == {"events": 0, "total": 40, "rate": 0.0}
    assert finding["recent"]["total"] == 60 and finding["recent"]["events"] > 15
    assert "v2's override rate is 100.0%" in proposal.candidate.rationale
    assert proposal.title.startswith("support/triage override rate rose from 0.0% to")

    again = accord.watch.check(T)
    assert again.opened == () and [p.proposal_id for p in again.still_open] == [
        proposal.proposal_id
    ]
    assert again.still_open[0].seen == 2
    assert len(accord.watch.proposals(T, status=None)) == 1

    # nothing changed: the canary still sends half the subjects to v2
    current = accord.agents.rollout(T, rollout.rollout_id)
    assert (current.status, current.percent) == ("active", 50.0)
    assert [e["change"] for e in kinds(accord, "agent.rollout")] == ["started"]
    assert len(kinds(accord, "watch.proposed")) == 1 and kinds(accord, "watch.decided") == []

    with pytest.raises(InputError, match="needs a reason"):
        accord.watch.accept(T, proposal.proposal_id, by="ann", reason="  ")
    with pytest.raises(InputError, match="needs the person"):
        accord.watch.accept(T, proposal.proposal_id, by="", reason="bad canary")
    with pytest.raises(ProposalNotFound, match="no watch proposal 'wp_nope'"):
        accord.watch.accept(T, "wp_nope", by="ann", reason="bad canary")
    assert accord.agents.rollout(T, rollout.rollout_id).status == "active"

    accepted = accord.watch.accept(
        T, proposal.proposal_id, by="ann", reason="people change half of v2's answers"
    )
    assert accepted.status == "accepted" and accepted.decided_by == "ann"
    assert accepted.applied == {
        "rollout_id": rollout.rollout_id,
        "status": "stopped",
        "percent": 0.0,
    }
    after = accord.agents.rollout(T, rollout.rollout_id)
    assert (after.status, after.percent) == ("stopped", 0.0)
    (stopped,) = [e for e in kinds(accord, "agent.rollout") if e["change"] == "stopped"]
    assert stopped["actor"] == "ann" and proposal.proposal_id in stopped["reason"]
    (decided,) = kinds(accord, "watch.decided")
    assert decided["proposal"] == proposal.proposal_id
    assert (decided["decision"], decided["by"], decided["reason"]) == (
        "accepted",
        "ann",
        "people change half of v2's answers",
    )
    assert decided["applied"]["status"] == "stopped"

    with pytest.raises(ProposalConflict, match="was accepted by ann"):
        accord.watch.reject(T, proposal.proposal_id, by="bob", reason="too late")
    # the same evidence is not proposed again after the decision
    held = accord.watch.check(T)
    assert held.opened == () and [h.key.metric for h in held.held] == ["override_rate"]
    assert accord.verify_ledger().ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rollback_of_a_canary_that_ended_meanwhile_is_refused_and_changes_nothing(
    accord: Accord, clock: FrozenClock, tmp_path: Path
) -> None:
    rollout = overridden_canary(accord, clock, tmp_path)
    (proposal,) = accord.watch.check(T).opened
    accord.promote_rollout(rollout.rollout_id, by="rita")
    refused = r"cannot be applied: rollout \S+ is promoted, not active"
    with pytest.raises(ProposalConflict, match=refused) as err:
        accord.watch.accept(T, proposal.proposal_id, by="ann", reason="bad canary")
    assert "accord watch reject" in (err.value.hint or "")
    assert accord.watch.get(T, proposal.proposal_id).status == "open"
    assert accord.agents.rollout(T, rollout.rollout_id).status == "promoted"
    assert kinds(accord, "watch.decided") == []
    accord.watch.reject(T, proposal.proposal_id, by="ann", reason="rita promoted it already")
    assert accord.watch.get(T, proposal.proposal_id).status == "rejected"


def test_people_overriding_an_agent_with_no_rollout_get_a_band_change_to_deploy(
    accord: Accord, clock: FrozenClock, tmp_path: Path
) -> None:
    deploy_agent(accord, tmp_path, 1)
    accord.runtime.catalog.deploy(T, load_journey_text(SUPPORT))
    support_runs(accord, 40, start=0, change=lambda v: False)
    clock.advance(3 * DAY)
    answers = iter(range(1000))
    # people now change every other answer of the same version
    support_runs(accord, 40, start=100, change=lambda v: next(answers) % 2 == 0)
    clock.advance(3600)

    (proposal,) = accord.watch.check(T).opened
    candidate = proposal.candidate
    assert candidate.kind == "raise_thresholds" and not candidate.applies
    assert candidate.change["bands"] == {
        "from": {"auto": 0.9, "confirm": 0.6},
        "to": {"auto": 0.95, "confirm": 0.65},
    }
    assert "+  bands:\n+    auto: 0.95\n+    confirm: 0.65\n" in candidate.change["diff"]
    changed = load_journey_text(candidate.change["yaml"]).spec
    (triage,) = [b for b in changed.blocks if b.id == "triage"]
    assert triage.bands is not None and (triage.bands.auto, triage.bands.confirm) == (0.95, 0.65)

    accepted = accord.watch.accept(T, proposal.proposal_id, by="ann", reason="deploying it")
    assert accepted.applied is None
    # a journey version never changes: a person deploys the candidate as a new one
    assert [v.version for v in accord.runtime.catalog.versions(T, "support")] == [1]
    (decided,) = kinds(accord, "watch.decided")
    assert decided["applies"] is False and decided["candidate"] == "raise_thresholds"
    (proposed,) = kinds(accord, "watch.proposed")
    assert "yaml" not in proposed["candidate"]["change"]
    assert proposed["candidate"]["change"]["yaml_digest"].startswith("sha256:")


# -- a capability that starts failing ---------------------------------------------------------


def test_a_failing_capability_is_proposed_for_its_kill_switch_and_rejecting_changes_nothing(
    make_accord: Callable[..., Accord], clock: FrozenClock, till: Till
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(CHECKOUT.format(capability="watch.pay")))
    checkout_runs(accord, range(0, 60))
    clock.advance(3 * DAY)
    till.failing = lambda n: n % 2 == 0
    checkout_runs(accord, range(100, 110))
    clock.advance(60)

    few = accord.watch.check(T)
    assert few.opened == () and few.detection.findings == []
    skipped = {s.key: s.reason for s in few.detection.skipped}
    assert (
        "10 in the recent one; each needs at least 30"
        in (skipped[MetricKey("checkout", JOURNEY, "failure_rate")])
    )

    checkout_runs(accord, range(110, 150))
    clock.advance(60)
    report = accord.watch.check(T)
    (proposal,) = report.opened
    assert proposal.key == MetricKey("checkout", JOURNEY, "failure_rate")
    assert proposal.candidate.kind == "kill_switch"
    assert proposal.candidate.change["flag"] == "capability:watch.pay"
    assert "25 of the 25 failed runs failed on watch.pay" in proposal.candidate.rationale
    assert accord.watch.check(T).opened == ()
    assert accord.flags.get(T, "capability:watch.pay") is None

    with pytest.raises(InputError, match="needs a reason"):
        accord.watch.reject(T, proposal.proposal_id, by="ann", reason="")
    rejected = accord.watch.reject(
        T, proposal.proposal_id, by="ann", reason="the till vendor is fixing it"
    )
    assert rejected.status == "rejected" and rejected.applied is None
    assert accord.flags.get(T, "capability:watch.pay") is None
    assert accord.flags.history(T) == []
    (decided,) = kinds(accord, "watch.decided")
    assert (decided["decision"], decided["reason"]) == (
        "rejected",
        "the till vendor is fixing it",
    )
    with pytest.raises(ProposalConflict):
        accord.watch.accept(T, proposal.proposal_id, by="ann", reason="changed my mind")
    assert accord.watch.proposals(T) == []
    assert [p.status for p in accord.watch.proposals(T, status=None)] == ["rejected"]
    with pytest.raises(InputError, match="not a proposal status"):
        accord.watch.proposals(T, status="pending")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_accepting_a_kill_switch_switches_the_capability_off_as_the_person(
    make_accord: Callable[..., Accord], clock: FrozenClock, till: Till
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(CHECKOUT.format(capability="watch.pay")))
    checkout_runs(accord, range(0, 60))
    clock.advance(3 * DAY)
    till.failing = lambda n: n % 2 == 0
    checkout_runs(accord, range(100, 160))
    clock.advance(60)
    (proposal,) = accord.watch.check(T).opened
    accepted = accord.watch.accept(T, proposal.proposal_id, by="ops-olga", reason="till down")
    assert accepted.applied is not None and accepted.applied["flag"] == "capability:watch.pay"
    flag = accord.flags.get(T, "capability:watch.pay")
    assert flag is not None and flag.value is False and flag.updated_by == "ops-olga"
    assert proposal.proposal_id in flag.reason
    # a run reaching the switched-off capability waits instead of failing
    run_id = accord.runtime.start(T, "checkout", input={"n": 2}).run_id
    accord.runtime.drive()
    assert accord.runtime.get(T, run_id).status == "waiting"


def failing_till(accord: Accord, clock: FrozenClock, till: Till) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(CHECKOUT.format(capability="watch.pay")))
    checkout_runs(accord, range(0, 60))
    clock.advance(3 * DAY)
    till.failing = lambda n: n % 2 == 0
    checkout_runs(accord, range(100, 160))
    clock.advance(60)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reject_while_the_change_is_being_applied_is_refused_and_the_accept_stands(
    make_accord: Callable[..., Accord], clock: FrozenClock, till: Till
) -> None:
    accord = make_accord()
    failing_till(accord, clock, till)
    (proposal,) = accord.watch.check(T).opened
    applying = accord.watch.flags.set
    refused: list[ProposalConflict] = []

    def set_while_someone_rejects(*args: Any, **kwargs: Any) -> Any:
        record = applying(*args, **kwargs)
        with pytest.raises(ProposalConflict, match="being accepted by ann") as raised:
            accord.watch.reject(T, proposal.proposal_id, by="bob", reason="vendor fixing it")
        refused.append(raised.value)
        return record

    accord.watch.flags.set = set_while_someone_rejects  # type: ignore[method-assign]
    accepted = accord.watch.accept(T, proposal.proposal_id, by="ann", reason="till down")
    assert refused and accepted.status == "accepted" and accepted.decided_by == "ann"
    flag = accord.flags.get(T, "capability:watch.pay")
    assert flag is not None and flag.value is False
    assert [d["decision"] for d in kinds(accord, "watch.decided")] == ["accepted"]
    with pytest.raises(ProposalConflict):
        accord.watch.reject(T, proposal.proposal_id, by="bob", reason="too late")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_change_that_fails_to_apply_leaves_the_proposal_open(
    make_accord: Callable[..., Accord], clock: FrozenClock, till: Till
) -> None:
    accord = make_accord()
    failing_till(accord, clock, till)
    (proposal,) = accord.watch.check(T).opened

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the flag store is away")

    accord.watch.flags.set = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        accord.watch.accept(T, proposal.proposal_id, by="ann", reason="till down")
    again = accord.watch.get(T, proposal.proposal_id)
    assert again.status == "open" and again.decided_by is again.decided_at is None
    assert kinds(accord, "watch.decided") == []
    rejected = accord.watch.reject(T, proposal.proposal_id, by="bob", reason="vendor fixing it")
    assert rejected.status == "rejected"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_restoring_an_agent_version_is_refused_once_another_version_is_current(
    accord: Accord, clock: FrozenClock, tmp_path: Path
) -> None:
    deploy_agent(accord, tmp_path, 1)
    accord.runtime.catalog.deploy(T, load_journey_text(SUPPORT))
    support_runs(accord, 40, start=0, change=lambda v: False)
    clock.advance(2 * DAY)
    deploy_agent(accord, tmp_path, 2)
    rollout = accord.start_rollout("remedy", 2, percent=50.0, margin=1.0, by="rita")
    accord.promote_rollout(rollout.rollout_id, by="rita")
    clock.advance(DAY + 60)
    support_runs(accord, 40, start=100, change=lambda v: v == "2")
    clock.advance(3600)
    (proposal,) = accord.watch.check(T).opened
    assert proposal.candidate.kind == "restore_agent_version"
    assert (proposal.candidate.change["version"], proposal.candidate.change["current"]) == (1, 2)
    deploy_agent(accord, tmp_path, 3)
    accord.agents.promote(T, "remedy", 3, by="rita")
    with pytest.raises(ProposalConflict, match="at v3 now, not v2"):
        accord.watch.accept(T, proposal.proposal_id, by="ann", reason="v2 is bad")
    assert accord.agents.current_version(T, "remedy") == 3
    assert accord.watch.get(T, proposal.proposal_id).status == "open"
    assert kinds(accord, "watch.decided") == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_periodic_check_goes_on_after_an_unexpected_error(
    accord: Accord, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    checking = accord.watch.check

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the pool is exhausted")
        return checking(*args, **kwargs)

    accord.watch.check = flaky  # type: ignore[method-assign]
    stop = threading.Event()
    loop = threading.Thread(
        target=accord.watch.run, args=(stop,), kwargs={"tenant": T, "interval": 0.01}
    )
    with caplog.at_level("ERROR", logger="accord.watch._watch"):
        loop.start()
        try:
            deadline = time.monotonic() + 30
            while len(calls) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            stop.set()
            loop.join(timeout=30)
    assert not loop.is_alive() and len(calls) >= 3
    (failed,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert failed.exc_info is not None and "checking again later" in failed.getMessage()


VIP = """
journey: support
purpose: dpv:ServiceProvision
input: {message: string, vip: boolean}
blocks:
  - id: triage
    kind: agent
    agent: remedy
    input: {message: input.message}
  - id: which
    kind: choice
    choices:
      - {when: input.vip, next: vip_done}
    default: done
  - {id: vip_done, kind: end, outcome: resolved_vip}
  - {id: done, kind: end, outcome: resolved}
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_runs_still_waiting_on_a_person_make_no_drift_in_later_blocks(
    accord: Accord, clock: FrozenClock, tmp_path: Path
) -> None:
    deploy_agent(accord, tmp_path, 1)
    accord.runtime.catalog.deploy(T, load_journey_text(VIP))
    accord.put_person("sue", roles=["support"], actor="test")

    def runs(start: int, *, answer_vip: bool) -> None:
        started = [
            (
                accord.runtime.start(
                    T, "support", input={"message": "x", "vip": i % 2 == 0}, subject=f"cus-{i}"
                ).run_id,
                i % 2 == 0,
            )
            for i in range(start, start + 80)
        ]
        accord.runtime.drive()
        for run_id, vip in started:
            if vip and not answer_vip:
                continue  # nobody has worked the VIP answers yet
            (item,) = accord.review_items(run_id=run_id)
            accord.decide_review(item.item_id, "sue", "approve", reason="fine")
        accord.runtime.drive()

    runs(0, answer_vip=True)
    clock.advance(3 * DAY)
    runs(100, answer_vip=False)
    clock.advance(3600)
    report = accord.watch.check(T)
    assert report.opened == () and report.detection.findings == []
    branches = [c for c in report.detection.compared if c.key.metric == "branches"]
    assert branches and branches[0].recent.to_json()["pending"] == 40


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_periodic_check_opens_the_proposal_once_however_often_it_runs(
    make_accord: Callable[..., Accord], clock: FrozenClock, till: Till
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(CHECKOUT.format(capability="watch.pay")))
    checkout_runs(accord, range(0, 60))
    clock.advance(3 * DAY)
    till.failing = lambda n: n % 2 == 0
    checkout_runs(accord, range(100, 160))
    clock.advance(60)
    stop = threading.Event()
    loop = threading.Thread(
        target=accord.watch.run, args=(stop,), kwargs={"tenant": T, "interval": 0.01}
    )
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = accord.watch.proposals(T)
            if found and found[0].seen >= 3:
                break
            time.sleep(0.02)
    finally:
        stop.set()
        loop.join(timeout=30)
    assert not loop.is_alive()
    (proposal,) = accord.watch.proposals(T, status=None)
    assert proposal.seen >= 3 and proposal.candidate.kind == "kill_switch"
    assert len(kinds(accord, "watch.proposed")) == 1
    assert accord.flags.get(T, "capability:watch.pay") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_new_journey_version_that_fails_more_is_proposed_back_to_the_previous_one(
    make_accord: Callable[..., Accord], clock: FrozenClock, till: Till
) -> None:
    accord = make_accord()
    first = CHECKOUT.format(capability="watch.pay")
    accord.runtime.catalog.deploy(T, load_journey_text(first))
    checkout_runs(accord, range(0, 60))
    clock.advance(3 * DAY)
    accord.runtime.catalog.deploy(T, load_journey_text(CHECKOUT.format(capability="watch.pay_v2")))
    till.failing = lambda n: n % 3 == 0
    checkout_runs(accord, range(100, 160))
    clock.advance(60)
    (proposal,) = accord.watch.check(T).opened
    change = proposal.candidate.change
    assert proposal.candidate.kind == "restore_journey_version"
    assert (change["version"], change["current"]) == (1, 2)
    assert change["source"] == first
    assert "it becomes v3" in proposal.candidate.summary
    assert [v.version for v in accord.runtime.catalog.versions(T, "checkout")] == [1, 2]


def test_a_stable_journey_raises_nothing(
    make_accord: Callable[..., Accord], clock: FrozenClock, till: Till
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(CHECKOUT.format(capability="watch.pay")))
    till.failing = lambda n: n % 10 == 0
    checkout_runs(accord, range(0, 100))
    clock.advance(3 * DAY)
    checkout_runs(accord, range(200, 260))
    clock.advance(60)
    report = accord.watch.check(T)
    assert report.opened == () and report.detection.findings == []
    (compared,) = report.detection.compared
    assert compared.key.metric == "failure_rate" and not compared.significant
    assert kinds(accord, "watch.proposed") == []


# -- the console ------------------------------------------------------------------------------


def session(accord: Accord, base: str, role: str) -> httpx.Client:
    token = issue_token(
        accord.settings.resolved_keys_dir(),
        subject=f"{role}-1",
        tenant=T,
        roles=[role],
        now=time.time(),
    )
    client = httpx.Client(base_url=base, timeout=30)
    assert client.post("/console/sign-in", data={"token": token}).status_code == 303
    return client


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_console_lists_proposals_and_a_reviewer_decides_within_their_roles(
    accord: Accord, clock: FrozenClock, tmp_path: Path
) -> None:
    rollout = overridden_canary(accord, clock, tmp_path)
    (proposal,) = accord.watch.check(T).opened
    with served(accord) as base:
        reviewer = session(accord, base, "reviewer")
        inbox = reviewer.get("/console/reviews?all=1")
        assert inbox.status_code == 200 and proposal.proposal_id in inbox.text
        assert "Proposed changes" in inbox.text
        page = reviewer.get(f"/console/proposals/{proposal.proposal_id}")
        assert page.status_code == 200
        assert "two-proportion z-test" in page.text and rollout.rollout_id in page.text
        assert "Your roles do not allow agents.rollout" in page.text
        form = {"csrf": csrf_token(reviewer.cookies[COOKIE]), "reason": "bad canary"}
        refused = reviewer.post(
            f"/console/proposals/{proposal.proposal_id}/decision",
            data={**form, "decision": "accept"},
        )
        assert refused.status_code == 403
        assert accord.watch.get(T, proposal.proposal_id).status == "open"
        assert accord.agents.rollout(T, rollout.rollout_id).status == "active"
        stale = reviewer.post(
            f"/console/proposals/{proposal.proposal_id}/decision",
            data={"csrf": "stale", "decision": "reject", "reason": "x"},
        )
        assert stale.status_code == 422

        admin = session(accord, base, "admin")
        form = {"csrf": csrf_token(admin.cookies[COOKIE]), "reason": "bad canary"}
        empty = admin.post(
            f"/console/proposals/{proposal.proposal_id}/decision",
            data={**form, "decision": "accept", "reason": ""},
        )
        assert empty.status_code == 422 and "needs a reason" in empty.text
        done = admin.post(
            f"/console/proposals/{proposal.proposal_id}/decision",
            data={**form, "decision": "accept"},
        )
        assert done.status_code == 303
        assert done.headers["location"].endswith("done=accepted")
        assert accord.agents.rollout(T, rollout.rollout_id).status == "stopped"
        shown = admin.get(done.headers["location"])
        assert "accepted by admin-1" in shown.text
        assert admin.get("/console/proposals/wp_missing").status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_proposal_page_shows_journey_source_only_to_who_may_read_journeys(
    make_accord: Callable[..., Accord], clock: FrozenClock, till: Till
) -> None:
    accord = make_accord()
    first = CHECKOUT.format(capability="watch.pay") + "# v1 keeps its till settings here\n"
    accord.runtime.catalog.deploy(T, load_journey_text(first))
    checkout_runs(accord, range(0, 60))
    clock.advance(3 * DAY)
    accord.runtime.catalog.deploy(T, load_journey_text(CHECKOUT.format(capability="watch.pay_v2")))
    till.failing = lambda n: n % 3 == 0
    checkout_runs(accord, range(100, 160))
    clock.advance(60)
    (proposal,) = accord.watch.check(T).opened
    assert proposal.candidate.kind == "restore_journey_version"
    with served(accord) as base:
        reviewer = session(accord, base, "reviewer")
        page = reviewer.get(f"/console/proposals/{proposal.proposal_id}")
        assert page.status_code == 200 and proposal.title in page.text
        assert "till settings" not in page.text
        assert "The journey source is not shown" in page.text
        admin = session(accord, base, "admin")
        page = admin.get(f"/console/proposals/{proposal.proposal_id}")
        assert "till settings" in page.text and "is not shown" not in page.text


# -- the command line -------------------------------------------------------------------------


def test_accord_watch_checks_lists_shows_and_decides_from_the_command_line(
    tmp_path: Path, capabilities: CapabilityRegistry, till: Till
) -> None:
    url = f"sqlite:///{tmp_path / 'accord.db'}"
    keys = tmp_path / "keys"
    clock = FrozenClock(time.time() - 3 * DAY)
    accord = build(
        Settings(database_url=url, keys_dir=keys), capabilities=capabilities, clock=clock
    )
    try:
        deploy_policies(accord, PERMIT_ALL)
        accord.runtime.catalog.deploy(T, load_journey_text(CHECKOUT.format(capability="watch.pay")))
        checkout_runs(accord, range(0, 60))
        clock.set(time.time() - 3600)
        till.failing = lambda n: n % 2 == 0
        checkout_runs(accord, range(100, 160))
    finally:
        accord.close()
    runner = CliRunner()
    env = {"ACCORD_DATABASE_URL": url, "ACCORD_KEYS_DIR": str(keys), "COLUMNS": "220"}

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env)

    checked = invoke("check", "--all")
    assert checked.exit_code == 0, checked.output
    # the findings table shortens its cells on a narrow terminal; the lines below it wrap
    flat = " ".join(checked.stdout.split())
    assert "proposed wp_" in flat
    assert "Switch capability watch.pay off" in flat
    listed = invoke("list", "--json")
    assert listed.exit_code == 0, listed.output
    (proposal,) = json.loads(listed.stdout)
    assert (proposal["journey"], proposal["metric"], proposal["kind"]) == (
        "checkout",
        "failure_rate",
        "degradation",
    )
    proposal_id = proposal["proposal_id"]
    assert invoke("check").stdout.count(f"still open {proposal_id}") == 1
    shown = invoke("show", proposal_id)
    told = " ".join(shown.stdout.split())
    assert shown.exit_code == 0 and "two-proportion z-test" in told
    assert "accepting applies it" in told
    missing = invoke("accept", proposal_id)
    assert missing.exit_code == 2 and "--reason" in missing.output
    blank = invoke("accept", proposal_id, "--reason", " ", "--by", "ann")
    assert blank.exit_code == 2 and "needs a reason" in blank.output
    unknown = invoke("reject", "wp_nope", "--reason", "x", "--by", "ann")
    assert unknown.exit_code == 2 and "no watch proposal 'wp_nope'" in unknown.output
    pinned = invoke("check", "--baseline-from", "2020-01-01T00:00:00")
    assert pinned.exit_code == 2 and "both --baseline-from and --baseline-to" in pinned.output
    rejected = invoke("reject", proposal_id, "--reason", "vendor is on it", "--by", "ann")
    assert rejected.exit_code == 0, rejected.output
    assert f"rejected {proposal_id}" in rejected.stdout
    listed = invoke("list", "--status", "rejected", "--json")
    assert [p["proposal_id"] for p in json.loads(listed.stdout)] == [proposal_id]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--baseline-from", "nan", "--baseline-to", "inf"], "--baseline-from"),
        (["--baseline-from", "0", "--baseline-to", "inf"], "--baseline-to"),
        (["--min-psi", "nan"], "--min-psi"),
        (["--min-change", "inf"], "--min-change"),
        (["--alpha", "nan"], "--alpha"),
    ],
)
def test_accord_watch_check_refuses_numbers_that_are_not_finite(
    tmp_path: Path, args: list[str], option: str
) -> None:
    env = {"ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}", "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["check", *args], env=env)
    assert result.exit_code == 2
    assert f"{option}: " in result.output and "not a finite number" in result.output
