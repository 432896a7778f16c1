"""Lawful bases and the in-memory check the gateway runs before every read or action.

A purpose is lawful for a subject's data categories when a configured basis other than consent
(a contract, a legal obligation...) covers them, or when the subject's grants for that purpose
that are active at the time cover the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from accord.consent._grants import Grant
from accord.errors import InputError

LawfulBasis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interest",
    "public_task",
    "legitimate_interest",
]
"""The six lawful bases of GDPR Art. 6(1), (a) to (f)."""

LAWFUL_BASES: tuple[LawfulBasis, ...] = get_args(LawfulBasis)

BASIS_TERMS: Mapping[LawfulBasis, str] = MappingProxyType(
    {
        "consent": "dpv:Consent",
        "contract": "dpv:Contract",
        "legal_obligation": "dpv:LegalObligation",
        "vital_interest": "dpv:VitalInterest",
        # Art. 6(1)(e) covers both a task in the public interest and official authority; DPV
        # has a term for each and the first is the one a business meets.
        "public_task": "dpv:PublicInterest",
        "legitimate_interest": "dpv:LegitimateInterest",
    }
)
"""The DPV legal-basis term for each basis."""

_BASIS_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "consent": "the customer's consent",
        "contract": "a contract with the customer",
        "legal_obligation": "a legal obligation",
        "vital_interest": "someone's vital interests",
        "public_task": "a task in the public interest",
        "legitimate_interest": "a legitimate interest",
    }
)

CheckReason = Literal["consent_missing", "consent_expired", "consent_withdrawn"]


def validate_basis(basis: str) -> LawfulBasis:
    """Check that ``basis`` is one of :data:`LAWFUL_BASES`.

    Raises:
        InputError: naming the accepted values.
    """
    for known in LAWFUL_BASES:
        if basis == known:
            return known
    raise InputError(
        f"unknown lawful basis {basis!r}",
        hint="use one of " + ", ".join(LAWFUL_BASES) + " (GDPR Art. 6(1))",
    )


@dataclass(frozen=True, slots=True)
class PurposeBasis:
    """The lawful basis a tenant configured for a purpose.

    Attributes:
        basis: the basis; ``consent`` means the purpose needs the subject's grants.
        categories: the categories this basis covers; None covers any category.
        description: why the basis applies, in words an auditor reads.
    """

    purpose: str
    basis: str
    categories: tuple[str, ...] | None
    description: str

    def covers(self, category: str) -> bool:
        """Whether this basis, without consent, allows ``category``."""
        if self.basis == "consent":
            return False
        return self.categories is None or category in self.categories


@dataclass(frozen=True, slots=True)
class BasisCheck:
    """Whether a purpose may use some data categories of a subject at a time, and why.

    Attributes:
        allowed: True when every requested category is covered.
        reason: when refused, the most specific reason over the missing categories: a grant
            covering one was withdrawn, else one had expired, else none existed.
        basis: the basis that allowed it (``consent``, ``contract``...; two joined by ``+``
            when a configured basis covered some categories and consent the rest); None when
            refused or when no categories were requested.
        grant_ids: the active grants relied on; their receipts are the evidence.
        allowed_categories: the categories this purpose may see for this subject at that time,
            for projecting results; None means any.
        missing: the requested categories that nothing covers.
        purpose: the purpose checked.
    """

    allowed: bool
    reason: CheckReason | None
    basis: str | None
    grant_ids: tuple[str, ...]
    allowed_categories: frozenset[str] | None
    missing: tuple[str, ...]
    purpose: str = ""

    @property
    def message(self) -> str:
        """The outcome in plain words."""
        purpose = self.purpose or "this purpose"
        if self.allowed:
            if self.basis is None:
                return f"allowed: no personal data was requested for {purpose}"
            words = " and ".join(_BASIS_WORDS.get(b, b) for b in self.basis.split("+"))
            text = f"allowed for {purpose} on the basis of {words}"
            if self.grant_ids:
                text += f" (consent {', '.join(self.grant_ids)})"
            return text
        missing = ", ".join(self.missing)
        if self.reason == "consent_withdrawn":
            return (
                f"refused: the customer withdrew consent for {purpose} covering {missing}; "
                "do not use these categories unless they consent again"
            )
        if self.reason == "consent_expired":
            return (
                f"refused: the consent for {purpose} covering {missing} has expired; "
                "ask the customer to renew it"
            )
        return (
            f"refused: no consent for {purpose} covers {missing}; ask the customer for "
            "consent, or configure another lawful basis for the purpose"
        )


_SEVERITY: Mapping[str, int] = MappingProxyType({"withdrawn": 2, "expired": 1})
_REASONS: tuple[CheckReason, ...] = ("consent_missing", "consent_expired", "consent_withdrawn")


@dataclass(frozen=True, slots=True)
class ConsentSnapshot:
    """A subject's grants (all of them, withdrawn and expired included) and the tenant's
    configured bases, read together. :meth:`check` answers from memory.

    Attributes:
        as_of: None for the ledger as it is; otherwise the time the snapshot reconstructs.
    """

    tenant_id: str
    subject_id: str
    grants: tuple[Grant, ...]
    bases: tuple[PurposeBasis, ...]
    as_of: float | None = None
    _grants_by_purpose: dict[str, tuple[Grant, ...]] = field(init=False, repr=False, compare=False)
    _bases_by_purpose: dict[str, PurposeBasis] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_purpose: dict[str, list[Grant]] = {}
        for grant in self.grants:
            by_purpose.setdefault(grant.purpose, []).append(grant)
        object.__setattr__(self, "_grants_by_purpose", {k: tuple(v) for k, v in by_purpose.items()})
        object.__setattr__(
            self,
            "_bases_by_purpose",
            {b.purpose: b for b in self.bases if b.basis != "consent"},
        )

    def basis_for(self, purpose: str) -> PurposeBasis | None:
        """The configured basis other than consent for ``purpose``, if any."""
        return self._bases_by_purpose.get(purpose)

    def grants_for(self, purpose: str) -> tuple[Grant, ...]:
        """Every grant for ``purpose``, whatever its state."""
        return self._grants_by_purpose.get(purpose, ())

    def check(self, purpose: str, categories: Collection[str], *, at: float) -> BasisCheck:
        """May ``purpose`` use ``categories`` of this subject at time ``at``?

        Categories covered by the purpose's configured basis need nothing more; each other one
        must be covered by a grant for the purpose that is active at ``at``. Several grants may
        cover the categories together.
        """
        requested = tuple(dict.fromkeys(categories))
        configured = self._bases_by_purpose.get(purpose)
        grants = self._grants_by_purpose.get(purpose, ())
        active = [g for g in grants if g.is_active_at(at)]

        allowed_categories: frozenset[str] | None
        if configured is not None and configured.categories is None:
            allowed_categories = None
        else:
            seen: set[str] = set(configured.categories or ()) if configured else set()
            for grant in active:
                seen.update(grant.categories)
            allowed_categories = frozenset(seen)

        if not requested:
            return BasisCheck(True, None, None, (), allowed_categories, (), purpose)

        by_configured = False
        relied: set[str] = set()
        missing: list[str] = []
        for category in requested:
            if configured is not None and configured.covers(category):
                by_configured = True
                continue
            covering = [g.grant_id for g in active if category in g.categories]
            if covering:
                relied.update(covering)
            else:
                missing.append(category)

        if missing:
            severity = max(_severity(grants, category, at) for category in missing)
            return BasisCheck(
                False, _REASONS[severity], None, (), allowed_categories, tuple(missing), purpose
            )
        parts = ([configured.basis] if by_configured and configured else []) + (
            ["consent"] if relied else []
        )
        grant_ids = tuple(g.grant_id for g in active if g.grant_id in relied)
        return BasisCheck(True, None, "+".join(parts), grant_ids, allowed_categories, (), purpose)


def _severity(grants: tuple[Grant, ...], category: str, at: float) -> int:
    worst = 0
    for grant in grants:
        if category in grant.categories:
            worst = max(worst, _SEVERITY.get(grant.status_at(at), 0))
    return worst
