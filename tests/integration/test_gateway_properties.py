"""Property: over random consent timelines, policy bundles and journeys, no connector is ever
called without a lawful basis and a Cedar permit at the moment of the call, and every refusal is
recorded with its reason.

Each example builds Accord on a fresh SQLite file with capabilities of its own, whose handlers
note every call with the clock's time, starts the generated journey for two subjects (and
sometimes for none), and moves the frozen clock from event to event: grants (some starting late
or expiring), withdrawals, configured bases and policy deploys are applied at their times, timers
fire when the clock passes them (sometimes late), and people answer approvals after a delay.

The oracle is the test's own: a small consent model fed by the generated timeline (not
``accord.consent``) and a direct ``cedarpy`` evaluation of the bundle text in force. Every call
must have had a lawful basis, a clean Allow and any approval a policy asked for; the same model
predicts the outcome and reason of every decision record; every refusal in a history has its
record, and a refusal without a fallback fails the run.

The property runs on SQLite only; ``test_gateway.py`` covers PostgreSQL.
``test_the_oracle_catches_an_ungoverned_gateway`` switches governance off and shows that the
oracle then finds the calls that should not have happened.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import cedarpy
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from accord.connectors import CallContext, CapabilityRegistry
from accord.core import TenantId
from accord.gateway import REFUSAL_REASONS
from accord.journeys import load_journey_text
from accord.policy import Entity, PolicyRequest, to_cedar
from accord.runtime import RunView
from accord.service import Accord, Settings, build
from accord.storage import DecisionRecord, HistoryEntry
from accord.testing import FrozenClock, SequentialIds
from tests.governance import deploy_policies

T = TenantId("default")
START = 1_767_225_600.0
JOURNEY = "prop"
SERVICE = "dpv:ServiceProvision"
MARKETING = "dpv:Marketing"
PURPOSES = (SERVICE, MARKETING)
CATEGORIES = ("pd:Name", "pd:EmailAddress", "pd:TelephoneNumber", "pd:PaymentCard")
SUBJECTS = ("ada", "bob")
ENDED = ("completed", "failed", "cancelled")
MAX_ROUNDS = 80


@dataclass(frozen=True)
class CapabilitySpec:
    """What the oracle knows of a capability, written down independently of the registry."""

    returns: frozenset[str]
    writes: frozenset[str]
    side_effect: str
    region: str | None


CAPABILITIES = {
    "obs.ping": CapabilitySpec(frozenset(), frozenset(), "read", None),
    "obs.profile": CapabilitySpec(
        frozenset({"pd:Name", "pd:EmailAddress"}), frozenset(), "read", "eu"
    ),
    "obs.charge": CapabilitySpec(frozenset(), frozenset({"pd:PaymentCard"}), "irreversible", None),
    "obs.notify": CapabilitySpec(
        frozenset({"pd:TelephoneNumber"}), frozenset({"pd:EmailAddress"}), "write", None
    ),
}


class Ask(BaseModel):
    amount: float = 0.0


class Pong(BaseModel):
    ok: bool = True


class Profile(BaseModel):
    name: str = Field(json_schema_extra={"category": "pd:Name"})
    email: str = Field(json_schema_extra={"category": "pd:EmailAddress"})


class Receipt(BaseModel):
    charged: float


class Sent(BaseModel):
    phone: str = Field(json_schema_extra={"category": "pd:TelephoneNumber"})


@dataclass(frozen=True)
class Call:
    """One handler invocation, as the connector saw it."""

    at: float
    capability: str
    run_id: str
    block: str
    visit: int
    subject: str | None
    purpose: str | None
    payload: dict[str, Any]


def observing_registry(clock: FrozenClock) -> tuple[CapabilityRegistry, list[Call]]:
    registry = CapabilityRegistry()
    calls: list[Call] = []

    def observe(name: str, request: Ask, ctx: CallContext) -> None:
        calls.append(
            Call(
                clock.now(),
                name,
                ctx.run_id or "",
                ctx.block or "",
                ctx.visit,
                ctx.subject_id,
                ctx.purpose,
                request.model_dump(),
            )
        )

    @registry.capability("obs.ping")
    def ping(request: Ask, ctx: CallContext) -> Pong:
        observe("obs.ping", request, ctx)
        return Pong()

    @registry.capability("obs.profile", region="eu")
    def profile(request: Ask, ctx: CallContext) -> Profile:
        observe("obs.profile", request, ctx)
        return Profile(name="Ada Lovelace", email="ada@example.org")

    @registry.capability("obs.charge", side_effect="irreversible", writes=("pd:PaymentCard",))
    def charge(request: Ask, ctx: CallContext) -> Receipt:
        observe("obs.charge", request, ctx)
        return Receipt(charged=request.amount)

    @registry.capability("obs.notify", side_effect="write", writes=("pd:EmailAddress",))
    def notify(request: Ask, ctx: CallContext) -> Sent:
        observe("obs.notify", request, ctx)
        return Sent(phone="+44 20 7946 0000")

    return registry, calls


@dataclass(frozen=True)
class Task:
    """A task block, followed by a timer of ``wait`` seconds when given."""

    id: str
    capability: str
    purpose: str | None
    reads: tuple[str, ...]
    amount: float | int | None
    tier: str | None
    on_refusal: dict[str, str]
    on_error: bool
    wait: int | None


@dataclass(frozen=True)
class Rule:
    text: str
    approval: bool = False


@dataclass(frozen=True)
class GrantConsent:
    at: int
    subject: str
    purpose: str
    categories: tuple[str, ...]
    starts_after: int = 0
    lasts: int | None = None


@dataclass(frozen=True)
class Withdraw:
    at: int
    subject: str
    grant: int


@dataclass(frozen=True)
class WithdrawPurpose:
    at: int
    subject: str
    purpose: str


@dataclass(frozen=True)
class SetBasis:
    at: int
    purpose: str
    basis: str
    categories: tuple[str, ...] | None


@dataclass(frozen=True)
class Deploy:
    at: int
    rules: tuple[Rule, ...]


Change = GrantConsent | Withdraw | WithdrawPurpose | SetBasis | Deploy


@dataclass(frozen=True)
class Scenario:
    """A journey, its subjects, the timeline of changes, the answers to approvals (and after
    how many seconds), and how far the clock overshoots each next event."""

    purpose: str | None
    tasks: tuple[Task, ...]
    subjects: tuple[str | None, ...]
    changes: tuple[Change, ...]
    verdicts: tuple[tuple[str, int], ...] = (("approve", 0),)
    lags: tuple[float, ...] = (0,)

    def task(self, block: str | None) -> Task:
        return next(t for t in self.tasks if t.id == block)

    def purpose_of(self, task: Task) -> str | None:
        return task.purpose or self.purpose

    def journey_text(self) -> str:
        blocks: list[dict[str, Any]] = []
        ends = {"done"}
        for task in self.tasks:
            block: dict[str, Any] = {"id": task.id, "kind": "task", "capability": task.capability}
            if task.purpose:
                block["purpose"] = task.purpose
            if task.reads:
                block["reads"] = list(task.reads)
            if task.amount is not None:
                block["input"] = {"amount": task.amount}
                block["context"] = {"amount": task.amount}
            if task.tier:
                block["resource"] = {"tier": f'"{task.tier}"'}
            if task.on_refusal:
                block["on_refusal"] = task.on_refusal
                ends.update(t for t in task.on_refusal.values() if t.endswith("_end"))
            if task.on_error:
                block["on_error"] = "errored_end"
                ends.add("errored_end")
            blocks.append(block)
            if task.wait:
                blocks.append({"id": f"w{task.id}", "kind": "wait", "timer": f"{task.wait}s"})
        blocks += [{"id": end, "kind": "end", "outcome": end} for end in sorted(ends)]
        journey: dict[str, Any] = {"journey": JOURNEY, "blocks": blocks}
        if self.purpose:
            journey["purpose"] = self.purpose
        return yaml.safe_dump(journey, sort_keys=False)


def categories_needed(task: Task) -> frozenset[str]:
    """What returns (narrowed by ``reads``) and what the call writes: both need a basis."""
    spec = CAPABILITIES[task.capability]
    returned = spec.returns & set(task.reads) if task.reads else spec.returns
    return returned | spec.writes


def route(task: Task, reason: str) -> str | None:
    target = task.on_refusal.get(reason) or task.on_refusal.get("*")
    return target or ("errored_end" if task.on_error else None)


def _action(capability: str) -> str:
    return f'action == Accord::Action::"{capability}"'


@st.composite
def rules(draw: st.DrawFn, index: int, kinds: tuple[int, ...] = tuple(range(1, 11))) -> Rule:
    capability = _action(draw(st.sampled_from(sorted(CAPABILITIES))))
    limit = draw(st.sampled_from(["50.0", "100.0", "200.0"]))
    amount = "context has amount && context.amount"
    kind = draw(st.sampled_from(kinds))
    head = f'@id("r{index}")\n'
    if kind == 1:
        return Rule(head + f"permit(principal, {capability}, resource);")
    if kind == 2:
        return Rule(
            head + f"permit(principal, {capability}, resource)\n"
            f'when {{ {amount}.lessThanOrEqual(decimal("{limit}")) }};'
        )
    if kind == 3:
        purpose = draw(st.sampled_from(PURPOSES))
        return Rule(
            head + "permit(principal, action, resource)\n"
            f'when {{ context has purpose && context.purpose == "{purpose}" }};'
        )
    if kind == 4:
        return Rule(
            head + "permit(principal, action, resource)\n"
            'when { context has side_effect && context.side_effect == "read" };'
        )
    if kind == 5:
        return Rule(
            head + f"forbid(principal, {capability}, resource)\n"
            'when { resource has tier && resource.tier == "vip" };'
        )
    if kind == 6:
        return Rule(
            head + "forbid(principal, action, resource)\n"
            f'when {{ {amount}.greaterThan(decimal("{limit}")) }};'
        )
    if kind == 7:
        late = int(START) + draw(st.integers(0, 200))
        return Rule(
            head + "forbid(principal, action, resource)\n"
            f"when {{ context has time && context.time >= {late} }};"
        )
    if kind == 8:
        return Rule(
            head + "forbid(principal, action, resource)\n"
            'when { context has region && context.region == "eu" && '
            'context has purpose && context.purpose == "dpv:Marketing" };'
        )
    if kind == 9:
        return Rule(
            head + '@approval("supervisor")\n'
            "permit(principal, action, resource)\n"
            'when { resource has tier && resource.tier == "regular" };',
            approval=True,
        )
    return Rule(
        head + '@approval("supervisor")\n'
        f"permit(principal, {draw(st.sampled_from(['action', capability]))}, resource)\n"
        f'when {{ {amount}.greaterThan(decimal("{limit}")) }};',
        approval=True,
    )


@st.composite
def bundles(draw: st.DrawFn) -> tuple[Rule, ...]:
    drawn = [draw(rules(i)) for i in range(draw(st.integers(0, 3)))]
    if not drawn or draw(st.booleans()):
        drawn.append(Rule(f'@id("r{len(drawn)}")\npermit(principal, action, resource);'))
    if draw(st.integers(0, 2)) == 0:
        drawn.append(draw(rules(len(drawn), kinds=(9, 10))))
    return tuple(drawn)


@st.composite
def tasks(draw: st.DrawFn, journey_purpose: str | None) -> tuple[Task, ...]:
    drawn = []
    count = draw(st.integers(1, 6))
    for i in range(count):
        capability = draw(st.sampled_from(sorted(CAPABILITIES)))
        reads: tuple[str, ...] = ()
        if draw(st.integers(0, 3)) == 0:
            reads = tuple(draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2)))
            reads = tuple(dict.fromkeys(reads))
        purpose = draw(st.sampled_from([None, None, *PURPOSES]))
        draft = Task(f"t{i}", capability, purpose, reads, None, None, {}, False, None)
        if purpose is None and journey_purpose is None and categories_needed(draft):
            purpose = draw(st.sampled_from(PURPOSES))
        amount = draw(
            st.one_of(
                st.none(),
                st.sampled_from([5.0, 99.99, 100.0, 100.01, 250.0]),
                st.sampled_from([5.0, 99.99, 100.0, 100.01, 250.0]),
                st.sampled_from([7, 300]),
            )
        )
        following = f"t{i + 1}" if i + 1 < count else "done"
        wait = draw(st.one_of(st.none(), st.sampled_from([10, 30, 90])))
        fallback = draw(st.sampled_from(["none", "any", "any", "any", "reason"]))
        on_refusal = {}
        if fallback == "any":
            on_refusal = {"*": f"wt{i}" if wait else following}
        elif fallback == "reason":
            on_refusal = {draw(st.sampled_from(REFUSAL_REASONS)): "refused_end"}
        drawn.append(
            Task(
                id=f"t{i}",
                capability=capability,
                purpose=purpose,
                reads=reads,
                amount=amount,
                tier=draw(st.sampled_from([None, "vip", "regular"])),
                on_refusal=on_refusal,
                on_error=draw(st.integers(0, 4)) == 0,
                wait=wait,
            )
        )
    return tuple(drawn)


@st.composite
def changes(draw: st.DrawFn, horizon: int) -> tuple[Change, ...]:
    at = st.one_of(st.just(0), st.integers(0, horizon))
    drawn: list[Change] = []
    for subject in SUBJECTS:
        for purpose in draw(st.lists(st.sampled_from(PURPOSES), max_size=2, unique=True)):
            categories = draw(st.sampled_from([CATEGORIES, CATEGORIES, CATEGORIES[:2]]))
            lasts = draw(st.sampled_from([None, None, 20, 45]))
            drawn.append(GrantConsent(0, subject, purpose, categories, lasts=lasts))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["grant", "grant", "withdraw", "withdraw", "purpose", "basis"]))
        when = draw(at)
        subject = draw(st.sampled_from(SUBJECTS))
        purpose = draw(st.sampled_from(PURPOSES))
        if kind == "grant":
            chosen = draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=4))
            drawn.append(
                GrantConsent(
                    when,
                    subject,
                    purpose,
                    tuple(dict.fromkeys(chosen)),
                    starts_after=draw(st.sampled_from([0, 0, 0, 20])),
                    lasts=draw(st.sampled_from([None, None, 15, 60])),
                )
            )
        elif kind == "withdraw":
            drawn.append(Withdraw(when, subject, draw(st.integers(0, 3))))
        elif kind == "purpose":
            drawn.append(WithdrawPurpose(when, subject, purpose))
        else:
            basis = draw(st.sampled_from(["contract", "legitimate_interest", "consent"]))
            covered = None
            if basis != "consent" and draw(st.booleans()):
                covered = tuple(
                    dict.fromkeys(
                        draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2))
                    )
                )
            drawn.append(SetBasis(when, purpose, basis, covered))
    if draw(st.integers(0, 7)):
        drawn.append(Deploy(0, draw(bundles())))
    if draw(st.integers(0, 3)) == 0:
        drawn.append(Deploy(draw(st.integers(1, horizon)), draw(bundles())))
    return tuple(sorted(drawn, key=lambda change: change.at))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    purpose = draw(st.sampled_from([None, *PURPOSES]))
    drawn = draw(tasks(purpose))
    horizon = max(30, sum(t.wait or 0 for t in drawn))
    subjects: tuple[str | None, ...] = SUBJECTS + ((None,) if draw(st.booleans()) else ())
    verdicts = draw(
        st.lists(
            st.tuples(st.sampled_from(["approve", "reject"]), st.sampled_from([0, 15, 45])),
            min_size=1,
            max_size=3,
        )
    )
    lags = draw(st.lists(st.sampled_from([0, 0, 0, 2.5, 5, 40]), min_size=1, max_size=4))
    return Scenario(purpose, drawn, subjects, draw(changes(horizon)), tuple(verdicts), tuple(lags))


@dataclass
class ModelGrant:
    purpose: str
    categories: frozenset[str]
    granted_at: float
    expires_at: float | None
    withdrawn_at: float | None = None

    def status(self, t: float) -> str:
        if self.withdrawn_at is not None and self.withdrawn_at <= t:
            return "withdrawn"
        if t < self.granted_at:
            return "not_yet"
        if self.expires_at is not None and self.expires_at <= t:
            return "expired"
        return "active"


@dataclass
class World:
    """The consent and policy history the test applied, and what it implies at any time."""

    grants: dict[str, list[ModelGrant]] = field(default_factory=dict)
    bases: list[tuple[float, str, str, frozenset[str] | None]] = field(default_factory=list)
    bundles: list[tuple[float, tuple[Rule, ...]]] = field(default_factory=list)

    def basis_at(self, purpose: str, t: float) -> tuple[str, frozenset[str] | None] | None:
        configured = None
        for at, configured_purpose, basis, categories in self.bases:
            if at <= t and configured_purpose == purpose:
                configured = None if basis == "consent" else (basis, categories)
        return configured

    def refusal(
        self, subject: str | None, purpose: str | None, needed: frozenset[str], t: float
    ) -> str | None:
        """Why a call needing ``needed`` would lack a lawful basis at ``t``; None if it has one."""
        if not needed:
            return None
        if subject is None:
            # about nobody in particular: only a configured basis covering everything will do
            covered = purpose is not None and (basis := self.basis_at(purpose, t)) is not None
            if covered and all(basis[1] is None or c in basis[1] for c in needed):
                return None
            return "subject_missing"
        if purpose is None:
            return "purpose_missing"
        configured = self.basis_at(purpose, t)
        grants = [g for g in self.grants.get(subject, []) if g.purpose == purpose]
        severity = -1
        for category in needed:
            if configured is not None and (configured[1] is None or category in configured[1]):
                continue
            covering = [g.status(t) for g in grants if category in g.categories]
            if "active" in covering:
                continue
            severity = max(severity, 2 if "withdrawn" in covering else int("expired" in covering))
        if severity < 0:
            return None
        return ("consent_missing", "consent_expired", "consent_withdrawn")[severity]

    def bundle_at(self, t: float) -> tuple[Rule, ...] | None:
        deployed = [rules for at, rules in self.bundles if at <= t]
        return deployed[-1] if deployed else None

    def verdict(self, request: PolicyRequest, t: float) -> Literal["permit", "deny", "error"]:
        """Cedar's own answer on the bundle text in force at ``t``: a clean Allow or not."""
        bundle = self.bundle_at(t)
        if bundle is None:
            return "error"
        result = _authorize(request, bundle)
        if result.diagnostics.errors:
            return "error"
        return "permit" if result.allowed else "deny"

    def needs_approval(self, request: PolicyRequest, t: float) -> bool:
        approvals = tuple(r for r in self.bundle_at(t) or () if r.approval)
        return bool(approvals) and _authorize(request, approvals).allowed

    def apply(
        self, accord: Accord, change: Change, *, now: float, ids: dict[str, list[str]]
    ) -> None:
        if isinstance(change, GrantConsent):
            start = now + change.starts_after
            expires = start + change.lasts if change.lasts else None
            grant = accord.consent.grant(
                T,
                change.subject,
                purpose=change.purpose,
                categories=change.categories,
                granted_at=start,
                expires_at=expires,
                actor="prop",
            )
            ids.setdefault(change.subject, []).append(grant.grant_id)
            self.grants.setdefault(change.subject, []).append(
                ModelGrant(change.purpose, frozenset(change.categories), start, expires)
            )
        elif isinstance(change, Withdraw):
            known = self.grants.get(change.subject, [])
            if change.grant < len(known) and known[change.grant].withdrawn_at is None:
                accord.consent.withdraw(T, ids[change.subject][change.grant], actor="prop")
                known[change.grant].withdrawn_at = now
        elif isinstance(change, WithdrawPurpose):
            accord.consent.withdraw_purpose(T, change.subject, change.purpose, actor="prop")
            for held in self.grants.get(change.subject, []):
                lapsed = held.expires_at is not None and held.expires_at <= now
                if held.purpose == change.purpose and held.withdrawn_at is None and not lapsed:
                    held.withdrawn_at = now
        elif isinstance(change, SetBasis):
            accord.consent.set_basis(
                T, change.purpose, change.basis, categories=change.categories, actor="dpo"
            )
            covered = frozenset(change.categories) if change.categories else None
            self.bases.append((now, change.purpose, change.basis, covered))
        else:
            deploy_policies(accord, "\n".join(r.text for r in change.rules))
            self.bundles.append((now, change.rules))


