"""The next-best-action block on SQLite and PostgreSQL, through the real gateway: features read
under their purpose and gone once consent is withdrawn, a contact policy that counts every
contact across channels and journeys, quiet hours, suppression after a complaint, policy that
refuses or marks an offer sensitive, exploration only where the journey allows it and never on
a sensitive offer, learning from recorded outcomes, and a customer-facing reason for every
choice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel, Field

from accord.connectors import CallContext, CapabilityRegistry
from accord.core import TenantId
from accord.errors import InputError
from accord.experiments import parse_experiment
from accord.journeys import load_journey_text
from accord.offers import parse_offer_catalogue
from accord.replay import replay_candidate
from accord.runtime import RunView
from accord.service import Accord
from accord.storage._schema import (
    experiment_assignments,
    experiment_observations,
    offer_outcomes,
)
from accord.testing import FrozenClock
from tests.capabilities import Calls, register_test_capabilities
from tests.governance import deploy_policies

T = TenantId("default")
NOON = 1_767_268_800.0  # 2026-01-01 12:00 UTC
DAY = 86_400.0
PERSONAL = "dpv:ServicePersonalisation"
MARKETING = "dpv:DirectMarketing"


class Customer(BaseModel):
    customer_id: str


class Profile(BaseModel):
    customer_id: str
    tier: str
    tenure_months: int = Field(json_schema_extra={"category": "pd:Purchase"})
    renews_in_days: int = Field(json_schema_extra={"category": "pd:Purchase"})


class Preferences(BaseModel):
    email: bool
    sms: bool
    timezone: str


class Complaints(BaseModel):
    last_complaint_at: float | None


class Message(BaseModel):
    customer_id: str
    text: str = ""


class Sent(BaseModel):
    sent: bool = True


class Discount(BaseModel):
    customer_id: str
    percent: float


WORLD: dict[str, Any] = {}


@pytest.fixture
def capabilities(calls: Calls) -> CapabilityRegistry:
    registry = CapabilityRegistry()
    register_test_capabilities(registry, calls)
    WORLD.clear()

    @registry.capability("crm.profile", reads=("pd:Purchase",))
    def profile(request: Customer, ctx: CallContext) -> Profile:
        calls.record("crm.profile", ctx)
        found = WORLD.get(request.customer_id, {})
        return Profile(
            customer_id=request.customer_id,
            tier=found.get("tier", "silver"),
            tenure_months=found.get("tenure", 30),
            renews_in_days=found.get("renews", 20),
        )

    @registry.capability("crm.preferences")
    def preferences(request: Customer, ctx: CallContext) -> Preferences:
        found = WORLD.get(request.customer_id, {})
        return Preferences(
            email=found.get("email", True),
            sms=found.get("sms", True),
            timezone=found.get("timezone", "UTC"),
        )

    @registry.capability("helpdesk.complaints")
    def complaints(request: Customer, ctx: CallContext) -> Complaints:
        return Complaints(last_complaint_at=WORLD.get(request.customer_id, {}).get("complaint"))

    @registry.capability("mail.send", side_effect="write", writes=("pd:EmailAddress",))
    def mail(request: Message, ctx: CallContext) -> Sent:
        calls.record("mail.send", ctx)
        return Sent()

    @registry.capability("sms.send", side_effect="write", writes=("pd:TelephoneNumber",))
    def sms(request: Message, ctx: CallContext) -> Sent:
        calls.record("sms.send", ctx)
        return Sent()

    @registry.capability("billing.discount", side_effect="write", writes=("pd:Purchase",))
    def discount(request: Discount, ctx: CallContext) -> Sent:
        calls.record("billing.discount", ctx)
        return Sent()

    return registry


CATALOGUE = """
catalogue: customer-offers
purpose: dpv:ServicePersonalisation
sources:
  profile: {capability: crm.profile, input: {customer_id: args.customer_id}}
  preferences:
    capability: crm.preferences
    input: {customer_id: args.customer_id}
    purpose: dpv:CustomerCare
  complaints:
    capability: helpdesk.complaints
    input: {customer_id: args.customer_id}
    purpose: dpv:CustomerCare
features:
  tier: {source: profile, value: source.tier}
  tenure_months: {source: profile, value: source.tenure_months}
  renews_in_days: {source: profile, value: source.renews_in_days}
  email_ok: {source: preferences, value: source.email}
  sms_ok: {source: preferences, value: source.sms}
  timezone: {source: preferences, value: source.timezone}
  last_complaint_at: {source: complaints, value: source.last_complaint_at}
