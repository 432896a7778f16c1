"""The decision point agrees with Cedar itself, and fails closed wherever Cedar reports errors.

Ten thousand seeded requests (principals and resources of every type, missing and mistyped
attributes, decimals, odd strings, broken entities) are decided by the PDP under the example
bundle, a handwritten one and generated ones, and by ``cedarpy.is_authorized`` straight from the
policy text with the same ``to_cedar`` request. Allow/deny and the determining policies must be
equal; where Cedar reports any error, or the request cannot be put into Cedar at all, the PDP
must deny.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path
from textwrap import dedent
from typing import Any

import cedarpy

from accord.policy import (
    CedarValueError,
    Entity,
    PolicyBundle,
    PolicyDecision,
    PolicyDecisionPoint,
    PolicyInvalid,
    PolicyRequest,
    to_cedar,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
REQUESTS = 10_000
SEED = 20_260_101

ACTIONS = ["a0", "a1", "a2", "a3", "a4"]
STRINGS = ["gold", "silver", "eu", "us", "high", "low", "email", "sms", "x", ""]
ODD_STRINGS = ["", "a\nb", 'quo"te', "back\\slash", "ünïcödé", "  spaced ", "::", "\x00", "\ud800"]

SCHEMA = dedent(
    """
    namespace Accord {
      entity Team;
      entity Service in [Team] = { role: String, tier: String, journey: String, level: Long };
      entity Agent in [Team] = { role: String, tier: String, model: String, level: Long };
      entity Person in [Team] = { role: String, tier: String, level: Long };
      entity Subject = { region: String, tier: String, score: decimal };
      entity Record = { kind: String, region: String };
      type Ctx = {
        purpose: String, channel: String, amount: decimal, risk_tier: String,
        confidence: decimal, time: Long, tags: Set<String>, region: String,
        flag: Bool, detail: { code: Long, note: String }
      };
      action "a0", "a1", "a2", "a3", "a4" appliesTo {
        principal: [Service, Agent, Person], resource: [Subject, Record], context: Ctx
      };
    }
    """
)

HANDWRITTEN = dedent(
    """
    @id("services-read") @notify("audit")
    permit (
      principal is Accord::Service,
      action in [Accord::Action::"a0", Accord::Action::"a1"],
      resource
    )
    when { context.purpose == "x" || principal.role == "gold" };

    @id("team-members")
    permit (principal in Accord::Team::"t1", action, resource is Accord::Subject)
    when { resource.score.greaterThan(decimal("0.5")) && context.tags.contains("eu") };

    @id("amount-limit") @approval("supervisor,finance")
    permit (principal, action == Accord::Action::"a2", resource)
    when { context.amount.lessThanOrEqual(decimal("100.0")) && context.time < 1000 };

    forbid (principal, action, resource)
    when { context.risk_tier == "high" && !context.flag };

    @id("region-mismatch")
    forbid (principal, action, resource is Accord::Record)
    unless { resource.region == context.region };

    @id("nested")
    permit (principal is Accord::Agent, action == Accord::Action::"a3", resource)
    when { context.detail.code >= 3 && context.channel like "e*" && principal.level > 1 };

    @id("self") @redact("pd:EmailAddress")
    permit (principal, action == Accord::Action::"a4", resource)
    when { principal == Accord::Person::"p1" && principal.tier == resource.region };
    """
)


# Generated bundles -----------------------------------------------------------------------------


def generated_bundle(rng: random.Random) -> str:
    policies = []
    used_ids: set[str] = set()
    for number in range(rng.randint(3, 12)):
        permit = rng.random() < 0.7
        annotations = []
        if rng.random() < 0.6:
            policy_id = f"g{number}-{rng.choice(STRINGS) or 'blank'}"
            if policy_id not in used_ids:
                used_ids.add(policy_id)
                annotations.append(f'@id("{policy_id}")')
        if permit:
            for kind in ("approval", "notify", "redact"):
                if rng.random() < 0.2:
                    values = ",".join(rng.sample(["a", "b", "pd:Name", "c d"], rng.randint(1, 2)))
                    annotations.append(f'@{kind}("{values}")')
        principal = rng.choice(
            [
                "principal",
                "principal is Accord::Service",
                "principal is Accord::Agent",
                'principal == Accord::Person::"p1"',
                'principal in Accord::Team::"t1"',
            ]
        )
        actions = rng.sample(ACTIONS, rng.randint(1, 3))
        action = rng.choice(
            [
                "action",
                f'action == Accord::Action::"{actions[0]}"',
                "action in [" + ", ".join(f'Accord::Action::"{a}"' for a in actions) + "]",
            ]
        )
        resource_is_subject = rng.random() < 0.4
        resource = "resource is Accord::Subject" if resource_is_subject else "resource"
        conditions = []
        for _ in range(rng.choice([0, 1, 1, 2])):
            keyword = "when" if rng.random() < 0.8 else "unless"
            conditions.append(f"{keyword} {{ {condition(rng, resource_is_subject, 2)} }}")
        effect = "permit" if permit else "forbid"
        policies.append(
            " ".join(annotations)
            + f"\n{effect} ({principal}, {action}, {resource})\n"
            + "\n".join(conditions)
            + ";"
        )
    return "\n\n".join(policies) + "\n"


def condition(rng: random.Random, subject: bool, depth: int) -> str:
    if depth > 0 and rng.random() < 0.35:
        left = condition(rng, subject, depth - 1)
        right = condition(rng, subject, depth - 1)
        return f"({left} {rng.choice(['&&', '||'])} {right})"
    if depth > 0 and rng.random() < 0.1:
        return f"!({condition(rng, subject, depth - 1)})"
    atoms = [
        f'principal.role == "{rng.choice(STRINGS)}"',
        f'principal.tier != "{rng.choice(STRINGS)}"',
        f"principal.level > {rng.randint(-2, 5)}",
        f'context.purpose == "{rng.choice(STRINGS)}"',
        f'context.channel like "{rng.choice(["e*", "*s", "*"])}"',
        f'context.amount.lessThan(decimal("{rng.choice(["0.0", "42.5", "100.0", "-3.25"])}"))',
        f'context.confidence.greaterThanOrEqual(decimal("{rng.choice(["0.5", "0.9"])}"))',
        f"context.time <= {rng.choice([0, 1000, 1_767_225_600])}",
        f'context.tags.contains("{rng.choice(STRINGS)}")',
        "resource.region == context.region",
        f'context has risk_tier && context.risk_tier == "{rng.choice(STRINGS)}"',
        "context.flag",
        f"context.detail.code == {rng.randint(0, 3)}",
        'principal in Accord::Team::"t2"',
    ]
    if subject:
        atoms += [
            f'resource.tier == "{rng.choice(STRINGS)}"',
            f'resource.score.lessThanOrEqual(decimal("{rng.choice(["0.1", "0.5", "9.9"])}"))',
        ]
    return rng.choice(atoms)


# Requests --------------------------------------------------------------------------------------


def maybe_wrong(rng: random.Random, value: Any) -> Any:
    """The right value most of the time, else one of a wrong type."""
    if rng.random() < 0.88:
        return value
    return rng.choice([7, "7", True, 2.5, Decimal("1.5"), ["x"], {"k": 1}, None])


def string(rng: random.Random) -> str:
    return rng.choice(ODD_STRINGS) if rng.random() < 0.05 else rng.choice(STRINGS)


def decimal_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.6:
        return Decimal(rng.randint(-500_000, 2_000_000)).scaleb(-4)
    if roll < 0.85:
        return round(rng.uniform(-10, 200), rng.randint(0, 3))  # integral floats become Longs
    if roll < 0.9:
        return rng.choice([float("nan"), float("inf"), Decimal("1e30"), 10.0**20 + 0.5])
    return Decimal(rng.choice(["0.5", "0.9", "42.5", "100.0", "100.0001"]))


def attrs(rng: random.Random, entity_type: str) -> dict[str, Any]:
    shapes: dict[str, dict[str, Any]] = {
        "Service": {"role": string, "tier": string, "journey": string, "level": None},
        "Agent": {"role": string, "tier": string, "model": string, "level": None},
        "Person": {"role": string, "tier": string, "level": None},
        "Subject": {"region": string, "tier": string, "score": decimal_value},
        "Record": {"kind": string, "region": string},
    }
    values: dict[str, Any] = {}
    for name, make in shapes.get(entity_type, {"role": string}).items():
        if rng.random() < 0.9:
            value = rng.randint(-3, 6) if make is None else make(rng)
            values[name] = maybe_wrong(rng, value)
    if rng.random() < 0.05:
        values[rng.choice(["extra", "ünï", ""])] = rng.choice([1, "x", Decimal("2.5")])
    return values


def entity(rng: random.Random, types: list[str]) -> Entity:
    entity_type = (
        rng.choice(types)
        if rng.random() < 0.95
        else rng.choice(["Team", "Unknown", "bad type", "Service::Nested", ""])
    )
    entity_id = (
        rng.choice(["p1", "s1", "cus_1", "r1", "x"])
        if rng.random() < 0.93
        else rng.choice(ODD_STRINGS)
    )
    parents = tuple(("Team", team) for team in ("t1", "t2") if rng.random() < 0.3)
    return Entity(entity_type, entity_id, attrs(rng, entity_type), parents)


def context(rng: random.Random) -> dict[str, Any]:
    makers: dict[str, Any] = {
        "purpose": string,
        "channel": lambda r: r.choice(["email", "sms", "portal", "e", ""]),
        "amount": decimal_value,
        "risk_tier": string,
        "confidence": decimal_value,
        "time": lambda r: r.choice([0, 999, 1000, 1_767_225_600, 2**62]),
        "tags": lambda r: r.sample(STRINGS, r.randint(0, 3)),
        "region": string,
        "flag": lambda r: r.random() < 0.5,
        "detail": lambda r: {"code": r.randint(0, 4), "note": string(r)},
    }
    values = {
        name: maybe_wrong(rng, make(rng)) for name, make in makers.items() if rng.random() < 0.8
    }
    if rng.random() < 0.01:
        values["smuggled"] = {"__entity": {"type": "Accord::Person", "id": "p1"}}
    return values


def request(rng: random.Random) -> PolicyRequest:
    principal = entity(rng, ["Service", "Agent", "Person"])
    resource = entity(rng, ["Subject", "Record"])
    if rng.random() < 0.02:
        resource = Entity(principal.type, principal.id, {"other": 1})  # same uid, other attrs
    action = rng.choice(ACTIONS) if rng.random() < 0.95 else rng.choice(["a9", "", "a0 "])
    return PolicyRequest(principal, action, resource, context(rng))


# The comparison --------------------------------------------------------------------------------


def expected_ids(result: cedarpy.AuthzResult) -> list[str]:
    named = result.diagnostics.id_annotations_by_reason
    return sorted(named.get(reason, reason) for reason in result.diagnostics.reasons)


def check(text: str, decision: PolicyDecision, item: PolicyRequest, outcomes: Counter[str]) -> None:
    try:
        cedar_request, entities = to_cedar(item)
    except CedarValueError:
        assert (decision.allowed, decision.reason) == (False, "error")
        outcomes["unconvertible"] += 1
        return
    try:
        direct = cedarpy.is_authorized(cedar_request, text, entities)
    except UnicodeError:  # a lone surrogate cannot even be handed to Cedar
        assert (decision.allowed, decision.reason) == (False, "error")
        outcomes["cedar error"] += 1
        return
    if direct.diagnostics.errors or direct.decision is cedarpy.Decision.NoDecision:
        assert (decision.allowed, decision.reason) == (False, "error"), (
            item,
            direct.diagnostics.errors,
        )
        outcomes["cedar error" + (" (cedar allowed)" if direct.allowed else "")] += 1
        return
    assert decision.allowed == direct.allowed, item
    assert sorted(decision.determining) == expected_ids(direct), item
    expected_reason = (
        "permit" if direct.allowed else ("forbid" if direct.diagnostics.reasons else "no_permit")
    )
    assert decision.reason == expected_reason
    if not direct.allowed:
        assert decision.obligations == ()
    outcomes[decision.reason] += 1


def bundles(rng: random.Random) -> list[tuple[str, PolicyBundle]]:
    texts = [
        (
            (EXAMPLES / "retail.cedar").read_text(encoding="utf-8"),
            (EXAMPLES / "accord.cedarschema").read_text(encoding="utf-8"),
        ),
        (HANDWRITTEN, SCHEMA),
    ]
    while len(texts) < 8:
        texts.append((generated_bundle(rng), SCHEMA))
    return [(text, PolicyBundle.compile(text, schema)) for text, schema in texts]


def test_the_pdp_agrees_with_cedar_and_denies_wherever_cedar_errs() -> None:
    rng = random.Random(SEED)
    compiled = bundles(rng)
    pdp = PolicyDecisionPoint()
    outcomes: Counter[str] = Counter()
    retail_context = [
        {"purpose": "p", "amount": Decimal("42.5"), "risk_tier": "low"},
        {"amount": 250.75, "side_effect": "irreversible"},
        {"channel": "email", "confidence": 0.95},
    ]
    for index in range(REQUESTS):
        text, bundle = compiled[index % len(compiled)]
        item = request(rng)
        if index % len(compiled) == 0:
            # The example bundle speaks the retail vocabulary.
            item = dataclasses.replace(
                item,
                action=rng.choice(
                    ["orders.lookup", "payments.refund", "notify.send", "helpdesk.resolve"]
                ),
                context={**item.context, **rng.choice(retail_context)},
            )
        decision = pdp.decide(bundle, item)
        check(text, decision, item, outcomes)
        # Asked again, the parsed entities come from the PDP's cache: same answer.
        again = pdp.decide(bundle, item)
        assert (again.allowed, again.reason, again.determining) == (
            decision.allowed,
            decision.reason,
            decision.determining,
        )
    # Every way a decision can go was exercised, often.
    for outcome in ("permit", "forbid", "no_permit", "cedar error", "unconvertible"):
        assert outcomes[outcome] >= 100, outcomes
    assert outcomes["cedar error (cedar allowed)"] >= 20, outcomes


def test_broken_bundles_never_allow() -> None:
    rng = random.Random(SEED + 1)
    pdp = PolicyDecisionPoint()
    requests = [request(rng) for _ in range(20)]
    refused = 0
    for _ in range(150):
        text = HANDWRITTEN
        position = rng.randrange(len(text))
        text = (
            text[:position] + rng.choice(["", ";", "{", '"', "x", "@", ")"]) + text[position + 1 :]
        )
        try:
            bundle = PolicyBundle.compile(text, SCHEMA)
        except PolicyInvalid:
            refused += 1
            assert all(pdp.decide(None, r).reason == "no_bundle" for r in requests)
            continue
        outcomes: Counter[str] = Counter()
        for item in requests:
            check(text, pdp.decide(bundle, item), item, outcomes)
    assert refused >= 75
    good = PolicyBundle.compile(HANDWRITTEN, SCHEMA)
    for handle in (None, 42, object(), cedarpy.Schema.from_str(SCHEMA)):
        broken = dataclasses.replace(good, policy_set=handle)
        for item in requests:
            decision = pdp.decide(broken, item)
            assert (decision.allowed, decision.reason) == (False, "error")