def _authorize(request: PolicyRequest, rules: tuple[Rule, ...]) -> Any:
    cedar_request, entities = to_cedar(request)
    return cedarpy.is_authorized(cedar_request, "\n".join(r.text for r in rules), entities)


def policy_request(
    task: Task, subject: str | None, purpose: str | None, at: float
) -> PolicyRequest:
    """The request the gateway should put to the PDP for ``task``'s call at ``at``."""
    spec = CAPABILITIES[task.capability]
    context: dict[str, Any] = {
        "purpose": purpose,
        "journey": JOURNEY,
        "time": int(at),
        "side_effect": spec.side_effect,
        "region": spec.region,
    }
    if task.amount is not None:
        context["amount"] = task.amount
    principal = Entity(
        "Service",
        f"journey/{JOURNEY}",
        {"role": "journey", "tier": "automated", "journey": JOURNEY},
    )
    resource = Entity("Subject", subject or "anonymous", {"tier": task.tier} if task.tier else {})
    return PolicyRequest(principal, task.capability, resource, context)


@dataclass
class Played:
    calls: list[Call]
    subjects: dict[str, str | None]
    views: dict[str, RunView]
    decisions: dict[str, list[DecisionRecord]]
    history: dict[str, list[HistoryEntry]]
    world: World