contact:
  channels: {email: [mail.send], sms: [sms.send], portal: []}
  purpose: dpv:DirectMarketing
  caps:
    - {channels: [email, sms], max: 2, per: 7d}
    - {channels: [sms], max: 1, per: 7d}
  quiet_hours: {start: "21:00", end: "08:00", timezone_feature: timezone, channels: [sms]}
  preferences: {email: features.email_ok, sms: features.sms_ok}
  complaint: {feature: last_complaint_at, suppress_for: 30d}
ranking: {method: rules}
offers:
  - name: renewal_discount
    title: 10% off your renewal
    action: billing.discount
    purpose: dpv:DirectMarketing
    context: {amount: 10.0}
    channels: [sms, email]
    eligible: features.renews_in_days <= 45
    score: "3.0"
    reasons:
      - when: features.renews_in_days <= 31
        text: '"because your contract renews in " + string(features.renews_in_days) + " days"'
      - text: '"because your contract renews soon"'
  - name: loyalty_thanks
    title: a thank-you gift card
    channels: [email, portal]
    eligible: features.tenure_months >= 24
    score: "2.0"
    reasons:
      - text: '"because you have been with us " + string(features.tenure_months) + " months"'
  - name: newsletter
    title: our monthly tips
    channels: [portal]
    score: "1.0"
    reasons:
      - text: '"because customers like you found it useful"'
"""

JOURNEY = """
journey: next_offer
purpose: dpv:ServicePersonalisation
input: {customer_id: string}
blocks:
  - id: pick
    kind: offer
    catalogue: customer-offers
    input: {customer_id: input.customer_id}
    on: {none: nothing}
  - id: tell
    kind: choice
    choices:
      - {when: 'steps.pick.channel == "email"', next: by_mail}
      - {when: 'steps.pick.channel == "sms"', next: by_sms}
    default: shown
  - id: by_mail
    kind: task
    capability: mail.send
    purpose: dpv:DirectMarketing
    input: {customer_id: input.customer_id, text: steps.pick.reason}
    next: shown
  - id: by_sms
    kind: task
    capability: sms.send
    purpose: dpv:DirectMarketing
    input: {customer_id: input.customer_id, text: steps.pick.reason}
    next: shown
  - id: shown
    kind: end
    outcome: offered
    output: {offer: steps.pick.offer, reason: steps.pick.reason, channel: steps.pick.channel}
  - id: nothing
    kind: end
    outcome: nothing_to_offer
