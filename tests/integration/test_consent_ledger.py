"""The consent ledger on SQLite and PostgreSQL: changes and their events commit together, bad input
writes nothing, point-in-time answers, receipts, configured bases and tenant isolation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from accord.consent import RECEIPT_VERSION, ConsentLedger
from accord.core import TenantId
from accord.errors import InputError
from accord.storage import Database
from accord.storage._schema import consent_events, consent_grants, lawful_bases
from accord.testing import FrozenClock, SequentialIds
from tests.ledgers import ledger_for

A = TenantId("tenant-a")
B = TenantId("tenant-b")
MARKETING = "dpv:Marketing"
CARE = "dpv:CustomerCare"
EMAIL = "pd:EmailAddress"
NAME = "pd:Name"
PURCHASE = "pd:Purchase"
DAY = 86_400.0


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def ledger(db: Database, clock: FrozenClock) -> ConsentLedger:
    return ConsentLedger(db, clock=clock, ids=SequentialIds(), ledger=ledger_for(db, clock))


def counts(db: Database) -> dict[str, int]:
    with db.read() as connection:
        return {
            table.name: connection.execute(
                sa.select(sa.func.count()).select_from(table)
            ).scalar_one()
            for table in (consent_grants, consent_events, lawful_bases)
        }


def test_a_grant_and_its_event_are_written_together(
    ledger: ConsentLedger, db: Database, clock: FrozenClock
) -> None:
    granted = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL], actor="web-form")
    assert counts(db) == {"consent_grants": 1, "consent_events": 1, "lawful_bases": 0}
    assert granted.granted_at == clock.now() and granted.status_at(clock.now()) == "active"
    [event] = ledger.history(A, "cust-1")
    assert (event.kind, event.grant_id, event.actor) == ("granted", granted.grant_id, "web-form")
    assert event.detail["categories"] == [EMAIL]
    assert ledger.grants(A, "cust-1") == [granted]


def test_withdrawal_updates_the_grant_and_adds_one_event(
    ledger: ConsentLedger, db: Database, clock: FrozenClock
) -> None:
    granted = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL])
    clock.advance(60)
    withdrawn = ledger.withdraw(A, granted.grant_id, actor="cust-1", reason="too many e-mails")
    assert withdrawn.withdrawn_at == clock.now()
    assert counts(db)["consent_events"] == 2
    assert ledger.grants(A, "cust-1")[0].withdrawn_at == clock.now()
    last = ledger.history(A, "cust-1")[-1]
    assert last.kind == "withdrawn" and last.detail["reason"] == "too many e-mails"
    check = ledger.check(A, "cust-1", MARKETING, [EMAIL])
    assert not check.allowed and check.reason == "consent_withdrawn"


def test_withdrawing_twice_or_an_unknown_grant_fails_and_writes_nothing(
    ledger: ConsentLedger, db: Database
) -> None:
    granted = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL])
    ledger.withdraw(A, granted.grant_id, actor="cust-1")
    before = counts(db)
    with pytest.raises(InputError, match="already withdrawn") as raised:
        ledger.withdraw(A, granted.grant_id, actor="cust-1")
    assert raised.value.hint
    with pytest.raises(InputError, match="no consent grant 'grant_nope'") as raised:
        ledger.withdraw(A, "grant_nope", actor="cust-1")
    assert raised.value.hint and "accord consent show" in raised.value.hint
    assert counts(db) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"purpose": "dpv:Marketting"}, "did you mean 'dpv:Marketing'"),
        ({"categories": ["pd:Adress"]}, "unknown DPV-PD category"),
        ({"categories": []}, "names no data categories"),
        ({"expires_at": 1.0}, "expire .* before it is granted"),
        ({"granted_at": 100.0, "expires_at": 100.0}, "before it is granted"),
        ({"channel": "x" * 33}, "channel .* 33 characters"),
        ({"notice_version": ""}, "notice_version must be a non-empty string"),
    ],
)
def test_bad_grants_are_refused_before_anything_is_written(
    ledger: ConsentLedger, db: Database, options: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"purpose": MARKETING, "categories": [EMAIL], **options}
    with pytest.raises(InputError, match=message):
        ledger.grant(A, "cust-1", **arguments)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="subject_id must be a non-empty string"):
        ledger.grant(A, " ", purpose=MARKETING, categories=[EMAIL])
    assert counts(db) == {"consent_grants": 0, "consent_events": 0, "lawful_bases": 0}


def test_withdrawals_cannot_be_in_the_future_or_before_the_grant(
    ledger: ConsentLedger, db: Database, clock: FrozenClock
) -> None:
    granted = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL])
    before = counts(db)
    with pytest.raises(InputError, match="cannot take effect in the future"):
        ledger.withdraw(A, granted.grant_id, actor="x", at=clock.now() + 1)
    with pytest.raises(InputError, match="before grant"):
        ledger.withdraw(A, granted.grant_id, actor="x", at=clock.now() - 1)
    assert counts(db) == before


def test_the_receipt_follows_kantara_v1_1_and_never_changes(
    ledger: ConsentLedger, clock: FrozenClock
) -> None:
    granted = ledger.grant(
        A,
        "cust-1",
        purpose=MARKETING,
        categories=[EMAIL, "pd:Health"],
        channel="app",
        notice_version="2026-01",
        expires_at=clock.now() + 365 * DAY,
        language="de",
    )
    receipt = ledger.receipt(A, granted.grant_id)
    assert receipt == granted.receipt
    assert set(receipt) >= {
        "version",
        "jurisdiction",
        "consentTimestamp",
        "collectionMethod",
        "consentReceiptID",
        "language",
        "piiPrincipalId",
        "piiControllers",
        "policyUrl",
        "services",
        "sensitive",
        "spiCat",
    }
    assert receipt["version"] == RECEIPT_VERSION == "KI-CR-v1.1.0"
    assert receipt["consentReceiptID"] == granted.grant_id
    assert receipt["consentTimestamp"] == int(clock.now())
    assert receipt["piiPrincipalId"] == "cust-1" and receipt["language"] == "de"
    assert "app" in receipt["collectionMethod"] and "2026-01" in receipt["collectionMethod"]
    assert receipt["piiControllers"][0]["piiController"] == "Accord Demo Retail"
    [service] = receipt["services"]
    [purpose] = service["purposes"]
    assert purpose["purposeCategory"] == [MARKETING]
    assert purpose["piiCategory"] == [EMAIL, "pd:Health"]
    assert purpose["consentType"] == "EXPLICIT" and purpose["thirdPartyDisclosure"] is False
    ends = dt.datetime.fromtimestamp(clock.now() + 365 * DAY, tz=dt.UTC)
    assert ends.strftime("%Y-%m-%dT%H:%M:%SZ") in purpose["termination"]
    assert receipt["sensitive"] is True and receipt["spiCat"] == ["pd:Health"]

    clock.advance(DAY)
    ledger.withdraw(A, granted.grant_id, actor="cust-1")
    assert ledger.receipt(A, granted.grant_id) == receipt
    with pytest.raises(InputError, match="no consent grant"):
        ledger.receipt(A, "grant_nope")


def test_grants_as_they_stood_at_a_time(ledger: ConsentLedger, clock: FrozenClock) -> None:
    t0 = clock.now()
    first = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL])
    t1 = clock.advance(DAY)
    second = ledger.grant(A, "cust-1", purpose=CARE, categories=[NAME])
    t2 = clock.advance(DAY)
    ledger.withdraw(A, first.grant_id, actor="cust-1")

    assert ledger.grants(A, "cust-1", at=t0 - 1) == []
    assert [g.grant_id for g in ledger.grants(A, "cust-1", at=t0)] == [first.grant_id]
    at_t1 = ledger.grants(A, "cust-1", at=t1)
    assert [g.grant_id for g in at_t1] == [first.grant_id, second.grant_id]
    assert at_t1[0].withdrawn_at is None
    assert ledger.grants(A, "cust-1", at=t2)[0].withdrawn_at == t2
    assert ledger.check(A, "cust-1", MARKETING, [EMAIL], at=t1).allowed
    assert ledger.check(A, "cust-1", MARKETING, [EMAIL], at=t2).reason == "consent_withdrawn"


def test_a_late_recorded_withdrawal_is_invisible_before_it_was_recorded(
    ledger: ConsentLedger, clock: FrozenClock
) -> None:
    granted = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL])
    said_so = clock.advance(DAY)
    recorded = clock.advance(DAY)
    ledger.withdraw(A, granted.grant_id, actor="call-centre", at=said_so)

    between = said_so + DAY / 2
    assert ledger.grants(A, "cust-1", at=between)[0].withdrawn_at is None
    assert ledger.check(A, "cust-1", MARKETING, [EMAIL], at=between).allowed
    assert ledger.grants(A, "cust-1", at=recorded)[0].withdrawn_at == said_so
    now = ledger.snapshot(A, "cust-1")
    assert not now.check(MARKETING, [EMAIL], at=between).allowed


def test_a_grant_recorded_later_is_absent_even_if_backdated(
    ledger: ConsentLedger, clock: FrozenClock
) -> None:
    earlier = clock.now()
    clock.advance(DAY)
    ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL], granted_at=earlier)
    assert ledger.grants(A, "cust-1", at=earlier) == []
    assert not ledger.check(A, "cust-1", MARKETING, [EMAIL], at=earlier).allowed
    assert ledger.snapshot(A, "cust-1").check(MARKETING, [EMAIL], at=earlier).allowed


def test_withdraw_purpose_withdraws_every_current_grant_for_it(
    ledger: ConsentLedger, db: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    lapsed = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL], expires_at=now + 10)
    clock.advance(20)
    current = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[NAME])
    future = ledger.grant(
        A, "cust-1", purpose=MARKETING, categories=[EMAIL], granted_at=clock.now() + DAY
    )
    other = ledger.grant(A, "cust-1", purpose=CARE, categories=[EMAIL])
    before = counts(db)["consent_events"]

    withdrawn = ledger.withdraw_purpose(A, "cust-1", MARKETING, actor="cust-1", reason="stop")
    assert [g.grant_id for g in withdrawn] == [current.grant_id, future.grant_id]
    assert counts(db)["consent_events"] == before + 2
    state = {g.grant_id: g.withdrawn_at for g in ledger.grants(A, "cust-1")}
    assert state[lapsed.grant_id] is None and state[other.grant_id] is None
    assert ledger.withdraw_purpose(A, "cust-1", MARKETING, actor="cust-1") == []


def test_configured_bases_allow_without_consent_and_consent_removes_them(
    ledger: ConsentLedger, db: Database, clock: FrozenClock
) -> None:
    configured = ledger.set_basis(
        A, CARE, "contract", categories=[PURCHASE], description="orders", actor="dpo"
    )
    assert configured.categories == (PURCHASE,)
    assert ledger.bases(A) == [configured]
    assert ledger.check(A, "cust-1", CARE, [PURCHASE]).basis == "contract"
    assert not ledger.check(A, "cust-1", CARE, [NAME]).allowed
    configured_at = clock.now()

    again = ledger.set_basis(
        A, CARE, "contract", categories=[PURCHASE], description="orders", actor="dpo"
    )
    assert again == configured
    assert counts(db) == {"consent_grants": 0, "consent_events": 1, "lawful_bases": 1}

    clock.advance(DAY)
    widened = ledger.set_basis(A, CARE, "legitimate_interest", actor="dpo")
    assert widened.categories is None
    assert ledger.check(A, "cust-1", CARE, [NAME]).basis == "legitimate_interest"
    clock.advance(DAY)
    removed = ledger.set_basis(A, CARE, "consent", actor="dpo")
    assert removed.basis == "consent" and ledger.bases(A) == []
    assert ledger.check(A, "cust-1", CARE, [PURCHASE]).reason == "consent_missing"

    assert counts(db) == {"consent_grants": 0, "consent_events": 3, "lawful_bases": 0}
    past = ledger.check(A, "cust-1", CARE, [PURCHASE, NAME], at=configured_at)
    assert past.missing == (NAME,)
    assert ledger.snapshot(A, "cust-1", as_of=configured_at).bases == (configured,)
    assert ledger.check(A, "cust-1", CARE, [NAME], at=configured_at + DAY).allowed


def test_bad_bases_are_refused_before_anything_is_written(
    ledger: ConsentLedger, db: Database
) -> None:
    with pytest.raises(InputError, match="unknown lawful basis"):
        ledger.set_basis(A, CARE, "contrat", actor="dpo")
    with pytest.raises(InputError, match="categories cannot be configured for the consent"):
        ledger.set_basis(A, CARE, "consent", categories=[NAME], actor="dpo")
    with pytest.raises(InputError, match="unknown DPV-PD category"):
        ledger.set_basis(A, CARE, "contract", categories=["pd:Nam"], actor="dpo")
    assert counts(db) == {"consent_grants": 0, "consent_events": 0, "lawful_bases": 0}


def test_one_snapshot_holds_all_grants_and_bases(ledger: ConsentLedger, db: Database) -> None:
    ledger.set_basis(A, CARE, "contract", categories=[PURCHASE], actor="dpo")
    first = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL])
    ledger.withdraw(A, first.grant_id, actor="cust-1")
    second = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[NAME])
    ledger.grant(A, "cust-2", purpose=MARKETING, categories=[EMAIL])

    snapshot = ledger.snapshot(A, "cust-1")
    assert [g.grant_id for g in snapshot.grants] == [first.grant_id, second.grant_id]
    assert [b.purpose for b in snapshot.bases] == [CARE]
    with db.read() as connection:
        assert ledger.snapshot(A, "cust-1", connection=connection) == snapshot


def test_tenants_never_see_each_other(ledger: ConsentLedger) -> None:
    granted = ledger.grant(A, "cust-1", purpose=MARKETING, categories=[EMAIL])
    ledger.set_basis(A, CARE, "contract", actor="dpo")

    assert ledger.grants(B, "cust-1") == []
    assert ledger.history(B, "cust-1") == []
    assert ledger.bases(B) == []
    snapshot = ledger.snapshot(B, "cust-1")
    assert snapshot.grants == () and snapshot.bases == ()
    assert ledger.check(B, "cust-1", MARKETING, [EMAIL]).reason == "consent_missing"
    assert not ledger.check(B, "cust-1", CARE, [NAME]).allowed
    with pytest.raises(InputError, match="no consent grant"):
        ledger.receipt(B, granted.grant_id)
    with pytest.raises(InputError, match="no consent grant"):
        ledger.withdraw(B, granted.grant_id, actor="intruder")
    assert ledger.withdraw_purpose(B, "cust-1", MARKETING, actor="intruder") == []
    assert ledger.check(A, "cust-1", MARKETING, [EMAIL]).allowed
