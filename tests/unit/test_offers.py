"""The next-best-action choice on its own: catalogues checked at load with located errors, the
contact policy (caps across channels, quiet hours across midnight and time zones, preferences,
complaints), a customer-facing reason for every choice whatever is known of the subject, and
exploration that never touches a sensitive offer."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import InputError, JourneyInvalid
from accord.journeys import JourneyBuilder, OfferBlock, lint, load_journey_text
from accord.offers import (
    Compiled,
    Contact,
    Offer,
    PolicyVerdict,
    Stats,
    choose,
    parse_offer_catalogue,
)

NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC).timestamp()
DAY = 86_400.0

BASE = """
catalogue: c
purpose: dpv:ServicePersonalisation
sources:
  p: {capability: crm.profile}
features:
  tenure: {source: p, value: source.tenure}
  renews: {source: p, value: source.renews}
  email_ok: {source: p, value: source.email_ok}
  zone: {source: p, value: source.zone}
  complained: {source: p, value: source.complained}
contact:
  channels: {email: [mail.send], sms: [sms.send], portal: []}
  caps:
    - {channels: [email, sms], max: 2, per: 7d}
  quiet_hours: {start: "21:00", end: "08:00", timezone_feature: zone, channels: [sms]}
  preferences: {email: features.email_ok}
  complaint: {feature: complained, suppress_for: 30d}
ranking: {method: rules}
offers:
  - name: renewal
    title: a renewal discount
    channels: [sms, email]
    eligible: features.renews <= 45
    score: "3.0"
    reasons:
      - when: features.renews <= 31
        text: '"because your contract renews in " + string(features.renews) + " days"'
      - text: '"because your contract renews soon"'
  - name: loyalty
    title: a thank-you
    channels: [email, portal]
    eligible: features.tenure >= 24
    score: double(features.tenure) / 10.0
    reasons:
      - text: '"because you have been with us " + string(features.tenure) + " months"'
  - name: tips
    title: our tips
    channels: [portal]
    score: "1.0"
    sensitive: true
    reasons:
      - text: '"because customers like you found them useful"'