"""

POLICIES = """
@id("permit-all")
permit(principal, action, resource);
"""


def world(
    accord: Accord,
    clock: FrozenClock,
    *,
    catalogue: str = CATALOGUE,
    journey: str = JOURNEY,
    policies: str = POLICIES,
) -> Accord:
    clock.set(NOON)
    deploy_policies(accord, policies)
    accord.deploy_offers(parse_offer_catalogue(catalogue), by="ann")
    accord.runtime.catalog.deploy(T, load_journey_text(journey))
    return accord


def consent(accord: Accord, subject: str, purpose: str = PERSONAL) -> str:
    categories = ["pd:Purchase"]
    if purpose == MARKETING:
        categories += ["pd:EmailAddress", "pd:TelephoneNumber"]
    return accord.consent.grant(
        T, subject, purpose=purpose, categories=categories, actor="customer"
    ).grant_id


def offer(accord: Accord, subject: str, journey: str = "next_offer") -> tuple[RunView, Any]:
    """Run the journey for ``subject``; the run and what its offer block chose."""
    run_id = accord.runtime.start(
        T, journey, input={"customer_id": subject}, subject=subject
    ).run_id
    accord.runtime.drive()
    view = accord.runtime.get(T, run_id)
    assert view.status == "completed", view.error
    return view, view.steps["pick"]


def candidates(pick: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["offer"]: c for c in pick["explanation"]["candidates"]}


def test_a_choice_reads_features_through_the_gateway_and_gives_a_reason(
    accord: Accord, clock: FrozenClock, calls: Calls
) -> None:
    world(accord, clock)
    consent(accord, "cus_1")
    consent(accord, "cus_1", MARKETING)
    view, pick = offer(accord, "cus_1")
    assert pick["offer"] == "renewal_discount" and pick["channel"] == "sms"
    assert pick["reason"] == "because your contract renews in 20 days"
    assert pick["title"] == "10% off your renewal" and pick["method"] == "rules"
    assert pick["choice"] == f"{view.run_id}/pick/1" and pick["send_at"] == NOON
    assert view.outcome == "offered" and calls.by_capability["sms.send"] == 1
    explanation = pick["explanation"]
    assert explanation["features_withheld"] == {}
    assert set(explanation["features_used"]) >= {"tenure_months", "renews_in_days"}
    # every source was read through the gateway, recorded under its own purpose
    reads = {
        d.capability: (d.outcome, d.purpose)
        for d in accord.runtime.decisions(T, view.run_id)
        if d.capability in ("crm.profile", "crm.preferences", "helpdesk.complaints")
    }
    assert reads == {
        "crm.profile": ("executed", PERSONAL),
        "crm.preferences": ("executed", "dpv:CustomerCare"),
        "helpdesk.complaints": ("executed", "dpv:CustomerCare"),
    }
    listed = candidates(pick)
    assert listed["renewal_discount"]["policy"]["allowed"] is True
    assert listed["loyalty_thanks"]["score"] == 2.0 and "excluded" not in listed["newsletter"]
    # the choice is a significant decision of the run's explanation, read from the ledger
    [explained] = [d for d in accord.explain(view.run_id).decisions if d.kind == "offer"]
    assert explained.summary.startswith("offer block pick chose 'renewal_discount'")
    assert explained.facts["reason"] == pick["reason"]
    assert explained.facts["explanation"]["chosen"] == "renewal_discount"


def test_a_withdrawn_consent_removes_the_feature_from_the_next_decision(
    accord: Accord, clock: FrozenClock, calls: Calls
) -> None:
    world(accord, clock)
    grant = consent(accord, "cus_2")
    _, before = offer(accord, "cus_2")
    assert "tenure_months" in before["explanation"]["features_used"]
    # no marketing consent: neither a text nor an e-mail may carry the discount
    assert candidates(before)["renewal_discount"]["excluded"] == (
        "no channel the subject may be contacted on now"
    )
    # nor may the customer be written to: without that consent only the portal is open
    assert before["explanation"]["contact"]["email"]["why"].startswith("consent_missing")
    assert (before["offer"], before["channel"]) == ("loyalty_thanks", "portal")
    assert before["reason"] == "because you have been with us 30 months"
    accord.consent.withdraw(T, grant, actor="customer", reason="no more personalisation")
    reads_before = calls.by_capability["crm.profile"]
    _, after = offer(accord, "cus_2")
    assert calls.by_capability["crm.profile"] == reads_before  # refused before any call
    withheld = after["explanation"]["features_withheld"]
    assert withheld["tenure_months"] == "consent_withdrawn"
    assert "tenure_months" not in after["explanation"]["features_used"]
    assert after["offer"] == "newsletter"
    assert after["reason"] == "because customers like you found it useful"


def test_contacts_are_capped_across_channels_and_journeys(
    accord: Accord, clock: FrozenClock, calls: Calls
) -> None:
    world(accord, clock)
    consent(accord, "cus_3")
    consent(accord, "cus_3", MARKETING)
    _, first = offer(accord, "cus_3")
    assert first["channel"] == "sms"
    clock.advance(3600)
    _, second = offer(accord, "cus_3")
    # one text in 7 days at most: the discount goes by e-mail instead
    assert (second["offer"], second["channel"]) == ("renewal_discount", "email")
    assert "frequency cap" in second["explanation"]["contact"]["sms"]["why"]
    clock.advance(3600)
    _, third = offer(accord, "cus_3")
    # two contacts on e-mail and text together: only the portal is left
    assert (third["offer"], third["channel"]) == ("loyalty_thanks", "portal")
    assert third["explanation"]["contact"]["email"]["allowed"] is False
    assert calls.by_capability["mail.send"] == 1 and calls.by_capability["sms.send"] == 1
    clock.advance(8 * DAY)
    _, later = offer(accord, "cus_3")
    assert later["channel"] == "sms"


NEWSLETTER = """
journey: newsletter
input: {customer_id: string}
blocks:
  - id: send
    kind: task
    capability: sms.send
    purpose: dpv:DirectMarketing
    input: {customer_id: input.customer_id, text: '"news"'}
  - {id: done, kind: end}