def play(scenario: Scenario, *, governed: bool = True) -> Played:
    """Run the journey for each subject, applying the timeline's changes at their times."""
    clock = FrozenClock(START)
    registry, calls = observing_registry(clock)
    world = World()
    grant_ids: dict[str, list[str]] = {}
    pending = list(scenario.changes)
    with tempfile.TemporaryDirectory() as folder:
        accord = build(
            Settings(database_url=f"sqlite:///{folder}/accord.db"),
            capabilities=registry,
            clock=clock,
            ids=SequentialIds(),
            governed=governed,
        )
        try:

            def apply_due() -> None:
                while pending and START + pending[0].at <= clock.now():
                    world.apply(accord, pending.pop(0), now=clock.now(), ids=grant_ids)

            runtime = accord.runtime
            apply_due()
            runtime.catalog.deploy(T, load_journey_text(scenario.journey_text()))
            subjects = {runtime.start(T, JOURNEY, subject=s).run_id: s for s in scenario.subjects}
            verdicts = itertools.cycle(scenario.verdicts)
            lags = itertools.cycle(scenario.lags)
            answers: dict[tuple[str, str], tuple[str, float]] = {}
            for _ in range(MAX_ROUNDS):
                runtime.drive()
                views = [runtime.get(T, run_id) for run_id in subjects]
                if all(v.status in ENDED for v in views):
                    break
                asking = [
                    (v.run_id, p.block)
                    for v in views
                    for p in v.positions
                    if p.waiting_for and p.waiting_for.startswith("human:")
                ]
                for key in asking:
                    if key not in answers:
                        verdict, delay = next(verdicts)
                        answers[key] = (verdict, clock.now() + delay)
                ready = [key for key in asking if answers[key][1] <= clock.now()]
                for run_id, block in ready:
                    runtime.decide(T, run_id, block, answers[run_id, block][0], by="prop")
                if ready:
                    continue
                due = [p.until for v in views for p in v.positions if p.until is not None]
                due += [answers[key][1] for key in asking]
                if pending:
                    due.append(START + pending[0].at)
                if not due:
                    break
                clock.set(max(clock.now(), min(due)) + next(lags))
                apply_due()
            return Played(
                calls=calls,
                subjects=subjects,
                views={r: runtime.get(T, r) for r in subjects},
                decisions={r: runtime.decisions(T, r) for r in subjects},
                history={r: runtime.history(T, r) for r in subjects},
                world=world,
            )
        finally:
            accord.close()


