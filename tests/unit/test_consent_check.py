"""``ConsentSnapshot.check``: examples of each rule, and a property test against a reference model
over random timelines of grants, expiries and withdrawals."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from accord.consent import BasisCheck, ConsentSnapshot, Grant, PurposeBasis

MARKETING = "dpv:Marketing"
CARE = "dpv:CustomerCare"
EMAIL = "pd:EmailAddress"
NAME = "pd:Name"
PURCHASE = "pd:Purchase"


def grant(
    grant_id: str,
    purpose: str,
    categories: tuple[str, ...],
    granted_at: float,
    *,
    expires_at: float | None = None,
    withdrawn_at: float | None = None,
) -> Grant:
    return Grant(
        grant_id=grant_id,
        tenant_id="t",
        subject_id="s",
        purpose=purpose,
        categories=categories,
        channel="web",
        notice_version="1",
        granted_at=granted_at,
        expires_at=expires_at,
        withdrawn_at=withdrawn_at,
        receipt={"consentReceiptID": grant_id},
    )


def snapshot(*grants: Grant, bases: tuple[PurposeBasis, ...] = ()) -> ConsentSnapshot:
    return ConsentSnapshot("t", "s", grants, bases)


def test_no_categories_requested_is_allowed_without_a_basis() -> None:
    check = snapshot().check(MARKETING, [], at=10)
    assert check.allowed and check.basis is None and check.reason is None
    assert check.allowed_categories == frozenset()
    assert "no personal data" in check.message


def test_an_active_grant_allows_its_categories_and_names_its_receipt() -> None:
    check = snapshot(grant("g1", MARKETING, (EMAIL, NAME), 0)).check(MARKETING, [EMAIL], at=5)
    assert check == BasisCheck(
        True, None, "consent", ("g1",), frozenset({EMAIL, NAME}), (), MARKETING
    )
    assert "g1" in check.message


def test_grants_for_another_purpose_do_not_count() -> None:
    check = snapshot(grant("g1", CARE, (EMAIL,), 0)).check(MARKETING, [EMAIL], at=5)
    assert not check.allowed and check.reason == "consent_missing" and check.missing == (EMAIL,)
    assert check.allowed_categories == frozenset()


def test_several_active_grants_cover_the_categories_together() -> None:
    state = snapshot(grant("g1", MARKETING, (EMAIL,), 0), grant("g2", MARKETING, (NAME,), 1))
    check = state.check(MARKETING, [NAME, EMAIL], at=5)
    assert check.allowed and check.grant_ids == ("g1", "g2")


def test_boundaries_grant_starts_at_granted_at_and_ends_at_expiry_or_withdrawal() -> None:
    expiring = snapshot(grant("g1", MARKETING, (EMAIL,), 10, expires_at=20))
    assert not expiring.check(MARKETING, [EMAIL], at=9.999).allowed
    assert expiring.check(MARKETING, [EMAIL], at=10).allowed
    assert expiring.check(MARKETING, [EMAIL], at=19.999).allowed
    assert expiring.check(MARKETING, [EMAIL], at=20).reason == "consent_expired"
    withdrawn = snapshot(grant("g1", MARKETING, (EMAIL,), 10, withdrawn_at=15))
    assert withdrawn.check(MARKETING, [EMAIL], at=14.999).allowed
    assert withdrawn.check(MARKETING, [EMAIL], at=15).reason == "consent_withdrawn"


def test_status_at_follows_the_same_boundaries() -> None:
    g = grant("g1", MARKETING, (EMAIL,), 10, expires_at=20, withdrawn_at=30)
    assert [g.status_at(t) for t in (9, 10, 20, 30)] == [
        "not_yet",
        "active",
        "expired",
        "withdrawn",
    ]
    cancelled_before_start = grant("g2", MARKETING, (EMAIL,), 10, withdrawn_at=5)
    assert cancelled_before_start.status_at(7) == "withdrawn"


def test_the_most_specific_reason_wins_withdrawn_over_expired_over_missing() -> None:
    state = snapshot(
        grant("old", MARKETING, (EMAIL, NAME), 0, expires_at=5),
        grant("gone", MARKETING, (NAME,), 6, withdrawn_at=8),
    )
    assert state.check(MARKETING, [EMAIL], at=10).reason == "consent_expired"
    assert state.check(MARKETING, [NAME], at=10).reason == "consent_withdrawn"
    assert state.check(MARKETING, [PURCHASE], at=10).reason == "consent_missing"
    mixed = state.check(MARKETING, [PURCHASE, EMAIL, NAME], at=10)
    assert mixed.reason == "consent_withdrawn" and mixed.missing == (PURCHASE, EMAIL, NAME)
    assert "withdrew" in mixed.message


def test_a_configured_basis_covers_its_categories_without_consent() -> None:
    contract = PurposeBasis(CARE, "contract", (PURCHASE,), "order support")
    state = snapshot(grant("g1", CARE, (EMAIL,), 0), bases=(contract,))
    by_contract = state.check(CARE, [PURCHASE], at=5)
    assert by_contract.allowed and by_contract.basis == "contract" and by_contract.grant_ids == ()
    assert by_contract.allowed_categories == frozenset({PURCHASE, EMAIL})
    both = state.check(CARE, [PURCHASE, EMAIL], at=5)
    assert both.allowed and both.basis == "contract+consent" and both.grant_ids == ("g1",)
    assert "a contract with the customer and the customer's consent" in both.message
    assert state.check(CARE, [NAME], at=5).missing == (NAME,)


def test_a_basis_without_categories_covers_any_category() -> None:
    law = PurposeBasis("dpv:LegalCompliance", "legal_obligation", None, "tax records")
    check = snapshot(bases=(law,)).check("dpv:LegalCompliance", [NAME, "acme:X"], at=0)
    assert check.allowed and check.basis == "legal_obligation"
    assert check.allowed_categories is None


def test_a_consent_entry_among_the_bases_is_not_a_basis_of_its_own() -> None:
    consent = PurposeBasis(MARKETING, "consent", None, "")
    check = snapshot(bases=(consent,)).check(MARKETING, [EMAIL], at=0)
    assert not check.allowed and check.reason == "consent_missing"


# The property test: a reference model written straight from the specification, compared with
# the snapshot over random timelines and query times. Integer times hit the boundaries often.

PURPOSES = (MARKETING, CARE)
CATS = (EMAIL, NAME, PURCHASE)


@dataclass(frozen=True)
class Timeline:
    grants: tuple[Grant, ...]
    bases: tuple[PurposeBasis, ...]


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    grants = []
    for index in range(draw(st.integers(0, 6))):
        start = draw(st.integers(0, 60))
        lasts = draw(st.none() | st.integers(1, 40))
        withdrawn = draw(st.none() | st.integers(0, 110))
        grants.append(
            grant(
                f"g{index}",
                draw(st.sampled_from(PURPOSES)),
                tuple(draw(st.sets(st.sampled_from(CATS), min_size=1))),
                start,
                expires_at=None if lasts is None else start + lasts,
                withdrawn_at=withdrawn,
            )
        )
    bases = []
    for purpose in PURPOSES:
        if draw(st.booleans()):
            covered = draw(st.none() | st.sets(st.sampled_from(CATS), min_size=1))
            basis = draw(st.sampled_from(["contract", "legitimate_interest", "legal_obligation"]))
            bases.append(
                PurposeBasis(purpose, basis, None if covered is None else tuple(covered), "")
            )
    return Timeline(tuple(grants), tuple(bases))


def reference(
    timeline: Timeline, purpose: str, wanted: list[str], t: int
) -> tuple[bool, str | None, list[str]]:
    basis = next((b for b in timeline.bases if b.purpose == purpose), None)
    mine = [g for g in timeline.grants if g.purpose == purpose]

    def active(g: Grant) -> bool:
        not_expired = g.expires_at is None or t < g.expires_at
        not_withdrawn = g.withdrawn_at is None or t < g.withdrawn_at
        return g.granted_at <= t and not_expired and not_withdrawn

    missing = []
    for c in dict.fromkeys(wanted):
        if basis is not None and (basis.categories is None or c in basis.categories):
            continue
        if not any(active(g) and c in g.categories for g in mine):
            missing.append(c)
    if not wanted or not missing:
        return True, None, []
    relevant = [g for g in mine if set(g.categories) & set(missing)]
    if any(g.withdrawn_at is not None and g.withdrawn_at <= t for g in relevant):
        return False, "consent_withdrawn", missing
    if any(g.expires_at is not None and g.expires_at <= t for g in relevant):
        return False, "consent_expired", missing
    return False, "consent_missing", missing


@settings(max_examples=400, deadline=None)
@given(
    timeline=timelines(),
    purpose=st.sampled_from(PURPOSES),
    wanted=st.lists(st.sampled_from(CATS), max_size=4),
    t=st.integers(-1, 120),
)
def test_check_matches_the_reference_model(
    timeline: Timeline, purpose: str, wanted: list[str], t: int
) -> None:
    check = ConsentSnapshot("t", "s", timeline.grants, timeline.bases).check(purpose, wanted, at=t)
    allowed, reason, missing = reference(timeline, purpose, wanted, t)
    assert (check.allowed, check.reason, list(check.missing)) == (allowed, reason, missing)
    if not check.allowed:
        assert check.basis is None and check.grant_ids == ()
        return
    assert (check.basis is None) == (not wanted)
    relied = {g.grant_id: g for g in timeline.grants if g.grant_id in check.grant_ids}
    assert len(relied) == len(check.grant_ids)
    for g in relied.values():
        assert g.purpose == purpose and g.status_at(t) == "active"
    if check.allowed_categories is not None:
        assert set(wanted) <= check.allowed_categories