"""


def test_a_contact_made_by_another_journey_counts(accord: Accord, clock: FrozenClock) -> None:
    world(accord, clock)
    consent(accord, "cus_4")
    consent(accord, "cus_4", MARKETING)
    accord.runtime.catalog.deploy(T, load_journey_text(NEWSLETTER))
    accord.runtime.start(T, "newsletter", input={"customer_id": "cus_4"}, subject="cus_4")
    accord.runtime.drive()
    _, pick = offer(accord, "cus_4")
    assert pick["channel"] == "email"
    assert pick["explanation"]["contacts_counted"] == 1


def test_quiet_hours_defer_a_text_in_the_customers_own_time_zone(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock)
    consent(accord, "cus_5")
    consent(accord, "cus_5", MARKETING)
    WORLD["cus_5"] = {"timezone": "Asia/Tokyo", "email": False}
    # 12:00 UTC is 21:00 in Tokyo: a text waits until 08:00 there (23:00 UTC)
    _, pick = offer(accord, "cus_5")
    assert (pick["offer"], pick["channel"]) == ("renewal_discount", "sms")
    assert pick["send_at"] == NOON + 11 * 3600
    assert pick["explanation"]["contact"]["sms"]["why"] == "quiet hours"
    assert pick["explanation"]["contact"]["email"]["why"].startswith("preference")


def test_nobody_is_contacted_after_a_complaint_or_when_complaints_cannot_be_read(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock)
    consent(accord, "cus_6")
    WORLD["cus_6"] = {"complaint": NOON - 3 * DAY}
    view, pick = offer(accord, "cus_6")
    assert view.outcome == "nothing_to_offer" and pick["offer"] is None
    assert "complaint 3 day(s) ago" in pick["explanation"]["suppressed"]
    assert pick["choice"] is None
    accord.flags.set(T, "capability:helpdesk.complaints", False, actor="ops", reason="incident")
    _, unread = offer(accord, "cus_7")
    assert unread["offer"] is None
    assert "could not be read (kill_switch)" in unread["explanation"]["suppressed"]


GUARDED = """
@id("permit-all")
permit(principal, action, resource);

@id("no-discounts-by-text")
forbid (principal, action == Accord::Action::"billing.discount", resource)
when { context has channel && context.channel == "sms" };
"""


def test_policy_refuses_an_offer_on_a_channel_and_another_channel_is_not_tried_silently(
    accord: Accord, clock: FrozenClock, calls: Calls
) -> None:
    world(accord, clock, policies=GUARDED)
    consent(accord, "cus_8")
    consent(accord, "cus_8", MARKETING)
    _, pick = offer(accord, "cus_8")
    entry = candidates(pick)["renewal_discount"]
    assert entry["policy"]["allowed"] is False and entry["channel"] == "sms"
    assert "policy_denied" in entry["excluded"]
    assert pick["offer"] == "loyalty_thanks"
    # the check recorded nothing: only the reads and the send are decisions
    recorded = [d.capability for d in accord.runtime.decisions(T, pick["choice"].split("/")[0])]
    assert "billing.discount" not in recorded
    assert calls.by_capability["billing.discount"] == 0  # checked, never called


BANDIT = CATALOGUE.replace("ranking: {method: rules}", "ranking: {method: bandit}").replace(
    '    score: "1.0"\n', '    score: "1.0"\n    sensitive: true\n'
)
SENSITIVE = """
@id("permit-all")
@sensitive("a gift to a long-standing customer is judged by people, not tried at random")
permit(principal, action, resource);
"""
EXPLORING = JOURNEY.replace(
    "    on: {none: nothing}\n", "    explore: true\n    on: {none: nothing}\n"
)


def test_exploration_only_where_the_journey_allows_it_and_never_on_sensitive_offers(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock, catalogue=BANDIT, journey=EXPLORING)
    chosen: Counter[str] = Counter()
    for i in range(40):
        subject = f"cus_x{i}"
        consent(accord, subject)
        consent(accord, subject, MARKETING)
        _, pick = offer(accord, subject)
        listed = candidates(pick)
        # newsletter is sensitive in the catalogue: scored by its mean, never sampled
        assert listed["newsletter"]["sensitive"] is True
        assert "sampled" not in listed["newsletter"]
        assert listed["renewal_discount"].get("sampled") is True
        assert pick["reason"]
        chosen[pick["offer"]] += 1
    # Thompson sampling spreads the choices over the non-sensitive offers
    assert chosen["renewal_discount"] > 0 and chosen["loyalty_thanks"] > 0


def test_without_exploration_the_learnt_rates_decide(accord: Accord, clock: FrozenClock) -> None:
    world(accord, clock, catalogue=BANDIT)
    consent(accord, "cus_y")
    consent(accord, "cus_y", MARKETING)
    _, first = offer(accord, "cus_y")
    assert first["explored"] is False and first["explanation"]["exploration"] is False
    # the prior is the same for all, so the first in the catalogue wins ties
    assert first["offer"] == "renewal_discount"
    for i in range(6):
        accord.offers.record(
            T,
            choice_id=f"learnt/{i}",
            catalogue="customer-offers",
            offer="loyalty_thanks",
            subject_id=f"cus_l{i}",
            accepted=True,
        )
        accord.offers.record(
            T,
            choice_id=f"learnt/r{i}",
            catalogue="customer-offers",
            offer="renewal_discount",
            subject_id=f"cus_l{i}",
            accepted=False,
        )
    clock.advance(8 * DAY)
    _, later = offer(accord, "cus_y")
    assert later["offer"] == "loyalty_thanks"
    scores = candidates(later)
    assert scores["loyalty_thanks"]["score"] > scores["renewal_discount"]["score"]


SENSITIVE_POLICY = """
@id("permit-all")
permit(principal, action, resource);

