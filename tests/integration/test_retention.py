"""Retention on SQLite and PostgreSQL, with the frozen clock: rules per category (delete) and per
category and purpose (anonymise), items recorded at different times, a subject under legal hold.

Two subjects, Ada and Bob, get the same items: some a year old, some ten days, one 31 days (given
by ``recorded_at``). Bob is under legal hold. After the job runs, Ada's expired items are gone or
anonymised and Bob's are all kept, as the context store, the ``context_items`` table and the
ledger each show; a second run changes nothing, and releasing Bob's hold lets the next run act.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from accord.errors import InputError
from accord.identity import ContextItem, RetentionRule, SourceRecord
from accord.service import Accord
from accord.storage._schema import context_items
from accord.testing import FrozenClock

TENANT = "default"
DAY = 86_400.0
MARKETING = "dpv:Marketing"
ORDERS = "dpv:CustomerOrderManagement"
RULES = (
    RetentionRule("pd:Purchase", 365 * DAY),
    RetentionRule("pd:Purchase", 30 * DAY, "anonymise", purpose=MARKETING),
    RetentionRule("pd:Location", 7 * DAY),
    RetentionRule("pd:Communication", 90 * DAY, "anonymise"),
)
"""Orders are deleted after a year, but what marketing collected about purchases is anonymised
after 30 days; locations are deleted after a week, messages anonymised after 90 days."""

A_YEAR_AGO = (
    ContextItem("order_2025", {"id": "o-1"}, "pd:Purchase", "orders", "signal", purpose=ORDERS),
    ContextItem("campaign_click", {"id": "c-1"}, "pd:Purchase", "web", "signal", purpose=MARKETING),
    ContextItem("ticket_2025", {"text": "late"}, "pd:Communication", "helpdesk", "signal"),
    ContextItem("favourite_colour", "green", "pd:Preference", "crm"),
)
"""Recorded 370 days before the job runs."""
TEN_DAYS_AGO = (
    ContextItem("order_recent", {"id": "o-2"}, "pd:Purchase", "orders", "signal", purpose=ORDERS),
    ContextItem("basket_click", {"id": "c-3"}, "pd:Purchase", "web", "signal", purpose=MARKETING),
    ContextItem("city", "London", "pd:Location", "app"),
    ContextItem("ticket_recent", {"text": "thanks"}, "pd:Communication", "helpdesk", "signal"),
)
"""Recorded ten days before the job runs, with one more item 31 days old (``WISHLIST``)."""
WISHLIST = "wishlist_click"

DELETED = {"order_2025", "city"}
ANONYMISED = {"campaign_click", "ticket_2025", WISHLIST}
KEPT = {"favourite_colour", "order_recent", "basket_click", "ticket_recent", "email"}
"""``email`` is the attribute resolving the subject's source record made; no rule covers it."""


@dataclass(frozen=True)
class Prepared:
    ada: str
    bob: str
    items: Mapping[tuple[str, str], str]
    """(subject id, item name) → item id."""

    def ids(self, subject: str, names: set[str]) -> list[str]:
        return sorted(self.items[subject, name] for name in names)


def prepare(accord: Accord, clock: FrozenClock) -> Prepared:
    """Set the rules, record both subjects' items over 370 days and put Bob under legal hold;
    the clock stops where the job is to run."""
    for rule in RULES:
        accord.retention.set_rule(TENANT, rule, by="dpo")
    report = accord.resolve_identities(
        [
            SourceRecord("shop", "ada", {"email": "ada@example.org"}),
            SourceRecord("shop", "bob", {"email": "bob@example.net"}),
        ]
    )
    ada, bob = (r.subject_id for r in report.resolutions)
    items: dict[tuple[str, str], str] = {}

    def record(subject: str, batch: tuple[ContextItem, ...]) -> None:
        ids = accord.context.record(TENANT, subject, batch, by="tests")
        items.update({(subject, item.name): i for item, i in zip(batch, ids, strict=True)})

    for subject in (ada, bob):
        record(subject, A_YEAR_AGO)
    clock.advance(360 * DAY)
    wishlist = ContextItem(
        WISHLIST,
        {"id": "c-2"},
        "pd:Purchase",
        "web",
        "signal",
        purpose=MARKETING,
        recorded_at=clock.now() - 21 * DAY,
    )
    for subject in (ada, bob):
        record(subject, (*TEN_DAYS_AGO, wishlist))
    accord.place_hold(bob, actor="legal", reason="dispute 2026-17")
    clock.advance(10 * DAY)
    return Prepared(ada, bob, items)


