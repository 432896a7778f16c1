"""The purposes and personal-data categories Accord knows, as W3C DPV terms.

Purposes are ``dpv:`` terms from the Data Privacy Vocabulary (DPV 2.x); personal-data categories are
``pd:`` terms from its Personal Data extension (DPV-PD). The tables hold a curated subset that a
retail or service business meets; every name was checked against the published vocabulary. A term
with any other prefix, such as ``acme:Loyalty``, is an organisation's own and is accepted as is.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from accord.errors import InputError

DPV_PREFIX = "dpv"
PD_PREFIX = "pd"
MAX_TERM_LENGTH = 128

_CURIE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class Term:
    """One vocabulary term with a label in plain words.

    Attributes:
        term: the prefixed name, e.g. ``dpv:Marketing``.
        label: what it means, for customers and reviewers.
        sensitive: a special category of personal data (GDPR Art. 9) or criminal-offence data
            (Art. 10), which receipts list separately.
    """

    term: str
    label: str
    sensitive: bool = False


def _table(
    prefix: str, entries: Iterable[tuple[str, str]], *, sensitive: Iterable[str] = ()
) -> dict[str, Term]:
    special = set(sensitive)
    return {
        f"{prefix}:{name}": Term(f"{prefix}:{name}", label, name in special)
        for name, label in entries
    }


PURPOSES: Mapping[str, Term] = MappingProxyType(
    _table(
        DPV_PREFIX,
        [
            ("ServiceProvision", "running the service the customer uses"),
            ("RequestedServiceProvision", "delivering a service the customer asked for"),
            ("ServiceRegistration", "signing the customer up for a service"),
            ("ServiceUsageAnalytics", "measuring how the service is used"),
            ("AccountManagement", "opening, running and closing the customer's account"),
            ("CustomerManagement", "looking after past, present and future customers"),
            ("CustomerCare", "helping the customer and solving their problems"),
            ("CommunicationForCustomerCare", "contacting the customer about a support case"),
            ("CustomerOrderManagement", "handling the customer's orders"),
            ("CustomerClaimsManagement", "handling claims, refunds and repayments"),
            ("CustomerRelationshipManagement", "keeping a record of dealings with the customer"),
            ("DeliveryOfGoods", "delivering what the customer bought"),
            ("PaymentManagement", "taking payments and keeping invoices"),
            ("SellProductsToDataSubject", "selling products or services to the customer"),
            ("CommunicationManagement", "sending the customer messages and notifications"),
            ("Marketing", "promoting products and services"),
            ("DirectMarketing", "sending marketing straight to the customer"),
            ("Advertising", "showing advertisements"),
            ("PersonalisedAdvertising", "showing advertisements chosen for the customer"),
            ("Personalisation", "tailoring things to the customer"),
            ("ServicePersonalisation", "tailoring the service to the customer"),
            ("ProvidePersonalisedRecommendations", "recommending things the customer may like"),
            ("IdentityVerification", "checking that customers are who they say they are"),
            ("IdentityAuthentication", "confirming a returning customer's identity"),
            ("AgeVerification", "checking the customer's age"),
            ("EnforceSecurity", "keeping systems and data secure"),
            ("EnforceAccessControl", "deciding who may access what"),
            ("FraudPreventionAndDetection", "preventing and detecting fraud"),
            ("CounterMoneyLaundering", "preventing money laundering"),
            ("CreditChecking", "checking creditworthiness"),
            ("LegalCompliance", "meeting obligations the law imposes"),
            ("RecordManagement", "keeping records of what was done and why"),
            ("DisputeManagement", "resolving disputes"),
            ("HumanResourceManagement", "managing employees and contractors"),
            ("PersonnelManagement", "managing the organisation's staff"),
            ("ResearchAndDevelopment", "researching and developing new products"),
            ("ImproveExistingProductsAndServices", "improving existing products and services"),
        ],
    )
)

CATEGORIES: Mapping[str, Term] = MappingProxyType(
    _table(
        PD_PREFIX,
        [
            ("Name", "name"),
            ("EmailAddress", "e-mail address"),
            ("TelephoneNumber", "telephone number"),
            ("Contact", "contact details"),
            ("PhysicalAddress", "postal or home address"),
            ("PostalCode", "postal code"),
            ("Country", "country"),
            ("BirthDate", "date of birth"),
            ("Age", "age"),
            ("Gender", "gender"),
            ("Nationality", "nationality"),
            ("Language", "language"),
            ("Identifier", "an identifier such as a customer number"),
            ("Username", "user name"),
            ("OfficialID", "an official identity document or number"),
            ("Passport", "passport"),
            ("Picture", "photographs of the person"),
            ("Location", "location"),
            ("IPAddress", "IP address"),
            ("DeviceBased", "information about the person's devices"),
            ("Purchase", "purchases and order contents"),
            ("PurchasesAndSpendingHabit", "spending habits"),
            ("Transaction", "financial transactions"),
            ("Financial", "financial information"),
            ("FinancialAccount", "financial accounts"),
            ("BankAccount", "bank account"),
            ("PaymentCard", "payment card"),
            ("PaymentCardNumber", "payment card number"),
            ("PaymentCardExpiry", "payment card expiry date"),
            ("CreditCardNumber", "credit card number"),
            ("Income", "income"),
            ("CreditScore", "credit score"),
            ("CreditWorthiness", "creditworthiness"),
            ("Authenticating", "information used to sign in"),
            ("Password", "password"),
            ("AuthenticationHistory", "sign-in history"),
            ("Preference", "preferences"),
            ("Interest", "interests"),
            ("PrivacyPreference", "privacy preferences"),
            ("BrowsingBehavior", "browsing behaviour"),
            ("ServiceConsumptionBehavior", "how the person uses the service"),
            ("Communication", "messages to or from the person"),
            ("EmailContent", "e-mail contents"),
            ("Professional", "education and career"),
            ("Job", "job"),
            ("EmploymentHistory", "employment history"),
            ("Salary", "salary"),
            ("Health", "health"),
            ("MedicalHealth", "medical and health information"),
            ("Genetic", "genetic information"),
            ("Biometric", "biometric information"),
            ("FacialPrint", "facial image used for recognition"),
            ("Fingerprint", "fingerprint"),
            ("EthnicOrigin", "ethnic origin"),
            ("ReligiousBelief", "religious beliefs"),
            ("PoliticalOpinion", "political opinions"),
            ("TradeUnionMembership", "trade union membership"),
            ("Criminal", "criminal records and offences"),
        ],
        sensitive=(
            "Health",
            "MedicalHealth",
            "Genetic",
            "Biometric",
            "FacialPrint",
            "Fingerprint",
            "EthnicOrigin",
            "ReligiousBelief",
            "PoliticalOpinion",
            "TradeUnionMembership",
            "Criminal",
        ),
    )
)

# Names people commonly reach for that DPV spells differently.
_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "pd:Address": "pd:PhysicalAddress",
        "pd:PostalAddress": "pd:PhysicalAddress",
        "pd:DateOfBirth": "pd:BirthDate",
        "pd:Email": "pd:EmailAddress",
        "pd:PhoneNumber": "pd:TelephoneNumber",
        "pd:Phone": "pd:TelephoneNumber",
        "pd:CreditCard": "pd:PaymentCard",
        "pd:Order": "pd:Purchase",
        "dpv:OrderManagement": "dpv:CustomerOrderManagement",
        "dpv:FraudPrevention": "dpv:FraudPreventionAndDetection",
        "dpv:FraudDetection": "dpv:FraudPreventionAndDetection",
        "dpv:Support": "dpv:CustomerCare",
        "dpv:CustomerSupport": "dpv:CustomerCare",
    }
)

_TERMS_HINT = "see `accord consent terms` for the DPV terms Accord knows"


def is_custom(term: str) -> bool:
    """Whether ``term`` is an organisation's own (its prefix is neither ``dpv`` nor ``pd``)."""
    prefix, _, _ = term.partition(":")
    return prefix.lower() not in (DPV_PREFIX, PD_PREFIX)