@id("discounts-are-sensitive")
@sensitive("discounts touch a customer's money")
permit (principal, action == Accord::Action::"billing.discount", resource);
"""


def test_policy_can_mark_an_action_sensitive(accord: Accord, clock: FrozenClock) -> None:
    world(accord, clock, catalogue=BANDIT, journey=EXPLORING, policies=SENSITIVE_POLICY)
    for i in range(10):
        subject = f"cus_s{i}"
        consent(accord, subject)
        consent(accord, subject, MARKETING)
        _, pick = offer(accord, subject)
        entry = candidates(pick)["renewal_discount"]
        assert entry["sensitive"] is True and "sampled" not in entry
        assert candidates(pick)["loyalty_thanks"].get("sampled") is True


RECORDING = """
journey: next_offer
purpose: dpv:ServicePersonalisation
input: {customer_id: string}
blocks:
  - id: pick
    kind: offer
    catalogue: customer-offers
    input: {customer_id: input.customer_id}
    channels: [portal, email]
    on: {none: nothing}
  - id: answer
    kind: task
    capability: offer.record
    input:
      choice: steps.pick.choice
      catalogue: '"customer-offers"'
      offer: steps.pick.offer
      accepted: 'true'
  - id: again
    kind: task
    capability: offer.record
    input:
      choice: steps.pick.choice
      catalogue: '"customer-offers"'
      offer: steps.pick.offer
      accepted: 'false'
  - id: shown
    kind: end
    output: {first: steps.answer.result, second: steps.again.result}
  - id: nothing
    kind: end
    outcome: nothing_to_offer
