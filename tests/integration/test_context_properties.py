"""Property: a context read never returns a category its purpose does not allow, at any point of
a random consent timeline, and every read leaves a decision in the ledger.

Each example resolves a new subject (one source record, so its e-mail address is context) and
records items in several data categories about them. A generated timeline then grants consent
(for a purpose and some categories, sometimes starting later, sometimes expiring), withdraws
grants one by one or a purpose's all at once, moves the frozen clock (by some seconds, or exactly
onto the next start or expiry), configures and removes lawful bases other than consent (for some
categories or for any), and reads the subject's context through ``Accord.read_context`` with a
purpose, sometimes naming categories. Every move of the clock is followed by a read for every
purpose, and so is the end of the timeline.

The oracle is the test's own: a small model of the timeline (not ``accord.consent``) says which
categories each purpose allows at the moment of each read. A read must return exactly the stored
categories the purpose allows (as the store holds them) and withhold every other stored one; a
read naming a category the purpose does not allow (stored or not) must be refused, for the reason
the model gives (a covering grant withdrawn, else expired, else none); and every read must be
recorded as a ``gateway.decision`` ledger entry with its outcome, reason and purpose.

The property runs on SQLite only; the fixed timelines below run on both databases.
``test_the_oracle_catches_an_ungoverned_read`` switches governance off and shows that the oracle
then finds the categories nobody allowed.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord.core import TenantId
from accord.errors import InputError
from accord.identity import ContextItem, SourceRecord
from accord.service import Accord, DirectResult
from accord.testing import FrozenClock

T = TenantId("default")
MARKETING = "dpv:Marketing"
CARE = "dpv:CustomerCare"
LOYALTY_PROGRAMME = "acme:LoyaltyProgramme"
PURPOSES = (MARKETING, CARE, LOYALTY_PROGRAMME)
CATEGORIES = (
    "pd:Name",
    "pd:EmailAddress",
    "pd:Purchase",
    "pd:Location",
    "pd:Preference",
    "pd:Communication",
    "pd:TelephoneNumber",
    "acme:Loyalty",
)
BASES = ("contract", "legitimate_interest", "legal_obligation")
REFUSALS = ("consent_missing", "consent_expired", "consent_withdrawn")
ITEMS: Mapping[str, ContextItem] = {
    "pd:Name": ContextItem("given_name", "Ada", "pd:Name", "crm"),
    "pd:Purchase": ContextItem(
        "order", {"id": "o-1", "total": 42}, "pd:Purchase", "orders", "signal"
    ),
    "pd:Location": ContextItem("city", "London", "pd:Location", "app"),
    "pd:Preference": ContextItem("language", "en", "pd:Preference", "crm"),
    "pd:Communication": ContextItem(
        "ticket", {"subject": "late parcel"}, "pd:Communication", "helpdesk", "signal"
    ),
    "pd:TelephoneNumber": ContextItem("mobile", "+44 20 7946 0000", "pd:TelephoneNumber", "crm"),
    "acme:Loyalty": ContextItem("tier", "gold", "acme:Loyalty", "loyalty"),
}
"""One item per category; the e-mail address comes from resolving the subject's source record."""
serial = itertools.count()


@dataclass(frozen=True)
class Grant:
    purpose: str
    categories: tuple[str, ...]
    starts_in: int = 0
    lasts: int | None = None


@dataclass(frozen=True)
class Withdraw:
    grant: int
    """Index into the example's grants, modulo their number."""


@dataclass(frozen=True)
class WithdrawPurpose:
    purpose: str


@dataclass(frozen=True)
class Advance:
    seconds: int


@dataclass(frozen=True)
class AdvanceToBoundary:
    """Move the clock exactly onto the next time a grant starts or expires."""


@dataclass(frozen=True)
class SetBasis:
    purpose: str
    basis: str
    categories: tuple[str, ...] | None


@dataclass(frozen=True)
class RemoveBasis:
    purpose: str


@dataclass(frozen=True)
class Read:
    purpose: str
    categories: tuple[str, ...] | None = None


Step = (
    Grant | Withdraw | WithdrawPurpose | Advance | AdvanceToBoundary | SetBasis | RemoveBasis | Read
)


@dataclass(frozen=True)
class Scenario:
    stored: tuple[str, ...]
    """The categories recorded besides the resolved e-mail address."""
    steps: tuple[Step, ...]


