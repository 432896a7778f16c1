"""Humans in the loop: review items, handoff packets, decisions, maker-checker, SLAs, feedback.

Every test runs on SQLite and on PostgreSQL, through the service facade a console or API calls.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from accord.core import TenantId
from accord.errors import (
    ConfirmationInvalid,
    InputError,
    ReviewConflict,
    ReviewForbidden,
    ReviewNotFound,
    SubjectErased,
)
from accord.journeys import load_journey_text
from accord.reviews import Queue, item_packet
from accord.service import Accord
from accord.storage import ReviewItemRecord
from accord.storage._schema import outbox, review_items, signals
from accord.testing import FrozenClock
from tests.capabilities import Calls
from tests.governance import MAKER_CHECKER, deploy_policies

T = TenantId("default")
SUBJECT = "cust-1"
SERVICE = "dpv:ServiceProvision"

CHARGES = """
@id("profiles")
permit(
  principal, action in [Accord::Action::"test.profile", Accord::Action::"test.echo"], resource
);
@id("small-charges")
permit(principal, action == Accord::Action::"test.charge", resource)
when { context has amount && context.amount.lessThanOrEqual(decimal("100.0")) };
@id("large-charges")
@approval("supervisor")
permit(principal, action == Accord::Action::"test.charge", resource)
when { context has amount && context.amount.greaterThan(decimal("100.0")) };
@id("no-huge-charges")
forbid(principal, action == Accord::Action::"test.charge", resource)
when { context has amount && context.amount.greaterThan(decimal("5000.0")) };
"""

CHARGE = """
journey: charge
purpose: dpv:ServiceProvision
input: {amount: number, requested_by: string}
blocks:
  - id: lookup
    kind: task
    capability: test.profile
    input: {customer_id: run.subject}
  - id: pay
    kind: task
    capability: test.charge
    input: {amount: input.amount}
    context: {amount: args.amount}
    maker: input.requested_by
    on_refusal: {approval_rejected: declined, policy_denied: refused}
  - {id: done, kind: end, outcome: charged, output: {charged: steps.pay.charged}}
  - {id: declined, kind: end, outcome: declined}
  - {id: refused, kind: end, outcome: refused, output: {why: errors.pay.message}}
"""

GOODWILL = """
journey: goodwill
purpose: dpv:ServiceProvision
input: {credit: number}
blocks:
  - id: lookup
    kind: task
    capability: test.profile
    input: {customer_id: run.subject}
  - id: sign_off
    kind: approve
    role: support
    queue: goodwill
    title: Goodwill credit
    timeout: 2d
    edit_schema: {credit: number, note: {type: string, required: false}}
    recommend:
      decision: '"approve"'
      value: {credit: input.credit}
      confidence: 0.72
      band: '"confirm"'
      rationale: '"long-standing customer"'
      source: {kind: '"rule"', id: '"goodwill-table"', version: '"3"'}
    on: {reject: no_credit, escalate: senior}
    on_timeout: expired
  - id: credit
    kind: task
    capability: test.echo
    input: {number: steps.sign_off.value.credit}
  - {id: done, kind: end, outcome: credited, output: {credit: steps.credit.number}}
  - {id: no_credit, kind: end, outcome: no_credit}
  - {id: senior, kind: end, outcome: senior}
  - {id: expired, kind: end, outcome: expired}
