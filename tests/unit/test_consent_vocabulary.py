"""The DPV vocabulary: known terms pass, unknown dpv:/pd: terms fail with close matches, custom
prefixes are accepted."""

from __future__ import annotations

import pytest

from accord.consent import (
    BASIS_TERMS,
    CATEGORIES,
    LAWFUL_BASES,
    PURPOSES,
    is_custom,
    is_sensitive,
    label_of,
    validate_basis,
    validate_categories,
    validate_purpose,
)
from accord.errors import InputError


def test_tables_hold_prefixed_terms_with_labels() -> None:
    assert PURPOSES and CATEGORIES
    for term, entry in PURPOSES.items():
        assert term.startswith("dpv:") and entry.term == term and entry.label
    for term, entry in CATEGORIES.items():
        assert term.startswith("pd:") and entry.term == term and entry.label


@pytest.mark.parametrize("term", ["pd:Purchase", "pd:PaymentCard", "pd:EmailAddress"])
def test_the_sandbox_capability_categories_are_known_dpv_pd_terms(term: str) -> None:
    assert term in CATEGORIES
    assert validate_categories([term]) == (term,)


@pytest.mark.parametrize(
    "term",
    [
        "dpv:ServiceProvision",
        "dpv:Marketing",
        "dpv:IdentityVerification",
        "dpv:FraudPreventionAndDetection",
        "dpv:CustomerCare",
        "dpv:Personalisation",
        "dpv:LegalCompliance",
        "dpv:CommunicationManagement",
        "dpv:AccountManagement",
    ],
)
def test_known_purposes_pass_unchanged(term: str) -> None:
    assert validate_purpose(term) == term


def test_custom_prefixes_are_accepted_as_an_organisations_own_terms() -> None:
    assert validate_purpose("acme:Loyalty") == "acme:Loyalty"
    assert validate_categories(["acme:LoyaltyTier", "pd:Name"]) == ("acme:LoyaltyTier", "pd:Name")
    assert is_custom("acme:Loyalty") and not is_custom("dpv:Marketing")
    assert label_of("acme:Loyalty") == "acme:Loyalty"


def test_unknown_dpv_purpose_suggests_the_close_match() -> None:
    with pytest.raises(InputError) as raised:
        validate_purpose("dpv:Marketting")
    assert "unknown DPV purpose 'dpv:Marketting'" in raised.value.message
    assert "did you mean 'dpv:Marketing'" in raised.value.message
    assert raised.value.hint and "acme:Loyalty" in raised.value.hint


@pytest.mark.parametrize(
    ("wrong", "meant"),
    [
        ("pd:Address", "pd:PhysicalAddress"),
        ("pd:DateOfBirth", "pd:BirthDate"),
        ("pd:EmailAdress", "pd:EmailAddress"),
        ("pd:PhoneNumber", "pd:TelephoneNumber"),
        ("pd:name", "pd:Name"),
    ],
)
def test_unknown_category_names_the_dpv_spelling(wrong: str, meant: str) -> None:
    with pytest.raises(InputError) as raised:
        validate_categories(["pd:Name", wrong])
    assert f"unknown DPV-PD category {wrong!r}" in raised.value.message
    assert repr(meant) in raised.value.message


def test_dpv_has_no_order_management_purpose_but_customer_order_management() -> None:
    with pytest.raises(InputError, match="did you mean 'dpv:CustomerOrderManagement'"):
        validate_purpose("dpv:OrderManagement")


def test_a_term_without_prefix_is_refused_with_the_prefixed_term() -> None:
    with pytest.raises(InputError, match="not a prefixed term; did you mean 'dpv:Marketing'"):
        validate_purpose("Marketing")
    with pytest.raises(InputError, match="did you mean 'pd:EmailAddress'"):
        validate_categories(["EmailAddress"])


def test_a_category_is_not_a_purpose_and_a_purpose_is_not_a_category() -> None:
    with pytest.raises(InputError, match="is a personal-data category, not a purpose"):
        validate_purpose("pd:EmailAddress")
    with pytest.raises(InputError, match="is not a personal-data category"):
        validate_categories(["dpv:Marketing"])


@pytest.mark.parametrize("bad", ["", "pd:", ":Name", "pd:Email Address", "x" * 200])
def test_malformed_terms_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        validate_categories([bad])


def test_categories_keep_their_order_without_repeats() -> None:
    terms = ["pd:Name", "pd:EmailAddress", "pd:Name"]
    assert validate_categories(terms) == ("pd:Name", "pd:EmailAddress")


def test_a_string_is_not_taken_for_a_list_of_categories() -> None:
    with pytest.raises(InputError, match="must be a list of terms"):
        validate_categories("pd:Name")


def test_special_categories_are_marked_sensitive() -> None:
    assert is_sensitive("pd:Health") and is_sensitive("pd:Biometric")
    assert not is_sensitive("pd:EmailAddress") and not is_sensitive("acme:Health")


def test_every_lawful_basis_has_a_dpv_term_and_unknown_ones_are_refused() -> None:
    assert set(BASIS_TERMS) == set(LAWFUL_BASES)
    assert BASIS_TERMS["legitimate_interest"] == "dpv:LegitimateInterest"
    assert validate_basis("contract") == "contract"
    with pytest.raises(InputError, match="unknown lawful basis 'contrat'") as raised:
        validate_basis("contrat")
    assert raised.value.hint and "legal_obligation" in raised.value.hint