def names(accord: Accord, subject: str) -> set[str]:
    """The names of every attribute and signal the context store holds about ``subject``."""
    return {
        name
        for section in accord.context.read(TENANT, subject).values()
        for name in [*section["attributes"], *(s["name"] for s in section["signals"])]
    }


def stored_rows(accord: Accord) -> dict[str, Mapping[str, Any]]:
    """Every row of ``context_items``, by item id, read directly."""
    with accord.db.read() as connection:
        rows = connection.execute(
            sa.select(context_items).where(context_items.c.tenant_id == TENANT)
        ).mappings()
        return {row["item_id"]: dict(row) for row in rows}


def applied(accord: Accord) -> list[dict[str, Any]]:
    """The bodies of the ``retention.applied`` entries, in ledger order, with their subject."""
    return [
        {**e.body, "entry_subject": e.subject_id}
        for e in accord.ledger.entries(TENANT, kinds=["retention.applied"])
    ]


def test_expired_items_are_deleted_or_anonymised_unless_their_subject_is_on_hold(
    accord: Accord, clock: FrozenClock
) -> None:
    prepared = prepare(accord, clock)
    ada, bob = prepared.ada, prepared.bob
    before = stored_rows(accord)

    report = accord.apply_retention()

    assert report.at == clock.now()
    assert report.deleted == tuple(prepared.ids(ada, DELETED))
    assert report.anonymised == tuple(prepared.ids(ada, ANONYMISED))
    assert report.held == tuple(prepared.ids(bob, DELETED | ANONYMISED))
    assert names(accord, ada) == KEPT
    assert names(accord, bob) == KEPT | DELETED | ANONYMISED

    after = stored_rows(accord)
    assert not set(prepared.ids(ada, DELETED)) & set(after)
    for item_id in prepared.ids(ada, ANONYMISED):
        row, was = after[item_id], before[item_id]
        assert (row["subject_id"], row["value"], row["anonymised_at"]) == (None, None, clock.now())
        kept = ("kind", "name", "category", "source", "purpose", "recorded_at")
        assert {k: row[k] for k in kept} == {k: was[k] for k in kept}
    untouched = set(after) - set(prepared.ids(ada, ANONYMISED))
    assert {i: after[i] for i in untouched} == {
        i: before[i] for i in set(before) - set(prepared.ids(ada, DELETED | ANONYMISED))
    }
    assert {after[i]["subject_id"] for i in prepared.ids(bob, DELETED | ANONYMISED)} == {bob}


def test_the_ledger_names_the_items_retention_deleted_anonymised_and_held(
    accord: Accord, clock: FrozenClock
) -> None:
    prepared = prepare(accord, clock)
    ada, bob = prepared.ada, prepared.bob

    accord.apply_retention(by="nightly")

    by_subject = sorted(
        [
            {
                "entry_subject": ada,
                "subject": ada,
                "deleted": prepared.ids(ada, DELETED),
                "anonymised": prepared.ids(ada, ANONYMISED),
                "held": [],
                "categories": ["pd:Communication", "pd:Location", "pd:Purchase"],
                "legal_hold": False,
                "by": "nightly",
            },
            {
                "entry_subject": bob,
                "subject": bob,
                "deleted": [],
                "anonymised": [],
                "held": prepared.ids(bob, DELETED | ANONYMISED),
                "categories": ["pd:Communication", "pd:Location", "pd:Purchase"],
                "legal_hold": True,
                "by": "nightly",
            },
        ],
        key=lambda body: body["subject"],
    )
    summary = {
        "entry_subject": None,
        "summary": True,
        "deleted": 2,
        "anonymised": 3,
        "held": 5,
        "subjects": 2,
        "by": "nightly",
    }
    assert applied(accord) == [*by_subject, summary]
    [entry] = accord.ledger.entries(TENANT, kinds=["retention.applied"], subject_id=ada)
    assert entry.at == clock.now()
    rules = [e.body for e in accord.ledger.entries(TENANT, kinds=["retention.rule"])]
    assert [(r["category"], r["purpose"], r["action"]) for r in rules] == [
        (r.category, r.purpose, r.action) for r in RULES
    ]


def test_a_second_run_removes_nothing_new(accord: Accord, clock: FrozenClock) -> None:
    prepared = prepare(accord, clock)
    first = accord.apply_retention()
    rows = stored_rows(accord)
    entries_before = len(applied(accord))
    clock.advance(60)

    second = accord.apply_retention()

    assert (second.deleted, second.anonymised) == ((), ())
    assert second.held == first.held == tuple(prepared.ids(prepared.bob, DELETED | ANONYMISED))
    assert stored_rows(accord) == rows
    recorded = applied(accord)[entries_before:]
    assert all(body["deleted"] in ([], 0) and body["anonymised"] in ([], 0) for body in recorded)
    assert recorded[-1]["summary"] is True and recorded[-1]["held"] == 5