"""


def deploy(accord: Accord, text: str) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(text))


def start(accord: Accord, journey: str, **data: object) -> str:
    run_id = accord.runtime.start(T, journey, input=dict(data), subject=SUBJECT).run_id
    accord.runtime.drive()
    return run_id


def the_item(accord: Accord, run_id: str) -> ReviewItemRecord:
    found = accord.review_items(run_id=run_id)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def inbox(accord: Accord, clock: FrozenClock) -> Accord:
    deploy_policies(accord, CHARGES + MAKER_CHECKER)
    accord.consent.grant(
        T,
        SUBJECT,
        purpose=SERVICE,
        categories=["pd:Name", "pd:EmailAddress", "pd:PaymentCard"],
        actor="test",
    )
    for person, roles in {
        "ann": ["supervisor"],
        "bob": ["supervisor"],
        "sue": ["support"],
        "tom": ["support"],
        "max": ["support", "supervisor"],
    }.items():
        accord.put_person(person, roles=roles, skills=["refunds"], actor="test")
    deploy(accord, CHARGE)
    deploy(accord, GOODWILL)
    return accord


def entries_of(accord: Accord, run_id: str, kind: str) -> list[dict[str, object]]:
    return [
        {**e.body, **(e.personal if isinstance(e.personal, dict) else {})}
        for e in accord.ledger.entries(T, run_id=run_id)
        if e.kind == kind
    ]


# -- items and packets -----------------------------------------------------------------------


def test_policy_approval_opens_an_item_with_a_full_handoff_packet(
    inbox: Accord, calls: Calls
) -> None:
    run_id = start(inbox, "charge", amount=250.0, requested_by="ann")
    item = the_item(inbox, run_id)
    assert (item.kind, item.queue, item.roles, item.makers) == (
        "policy_approval",
        "supervisor",
        ("supervisor",),
        ("ann",),
    )
    packet = item_packet(item)
    assert packet.to_json()["schema"] == "accord.handoff/1" and packet.version == 1
    assert packet.run.block == "pay" and packet.run.journey == "charge"
    assert [(v.block, v.capability, v.system) for v in packet.verified] == [
        ("lookup", "test.profile", "test")
    ]
    assert [(a.what, a.outcome) for a in packet.attempted] == [("test.charge", "approval_required")]
    assert packet.remaining[0] == "done" and set(packet.remaining) >= {"declined", "refused"}
    assert packet.recommendation.decision == "approve"
    assert packet.recommendation.source.key == "journey:charge@1"
    assert packet.policy.determining == ["large-charges"]
    assert packet.policy.roles == ["supervisor"]
    assert packet.proposed is not None and packet.proposed.input == {"amount": 250.0}
    assert packet.subject.fields["lookup"]["name"] == "Ada Lovelace"
    assert {e.kind for e in packet.evidence} == {"gateway.decision", "run.transition"}
    assert packet.edit_schema is not None and "amount" in packet.edit_schema["properties"]
    assert calls.by_capability["test.charge"] == 0
    opened = entries_of(inbox, run_id, "review.opened")
    assert len(opened) == 1 and opened[0]["item"] == item.item_id
    assert opened[0]["packet"] == item.packet


def test_the_packet_shows_only_what_the_reviewers_purpose_allows(
    inbox: Accord, clock: FrozenClock
) -> None:
    # the reviewing block works under its own purpose, for which only the name is granted
    inbox.consent.grant(
        T, SUBJECT, purpose="dpv:CustomerCare", categories=["pd:Name"], actor="test"
    )
    deploy(
        inbox,
        GOODWILL.replace("journey: goodwill", "journey: careful").replace(
            "    role: support\n", "    role: support\n    purpose: dpv:CustomerCare\n"
        ),
    )
    run_id = start(inbox, "careful", credit=20.0)
    packet = item_packet(the_item(inbox, run_id))
    assert packet.subject.purpose == "dpv:CustomerCare"
    assert packet.subject.fields["lookup"] == {
        "customer_id": SUBJECT,
        "name": "Ada Lovelace",
        "tier": "gold",
    }
    assert packet.subject.withheld == ["lookup.email"]
    assert packet.subject.categories == ["pd:Name"]


# -- decisions -------------------------------------------------------------------------------


def test_approve_resumes_the_run_exactly_where_it_paused(inbox: Accord, calls: Calls) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    view = inbox.runtime.get(T, run_id)
    assert view.status == "waiting" and view.positions[0].waiting_for == "human:sign_off"
    item = the_item(inbox, run_id)
    assert item_packet(item).recommendation.confidence == 0.72
    result = inbox.decide_review(item.item_id, "sue", "approve", reason="fine")
    assert (result.outcome, result.status, result.replayed) == ("accepted", "decided", False)
    inbox.runtime.drive()
    view = inbox.runtime.get(T, run_id)
    assert (view.status, view.outcome, view.output) == ("completed", "credited", {"credit": 20.0})
    # the lookup ran once, before the pause; the run continued from the approval
    assert calls.by_capability["test.profile"] == 1
    history = [e.kind for e in inbox.runtime.history(T, run_id)]
    assert history.index("decision.received") < history.index("run.completed")


def test_the_same_decision_twice_returns_the_first_and_a_different_one_is_refused(
    inbox: Accord,
) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    first = inbox.decide_review(item.item_id, "sue", "approve", reason="ok")
    again = inbox.decide_review(item.item_id, "sue", "approve", reason="ok")
    assert again.replayed and again.signal_id == first.signal_id and again.at == first.at
    with pytest.raises(ReviewConflict, match="already decided"):
        inbox.decide_review(item.item_id, "sue", "reject", reason="changed my mind")
    with pytest.raises(ReviewConflict):
        inbox.decide_review(item.item_id, "tom", "approve", reason="ok")
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "credited"
    assert len(entries_of(inbox, run_id, "human.decision")) == 1


def test_reject_takes_the_journeys_rejection_path(inbox: Accord, calls: Calls) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    inbox.decide_review(the_item(inbox, run_id).item_id, "sue", "reject", reason="no")
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "no_credit"
    assert calls.by_capability["test.echo"] == 0


def test_edit_is_validated_and_becomes_the_blocks_output(inbox: Accord) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    with pytest.raises(InputError, match="credit"):
        inbox.decide_review(item.item_id, "sue", "edit", value={"credit": "lots"})
    with pytest.raises(InputError, match="needs the edited value"):
        inbox.decide_review(item.item_id, "sue", "edit")
    assert inbox.review_item(item.item_id).status == "open"
    inbox.decide_review(item.item_id, "sue", "edit", value={"credit": 15.0, "note": "halved"})
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).output == {"credit": 15.0}


def test_override_needs_a_reason_and_is_recorded_beside_the_recommendation(inbox: Accord) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    with pytest.raises(InputError, match="needs a reason"):
        inbox.decide_review(item.item_id, "sue", "override", outcome="escalate")
    with pytest.raises(InputError, match="outcome"):
        inbox.decide_review(item.item_id, "sue", "override", reason="x", outcome="nowhere")
    inbox.decide_review(
        item.item_id, "sue", "override", reason="VIP, send to seniors", outcome="escalate"
    )
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "senior"
    [recorded] = entries_of(inbox, run_id, "human.decision")
    assert recorded["decision"] == "override" and recorded["outcome"] == "overridden"
    assert recorded["reason"] == "VIP, send to seniors"
    assert recorded["override_outcome"] == "escalate"
    recommendation = recorded["recommendation"]
    assert isinstance(recommendation, dict) and recommendation["decision"] == "approve"
    explained = [d for d in inbox.explain(run_id).decisions if d.kind == "human"]
    assert "override" in explained[0].summary and "recommended 'approve'" in explained[0].summary
    assert "rule goodwill-table v3" in explained[0].summary
    assert explained[0].facts["packet_version"] == 1


def test_request_info_waits_for_the_answer_and_revises_the_packet(inbox: Accord) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    with pytest.raises(InputError, match="question"):
        inbox.decide_review(item.item_id, "sue", "request_info")
    asked = inbox.decide_review(
        item.item_id, "sue", "request_info", question="Which order was late?"
    )
    assert asked.status == "info_requested"
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).status == "waiting"
    with inbox.db.read() as connection:
        announced = connection.execute(
            sa.select(outbox.c.payload).where(outbox.c.type == "review.info_requested")
        ).all()
    assert len(announced) == 1 and "Which order was late?" in announced[0][0]
    answered = inbox.provide_review_info(item.item_id, by=SUBJECT, answer={"order": "o-9"})
    assert answered.status == "claimed" and answered.packet_version == 3
    assert item_packet(answered).info[0].answer == {"order": "o-9"}
    inbox.decide_review(item.item_id, "sue", "approve", reason="order o-9 was late")
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "credited"
    [recorded] = entries_of(inbox, run_id, "human.decision")
    assert recorded["packet_version"] == 3


# -- maker-checker and the gated call ---------------------------------------------------------


def test_the_initiator_cannot_approve_their_own_action(inbox: Accord, calls: Calls) -> None:
    run_id = start(inbox, "charge", amount=250.0, requested_by="ann")
    item = the_item(inbox, run_id)
    with pytest.raises(ReviewForbidden, match="maker-checker"):
        inbox.decide_review(item.item_id, "ann", "approve", reason="mine")
    with pytest.raises(ReviewForbidden, match="maker-checker"):
        inbox.decide_review(item.item_id, "ann", "override", reason="mine", outcome="approve")
    refused = entries_of(inbox, run_id, "review.refused")
    assert [r["by"] for r in refused] == ["ann", "ann"]
    inbox.runtime.drive()
    assert calls.by_capability["test.charge"] == 0
    inbox.decide_review(item.item_id, "bob", "approve", reason="checked")
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "charged"
    assert calls.by_capability["test.charge"] == 1


def test_maker_checker_is_policy_a_bundle_without_it_allows_self_approval(
    inbox: Accord, calls: Calls
) -> None:
    deploy_policies(inbox, CHARGES + '@id("all-reviews")\npermit(principal, action, resource);\n')
    run_id = start(inbox, "charge", amount=250.0, requested_by="ann")
    inbox.decide_review(the_item(inbox, run_id).item_id, "ann", "approve", reason="mine")
    inbox.runtime.drive()
    assert calls.by_capability["test.charge"] == 1


def test_an_edit_goes_through_the_gateway_again_and_its_editor_cannot_approve_it(
    inbox: Accord, calls: Calls
) -> None:
    run_id = start(inbox, "charge", amount=250.0, requested_by="sue")
    first = the_item(inbox, run_id)
    inbox.decide_review(first.item_id, "ann", "edit", value={"amount": 180.0}, reason="cap")
    inbox.runtime.drive()
    assert calls.by_capability["test.charge"] == 0
    second = the_item(inbox, run_id)
    assert second.item_id != first.item_id
    assert set(second.makers) == {"sue", "ann"}
    packet = item_packet(second)
    assert packet.proposed is not None and packet.proposed.input["amount"] == 180.0
    with pytest.raises(ReviewForbidden):
        inbox.decide_review(second.item_id, "ann", "approve", reason="my edit")
    inbox.decide_review(second.item_id, "bob", "approve", reason="ok")
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).output == {"charged": 180.0}
    assert calls.by_capability["test.charge"] == 1


def test_an_edit_the_policy_forbids_is_refused_without_a_call(inbox: Accord, calls: Calls) -> None:
    run_id = start(inbox, "charge", amount=250.0, requested_by="sue")
    inbox.decide_review(
        the_item(inbox, run_id).item_id, "ann", "edit", value={"amount": 9000.0}, reason="typo"
    )
    inbox.runtime.drive()
    view = inbox.runtime.get(T, run_id)
    assert view.outcome == "refused"
    assert isinstance(view.output, dict) and "no-huge-charges" in view.output["why"]
    assert calls.by_capability["test.charge"] == 0
    assert [d.outcome for d in inbox.runtime.decisions(T, run_id)][-1] == "refused"


def test_an_edit_below_the_approval_threshold_runs_without_another_approval(
    inbox: Accord, calls: Calls
) -> None:
    run_id = start(inbox, "charge", amount=250.0, requested_by="sue")
    inbox.decide_review(the_item(inbox, run_id).item_id, "ann", "edit", value={"amount": 90.0})
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).output == {"charged": 90.0}
    assert calls.by_capability["test.charge"] == 1


def test_rejecting_a_gated_call_takes_the_refusal_path(inbox: Accord, calls: Calls) -> None:
    run_id = start(inbox, "charge", amount=250.0, requested_by="sue")
    inbox.decide_review(the_item(inbox, run_id).item_id, "ann", "reject", reason="fraud")
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "declined"
    assert calls.by_capability["test.charge"] == 0


# -- queues, assignment and SLAs ---------------------------------------------------------------


def test_one_owner_at_a_time_and_only_the_queues_roles(inbox: Accord) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    with pytest.raises(ReviewForbidden, match="roles support"):
        inbox.claim_review(item.item_id, "ann")
    assert inbox.claim_review(item.item_id, "sue").owner == "sue"
    assert inbox.claim_review(item.item_id, "sue").owner == "sue"
    with pytest.raises(ReviewConflict, match="claimed by sue"):
        inbox.claim_review(item.item_id, "tom")
    with pytest.raises(ReviewConflict, match="claimed by sue"):
        inbox.decide_review(item.item_id, "tom", "approve")
    with pytest.raises(ReviewConflict, match="only its owner"):
        inbox.release_review(item.item_id, "tom")
    assert inbox.release_review(item.item_id, "sue").owner is None
    assert inbox.claim_review(item.item_id, "tom").owner == "tom"
    assert [i.item_id for i in inbox.review_items(person="sue")] == [item.item_id]
    assert inbox.review_items(person="ann") == []


def test_only_supervisors_reassign(inbox: Accord) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    inbox.claim_review(item.item_id, "sue")
    with pytest.raises(ReviewForbidden, match="only-supervisors-reassign"):
        inbox.reassign_review(item.item_id, by="tom", to="tom", reason="I'll take it")
    with pytest.raises(ReviewForbidden, match="roles support"):
        inbox.reassign_review(item.item_id, by="ann", to="bob", reason="bob is free")
    moved = inbox.reassign_review(item.item_id, by="max", to="tom", reason="sue is away")
    assert moved.owner == "tom"
    assigned = entries_of(inbox, run_id, "review.assigned")
    assert [a["owner"] for a in assigned] == ["sue", "tom"]


def test_an_overdue_item_escalates_to_the_supervisor_queue(
    inbox: Accord, clock: FrozenClock
) -> None:
    inbox.put_queue(
        Queue("goodwill", roles=("support",), sla=3600, escalate_to="supervisors"), actor="t"
    )
    inbox.put_queue(Queue("supervisors", roles=("supervisor",), sla=1800), actor="t")
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    assert item.due_at == pytest.approx(item.created_at + 3600)
    inbox.claim_review(item.item_id, "sue")
    clock.advance(3599)
    assert inbox.sweep_reviews() == 0
    clock.advance(2)
    assert inbox.sweep_reviews() == 1
    moved = inbox.review_item(item.item_id)
    assert (moved.queue, moved.owner, moved.status, moved.escalations) == (
        "supervisors",
        None,
        "open",
        1,
    )
    assert moved.due_at == pytest.approx(clock.now() + 1800)
    assert inbox.sweep_reviews() == 0
    with inbox.db.read() as connection:
        overdue = connection.execute(
            sa.select(outbox.c.payload).where(outbox.c.type == "review.overdue")
        ).all()
    assert len(overdue) == 1 and '"to_queue":"supervisors"' in overdue[0][0]
    assert entries_of(inbox, run_id, "review.escalated")[0]["from_queue"] == "goodwill"
    # a supervisor now works it, though the item was for support
    inbox.decide_review(item.item_id, "ann", "approve", reason="overdue, approved")
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "credited"


def test_a_timed_out_wait_closes_its_item(inbox: Accord, clock: FrozenClock) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    clock.advance(2 * 86400 + 1)
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "expired"
    assert inbox.review_item(item.item_id).status == "cancelled"
    with pytest.raises(ReviewConflict, match="cancelled"):
        inbox.decide_review(item.item_id, "sue", "approve")


def test_cancelling_the_run_closes_its_item(inbox: Accord) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    inbox.runtime.cancel(T, run_id, reason="customer left", by="ops")
    inbox.runtime.drive()
    assert the_item_status(inbox, run_id) == "cancelled"


def the_item_status(accord: Accord, run_id: str) -> str:
    return accord.review_items(run_id=run_id, statuses=None)[0].status


# -- feedback --------------------------------------------------------------------------------


def test_feedback_counts_outcomes_per_recommender_version(inbox: Accord) -> None:
    for decision, details in (
        ("approve", {}),
        ("approve", {}),
        ("edit", {"value": {"credit": 5.0}}),
        ("reject", {}),
        ("override", {"reason": "x", "outcome": "escalate"}),
    ):
        run_id = start(inbox, "goodwill", credit=20.0)
        inbox.decide_review(the_item(inbox, run_id).item_id, "sue", decision, **details)
    inbox.runtime.drive()
    [row] = inbox.review_feedback()
    assert row.source == "rule:goodwill-table@3"
    assert (row.decided, row.accepted, row.edited, row.rejected, row.overridden) == (5, 2, 1, 1, 1)
    assert row.acceptance_rate == 0.4 and row.override_rate == 0.2


def test_unknown_staff_and_unknown_decisions_are_refused_and_change_nothing(
    inbox: Accord,
) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    with pytest.raises(ReviewForbidden, match="not staff"):
        inbox.decide_review(item.item_id, "mallory", "approve")
    with pytest.raises(InputError, match="not a decision"):
        inbox.decide_review(item.item_id, "sue", "yolo")
    assert inbox.review_item(item.item_id).status == "open"


def test_decisions_on_another_tenants_item_find_nothing(inbox: Accord) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    with pytest.raises(ReviewNotFound):
        inbox.decide_review(item.item_id, "sue", "approve", tenant="other")


def test_an_approval_counts_only_for_the_call_the_reviewer_saw(inbox: Accord, calls: Calls) -> None:
    run_id = start(inbox, "charge", amount=250.0, requested_by="sue")
    item = the_item(inbox, run_id)
    # the packet the reviewer approves shows other parameters than the run would now send
    packet = dict(item.packet)
    packet["proposed"] = {**packet["proposed"], "input": {"amount": 25.0}, "digest": "sha256:00"}
    with inbox.db.transaction() as connection:
        connection.execute(
            sa.update(review_items)
            .where(review_items.c.item_id == item.item_id)
            .values(packet=json.dumps(packet))
        )
    inbox.decide_review(item.item_id, "bob", "approve", reason="25 is fine")
    inbox.runtime.drive()
    assert calls.by_capability["test.charge"] == 0
    records = inbox.runtime.decisions(T, run_id)
    assert [r.outcome for r in records][-1] == "approval_required"
    assert records[-1].record["stale_approvals"][0]["by"] == "bob"
    reopened = [i for i in inbox.review_items(run_id=run_id) if i.item_id != item.item_id]
    assert len(reopened) == 1 and reopened[0].status == "open"


def test_no_gated_call_happens_before_the_approval(inbox: Accord, calls: Calls) -> None:
    run_id = start(inbox, "charge", amount=250.0, requested_by="sue")
    item = the_item(inbox, run_id)
    inbox.claim_review(item.item_id, "bob")
    inbox.decide_review(item.item_id, "bob", "request_info", question="why so much?")
    for _ in range(3):
        inbox.runtime.drive()
    assert calls.by_capability["test.charge"] == 0
    assert inbox.runtime.get(T, run_id).status == "waiting"


# -- propose, confirm, execute -----------------------------------------------------------------

OFFER = """
journey: offer
purpose: dpv:ServiceProvision
input: {discount: number}
blocks:
  - id: propose
    kind: confirm
    proposal: {discount: input.discount, plan: '"annual"'}
    channels: [email, portal]
    expires: 2d
    implicit: input.discount <= 5.0
    on: {refused: declined, expired: lapsed}
  - id: apply
    kind: task
    capability: test.echo
    input: {number: steps.propose.proposal.discount}
  - {id: done, kind: end, outcome: applied, output: {how: steps.propose}}
  - {id: declined, kind: end, outcome: declined}
  - {id: lapsed, kind: end, outcome: lapsed}