"""


def compiled(text: str = BASE) -> Compiled:
    return Compiled(parse_offer_catalogue(text))


def allow(offer: Offer, channel: str, context: Mapping[str, Any]) -> PolicyVerdict:
    return PolicyVerdict(True)


FULL = {"tenure": 30, "renews": 20, "email_ok": True, "zone": "UTC", "complained": None}


def run(features: Mapping[str, Any] = FULL, **options: Any) -> Any:
    options.setdefault("contacts", [])
    options.setdefault("now", NOON)
    options.setdefault("policy", allow)
    options.setdefault("stats", {})
    withheld = options.pop("withheld", {})
    return choose(compiled(options.pop("text", BASE)), features, withheld, **options)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("ranking: {method: rules}", "ranking: {method: rules}\ncolour: blue"), "colour"),
        (("suppress_for: 30d", "suppress_for: soon"), "'soon' is not a duration"),
        (("timezone_feature: zone", "timezone_feature: zone, timezone: Mars/Base"), "IANA"),
        (("channels: [sms, email]", "channels: [sms, pigeon]"), "pigeon"),
        (("      - text: '\"because your contract renews soon\"'\n", ""), "must hold always"),
        (('score: "3.0"', 'score: "3.0 +"'), "CEL syntax error"),
        (("source: p, value: source.tenure", "source: q, value: source.tenure"), "source 'q'"),
    ],
)
def test_a_bad_catalogue_is_refused_with_the_field_named(
    change: tuple[str, str], expected: str
) -> None:
    text = BASE.replace(*change)
    assert text != BASE
    with pytest.raises(InputError, match=expected) as raised:
        parse_offer_catalogue(text, source="offers.yaml")
    assert raised.value.message.startswith("offers.yaml")


def test_not_yaml_names_the_line() -> None:
    with pytest.raises(InputError, match=r"offers.yaml:\d+: not valid YAML"):
        parse_offer_catalogue("catalogue: [\n", source="offers.yaml")


def test_the_best_offer_wins_with_its_most_specific_reason() -> None:
    choice = run()
    assert (choice.offer, choice.channel) == ("renewal", "sms")
    assert choice.reason == "because your contract renews in 20 days"
    assert choice.send_at == NOON and choice.score == 3.0
    assert choice.explanation["chosen"] == "renewal"


def test_a_reason_never_reads_an_absent_feature() -> None:
    # renews is known but far: the specific reason does not hold, the general one does
    choice = run({**FULL, "renews": 40})
    assert choice.reason == "because your contract renews soon"
    # without tenure, loyalty cannot be chosen; without renews, renewal cannot
    choice = run({k: v for k, v in FULL.items() if k not in ("renews", "tenure")})
    assert choice.offer == "tips" and "months" not in (choice.reason or "")


def test_caps_count_contacts_across_channels_within_the_window() -> None:
    contacts = [
        Contact("email", "mail.send", NOON - DAY),
        Contact("sms", "sms.send", NOON - 2 * DAY),
    ]
    choice = run(contacts=contacts)
    assert choice.offer == "loyalty" and choice.channel == "portal"
    verdicts = choice.explanation["contact"]
    assert not verdicts["email"]["allowed"] and not verdicts["sms"]["allowed"]
    assert "2 contact(s) on email, sms" in verdicts["sms"]["why"]
    old = [Contact("email", "mail.send", NOON - 8 * DAY)] * 5
    assert run(contacts=old).channel == "sms"


@pytest.mark.parametrize(
    ("zone", "hour", "quiet_until_hour"),
    [
        ("UTC", 22, 8),  # evening: until tomorrow 08:00
        ("UTC", 3, 8),  # after midnight: until 08:00 today
        ("UTC", 8, None),  # 08:00 is no longer quiet
        ("UTC", 20, None),
        ("America/New_York", 2, None),  # 02:00 UTC is 21:00 in New York: quiet there
    ],
)
def test_quiet_hours_span_midnight_in_the_subjects_zone(
    zone: str, hour: int, quiet_until_hour: int | None
) -> None:
    now = dt.datetime(2026, 3, 2, hour, 0, tzinfo=dt.UTC).timestamp()
    choice = run({**FULL, "zone": zone, "email_ok": False}, now=now)
    sms = choice.explanation["contact"]["sms"]
    if zone == "America/New_York":
        local = dt.datetime.fromtimestamp(now, dt.timezone(dt.timedelta(hours=-5)))
        assert local.hour == 21 and sms["why"] == "quiet hours"
        ends = dt.datetime.fromtimestamp(sms["send_at"], dt.timezone(dt.timedelta(hours=-5)))
        assert (ends.hour, ends.minute) == (8, 0) and ends.day == local.day + 1
        return
    if quiet_until_hour is None:
        assert "why" not in sms and choice.send_at == now
        return
    ends = dt.datetime.fromtimestamp(sms["send_at"], dt.UTC)
    assert ends.hour == quiet_until_hour and sms["send_at"] > now
    assert sms["send_at"] - now < DAY
    # the text waits; with no other open channel for the renewal, it is still chosen
    assert (choice.offer, choice.channel, choice.send_at) == ("renewal", "sms", sms["send_at"])


def test_an_open_channel_is_preferred_to_one_in_quiet_hours() -> None:
    late = dt.datetime(2026, 3, 2, 23, 0, tzinfo=dt.UTC).timestamp()
    choice = run(now=late)
    assert (choice.channel, choice.send_at) == ("email", late)


def test_a_preference_that_cannot_be_read_closes_the_channel() -> None:
    features = {k: v for k, v in FULL.items() if k != "email_ok"}
    verdict = run(features).explanation["contact"]["email"]
    assert not verdict["allowed"] and verdict["why"].startswith("preference")


def test_a_complaint_suppresses_every_contact_and_an_unreadable_history_does_too() -> None:
    recent = run({**FULL, "complained": NOON - 5 * DAY})
    assert recent.offer is None and "5 day(s) ago" in recent.explanation["suppressed"]
    old = run({**FULL, "complained": NOON - 40 * DAY})
    assert old.offer == "renewal"
    unknown = run(
        {k: v for k, v in FULL.items() if k != "complained"},
        withheld={"complained": "consent_withdrawn"},
    )
    assert unknown.offer is None
    assert "(consent_withdrawn)" in unknown.explanation["suppressed"]


def test_policy_refusals_and_blocked_channels_are_explained() -> None:
    def deny_renewal(offer: Offer, channel: str, context: Mapping[str, Any]) -> PolicyVerdict:
        if offer.name == "renewal":
            return PolicyVerdict(False, "policy_denied", "no discounts now", policies=("p1",))
        return PolicyVerdict(True)

    choice = run(policy=deny_renewal, blocked={"email": "consent_missing: no consent"})
    assert choice.offer == "loyalty" and choice.channel == "portal"
    listed = {c["offer"]: c for c in choice.explanation["candidates"]}
    assert "policy_denied: no discounts now" in listed["renewal"]["excluded"]
    assert choice.explanation["contact"]["email"]["why"] == "consent_missing: no consent"


BANDIT = BASE.replace("ranking: {method: rules}", "ranking: {method: bandit}")


def test_exploration_samples_only_offers_that_are_not_sensitive() -> None:
    rng = random.Random(7)
    picks = []
    for _ in range(200):
        choice = run(text=BANDIT, explore=True, rng=rng)
        listed = {c["offer"]: c for c in choice.explanation["candidates"]}
        assert "sampled" not in listed["tips"] and listed["tips"]["sensitive"]
        picks.append(choice.offer)
    assert {"renewal", "loyalty"} <= set(picks)


def test_a_policy_marked_sensitive_offer_is_never_sampled() -> None:
    def sensitive_renewal(offer: Offer, channel: str, context: Mapping[str, Any]) -> PolicyVerdict:
        return PolicyVerdict(True, sensitive=offer.name == "renewal")

    for seed in range(50):
        choice = run(text=BANDIT, explore=True, rng=random.Random(seed), policy=sensitive_renewal)
        listed = {c["offer"]: c for c in choice.explanation["candidates"]}
        assert "sampled" not in listed["renewal"] and listed["loyalty"]["sampled"]


def test_without_exploration_the_posterior_mean_ranks_and_the_rules_method_ignores_it() -> None:
    stats = {"loyalty": Stats(9, 10), "renewal": Stats(1, 10)}
    choice = run(text=BANDIT, stats=stats)
    assert choice.offer == "loyalty" and not choice.explored
    # the same seed gives the same sampled choice: a retried visit chooses the same way
    first = run(text=BANDIT, stats=stats, explore=True, rng=random.Random(3))
    again = run(text=BANDIT, stats=stats, explore=True, rng=random.Random(3))
    assert first.to_json() == again.to_json()
    assert run(stats=stats).offer == "renewal"


feature_values = st.fixed_dictionaries(
    {},
    optional={
        "tenure": st.integers(0, 120),
        "renews": st.integers(0, 400),
        "email_ok": st.booleans(),
        "zone": st.sampled_from(["UTC", "Europe/Paris", "Asia/Tokyo", "Nowhere/Invalid"]),
        "complained": st.one_of(st.none(), st.floats(NOON - 90 * DAY, NOON)),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    features=feature_values,
    hour=st.integers(0, 23),
    sent=st.lists(st.tuples(st.sampled_from(["email", "sms"]), st.floats(0, 10)), max_size=4),
    explore=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_choice_has_a_customer_facing_reason_and_respects_the_caps(
    features: dict[str, Any],
    hour: int,
    sent: list[tuple[str, float]],
    explore: bool,
    seed: int,
) -> None:
    now = dt.datetime(2026, 3, 2, hour, 0, tzinfo=dt.UTC).timestamp()
    contacts = [Contact(channel, f"{channel}.send", now - days * DAY) for channel, days in sent]
    choice = run(
        features,
        text=BANDIT,
        now=now,
        contacts=contacts,
        explore=explore,
        rng=random.Random(seed),
        withheld={k: "consent_withdrawn" for k in FULL if k not in features},
    )
    if choice.offer is None:
        assert choice.reason is None and choice.channel is None
        return
    assert isinstance(choice.reason, str) and choice.reason.startswith("because")
    if "tenure" not in features:
        assert "months" not in choice.reason
    recent = sum(1 for c in contacts if c.at > now - 7 * DAY)
    # nobody is contacted while a complaint is recent, or when complaints cannot be read
    assert "complained" in features
    assert features["complained"] is None or now - features["complained"] >= 30 * DAY
    if choice.channel in ("email", "sms"):
        assert recent < 2
    if choice.channel == "email":
        assert features.get("email_ok") is True
    assert choice.send_at is not None and choice.send_at >= now


OFFER_JOURNEY = """
journey: j
input: {customer_id: string}
blocks:
  - id: pick
    kind: offer
    catalogue: customer-offers
    input: {customer_id: input.customer_id}
    on: {none: nothing}
  - {id: shown, kind: end, output: {why: steps.pick.reason}}
  - {id: nothing, kind: end, outcome: none}