@dataclass
class ModelGrant:
    grant_id: str
    purpose: str
    categories: frozenset[str]
    start: float
    expires: float | None
    withdrawn: float | None = None

    def active(self, t: float) -> bool:
        return (
            self.start <= t
            and (self.expires is None or t < self.expires)
            and (self.withdrawn is None or t < self.withdrawn)
        )

    def lapse(self, t: float) -> int:
        """How badly the grant fails at ``t``: 2 withdrawn, 1 expired, 0 otherwise."""
        if self.withdrawn is not None and self.withdrawn <= t:
            return 2
        if self.start <= t and self.expires is not None and self.expires <= t:
            return 1
        return 0


@dataclass
class Model:
    """What the timeline applied so far; ``bases`` maps a purpose to the categories its
    configured basis covers (None: any)."""

    grants: list[ModelGrant] = field(default_factory=list)
    bases: dict[str, frozenset[str] | None] = field(default_factory=dict)

    def allows(self, purpose: str, category: str, t: float) -> bool:
        if purpose in self.bases:
            covered = self.bases[purpose]
            if covered is None or category in covered:
                return True
        return any(
            g.purpose == purpose and category in g.categories and g.active(t) for g in self.grants
        )

    def refusal(self, read: Read, t: float) -> str | None:
        """Why a read naming categories the purpose does not allow is refused: a grant covering
        one was withdrawn, else one expired, else none existed. None: it is not refused."""
        missing = [c for c in read.categories or () if not self.allows(read.purpose, c, t)]
        if not missing:
            return None
        severity = max(
            (
                g.lapse(t)
                for c in missing
                for g in self.grants
                if g.purpose == read.purpose and c in g.categories
            ),
            default=0,
        )
        return REFUSALS[severity]

    def boundaries_after(self, t: float) -> list[float]:
        times = [g.start for g in self.grants] + [g.expires for g in self.grants if g.expires]
        return sorted(x for x in times if x > t)


@dataclass
class Played:
    """What a timeline did: what the oracle objects to, and a tally of how reads ended."""

    subject: str
    violations: list[str]
    outcomes: Counter[str]
    reads: list[tuple[Read, DirectResult]]


def play(accord: Accord, clock: FrozenClock, scenario: Scenario) -> Played:
    """Resolve a new subject, record its context, run the timeline and judge every read."""
    n = next(serial)
    report = accord.resolve_identities(
        [SourceRecord("shop", f"p{n}", {"email": f"p{n}@example.org"})]
    )
    [resolution] = report.resolutions
    assert resolution.outcome == "created"
    subject = resolution.subject_id
    accord.context.record(T, subject, [ITEMS[c] for c in scenario.stored], by="prop")
    held = accord.context.read(T, subject)
    assert set(held) == {"pd:EmailAddress", *scenario.stored}
    # bases are the tenant's: undo what an earlier example configured
    for purpose in PURPOSES:
        accord.consent.set_basis(T, purpose, "consent", actor="prop")

    start = clock.now()
    model = Model()
    played = Played(subject, [], Counter(), [])
    for number, step in enumerate(timeline(scenario.steps)):
        now = clock.now()
        match step:
            case Grant():
                begins = now + step.starts_in
                expires = None if step.lasts is None else begins + step.lasts
                grant = accord.consent.grant(
                    T,
                    subject,
                    purpose=step.purpose,
                    categories=step.categories,
                    granted_at=begins,
                    expires_at=expires,
                )
                model.grants.append(
                    ModelGrant(
                        grant.grant_id, step.purpose, frozenset(step.categories), begins, expires
                    )
                )
            case Withdraw():
                if not model.grants:
                    continue
                target = model.grants[step.grant % len(model.grants)]
                if target.withdrawn is not None:
                    with pytest.raises(InputError, match="already withdrawn"):
                        accord.consent.withdraw(T, target.grant_id, actor="prop")
                    continue
                accord.consent.withdraw(T, target.grant_id, actor="prop")
                target.withdrawn = now
            case WithdrawPurpose():
                accord.consent.withdraw_purpose(T, subject, step.purpose, actor="prop")
                # a grant that already expired is left as it is
                for g in model.grants:
                    lapsed = g.expires is not None and g.expires <= now
                    if g.purpose == step.purpose and g.withdrawn is None and not lapsed:
                        g.withdrawn = now
            case Advance():
                clock.advance(step.seconds)
            case AdvanceToBoundary():
                upcoming = model.boundaries_after(now)
                clock.set(upcoming[0] if upcoming else now + 1)
            case SetBasis():
                accord.consent.set_basis(
                    T, step.purpose, step.basis, categories=step.categories, actor="prop"
                )
                model.bases[step.purpose] = (
                    None if step.categories is None else frozenset(step.categories)
                )
            case RemoveBasis():
                accord.consent.set_basis(T, step.purpose, "consent", actor="prop")
                model.bases.pop(step.purpose, None)
            case Read():
                result = accord.read_context(
                    subject, purpose=step.purpose, categories=step.categories
                )
                allowed = {c for c in CATEGORIES if model.allows(step.purpose, c, now)}
                where = f"step {number} {step!r} at +{now - start:.0f}s"
                refusal = model.refusal(step, now)
                played.violations += [
                    f"{where}: {v}"
                    for v in read_violations(
                        step, result, allowed=allowed, refusal=refusal, held=held
                    )
                ]
                played.reads.append((step, result))
                tally(played.outcomes, step, result)
    played.violations += decision_violations(accord, subject, played.reads)
    return played