def label_of(term: str) -> str:
    """The plain-words label of a known term, or the term itself."""
    known = PURPOSES.get(term) or CATEGORIES.get(term)
    return known.label if known else term


def is_sensitive(term: str) -> bool:
    """Whether ``term`` is a known special category of personal data."""
    known = CATEGORIES.get(term)
    return known.sensitive if known else False


def validate_purpose(term: str) -> str:
    """Check that ``term`` names a purpose: a known ``dpv:`` term or a custom one.

    Returns:
        The term, unchanged.

    Raises:
        InputError: not a prefixed name, an unknown ``dpv:`` term (with close matches), or a
            ``pd:`` category given where a purpose belongs.
    """
    _check_shape(term, "purpose", example="dpv:Marketing")
    if term in PURPOSES or is_custom(term):
        return term
    if term in CATEGORIES or term.lower().startswith(f"{PD_PREFIX}:"):
        raise InputError(
            f"{term!r} is a personal-data category, not a purpose",
            hint="purposes are dpv: terms such as 'dpv:CustomerCare'; " + _TERMS_HINT,
        )
    raise InputError(
        f"unknown DPV purpose {term!r}{_did_you_mean(term, PURPOSES)}",
        hint=f"use a known dpv: purpose or your organisation's own prefix (e.g. 'acme:Loyalty'); "
        f"{_TERMS_HINT}",
    )