def violations(scenario: Scenario, played: Played) -> list[str]:
    """Everything the played runs did that the model says must not happen."""
    world = played.world
    found: list[str] = []

    records = [d for run_id in played.subjects for d in played.decisions[run_id]]
    told = {
        e.detail["decision"]: e.seq
        for run_id in played.subjects
        for e in played.history[run_id]
        if e.kind != "decision.received" and e.detail.get("decision")
    }

    def answered(run_id: str, block: str, decision_id: str | None, answer: str) -> bool:
        """Whether a person answered ``block`` before the history told of the decision."""
        before = told.get(decision_id, math.inf) if decision_id else math.inf
        return any(
            e.kind == "decision.received"
            and e.block == block
            and e.detail.get("decision") == answer
            and e.seq < before
            for e in played.history[run_id]
        )

    executed_by_call = {
        (d.run_id, d.block, d.visit): d.decision_id for d in records if d.outcome == "executed"
    }

    for call in played.calls:
        where = f"{call.capability} in {call.block} at +{call.at - START:g}s"
        if call.run_id not in played.subjects:
            found.append(f"{where}: called for a run that was never started")
            continue
        subject = played.subjects[call.run_id]
        task = scenario.task(call.block)
        purpose = scenario.purpose_of(task)
        if (call.capability, call.subject, call.purpose) != (task.capability, subject, purpose):
            found.append(f"{where}: called as {call} for a {task} of subject {subject}")
        needed = categories_needed(task)
        missing = world.refusal(subject, purpose, needed, call.at)
        if missing is not None:
            found.append(
                f"{where}: called without a lawful basis for {subject}, {purpose}, "
                f"{sorted(needed)} ({missing})"
            )
        request = policy_request(task, subject, purpose, call.at)
        verdict = world.verdict(request, call.at)
        if verdict != "permit":
            found.append(f"{where}: called although the policy in force gives {verdict}")
        elif world.needs_approval(request, call.at) and not answered(
            call.run_id,
            call.block,
            executed_by_call.get((call.run_id, call.block, call.visit)),
            "approve",
        ):
            found.append(f"{where}: called without the approval a policy asks for")

    executed = Counter((d.run_id, d.block, d.visit) for d in records if d.outcome == "executed")
    called = Counter((c.run_id, c.block, c.visit) for c in played.calls)
    if executed != called:
        found.append(f"executed decision records {dict(executed)} but handler calls {dict(called)}")

    for record in records:
        assert record.run_id is not None
        subject = played.subjects[record.run_id]
        task = scenario.task(record.block)
        purpose = scenario.purpose_of(task)
        seen = (record.capability, record.subject_id, record.purpose, record.outcome, record.reason)
        expected = _expected_outcome(world, task, subject, purpose, record.at)
        if expected == ("approval_required", None) and answered(
            record.run_id, task.id, record.decision_id, "approve"
        ):
            expected = ("executed", None)
        asked = any(
            (d.run_id, d.block, d.outcome) == (record.run_id, task.id, "approval_required")
            for d in records
        )
        if asked and answered(record.run_id, task.id, record.decision_id, "reject"):
            # a rejection is recorded when it arrives; the gateway is not asked again
            expected = ("refused", "approval_rejected")
        if record.decision_id not in told:
            found.append(f"decision {record.decision_id} is in no event of the run's history")
        if seen != (task.capability, subject, purpose, *expected):
            found.append(
                f"decision {record.decision_id} at +{record.at - START:g}s recorded {seen}, "
                f"the model expects {expected} for {task.capability} of {subject}, {purpose}"
            )
        if record.outcome == "refused" and record.reason not in REFUSAL_REASONS:
            found.append(f"decision {record.decision_id} refused with reason {record.reason!r}")

    for run_id, subject in played.subjects.items():
        found += _refusals_kept(scenario, played, run_id, subject)
    return found