def timeline(steps: Sequence[Step]) -> Iterator[Step]:
    """The steps, each move of the clock followed by a read for every purpose (so that every
    start and expiry the clock lands on is looked at), then a closing read for every purpose."""
    for step in steps:
        yield step
        if isinstance(step, Advance | AdvanceToBoundary):
            yield from (Read(p) for p in PURPOSES)
    yield from (Read(p) for p in PURPOSES)


def tally(outcomes: Counter[str], read: Read, result: DirectResult) -> None:
    outcomes[result.status] += 1
    if result.reason:
        outcomes[f"{result.status}:{result.reason}"] += 1
    if result.output:
        outcomes["returned some"] += 1
    if result.withheld:
        outcomes["withheld some"] += 1
    if read.categories is not None:
        outcomes["named categories"] += 1


def read_violations(
    read: Read,
    result: DirectResult,
    *,
    allowed: set[str],
    refusal: str | None,
    held: Mapping[str, Any],
) -> list[str]:
    """What a read did that the model says it must not: a category the purpose does not allow
    returned, an allowed one missing or altered, a wrong withheld list, a refusal that should
    not be or should have another reason, no decision id."""
    found: list[str] = []
    if result.decision_id is None:
        found.append(f"the {result.status} read has no decision id")
    if refusal is not None or result.status == "refused":
        if (result.status, result.reason) != ("refused", refusal):
            found.append(f"ended {result.status} ({result.reason}), expected refused ({refusal})")
        if result.output is not None:
            found.append(f"returned {sorted(result.output)} though it names a category not allowed")
        return found
    asked = set(held) if read.categories is None else set(read.categories) & set(held)
    if result.status != "executed" or result.output is None:
        return [*found, f"the read ended {result.status} ({result.reason}): {result.message}"]
    returned = set(result.output)
    found += [
        f"returned {c}, which {read.purpose} does not allow" for c in sorted(returned - allowed)
    ]
    found += [f"returned {c}, which was not asked for" for c in sorted(returned - asked)]
    found += [
        f"withheld {c}, which {read.purpose} allows" for c in sorted((asked & allowed) - returned)
    ]
    found += [
        f"{c} came back other than the store holds it"
        for c in sorted(returned & allowed)
        if result.output[c] != held[c]
    ]
    if set(result.withheld) != asked - allowed:
        found.append(f"withheld {sorted(result.withheld)}, expected {sorted(asked - allowed)}")
    return found


def decision_violations(
    accord: Accord, subject: str, reads: Sequence[tuple[Read, DirectResult]]
) -> list[str]:
    """Every read's decision must be in the ledger with its outcome, reason and purpose."""
    recorded = {
        e.body["decision_id"]: e.body
        for e in accord.ledger.entries("default", subject_id=subject, kinds=["gateway.decision"])
    }
    found = []
    for read, result in reads:
        if result.decision_id is None:
            continue
        body = recorded.get(result.decision_id)
        if body is None:
            found.append(f"decision {result.decision_id} of {read!r} is not in the ledger")
        elif (body["capability"], body["purpose"], body["outcome"], body["reason"]) != (
            "context.read",
            read.purpose,
            result.status,
            result.reason,
        ):
            found.append(f"decision {result.decision_id} is recorded as {body}, the read {result}")
    return found