"""


def confirmation_token(accord: Accord, run_id: str) -> str:
    with accord.db.read() as connection:
        rows = connection.execute(
            sa.select(outbox.c.payload).where(
                outbox.c.type == "confirmation.requested", outbox.c.run_id == run_id
            )
        ).all()
    assert len(rows) == 1
    return str(json.loads(rows[0][0])["token"])


@pytest.fixture
def offers(inbox: Accord) -> Accord:
    deploy(inbox, OFFER)
    return inbox


def test_a_confirmed_proposal_is_executed_once(offers: Accord, calls: Calls) -> None:
    run_id = start(offers, "offer", discount=20.0)
    assert offers.runtime.get(T, run_id).positions[0].waiting_for == "confirm:propose"
    assert calls.by_capability["test.echo"] == 0
    token = confirmation_token(offers, run_id)
    result = offers.confirm(token, "confirm", channel="email")
    assert result.answer == "confirmed"
    offers.runtime.drive()
    view = offers.runtime.get(T, run_id)
    assert view.outcome == "applied" and calls.by_capability["test.echo"] == 1
    assert isinstance(view.output, dict) and view.output["how"]["channel"] == "email"
    with pytest.raises(ConfirmationInvalid, match="already confirmed"):
        offers.confirm(token, "confirm", channel="email")
    [answered] = entries_of(offers, run_id, "confirmation.answered")
    assert answered["answer"] == "confirmed" and answered["channel"] == "email"


def test_a_refused_proposal_takes_its_path(offers: Accord, calls: Calls) -> None:
    run_id = start(offers, "offer", discount=20.0)
    offers.confirm(confirmation_token(offers, run_id), "refuse", channel="portal")
    offers.runtime.drive()
    assert offers.runtime.get(T, run_id).outcome == "declined"
    assert calls.by_capability["test.echo"] == 0


def test_an_unanswered_proposal_expires(offers: Accord, clock: FrozenClock, calls: Calls) -> None:
    run_id = start(offers, "offer", discount=20.0)
    token = confirmation_token(offers, run_id)
    clock.advance(2 * 86400 + 1)
    with pytest.raises(ConfirmationInvalid, match="expired"):
        offers.confirm(token, "confirm", channel="email")
    offers.runtime.drive()
    assert offers.runtime.get(T, run_id).outcome == "lapsed"
    assert calls.by_capability["test.echo"] == 0


def test_a_low_risk_proposal_is_confirmed_implicitly(offers: Accord, calls: Calls) -> None:
    run_id = start(offers, "offer", discount=5.0)
    view = offers.runtime.get(T, run_id)
    assert view.outcome == "applied"
    assert isinstance(view.output, dict) and view.output["how"]["implicit"] is True


def test_forged_altered_and_misdirected_tokens_are_refused(offers: Accord, calls: Calls) -> None:
    run_id = start(offers, "offer", discount=20.0)
    token = confirmation_token(offers, run_id)
    version, claims, mac = token.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    tampered["e"] += 86400 * 365
    forged_claims = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode()
    with pytest.raises(ConfirmationInvalid, match="signature"):
        offers.confirm(f"{version}.{forged_claims}.{mac}", "confirm", channel="email")
    with pytest.raises(ConfirmationInvalid, match="not an Accord"):
        offers.confirm("hello", "confirm", channel="email")
    with pytest.raises(ConfirmationInvalid, match="not 'sms'"):
        offers.confirm(token, "confirm", channel="sms")
    with pytest.raises(InputError, match="not an answer"):
        offers.confirm(token, "maybe", channel="email")
    offers.runtime.drive()
    assert offers.runtime.get(T, run_id).status == "waiting"
    assert calls.by_capability["test.echo"] == 0


def test_two_people_claiming_at_once_leave_one_owner(
    inbox: Accord, make_accord: Callable[..., Accord]
) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    other = make_accord(policies=None)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def claim(accord: Accord, person: str) -> None:
        barrier.wait()
        try:
            accord.claim_review(item.item_id, person)
            outcomes[person] = "owner"
        except ReviewConflict:
            outcomes[person] = "refused"

    threads = [
        threading.Thread(target=claim, args=(inbox, "sue")),
        threading.Thread(target=claim, args=(other, "tom")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["owner", "refused"]
    owner = next(p for p, o in outcomes.items() if o == "owner")
    assert inbox.review_item(item.item_id).owner == owner
    assert [a["owner"] for a in entries_of(inbox, run_id, "review.assigned")] == [owner]


def test_erasing_the_subject_removes_packets_and_the_ledger_still_verifies(inbox: Accord) -> None:
    run_id = start(inbox, "goodwill", credit=20.0)
    item = the_item(inbox, run_id)
    inbox.decide_review(item.item_id, "sue", "approve", reason="loyal customer Ada")
    inbox.runtime.drive()
    inbox.erase_subject(SUBJECT, actor="dpo", reason="erasure request")
    erased = inbox.review_items(run_id=run_id, statuses=None)[0]
    assert "Ada" not in json.dumps(erased.packet) and "Ada" not in json.dumps(erased.decision)
    with pytest.raises(SubjectErased):
        item_packet(erased)
    with inbox.db.read() as connection:
        payloads = connection.execute(
            sa.select(signals.c.payload).where(signals.c.run_id == run_id)
        ).all()
    assert payloads and all("Ada" not in p[0] for p in payloads)
    assert inbox.verify_ledger().ok


def test_an_approval_stands_only_for_the_roles_its_giver_holds(inbox: Accord, calls: Calls) -> None:
    deploy_policies(
        inbox,
        CHARGES.replace('@approval("supervisor")', '@approval("supervisor,support")')
        + MAKER_CHECKER,
    )
    run_id = start(inbox, "charge", amount=250.0, requested_by="ann")
    first = the_item(inbox, run_id)
    assert first.roles == ("supervisor", "support")
    inbox.decide_review(first.item_id, "bob", "approve", reason="as supervisor")
    inbox.runtime.drive()
    assert calls.by_capability["test.charge"] == 0
    [second] = [i for i in inbox.review_items(run_id=run_id) if i.item_id != first.item_id]
    assert second.roles == ("support",)
    inbox.decide_review(second.item_id, "sue", "approve", reason="as support")
    inbox.runtime.drive()
    assert inbox.runtime.get(T, run_id).outcome == "charged"
    assert calls.by_capability["test.charge"] == 1