def test_releasing_the_hold_lets_the_next_run_remove_the_held_items(
    accord: Accord, clock: FrozenClock
) -> None:
    prepared = prepare(accord, clock)
    accord.apply_retention()
    accord.release_hold(prepared.bob, actor="legal", reason="dispute settled")

    report = accord.apply_retention()

    bob = prepared.bob
    assert report.deleted == tuple(prepared.ids(bob, DELETED))
    assert report.anonymised == tuple(prepared.ids(bob, ANONYMISED))
    assert report.held == ()
    assert names(accord, bob) == names(accord, prepared.ada) == KEPT
    rows = stored_rows(accord)
    assert not set(prepared.ids(bob, DELETED)) & set(rows)
    assert {rows[i]["subject_id"] for i in prepared.ids(bob, ANONYMISED)} == {None}
    [*_, bobs, summary] = applied(accord)
    assert (bobs["subject"], bobs["legal_hold"], bobs["held"]) == (bob, False, [])
    assert (summary["deleted"], summary["anonymised"], summary["held"]) == (2, 3, 0)


def test_an_item_exactly_as_old_as_its_period_is_kept_until_it_is_older(
    accord: Accord, clock: FrozenClock
) -> None:
    accord.retention.set_rule(TENANT, RetentionRule("pd:Location", 7 * DAY), by="dpo")
    [resolution] = accord.resolve_identities(
        [SourceRecord("shop", "cy", {"email": "cy@example.com"})]
    ).resolutions
    subject = resolution.subject_id
    accord.context.record(
        TENANT, subject, [ContextItem("city", "Leeds", "pd:Location", "app")], by="tests"
    )
    clock.advance(7 * DAY)

    assert accord.apply_retention().deleted == ()
    assert "city" in names(accord, subject)

    clock.advance(1)
    assert len(accord.apply_retention().deleted) == 1
    assert "city" not in names(accord, subject)


def test_a_rule_set_again_replaces_the_earlier_one(accord: Accord) -> None:
    accord.retention.set_rule(TENANT, RetentionRule("pd:Location", 7 * DAY), by="dpo")
    accord.retention.set_rule(TENANT, RetentionRule("pd:Location", 30 * DAY, "anonymise"), by="dpo")

    [rule] = accord.retention.rules(TENANT)
    assert (rule.category, rule.purpose, rule.period_seconds, rule.action) == (
        "pd:Location",
        None,
        30 * DAY,
        "anonymise",
    )
    assert len(accord.ledger.entries(TENANT, kinds=["retention.rule"])) == 2


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (RetentionRule("Purchase", DAY), "category 'Purchase' is not a DPV term"),
        (RetentionRule("pd:Purchases", DAY), "unknown DPV-PD category 'pd:Purchases'"),
        (RetentionRule("dpv:Marketing", DAY), "'dpv:Marketing' is not a personal-data category"),
        (RetentionRule("pd:Purchase", DAY, purpose="Marketing"), "purpose 'Marketing' is not"),
        (RetentionRule("pd:Purchase", 0), "more than 0 and at most 100 years, got 0s"),
        (RetentionRule("pd:Purchase", -DAY), "more than 0 and at most 100 years, got -86400.0s"),
        (RetentionRule("pd:Purchase", float("nan")), "more than 0 and at most 100 years"),
        (
            RetentionRule("pd:Purchase", DAY, "archive"),  # type: ignore[arg-type]
            "unknown retention action 'archive'",
        ),
    ],
    ids=[
        "no-prefix",
        "unknown-pd-term",
        "purpose-as-category",
        "malformed-purpose",
        "zero-period",
        "negative-period",
        "nan-period",
        "unknown-action",
    ],
)
def test_a_bad_rule_is_refused_with_its_reason_and_nothing_is_stored(
    accord: Accord, rule: RetentionRule, message: str
) -> None:
    with pytest.raises(InputError, match=re.escape(message)) as raised:
        accord.retention.set_rule(TENANT, rule, by="dpo")

    assert raised.value.hint
    assert accord.retention.rules(TENANT) == []
    assert accord.ledger.entries(TENANT, kinds=["retention.rule"]) == []


@pytest.mark.parametrize("purpose", ["dpv:Markting", "pd:Purchase"])
def test_a_rule_for_a_purpose_that_is_not_one_is_refused(accord: Accord, purpose: str) -> None:
    with pytest.raises(InputError, match="purpose"):
        accord.retention.set_rule(
            TENANT, RetentionRule("pd:Purchase", DAY, purpose=purpose), by="dpo"
        )
    assert accord.retention.rules(TENANT) == []