def category_sets() -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=4, unique=True).map(tuple)


STEPS: st.SearchStrategy[Step] = st.one_of(
    st.builds(
        Grant,
        st.sampled_from(PURPOSES),
        category_sets(),
        st.sampled_from([0, 0, 0, 30, 600]),
        st.one_of(st.none(), st.sampled_from([1, 60, 600, 3600])),
    ),
    st.builds(Withdraw, st.integers(0, 7)),
    st.builds(WithdrawPurpose, st.sampled_from(PURPOSES)),
    st.builds(Advance, st.sampled_from([1, 59, 60, 599, 3600, 86_400])),
    st.just(AdvanceToBoundary()),
    st.builds(
        SetBasis,
        st.sampled_from(PURPOSES),
        st.sampled_from(BASES),
        st.one_of(st.none(), category_sets()),
    ),
    st.builds(RemoveBasis, st.sampled_from(PURPOSES)),
    st.builds(Read, st.sampled_from(PURPOSES)),
    st.builds(Read, st.sampled_from(PURPOSES)),
    st.builds(Read, st.sampled_from(PURPOSES), category_sets()),
)

SCENARIOS = st.builds(
    Scenario,
    st.lists(st.sampled_from(sorted(ITEMS)), min_size=2, max_size=len(ITEMS), unique=True).map(
        tuple
    ),
    st.lists(STEPS, min_size=6, max_size=30).map(tuple),
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_read_never_returns_a_category_its_purpose_does_not_allow(
    accord: Accord, clock: FrozenClock
) -> None:
    seen: Counter[str] = Counter()

    @settings(
        max_examples=75,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenario=SCENARIOS)
    def check(scenario: Scenario) -> None:
        played = play(accord, clock, scenario)
        assert not played.violations, "\n".join([*played.violations, repr(scenario)])
        for outcome in played.outcomes:
            event(outcome)
        seen.update(played.outcomes)

    check()
    # the timelines reached every kind of read the oracle judges
    for outcome in ("executed", "returned some", "withheld some", "named categories", "refused"):
        assert seen[outcome] > 0, seen


FIXED = Scenario(
    stored=tuple(sorted(ITEMS)),
    steps=(
        Read(MARKETING),
        Grant(MARKETING, ("pd:Purchase", "pd:Preference"), lasts=3600),
        Read(MARKETING),
        Read(MARKETING, ("pd:Purchase",)),
        SetBasis(CARE, "contract", ("pd:Name", "pd:EmailAddress", "pd:Communication")),
        Read(CARE),
        Advance(3600),
        Read(MARKETING),
        Grant(LOYALTY_PROGRAMME, ("acme:Loyalty",)),
        SetBasis(LOYALTY_PROGRAMME, "legitimate_interest", None),
        Read(LOYALTY_PROGRAMME),
        RemoveBasis(LOYALTY_PROGRAMME),
        Withdraw(1),
        Read(LOYALTY_PROGRAMME),
    ),
)
"""Nothing, then consent to two categories, a contract for care, the consent lapsing, a basis
covering any category and its removal, and the one remaining grant withdrawn."""


def test_a_fixed_timeline_withholds_what_its_purpose_does_not_allow(
    accord: Accord, clock: FrozenClock
) -> None:
    played = play(accord, clock, FIXED)
    assert played.violations == []
    returned = [sorted(result.output or ()) for _, result in played.reads]
    assert returned == [
        [],
        ["pd:Preference", "pd:Purchase"],
        ["pd:Purchase"],
        ["pd:Communication", "pd:EmailAddress", "pd:Name"],
        # the reads after the clock moved, one per purpose: the consent to marketing lapsed
        [],
        ["pd:Communication", "pd:EmailAddress", "pd:Name"],
        [],
        [],
        sorted({"pd:EmailAddress", *ITEMS}),
        [],
        # the closing reads, one per purpose
        [],
        ["pd:Communication", "pd:EmailAddress", "pd:Name"],
        [],
    ]
    [(_, first), *_] = played.reads
    assert first.status == "executed"
    assert first.withheld == tuple(sorted({"pd:EmailAddress", *ITEMS}))


def test_a_read_naming_only_allowed_categories_returns_just_those(
    accord: Accord, clock: FrozenClock
) -> None:
    scenario = Scenario(
        stored=("pd:Name", "pd:Purchase", "pd:Location"),
        steps=(
            Grant(CARE, ("pd:Name", "pd:Purchase", "pd:Location", "pd:TelephoneNumber")),
            Read(CARE, ("pd:Purchase", "pd:TelephoneNumber")),
        ),
    )
    played = play(accord, clock, scenario)
    assert played.violations == []
    read, result = played.reads[0]
    assert read.categories == ("pd:Purchase", "pd:TelephoneNumber")
    assert (result.status, sorted(result.output or ()), result.withheld) == (
        "executed",
        ["pd:Purchase"],
        (),
    )


def test_a_read_naming_a_category_its_purpose_does_not_allow_is_refused_with_its_reason(
    accord: Accord, clock: FrozenClock
) -> None:
    scenario = Scenario(
        stored=("pd:Name", "pd:Purchase"),
        steps=(
            Grant(MARKETING, ("pd:Purchase",)),
            Read(MARKETING, ("pd:Purchase", "pd:Name")),
            Withdraw(0),
            Read(MARKETING, ("pd:Purchase",)),
            Grant(CARE, ("pd:Name",), lasts=60),
            Read(CARE, ("pd:Name",)),
            Advance(60),
        ),
    )
    played = play(accord, clock, scenario)
    assert played.violations == []
    assert [(r.status, r.reason, r.output is None) for _, r in played.reads[:4]] == [
        ("refused", "consent_missing", True),
        ("refused", "consent_withdrawn", True),
        ("executed", None, False),
        # read for marketing after the clock moved, then for care, at the expiry itself
        ("executed", None, False),
    ]
    [care_after] = [r for read, r in played.reads[4:7] if read.purpose == CARE]
    assert (sorted(care_after.output or ()), care_after.withheld) == (
        [],
        ("pd:EmailAddress", "pd:Name", "pd:Purchase"),
    )
    expired = accord.read_context(played.subject, purpose=CARE, categories=["pd:Name"])
    assert (expired.status, expired.reason) == ("refused", "consent_expired")


def test_withdrawing_a_purpose_leaves_an_expired_grant_expired(
    accord: Accord, clock: FrozenClock
) -> None:
    scenario = Scenario(
        stored=("pd:Name",),
        steps=(
            Grant(CARE, ("pd:Name",), lasts=60),
            Advance(60),
            WithdrawPurpose(CARE),
            Read(CARE, ("pd:Name",)),
            Withdraw(0),
            Read(CARE, ("pd:Name",)),
        ),
    )
    played = play(accord, clock, scenario)
    assert played.violations == []
    named = [r.reason for read, r in played.reads if read.categories]
    assert named == ["consent_expired", "consent_withdrawn"]


UNLAWFUL = Scenario(
    stored=("pd:Name", "pd:Purchase", "pd:Location"),
    steps=(
        Grant(MARKETING, ("pd:Purchase",)),
        Read(MARKETING),
        Read(MARKETING, ("pd:Name", "pd:Purchase")),
    ),
)
"""Consent to marketing with purchases only; neither read may see the name or the location."""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_oracle_catches_an_ungoverned_read(
    make_accord: Callable[..., Accord], clock: FrozenClock
) -> None:
    ungoverned = make_accord(governed=False)
    played = play(ungoverned, clock, UNLAWFUL)
    [(_, whole), (_, named), *_] = played.reads
    assert sorted(whole.output or ()) == [
        "pd:EmailAddress",
        "pd:Location",
        "pd:Name",
        "pd:Purchase",
    ]
    assert sorted(named.output or ()) == ["pd:Name", "pd:Purchase"]
    found = "\n".join(played.violations)
    assert "returned pd:Name, which dpv:Marketing does not allow" in found
    assert "returned pd:Location, which dpv:Marketing does not allow" in found
    assert "ended executed (None), expected refused (consent_missing)" in found
    assert "has no decision id" in found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_governed_read_withholds_and_refuses_in_the_same_timeline(
    accord: Accord, clock: FrozenClock
) -> None:
    played = play(accord, clock, UNLAWFUL)
    assert played.violations == []
    [(_, whole), (_, named), *_] = played.reads
    assert (sorted(whole.output or ()), whole.withheld) == (
        ["pd:Purchase"],
        ("pd:EmailAddress", "pd:Location", "pd:Name"),
    )
    assert (named.status, named.reason, named.output) == ("refused", "consent_missing", None)
