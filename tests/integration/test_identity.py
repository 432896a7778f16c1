"""Identity resolution through Accord: linking across systems, possible links in the review
inbox, reversible merges and splits, residency decided by policy, erasure forgetting it all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.core import TenantId
from accord.errors import InputError, ResidencyRefused
from accord.identity import SourceRecord, default_model, load_febrl
from accord.service import Accord
from accord.storage import identity as stored
from accord.storage._schema import context_items, identity_records
from tests.governance import PERMIT_ALL, deploy_policies

TENANT = "default"
FEBRL = Path(__file__).parents[2].parent / "shared" / "datasets" / "febrl"

ADA_CRM = SourceRecord(
    "crm",
    "cus_1",
    {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0001",
        "dob": "1815-12-10",
    },
    "eu-west-1",
)
ADA_BILLING = SourceRecord(
    "billing",
    "acc_1",
    {"name": "Ada Lovelace", "email": "ADA@example.com", "date_of_birth": "18151210"},
    "eu-west-1",
)
ALAN = SourceRecord(
    "crm",
    "cus_2",
    {"first_name": "Alan", "last_name": "Turing", "email": "alan@example.com", "dob": "19120623"},
    "eu-west-1",
)
# Ada's name with another date of birth: a typo, or a namesake
ADA_MAYBE = SourceRecord(
    "orders",
    "u_9",
    {"first_name": "Ada", "last_name": "Lovelace", "dob": "1901-01-01"},
    "eu-west-1",
)


def test_records_of_one_person_in_two_systems_resolve_to_one_subject(accord: Accord) -> None:
    report = accord.resolve_identities([ADA_CRM, ALAN, ADA_BILLING])
    ada, alan, billing = report.resolutions
    assert (ada.outcome, alan.outcome, billing.outcome) == ("created", "created", "linked")
    assert billing.subject_id == ada.subject_id != alan.subject_id
    assert billing.probability is not None and billing.probability > 0.9

    view = accord.identity.show(TENANT, ada.subject_id)
    assert {(r.source, r.record_id) for r in view.records} == {
        ("crm", "cus_1"),
        ("billing", "acc_1"),
    }
    crm = next(r for r in view.records if r.source == "crm")
    assert crm.fields["phone"] == "+442079460001"
    assert crm.fields["email"] == "ada@example.com"
    assert view.subject.region == "eu-west-1"

    # resolving the same records again changes nothing
    again = accord.resolve_identities([ADA_CRM, ADA_BILLING])
    assert [r.outcome for r in again.resolutions] == ["unchanged", "unchanged"]

    resolved = accord.ledger.entries(TENANT, kinds=["identity.resolved"])
    assert [e.body["outcome"] for e in resolved] == ["created", "created", "linked"]
    assert all("ada" not in str(e.body).lower() for e in resolved)


def test_record_fields_become_context_attributes_tagged_with_category_and_source(
    accord: Accord,
) -> None:
    report = accord.resolve_identities([ADA_CRM, ADA_BILLING])
    subject = report.resolutions[0].subject_id
    context = accord.context.read(TENANT, subject)
    assert context["pd:EmailAddress"]["attributes"]["email"]["value"] == "ada@example.com"
    assert sorted(context["pd:EmailAddress"]["attributes"]["email"]["sources"]) == [
        "billing",
        "crm",
    ]
    assert context["pd:TelephoneNumber"]["attributes"]["phone"]["source"] == "crm"
    assert context["pd:BirthDate"]["attributes"]["birth_date"]["region"] == "eu-west-1"


def test_a_possible_link_is_decided_in_the_review_inbox_and_merges_on_approval(
    accord: Accord,
) -> None:
    ada = accord.resolve_identities([ADA_CRM]).resolutions[0].subject_id
    maybe = accord.resolve_identities([ADA_MAYBE]).resolutions[0]
    assert maybe.outcome == "possible", maybe
    assert maybe.other_subject_id == ada and maybe.subject_id != ada

    accord.runtime.drive()
    [item] = accord.review_items(queue="identity")
    assert item.subject_id == maybe.subject_id
    packet = accord.review_item(item.item_id).packet
    assert "match probability" in str(packet)

    accord.put_person("ines", roles=["identity"], actor="tests")
    accord.claim_review(item.item_id, "ines")
    accord.decide_review(item.item_id, "ines", "approve", reason="same customer, checked by phone")
    accord.runtime.drive()

    view = accord.identity.show(TENANT, maybe.subject_id)
    assert view.subject.subject_id == ada
    assert {r.record_id for r in view.records} == {"cus_1", "u_9"}
    [merge] = view.merges
    assert merge.merged_by == "ines" and merge.candidate_id == maybe.candidate_id
    [candidate] = [c for c in view.candidates if c.candidate_id == maybe.candidate_id]
    assert candidate.status == "merged"
    kinds = [e.kind for e in accord.ledger.entries(TENANT, subject_id=ada)]
    assert "identity.merged" in kinds


def test_a_rejected_possible_link_keeps_the_subjects_apart_for_good(accord: Accord) -> None:
    ada = accord.resolve_identities([ADA_CRM]).resolutions[0].subject_id
    maybe = accord.resolve_identities([ADA_MAYBE]).resolutions[0]
    accord.runtime.drive()
    [item] = accord.review_items(queue="identity")
    accord.put_person("ines", roles=["identity"], actor="tests")
    accord.claim_review(item.item_id, "ines")
    accord.decide_review(item.item_id, "ines", "reject", reason="different date of birth on ID")
    accord.runtime.drive()

    assert accord.runtime.get(TenantId(TENANT), item.run_id).outcome == "kept_apart"
    assert accord.identity.current_subject(TENANT, maybe.subject_id) == maybe.subject_id
    with pytest.raises(InputError, match="different people"):
        accord.identity.merge(TENANT, ada, maybe.subject_id, by="ops", reason="try")


def test_merge_then_undo_restores_both_subjects_and_their_context(accord: Accord) -> None:
    ada, alan = (r.subject_id for r in accord.resolve_identities([ADA_CRM, ALAN]).resolutions)
    merge = accord.identity.merge(TENANT, ada, alan, by="ops", reason="test merge")
    assert accord.identity.current_subject(TENANT, alan) == ada
    assert "pd:Name" in accord.context.read(TENANT, ada)
    assert len(accord.identity.show(TENANT, ada).records) == 2

    restored = accord.identity.split(
        TENANT, ada, by="ops", reason="they are different people", merge_id=merge.merge_id
    )
    assert restored == alan
    assert [r.record_id for r in accord.identity.show(TENANT, ada).records] == ["cus_1"]
    assert [r.record_id for r in accord.identity.show(TENANT, alan).records] == ["cus_2"]
    names = accord.context.read(TENANT, alan)["pd:Name"]["attributes"]
    assert names["given_name"]["value"] == "alan"
    with pytest.raises(InputError, match="already undone"):
        accord.identity.split(TENANT, ada, by="ops", reason="again", merge_id=merge.merge_id)
    kinds = [
        e.kind for e in accord.ledger.entries(TENANT, kinds=["identity.merged", "identity.split"])
    ]
    assert kinds == ["identity.merged", "identity.split"]


def test_splitting_off_a_record_moves_it_and_its_context_to_a_new_subject(
    accord: Accord,
) -> None:
    ada = accord.resolve_identities([ADA_CRM, ADA_BILLING]).resolutions[0].subject_id
    new = accord.identity.split(
        TENANT,
        ada,
        by="ops",
        reason="billing account is her namesake's",
        records=[("billing", "acc_1")],
    )
    assert [r.record_id for r in accord.identity.show(TENANT, new).records] == ["acc_1"]
    email = accord.context.read(TENANT, ada)["pd:EmailAddress"]["attributes"]["email"]
    assert email["sources"] == ["crm"]
    with pytest.raises(InputError, match="no record"):
        accord.identity.split(TENANT, ada, by="ops", reason="x", records=[("billing", "nope")])


def test_bad_records_are_refused_with_where_and_nothing_is_stored(accord: Accord) -> None:
    bad = [
        ADA_CRM,
        SourceRecord("CRM System", "x", {"email": "a@example.com"}),
    ]
    with pytest.raises(InputError, match=r"record 2 .*not a system name"):
        accord.resolve_identities(bad)
    with pytest.raises(InputError, match="none of its fields"):
        accord.resolve_identities([SourceRecord("crm", "y", {"favourite_colour": "blue"})])
    with accord.db.read() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(identity_records)).scalar()
            == 0
        )


def test_a_journey_for_a_subject_from_another_region_is_refused_with_the_reason_recorded(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord(policies=None)
    deploy_policies(
        accord,
        PERMIT_ALL
        + """