"""


def test_outcomes_are_recorded_once_through_the_gateway(accord: Accord, clock: FrozenClock) -> None:
    world(accord, clock, journey=RECORDING)
    consent(accord, "cus_r")
    view, pick = offer(accord, "cus_r")
    assert pick["channel"] in ("portal", "email")
    assert view.output == {"first": "recorded", "second": "duplicate"}
    [listed] = accord.offers.deployed(T)
    counts = {o["offer"]: (o["accepted"], o["trials"]) for o in listed["offers"]}
    assert counts[pick["offer"]] == (1, 1)
    recorded = [d.capability for d in accord.runtime.decisions(T, view.run_id)]
    assert recorded.count("offer.record") == 2
    # a choice this run did not make is refused, naming the field to pass
    with pytest.raises(InputError, match="has no offer"):
        accord.offers.record(
            T,
            choice_id="x/1",
            catalogue="customer-offers",
            offer="nope",
            subject_id="cus_r",
            accepted=True,
        )


def test_a_catalogue_change_needs_a_new_version_and_an_unknown_catalogue_fails_clearly(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock)
    spec = parse_offer_catalogue(CATALOGUE)
    assert accord.deploy_offers(spec, by="ann") == 1  # the same again: nothing changes
    changed = spec.model_copy(update={"description": "changed"})
    with pytest.raises(InputError, match="needs a version above 1"):
        accord.deploy_offers(changed, by="ann")
    assert accord.deploy_offers(changed.model_copy(update={"version": 2}), by="ann") == 2
    [entry, *_] = accord.ledger.entries(T, kinds=["offer.catalogue"])
    assert entry.body["actor"] == "ann"
    accord.runtime.catalog.deploy(
        T,
        load_journey_text(
            JOURNEY.replace("journey: next_offer", "journey: other").replace(
                "catalogue: customer-offers", "catalogue: missing"
            )
        ),
    )
    run_id = accord.runtime.start(T, "other", input={"customer_id": "c"}, subject="c").run_id
    accord.runtime.drive()
    failed = accord.runtime.get(T, run_id)
    assert failed.status == "failed"
    assert failed.error is not None and "no offer catalogue 'missing'" in failed.error["message"]


EXPERIMENT = """
experiment: offers-test
target: {kind: journey, name: next_offer}
control: a
variants: [{name: a}, {name: b}]
primary: {name: took, kind: binary, minimum_effect: 0.1, baseline: 0.3}
"""


def test_erasure_forgets_offer_outcomes_and_experiment_arms(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock, journey=RECORDING)
    accord.experiments.create(T, parse_experiment(EXPERIMENT), actor="ann")
    for subject in ("cus_e", "cus_f"):
        consent(accord, subject)
        offer(accord, subject)
        accord.experiments.assign(T, "offers-test", subject)
        accord.experiments.record(T, "offers-test", subject, "took", 1.0, run_id=None)
    assert sum(s.trials for s in accord.offers.stats(T, "customer-offers").values()) == 2
    accord.erase_subject("cus_e", actor="dpo", reason="asked to be forgotten")
    # the other subject's answers stay; nothing of cus_e is kept by its id
    assert sum(s.trials for s in accord.offers.stats(T, "customer-offers").values()) == 1
    with accord.db.read() as connection:
        for table in (offer_outcomes, experiment_assignments, experiment_observations):
            kept = connection.execute(sa.select(table.c.subject_id)).scalars().all()
            assert sorted(kept) == ["cus_f"], table.name


def test_attribution_reads_the_offer_chosen_as_a_decision_point(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock)
    for i in range(6):
        subject = f"cus_a{i}"
        if i % 2:
            consent(accord, subject)
        offer(accord, subject)
    paths = accord.decision_paths("next_offer")
    chosen = sorted(
        step.value for path in paths for step in path.steps if step.point.kind == "offer"
    )
    assert chosen == ["loyalty_thanks"] * 3 + ["newsletter"] * 3


SECOND_ANSWER = """      choice: steps.pick.choice
      catalogue: '"customer-offers"'
      offer: steps.pick.offer
      accepted: 'false'"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("choice: steps.pick.choice", 'choice: run.id + "/pick/9"'), "is not one this run made"),
        (("offer: steps.pick.offer", "offer: '\"renewal_discount\"'"), "offered 'loyalty_thanks'"),
    ],
)
def test_offer_record_takes_only_this_runs_own_choice_as_it_was_made(
    accord: Accord, clock: FrozenClock, change: tuple[str, str], message: str
) -> None:
    assert SECOND_ANSWER in RECORDING
    journey = RECORDING.replace(SECOND_ANSWER, SECOND_ANSWER.replace(*change))
    assert journey != RECORDING
    world(accord, clock, journey=journey)
    consent(accord, "cus_q")
    started = accord.runtime.start(T, "next_offer", input={"customer_id": "cus_q"}, subject="cus_q")
    accord.runtime.drive()
    view = accord.runtime.get(T, started.run_id)
    assert view.steps["pick"]["offer"] == "loyalty_thanks"
    assert view.status == "failed" and view.error is not None
    assert message in view.error["message"]
    # the run's real answer was recorded once; nothing forged was
    assert {o: s.trials for o, s in accord.offers.stats(T, "customer-offers").items()} == {
        "loyalty_thanks": 1
    }