def validate_categories(terms: Iterable[str]) -> tuple[str, ...]:
    """Check that every term names a personal-data category: a known ``pd:`` term or a custom one.

    Returns:
        The terms in the order given, without repeats.

    Raises:
        InputError: naming the first bad term, with close matches for unknown ``pd:`` terms.
    """
    if isinstance(terms, str):
        raise InputError(
            f"categories must be a list of terms, got the string {terms!r}",
            hint="pass a list, e.g. ['pd:EmailAddress', 'pd:Name']",
        )
    result = tuple(dict.fromkeys(terms))
    for term in result:
        _check_shape(term, "category", example="pd:EmailAddress")
        if term in CATEGORIES or is_custom(term):
            continue
        if term in PURPOSES or term.lower().startswith(f"{DPV_PREFIX}:"):
            raise InputError(
                f"{term!r} is not a personal-data category",
                hint="categories are pd: terms from DPV-PD such as 'pd:EmailAddress'; "
                + _TERMS_HINT,
            )
        raise InputError(
            f"unknown DPV-PD category {term!r}{_did_you_mean(term, CATEGORIES)}",
            hint="use a known pd: category or your organisation's own prefix "
            f"(e.g. 'acme:LoyaltyTier'); {_TERMS_HINT}",
        )
    return result


def _check_shape(term: object, what: str, *, example: str) -> None:
    if not isinstance(term, str) or not term:
        raise InputError(f"a {what} must be a non-empty term such as {example!r}, got {term!r}")
    if len(term) > MAX_TERM_LENGTH:
        raise InputError(
            f"{what} {term[:40]!r}... is {len(term)} characters long",
            hint=f"terms have at most {MAX_TERM_LENGTH} characters",
        )
    if not _CURIE.match(term):
        known = PURPOSES if what == "purpose" else CATEGORIES
        raise InputError(
            f"{what} {term!r} is not a prefixed term{_did_you_mean(term, known)}",
            hint=f"write prefix:Name, e.g. {example!r}, or your own prefix such as 'acme:Loyalty'",
        )


def _did_you_mean(term: str, known: Mapping[str, Term]) -> str:
    matches = close_matches(term, known)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"


def close_matches(term: str, known: Mapping[str, Term], *, limit: int = 3) -> list[str]:
    """Known terms that ``term`` was probably meant to be, best first."""
    prefix, colon, local = term.partition(":")
    if not colon:
        local = prefix
    found: list[str] = []
    for candidate_prefix in (prefix.lower(), DPV_PREFIX, PD_PREFIX):
        alias = _ALIASES.get(f"{candidate_prefix}:{local}")
        if alias is not None and alias in known:
            found.append(alias)
    by_local = {name.partition(":")[2].lower(): name for name in known}
    wanted = local.lower()
    if wanted in by_local:
        found.append(by_local[wanted])
    found += [by_local[m] for m in difflib.get_close_matches(wanted, by_local, n=limit)]
    # Shorter fragments match too much to help.
    if len(wanted) >= 4:
        found += [name for key, name in by_local.items() if wanted in key]
    return list(dict.fromkeys(found))[:limit]