@id("residency-home-region")
forbid (principal, action, resource is Accord::Subject)
when {
  context has processing_region && resource has region &&
  resource.region != context.processing_region
};
""",
    )
    accord.runtime.catalog.deploy(TenantId(TENANT), _echo_journey())
    eu = accord.resolve_identities([ADA_CRM]).resolutions[0].subject_id
    us = accord.resolve_identities([dataclasses.replace(ALAN, region="us-east-1")]).resolutions[0]
    assert accord.gateway.governance is not None
    accord.gateway.governance.region = "eu-west-1"

    started = accord.runtime.start(TenantId(TENANT), "echo", input={"n": 1}, subject=eu)
    with pytest.raises(ResidencyRefused, match="lives in us-east-1") as refused:
        accord.runtime.start(TenantId(TENANT), "echo", input={"n": 1}, subject=us.subject_id)
    assert refused.value.code == "residency_refused"

    decisions = accord.ledger.entries(TENANT, kinds=["gateway.decision"])
    outcomes = {(e.subject_id, e.body.get("outcome")) for e in decisions}
    assert (eu, "allowed") in outcomes
    assert (us.subject_id, "refused") in outcomes
    refusal = next(e for e in decisions if e.subject_id == us.subject_id)
    assert "residency-home-region" in str(refusal.body)
    accord.runtime.drive()
    assert accord.runtime.get(TenantId(TENANT), started.run_id).status == "completed"
    # without a region of its own the deployment asks nothing
    accord.gateway.governance.region = None
    accord.runtime.start(TenantId(TENANT), "echo", input={"n": 2}, subject=us.subject_id)


def test_erasing_a_subject_forgets_their_records_and_context(accord: Accord) -> None:
    ada = accord.resolve_identities([ADA_CRM, ADA_BILLING]).resolutions[0].subject_id
    erased = accord.erase_subject(ada, actor="dpo", reason="erasure request 2026-118")
    assert erased.subject_id == ada
    with accord.db.read() as connection:
        assert not stored.records_of(connection, TenantId(TENANT), [ada])
        left = connection.execute(
            sa.select(sa.func.count())
            .select_from(context_items)
            .where(context_items.c.subject_id == ada)
        ).scalar()
    assert left == 0
    [entry] = accord.ledger.entries(TENANT, kinds=["subject.erased"])
    assert entry.body["identity_rows_deleted"] > 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_incremental_resolution_of_febrl_dataset1_finds_its_duplicates(accord: Accord) -> None:
    """The product path (one record at a time, blocking keys in the database) on FEBRL 1."""
    if not (FEBRL / "dataset1.csv").exists():
        pytest.skip(f"FEBRL data not found at {FEBRL}")
    records = load_febrl(FEBRL / "dataset1.csv")
    accord.identity.put_model(TENANT, default_model(), "configured", by="tests")
    report = accord.identity.resolve(
        TENANT, [SourceRecord("febrl", r.record_id, dict(r.fields)) for r in records]
    )
    subjects: dict[str, list[str]] = {}
    for resolution in report.resolutions:
        subjects.setdefault(resolution.subject_id, []).append(resolution.record_id)
    predicted = {
        frozenset(pair) for ids in subjects.values() for pair in combinations(sorted(ids), 2)
    }
    truth = {
        frozenset((a, b))
        for a, b in combinations(sorted(r.record_id for r in records), 2)
        if a.split("-")[1] == b.split("-")[1]
    }
    true_positives = len(predicted & truth)
    precision = true_positives / len(predicted)
    recall = true_positives / len(truth)
    assert precision >= 0.97 and recall >= 0.95, (precision, recall)


def _echo_journey() -> object:
    from accord.journeys import load_journey_text

    return load_journey_text(
        """