"""


def test_the_offer_block_in_the_journey_language() -> None:
    loaded = load_journey_text(OFFER_JOURNEY)
    block = loaded.spec.blocks[0]
    assert isinstance(block, OfferBlock) and block.explore is False and block.channels is None
    built = (
        JourneyBuilder("j")
        .input(customer_id="string")
        .offer("pick", "customer-offers", input={"customer_id": "input.customer_id"}, explore=True)
        .end("shown")
        .build()
    )
    assert isinstance(built.blocks[0], OfferBlock) and built.blocks[0].explore is True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("on: {none: nothing}", "on: {maybe: nothing}"), "an offer block routes none"),
        (("catalogue: customer-offers", "catalogue: Customer Offers"), "catalogue"),
    ],
)
def test_a_bad_offer_block_is_refused_where_it_is_wrong(
    change: tuple[str, str], expected: str
) -> None:
    with pytest.raises(JourneyInvalid) as raised:
        load_journey_text(OFFER_JOURNEY.replace(*change))
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("on: {none: nothing}", "on: {none: nowhere}"), "nowhere"),
        (("input.customer_id}", "input.customer_id +}"), "CEL syntax error"),
        (("why: steps.pick.reason", "why: steps.pick.reasons"), "reasons"),
    ],
)
def test_lint_checks_an_offer_blocks_routes_input_and_output(
    change: tuple[str, str], expected: str
) -> None:
    loaded = load_journey_text(OFFER_JOURNEY.replace(*change))
    found = [d.render() for d in lint(loaded.spec, loaded.source_map) if d.severity == "error"]
    assert any(expected in line for line in found), found
    assert not [d for d in lint(*_clean()) if d.severity == "error"]


def _clean() -> tuple[Any, Any]:
    loaded = load_journey_text(OFFER_JOURNEY)
    return loaded.spec, loaded.source_map


NAN = BASE.replace(
    'eligible: features.renews <= 45\n    score: "3.0"',
    "eligible: features.renews <= 45\n    score: 0.0 / 0.0",
)


def test_a_score_that_is_not_a_number_leaves_the_offer_out() -> None:
    assert NAN != BASE
    choice = run(text=NAN)
    listed = {c["offer"]: c for c in choice.explanation["candidates"]}
    assert listed["renewal"]["excluded"] == "its score could not be computed from the features"
    assert choice.offer == "loyalty"


def test_an_offers_context_is_plain_data() -> None:
    text = BASE.replace(
        "    title: our tips\n",
        "    title: our tips\n"
        '    context: {since: timestamp("2024-01-02T03:04:05Z"), raw: b"ab"}\n',
    )
    choice = run({**FULL, "tenure": 1, "renews": 400}, text=text)
    assert choice.offer == "tips"
    assert choice.context == {"since": "2024-01-02T03:04:05+00:00", "raw": "YWI="}