def test_a_redeployed_catalogue_does_not_break_a_choice_in_flight(
    accord: Accord, clock: FrozenClock
) -> None:
    waiting = RECORDING.replace(
        "  - id: answer\n", "  - {id: later, kind: wait, timer: 1h}\n  - id: answer\n"
    )
    world(accord, clock, journey=waiting)
    consent(accord, "cus_w")
    started = accord.runtime.start(T, "next_offer", input={"customer_id": "cus_w"}, subject="cus_w")
    accord.runtime.drive()
    assert accord.runtime.get(T, started.run_id).steps["pick"]["offer"] == "loyalty_thanks"
    spec = parse_offer_catalogue(CATALOGUE)
    smaller = spec.model_copy(
        update={"version": 2, "offers": tuple(o for o in spec.offers if o.name != "loyalty_thanks")}
    )
    accord.deploy_offers(smaller, by="ann")
    clock.advance(3601)
    accord.runtime.drive()
    view = accord.runtime.get(T, started.run_id)
    assert view.status == "completed", view.error
    assert view.output == {"first": "recorded", "second": "duplicate"}


def test_a_catalogue_whose_source_writes_or_is_unknown_is_refused_at_deploy(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock)
    for source, message in (
        ("mail.send", "'mail.send' is a write; sources only read"),
        ("crm.nothing", "no capability 'crm.nothing'"),
    ):
        text = (
            CATALOGUE.replace("version: 1\n", "")
            .replace("capability: crm.profile", f"capability: {source}")
            .replace("catalogue: customer-offers", "catalogue: customer-offers\nversion: 5")
        )
        with pytest.raises(InputError, match=message):
            accord.deploy_offers(parse_offer_catalogue(text), by="ann")
    assert [c["version"] for c in accord.offers.deployed(T)] == [1]


def test_a_switched_off_channel_is_closed_even_without_a_capability(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock)
    consent(accord, "cus_k")
    accord.flags.set(T, "channel:portal", False, actor="ops", reason="portal maintenance")
    view, pick = offer(accord, "cus_k")
    assert pick["explanation"]["contact"]["portal"] == {
        "allowed": False,
        "why": "kill switch channel:portal is off",
    }
    assert view.outcome == "nothing_to_offer"


SLOW = CATALOGUE.replace(
    "    capability: helpdesk.complaints\n    input: {customer_id: args.customer_id}",
    "    capability: test.slow\n    input: {seconds: 2.0}",
).replace("value: source.last_complaint_at", "value: 'null'")
TIMED = JOURNEY.replace(
    "    on: {none: nothing}\n", "    timeout: 200ms\n    on: {none: nothing}\n", 1
)


def test_the_blocks_timeout_bounds_its_reads(accord: Accord, clock: FrozenClock) -> None:
    world(accord, clock, catalogue=SLOW, journey=TIMED)
    consent(accord, "cus_t")
    started = accord.runtime.start(T, "next_offer", input={"customer_id": "cus_t"}, subject="cus_t")
    accord.runtime.drive()
    retried = [
        e for e in accord.runtime.history(T, started.run_id) if e.kind == "block.retry_scheduled"
    ]
    assert retried and retried[0].detail["error"]["type"] == "BlockTimeout"


def test_replay_reports_an_offer_the_shadow_would_choose_differently(
    accord: Accord, clock: FrozenClock
) -> None:
    world(accord, clock, catalogue=BANDIT)
    consent(accord, "cus_p")
    consent(accord, "cus_p", MARKETING)
    view, pick = offer(accord, "cus_p")
    assert pick["offer"] == "renewal_discount"
    unchanged = replay_candidate(
        accord, journey="next_offer", candidate="journey:next_offer@1", since=0
    )
    assert unchanged.to_json()["counts"]["unchanged"] == 1
    # what was learnt since makes the shadow, which ranks with today's outcomes, choose another
    for i in range(6):
        accord.offers.record(
            T,
            choice_id=f"later/{i}",
            catalogue="customer-offers",
            offer="renewal_discount",
            subject_id=f"cus_o{i}",
            accepted=False,
        )
    report = replay_candidate(
        accord, journey="next_offer", candidate="journey:next_offer@1", since=0
    ).to_json()
    [run] = report["runs"]
    # the other offer goes out on another channel, whose call the recording never made
    assert run["run_id"] == view.run_id and run["status"] == "diverged"
    [change] = [c for c in run["changes"] if c["kind"] == "offer"]
    assert change["before"]["offer"] == "renewal_discount"
    assert change["after"]["offer"] != "renewal_discount"