journey: echo
purpose: dpv:CustomerCare
input: {n: number}
blocks:
  - {id: echo, kind: task, capability: test.echo, input: {number: input.n}}
  - {id: done, kind: end, outcome: done}
"""
    )


def test_a_journey_reads_context_through_a_task_block_projected_by_its_purpose(
    accord: Accord,
) -> None:
    from accord.journeys import load_journey_text

    subject = accord.resolve_identities([ADA_CRM]).resolutions[0].subject_id
    accord.consent.set_basis(
        TenantId(TENANT), "dpv:CustomerCare", "contract", categories=["pd:Name"], actor="tests"
    )
    loaded = load_journey_text(
        """
journey: greet
purpose: dpv:CustomerCare
blocks:
  - {id: profile, kind: task, capability: context.read, input: {signals: 5}}
  - id: done
    kind: end
    outcome: greeted
    output: {given_name: 'steps.profile["pd:Name"].attributes.given_name.value'}
"""
    )
    accord.runtime.catalog.deploy(TenantId(TENANT), loaded)
    started = accord.runtime.start(TenantId(TENANT), "greet", subject=subject)
    accord.runtime.drive()
    run = accord.runtime.get(TenantId(TENANT), started.run_id)
    assert (run.status, run.outcome) == ("completed", "greeted"), run
    assert run.output == {"given_name": "ada"}
    [decision] = accord.runtime.decisions(TenantId(TENANT), started.run_id)
    assert decision.record["withheld"] == ["pd:BirthDate", "pd:EmailAddress", "pd:TelephoneNumber"]


def test_a_name_alone_never_links_it_asks_a_person(accord: Accord) -> None:
    ada = accord.resolve_identities([ADA_CRM]).resolutions[0].subject_id
    namesake = SourceRecord(
        "helpdesk", "req_1", {"name": "Ada Lovelace", "city": "London"}, "eu-west-1"
    )
    [resolution] = accord.resolve_identities([namesake]).resolutions
    assert resolution.outcome == "possible" and resolution.other_subject_id == ada
    assert resolution.probability is not None and resolution.probability >= 0.9


def test_settling_a_possible_link_again_returns_the_first_merge(accord: Accord) -> None:
    ada = accord.resolve_identities([ADA_CRM]).resolutions[0].subject_id
    maybe = accord.resolve_identities([ADA_MAYBE]).resolutions[0]
    payload = {"candidate_id": maybe.candidate_id, "by": "ines", "reason": "same person"}
    first = accord.invoke("identity.merge", payload, principal="ops")
    again = accord.invoke("identity.merge", payload, principal="ops")
    assert first.status == again.status == "executed", (first, again)
    assert first.output is not None and again.output is not None
    assert first.output["subject_id"] == again.output["subject_id"] == ada
    assert again.output["merge_id"] == first.output["merge_id"] is not None
    assert len(accord.identity.show(TENANT, ada).merges) == 1