def _expected_outcome(
    world: World, task: Task, subject: str | None, purpose: str | None, at: float
) -> tuple[str, str | None]:
    missing = world.refusal(subject, purpose, categories_needed(task), at)
    if missing is not None:
        return "refused", missing
    request = policy_request(task, subject, purpose, at)
    verdict = world.verdict(request, at)
    if verdict != "permit":
        return "refused", "policy_denied" if verdict == "deny" else "policy_error"
    if world.needs_approval(request, at):
        return "approval_required", None
    return "executed", None


def _refusals_kept(
    scenario: Scenario, played: Played, run_id: str, subject: str | None
) -> list[str]:
    """Each refusal in the history has its decision record, and the run went where it says."""
    found = []
    records = {d.decision_id: d for d in played.decisions[run_id]}
    refusals = [e for e in played.history[run_id] if e.kind == "gateway.refused"]
    announced = {e.detail.get("decision") for e in refusals}
    for stored in records.values():
        if stored.outcome == "refused" and stored.decision_id not in announced:
            found.append(f"{run_id}: refused decision {stored.decision_id} is not in the history")
    for refusal in refusals:
        reason = refusal.detail.get("reason")
        decision = refusal.detail.get("decision")
        record = records.get(decision) if decision else None
        if reason not in REFUSAL_REASONS:
            found.append(f"{run_id}: refusal in {refusal.block} without a known reason: {reason}")
        elif record is None or (record.outcome, record.reason, record.block) != (
            "refused",
            reason,
            refusal.block,
        ):
            found.append(f"{run_id}: refusal {reason} in {refusal.block} recorded as {record}")

    view = played.views[run_id]
    unrouted = [e for e in refusals if route(scenario.task(e.block), e.detail["reason"]) is None]
    if view.status not in ("completed", "failed"):
        found.append(f"{run_id} of {subject} did not end: {view.status} at {view.positions}")
    elif unrouted:
        last = unrouted[0]
        error = view.error or {}
        wanted = ("failed", "Refused", last.detail["reason"], last.block)
        got = (view.status, error.get("type"), error.get("reason"), error.get("block"))
        if got != wanted or refusals[-1] is not last:
            found.append(f"{run_id}: refusal without a fallback should fail as {wanted}: {got}")
    elif view.status == "failed":
        found.append(f"{run_id} failed although every refusal had a fallback: {view.error}")
    return found


def test_no_call_without_lawful_basis_and_permit() -> None:
    tally: Counter[str] = Counter()

    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenario=scenarios())
    def check(scenario: Scenario) -> None:
        played = play(scenario)
        found = violations(scenario, played)
        assert not found, "\n".join([*found, scenario.journey_text(), repr(scenario.changes)])
        for records in played.decisions.values():
            for record in records:
                outcome = f"{record.outcome}:{record.reason}" if record.reason else record.outcome
                tally[outcome] += 1
                event(outcome)

    check()
    assert tally["executed"] > 0
    assert sum(n for outcome, n in tally.items() if outcome.startswith("refused:")) > 0


UNLAWFUL = Scenario(
    purpose=SERVICE,
    tasks=(
        Task("t0", "obs.profile", None, (), None, None, {"*": "wt0"}, False, 30),
        Task("t1", "obs.charge", None, (), 250.0, None, {}, False, None),
    ),
    subjects=("ada",),
    changes=(
        GrantConsent(0, "ada", SERVICE, ("pd:PaymentCard",)),
        Deploy(
            0,
            (
                Rule("permit(principal, action, resource);"),
                Rule(
                    "forbid(principal, action, resource) when "
                    '{ context has amount && context.amount.greaterThan(decimal("100.0")) };'
                ),
            ),
        ),
        Withdraw(10, "ada", 0),
    ),
)
"""A profile read nobody consented to, then a charge a policy forbids, after a withdrawal."""


def test_the_oracle_catches_an_ungoverned_gateway() -> None:
    played = play(UNLAWFUL, governed=False)
    assert [c.capability for c in played.calls] == ["obs.profile", "obs.charge"]
    found = violations(UNLAWFUL, played)
    assert any("obs.profile" in f and "without a lawful basis" in f for f in found), found
    assert any("obs.charge" in f and "consent_withdrawn" in f for f in found), found
    assert any("obs.charge" in f and "policy in force gives deny" in f for f in found), found
    assert any(f.startswith("executed decision records") for f in found), found


def test_the_governed_gateway_refuses_the_same_scenario() -> None:
    played = play(UNLAWFUL)
    assert played.calls == []
    assert violations(UNLAWFUL, played) == []
    [records] = played.decisions.values()
    assert [(d.block, d.outcome, d.reason) for d in records] == [
        ("t0", "refused", "consent_missing"),
        ("t1", "refused", "consent_withdrawn"),
    ]
    [view] = played.views.values()
    assert view.status == "failed"
    assert view.error is not None and view.error["reason"] == "consent_withdrawn"
