"""The Cedar decision point: compiling bundles, deciding, obligations, failing closed, values."""

from __future__ import annotations

import dataclasses
import enum
from decimal import Decimal
from pathlib import Path
from textwrap import dedent
from typing import Any

import cedarpy
import pytest

from accord.errors import ErrorCode, InputError
from accord.policy import (
    CedarValueError,
    Entity,
    Obligation,
    PolicyBundle,
    PolicyDecisionPoint,
    PolicyInvalid,
    PolicyRequest,
    load_cases,
    load_cases_file,
    parse_entity_ref,
    run_cases,
    to_cedar,
    to_cedar_value,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"

SCHEMA = dedent(
    """
    namespace Accord {
      entity Service = { role: String, journey?: String };
      entity Agent = { role: String, model: String };
      entity Subject = { region: String, tier?: String };
      type Ctx = { amount?: decimal, risk_tier?: String, purpose?: String };
      action "orders.lookup", "payments.refund"
        appliesTo { principal: [Service, Agent], resource: [Subject], context: Ctx };
    }
    """
)

SERVICE = Entity("Service", "journey/refund", {"role": "journey", "journey": "refund"})
AGENT = Entity("Agent", "triage", {"role": "assistant", "model": "m1"})
SUBJECT = Entity("Subject", "cus_1", {"region": "eu"})


def refund(amount: Any, **context: Any) -> PolicyRequest:
    return PolicyRequest(SERVICE, "payments.refund", SUBJECT, {"amount": amount, **context})


@pytest.fixture
def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint()


@pytest.fixture
def retail() -> PolicyBundle:
    return PolicyBundle.compile(
        (EXAMPLES / "retail.cedar").read_text(encoding="utf-8"),
        (EXAMPLES / "accord.cedarschema").read_text(encoding="utf-8"),
        source_name="retail.cedar",
    )


def compile_(policies: str, schema: str = SCHEMA) -> PolicyBundle:
    return PolicyBundle.compile(dedent(policies), schema, source_name="test.cedar")


def problems(policies: str, schema: str = SCHEMA) -> list[str]:
    with pytest.raises(PolicyInvalid) as caught:
        compile_(policies, schema)
    return caught.value.diagnostics


# Compiling -------------------------------------------------------------------------------------


def test_the_example_bundle_compiles_with_every_policy_named(retail: PolicyBundle) -> None:
    ids = [p.id for p in retail.compiled_policies]
    assert len(ids) == len(set(ids)) == 17
    assert all(p.id != p.cedar_id for p in retail.compiled_policies)
    assert retail.digest.startswith("sha256:")
    refund = next(p for p in retail.compiled_policies if p.id == "refund-above-1000-with-senior")
    assert refund.obligations == (
        Obligation("approval", "senior", "refund-above-1000-with-senior"),
        Obligation("notify", "customer", "refund-above-1000-with-senior"),
        Obligation("notify", "finance", "refund-above-1000-with-senior"),
    )
    assert refund.source.startswith('@id("refund-above-1000-with-senior")')
    assert refund.source.endswith("};")
    lines = (EXAMPLES / "retail.cedar").read_text(encoding="utf-8").splitlines()
    assert refund.line is not None
    assert lines[refund.line - 1] == '@id("refund-above-1000-with-senior")'


def test_a_parse_error_names_the_line_of_the_broken_policy() -> None:
    found = problems(
        """
        @id("fine")
        permit (principal, action, resource);

        // a comment with a ; inside
        @id("broken")
        permit (principal, action, resource) when { context.amount > };
        """
    )
    assert len(found) == 1
    assert "policy at line 6 does not parse" in found[0]
    assert "broken" in found[0]


def test_a_policy_missing_its_semicolon_is_named() -> None:
    found = problems(
        '@id("a") permit (principal, action, resource);\n'
        '@id("b") permit (principal, action, resource)'
    )
    assert found == [
        "policy at line 2 does not end with ';': '@id(\"b\") permit (principal, action, resource)'"
    ]


def test_a_validation_error_names_the_policy_by_id_position_and_line() -> None:
    found = problems(
        """
        @id("reads")
        permit (principal is Accord::Service, action == Accord::Action::"orders.lookup", resource);
        @id("refund-limit")
        permit (principal, action == Accord::Action::"payments.refund", resource)
        when { context.amount.lessThan(decimal("100.0")) };
        """
    )
    assert found
    assert all(d.startswith('policy "refund-limit" (policy1, line 4): ') for d in found)
    assert "amount" in found[0]


def test_a_policy_without_id_is_named_by_position_and_line() -> None:
    found = problems(
        """
        permit (principal, action, resource) when { principal.nickname == "x" };
        """
    )
    assert found and all(d.startswith("policy policy0 (line 2): ") for d in found)


def test_a_schema_that_does_not_parse_is_reported() -> None:
    found = problems("permit (principal, action, resource);", schema="namespace Accord {")
    assert len(found) == 1 and found[0].startswith("schema: ")


def test_a_json_schema_is_accepted() -> None:
    schema = (
        '{"Accord": {"entityTypes": {"Service": {}}, "actions": {"orders.lookup": '
        '{"appliesTo": {"principalTypes": ["Service"], "resourceTypes": ["Service"]}}}}}'
    )
    bundle = compile_("permit (principal, action, resource);", schema)
    assert len(bundle.compiled_policies) == 1


def test_duplicate_ids_are_refused() -> None:
    found = problems(
        """
        @id("same") permit (principal, action, resource);
        @id("same") forbid (principal, action, resource);
        """
    )
    assert found == [
        "policy \"same\" (policy1, line 3): id 'same' is already used by "
        'policy "same" (policy0, line 2); every policy needs its own @id'
    ]


def test_an_id_that_is_another_policys_position_is_refused() -> None:
    found = problems(
        """
        @id("policy1") permit (principal, action, resource);
        permit (principal, action, resource);
        """
    )
    assert len(found) == 1 and "also the positional id of policy policy1" in found[0]


def test_an_empty_id_is_refused() -> None:
    assert problems('@id("") permit (principal, action, resource);') == [
        'policy "" (policy0, line 1): @id is empty; give the policy a name'
    ]


def test_templates_are_refused() -> None:
    found = problems("permit (principal == ?principal, action, resource);")
    assert len(found) == 1 and "template" in found[0] and "line 1" in found[0]


def test_obligations_on_a_forbid_or_without_value_are_refused() -> None:
    found = problems(
        """
        @id("f") @notify("customer") forbid (principal, action, resource);
        @id("p") @approval permit (principal, action, resource);
        @id("q") @redact("pd:EmailAddress,") permit (principal, action, resource);
        """
    )
    assert len(found) == 3
    assert found[0].startswith('policy "f" (policy0, line 2): @notify has no effect on a forbid')
    assert found[1].startswith('policy "p" (policy1, line 3): @approval("") has an empty value')
    assert found[2].startswith('policy "q" (policy2, line 4): @redact("pd:EmailAddress,")')


def test_policy_invalid_is_an_input_error_that_names_the_source() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        compile_("permit (principal, action, resource) when { 1 + };")
    assert isinstance(caught.value, InputError)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert caught.value.message.startswith("test.cedar: policy bundle has 1 problem:")
    assert caught.value.hint is not None and "nothing was deployed" in caught.value.hint


def test_an_empty_bundle_compiles_and_denies_everything(pdp: PolicyDecisionPoint) -> None:
    bundle = compile_("// nothing yet\n")
    assert pdp.decide(bundle, refund(Decimal("1"))).reason == "no_permit"


# Deciding --------------------------------------------------------------------------------------

OBLIGATIONS = """
    @id("refund-notify")
    @notify("customer")
    permit (principal is Accord::Service, action == Accord::Action::"payments.refund", resource)
    when { context has amount && context.amount.lessThanOrEqual(decimal("1000.0")) };

    @id("refund-large")
    @approval("supervisor")
    @redact("pd:EmailAddress, pd:TelephoneNumber")
    permit (principal is Accord::Service, action == Accord::Action::"payments.refund", resource)
    when { context has amount && context.amount.greaterThan(decimal("100.0")) };

    @approval("never-applies")
    permit (principal is Accord::Agent, action, resource);

    @id("high-risk")
    forbid (principal, action == Accord::Action::"payments.refund", resource)
    when { context has risk_tier && context.risk_tier == "high" };
"""


def test_obligations_come_from_every_determining_permit_and_no_other(
    pdp: PolicyDecisionPoint,
) -> None:
    bundle = compile_(OBLIGATIONS)
    small = pdp.decide(bundle, refund(Decimal("50")))
    assert small.allowed and small.reason == "permit"
    assert small.determining == ("refund-notify",)
    assert small.obligations == (Obligation("notify", "customer", "refund-notify"),)

    large = pdp.decide(bundle, refund(Decimal("500")))
    assert large.determining == ("refund-notify", "refund-large")
    assert large.obligations == (
        Obligation("notify", "customer", "refund-notify"),
        Obligation("approval", "supervisor", "refund-large"),
        Obligation("redact", "pd:EmailAddress", "refund-large"),
        Obligation("redact", "pd:TelephoneNumber", "refund-large"),
    )
    assert large.obligations_of("redact") == ("pd:EmailAddress", "pd:TelephoneNumber")


def test_a_deny_carries_no_obligations(pdp: PolicyDecisionPoint) -> None:
    bundle = compile_(OBLIGATIONS)
    denied = pdp.decide(bundle, refund(Decimal("500"), risk_tier="high"))
    assert not denied.allowed
    assert denied.reason == "forbid"
    assert denied.determining == ("high-risk",)
    assert denied.obligations == ()


def test_a_policy_without_id_is_named_by_its_position(pdp: PolicyDecisionPoint) -> None:
    bundle = compile_(OBLIGATIONS)
    decision = pdp.decide(bundle, PolicyRequest(AGENT, "orders.lookup", SUBJECT, {}))
    assert decision.allowed
    assert decision.determining == ("policy2",)
    assert decision.obligations == (Obligation("approval", "never-applies", "policy2"),)


def test_nothing_matching_is_no_permit(pdp: PolicyDecisionPoint) -> None:
    bundle = compile_(OBLIGATIONS)
    decision = pdp.decide(bundle, PolicyRequest(SERVICE, "orders.lookup", SUBJECT, {}))
    assert (decision.allowed, decision.reason, decision.determining) == (False, "no_permit", ())
    assert decision.bundle_version == 0


def test_the_bundle_version_is_recorded(pdp: PolicyDecisionPoint) -> None:
    bundle = dataclasses.replace(compile_(OBLIGATIONS), version=7)
    assert pdp.decide(bundle, refund(Decimal("5"))).bundle_version == 7


def test_example_amounts_follow_the_decimal_convention(
    pdp: PolicyDecisionPoint, retail: PolicyBundle
) -> None:
    assert pdp.decide(retail, refund(42.5)).determining == ("refund-up-to-100",)
    assert pdp.decide(retail, refund(Decimal("100"))).determining == ("refund-up-to-100",)
    over = pdp.decide(retail, refund(Decimal("100.0001")))
    assert over.obligations_of("approval") == ("supervisor",)
    # A float is a decimal even when integral, so a journey's number meets a decimal attribute.
    assert pdp.decide(retail, refund(100.0)).determining == ("refund-up-to-100",)
    # An int is a Long; a decimal comparison on it fails, and that denies.
    integral = pdp.decide(retail, refund(100))
    assert (integral.allowed, integral.reason) == (False, "error")
    assert "expected decimal, got long" in integral.errors[0]


# Failing closed --------------------------------------------------------------------------------

ERRORING = """
    @id("refunds")
    permit (principal, action == Accord::Action::"payments.refund", resource);

    @id("tier-check")
    forbid (principal, action, resource) when { resource.tier == "blocked" };
"""


def test_no_bundle_denies(pdp: PolicyDecisionPoint) -> None:
    decision = pdp.decide(None, refund(Decimal("1")))
    assert (decision.allowed, decision.reason, decision.bundle_version) == (
        False,
        "no_bundle",
        None,
    )
    assert decision.errors


def test_an_erroring_forbid_denies_where_cedar_alone_would_allow(
    pdp: PolicyDecisionPoint,
) -> None:
    policies = dedent(ERRORING)
    bundle = PolicyBundle.compile(policies, SCHEMA.replace("tier?: String", "tier: String"))
    request = refund(Decimal("5"))  # the subject has no ``tier``: the forbid cannot be evaluated
    cedar_request, entities = to_cedar(request)
    plain = cedarpy.is_authorized(cedar_request, policies, entities)
    assert plain.allowed and plain.diagnostics.errors  # Cedar skips the failing forbid

    decision = pdp.decide(bundle, request)
    assert (decision.allowed, decision.reason, decision.determining) == (False, "error", ())
    assert decision.errors == (
        "error while evaluating policy `tier-check` (policy1): "
        '`Accord::Subject::"cus_1"` does not have the attribute `tier`',
    )


def test_a_missing_context_attribute_denies(pdp: PolicyDecisionPoint) -> None:
    bundle = compile_(
        """
        @id("needs-purpose")
        permit (principal, action, resource) when { context.purpose == "x" };
        """,
        SCHEMA.replace("purpose?: String", "purpose: String"),
    )
    decision = pdp.decide(bundle, refund(Decimal("1")))
    assert decision.reason == "error" and not decision.allowed
    assert "needs-purpose" in decision.errors[0] and "purpose" in decision.errors[0]


@pytest.mark.parametrize(
    ("principal", "context"),
    [
        (Entity("Ser vice", "journey/refund", {"role": "journey"}), {}),
        (Entity("Service", "lone \ud800 surrogate", {"role": "journey"}), {}),
        (SERVICE, {"amount": float("nan")}),
        (SERVICE, {"amount": float("inf")}),
        (SERVICE, {"amount": Decimal("1e20")}),
        (SERVICE, {"count": 2**64}),
        (SERVICE, {"smuggled": {"__entity": {"type": "Accord::Service", "id": "root"}}}),
        (SERVICE, {"odd": object()}),
    ],
    ids=["bad-type", "bad-id", "nan", "inf", "huge-decimal", "huge-long", "escape", "object"],
)
def test_a_request_cedar_cannot_take_denies(
    pdp: PolicyDecisionPoint, principal: Entity, context: dict[str, Any]
) -> None:
    bundle = compile_('@id("all") permit (principal, action, resource);')
    decision = pdp.decide(bundle, PolicyRequest(principal, "orders.lookup", SUBJECT, context))
    assert (decision.allowed, decision.reason, decision.determining) == (False, "error", ())
    assert decision.errors


def test_two_different_entities_with_one_uid_deny(pdp: PolicyDecisionPoint) -> None:
    bundle = compile_("permit (principal, action, resource);")
    same_uid = Entity("Service", SERVICE.id, {"role": "other"})
    decision = pdp.decide(bundle, PolicyRequest(SERVICE, "orders.lookup", same_uid, {}))
    assert decision.reason == "error" and "duplicate entity" in decision.errors[0]
    itself = pdp.decide(bundle, PolicyRequest(SERVICE, "orders.lookup", SERVICE, {}))
    assert itself.allowed


def test_an_exception_inside_cedar_denies(pdp: PolicyDecisionPoint) -> None:
    broken = dataclasses.replace(compile_("permit (principal, action, resource);"), policy_set=1)
    decision = pdp.decide(broken, refund(Decimal("1")))
    assert (decision.allowed, decision.reason) == (False, "error")
    assert decision.errors[0].startswith("Cedar failed: ")


def test_a_changed_attribute_is_seen_although_parsed_entities_are_kept() -> None:
    bundle = compile_(
        '@id("journeys") permit (principal, action, resource) when { principal.role == "journey" };'
    )
    pdp = PolicyDecisionPoint(entity_cache_size=2)
    for _ in range(2):
        for role, allowed in (("journey", True), ("other", False), ("journey", True)):
            principal = dataclasses.replace(SERVICE, attrs={**SERVICE.attrs, "role": role})
            request = PolicyRequest(principal, "orders.lookup", SUBJECT, {})
            assert pdp.decide(bundle, request).allowed is allowed
        for index in range(3):  # more pairs than the cache holds
            other = Entity("Subject", f"cus_{index}", {"region": "eu"})
            assert pdp.decide(bundle, PolicyRequest(SERVICE, "orders.lookup", other, {})).allowed


def test_checking_requests_against_the_schema_denies_undeclared_context() -> None:
    bundle = compile_("permit (principal, action, resource);")
    request = refund(Decimal("1"), unknown="x")
    assert PolicyDecisionPoint().decide(bundle, request).allowed
    strict = PolicyDecisionPoint(validate_requests=True).decide(bundle, request)
    assert (strict.allowed, strict.reason) == (False, "error")
    assert PolicyDecisionPoint(validate_requests=True).decide(bundle, refund(Decimal("1"))).allowed


# Values ----------------------------------------------------------------------------------------


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def decimal(text: str) -> dict[str, Any]:
    return {"__extn": {"fn": "decimal", "arg": text}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (7, 7),
        ("text", "text"),
        (42.0, decimal("42.0000")),
        (-0.0, decimal("0.0000")),
        (12.5, decimal("12.5000")),
        (0.1 + 0.2, decimal("0.3000")),
        (-3.25, decimal("-3.2500")),
        (Decimal("100"), decimal("100.0000")),
        (Decimal("1.23456"), decimal("1.2346")),
        (Decimal("922337203685477.5807"), decimal("922337203685477.5807")),
        (Colour.RED, "red"),
        (Level.HIGH, 3),
        ({"a": 1, "b": None, "c": {"d": None, "e": "x"}}, {"a": 1, "c": {"e": "x"}}),
        ([1, "a"], [1, "a"]),
        ((1, 2.5), [1, decimal("2.5000")]),
        (frozenset({"x"}), ["x"]),
        (Entity("Person", "emp_1"), {"__entity": {"type": "Accord::Person", "id": "emp_1"}}),
    ],
)
def test_values_convert_to_cedar(value: Any, expected: Any) -> None:
    assert to_cedar_value(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("-inf"),
        Decimal("NaN"),
        2**63,
        -(2**63) - 1,
        1e300,
        Decimal("922337203685477.5808"),
        Decimal("1E+40"),
        [1, None],
        {1: "x"},
        {"__extn": {"fn": "ip", "arg": "10.0.0.1"}},
        b"bytes",
    ],
)
def test_values_without_a_cedar_equivalent_are_refused(value: Any) -> None:
    with pytest.raises(CedarValueError):
        to_cedar_value(value)


def test_a_request_becomes_a_cedar_request_and_its_entities() -> None:
    principal = Entity("Agent", "triage", {"model": "m1", "gone": None}, (("Team", "care"),))
    request = PolicyRequest(principal, "notify.send", SUBJECT, {"confidence": 0.9, "x": None})
    cedar_request, entities = to_cedar(request)
    assert cedar_request == {
        "principal": {"type": "Accord::Agent", "id": "triage"},
        "action": {"type": "Accord::Action", "id": "notify.send"},
        "resource": {"type": "Accord::Subject", "id": "cus_1"},
        "context": {"confidence": decimal("0.9000")},
    }
    assert entities == [
        {
            "uid": {"type": "Accord::Agent", "id": "triage"},
            "attrs": {"model": "m1"},
            "parents": [{"type": "Accord::Team", "id": "care"}],
        },
        {
            "uid": {"type": "Accord::Subject", "id": "cus_1"},
            "attrs": {"region": "eu"},
            "parents": [],
        },
    ]


def test_parents_make_group_membership(pdp: PolicyDecisionPoint) -> None:
    bundle = PolicyBundle.compile(
        'permit (principal in Accord::Team::"care", action, resource);',
        "namespace Accord { entity Team; entity Agent in [Team]; entity Subject;"
        ' action "orders.lookup" appliesTo { principal: [Agent], resource: [Subject] }; }',
    )
    member = Entity("Agent", "a", parents=(("Team", "care"),))
    outsider = Entity("Agent", "b")
    subject = Entity("Subject", "s")
    assert pdp.decide(bundle, PolicyRequest(member, "orders.lookup", subject)).allowed
    assert not pdp.decide(bundle, PolicyRequest(outsider, "orders.lookup", subject)).allowed


# Explaining ------------------------------------------------------------------------------------


def test_explain_shows_each_policy_match_and_what_decided(
    pdp: PolicyDecisionPoint, retail: PolicyBundle
) -> None:
    explanation = pdp.explain(retail, refund(Decimal("250"), risk_tier="high"))
    assert explanation.decision.reason == "forbid"
    traces = {t.id: t for t in explanation.policies}
    assert len(traces) == 17
    assert traces["no-refund-at-high-risk"].matched and traces["no-refund-at-high-risk"].determining
    supervisor = traces["refund-up-to-1000-with-supervisor"]
    assert supervisor.matched and not supervisor.determining
    assert supervisor.annotations["approval"] == "supervisor"
    assert supervisor.source.startswith('@id("refund-up-to-1000-with-supervisor")')
    assert traces["refund-up-to-100"].matched is False
    assert traces["journeys-read"].matched is False


def test_explain_reports_the_policy_that_failed(pdp: PolicyDecisionPoint) -> None:
    bundle = PolicyBundle.compile(dedent(ERRORING), SCHEMA.replace("tier?: String", "tier: String"))
    explanation = pdp.explain(bundle, refund(Decimal("5")))
    assert explanation.decision.reason == "error"
    refunds, tier_check = explanation.policies
    assert (refunds.matched, refunds.error) == (True, None)
    assert tier_check.matched is None and tier_check.error is not None
    assert "tier-check" in tier_check.error


def test_explain_without_bundle_or_with_an_unconvertible_request(
    pdp: PolicyDecisionPoint, retail: PolicyBundle
) -> None:
    assert pdp.explain(None, refund(Decimal("1"))).policies == ()
    explanation = pdp.explain(retail, refund(float("nan")))
    assert explanation.decision.reason == "error"
    assert {t.matched for t in explanation.policies} == {None}


# Test cases ------------------------------------------------------------------------------------


def test_the_example_cases_pass_against_the_example_bundle(retail: PolicyBundle) -> None:
    results = run_cases(retail, load_cases_file(EXAMPLES / "retail_cases.yaml"))
    assert len(results) >= 15
    assert [r.failures for r in results if not r.passed] == []


def test_a_failing_case_says_what_differs(retail: PolicyBundle) -> None:
    cases = load_cases(
        dedent(
            """
            cases:
              - name: wrong on purpose
                principal: {type: Service, id: journey/x, attrs: {role: journey, journey: x}}
                action: payments.refund
                resource: Subject::cus_1
                context: {amount: 250.0}
                decision: deny
                reason: forbid
                determining: [refund-up-to-100]
                obligations: [{notify: customer}]
            """
        )
    )
    (result,) = run_cases(retail, cases)
    assert not result.passed
    assert result.failures == (
        "expected deny, got allow",
        "expected reason forbid, got permit",
        "expected determining [refund-up-to-100], got [refund-up-to-1000-with-supervisor]",
        "expected obligations [notify: customer], got [approval: supervisor, notify: customer]",
    )


def test_case_files_read_decimal_points_as_decimals() -> None:
    (case,) = load_cases(
        "cases: [{principal: A::1, action: x, resource: B::2, "
        "context: {a: 100.0, b: 100, c: 1_000.5}, decision: deny}]"
    )
    assert case.request.context == {"a": Decimal("100.0"), "b": 100, "c": Decimal("1000.5")}
    assert case.name == "case 1"


def test_a_malformed_case_is_named_by_number_and_name() -> None:
    with pytest.raises(InputError) as caught:
        load_cases(
            "cases:\n"
            "  - {name: ok, principal: A::1, action: x, resource: B::2, decision: allow}\n"
            "  - {name: bad one, principal: A::1, action: x, resource: B::2, decision: maybe}\n",
            source_name="cases.yaml",
        )
    assert caught.value.message.startswith("cases.yaml: case 2 (bad one), field decision:")


def test_a_case_with_a_bad_entity_reference_is_named() -> None:
    with pytest.raises(InputError) as caught:
        load_cases("cases: [{principal: nobody, action: x, resource: B::2, decision: deny}]")
    assert caught.value.message == "case 1 (case 1): 'nobody' is not an entity reference"


def test_entity_references_split_at_the_first_separator() -> None:
    assert parse_entity_ref("Service::journey/a::b") == ("Service", "journey/a::b")
    with pytest.raises(InputError):
        parse_entity_ref("::x")


def _review(
    person: str, action: str, *, roles: tuple[str, ...], makers: list[str]
) -> PolicyRequest:
    return PolicyRequest(
        Entity(
            "Person",
            person,
            {"role": roles[0], "roles": list(roles), "skills": [], "person_id": person},
        ),
        action,
        Entity(
            "ReviewItem",
            "rev_1",
            {
                "queue": "supervisor",
                "kind": "policy_approval",
                "journey": "refund_request",
                "capability": "payments.refund",
                "roles": ["supervisor"],
                "makers": makers,
            },
        ),
        {"journey": "refund_request"},
    )


@pytest.mark.parametrize("action", ["review.approve", "review.override"])
def test_the_example_maker_checker_policy_refuses_self_approval(
    pdp: PolicyDecisionPoint, retail: PolicyBundle, action: str
) -> None:
    mine = pdp.decide(retail, _review("ann", action, roles=("supervisor",), makers=["ann"]))
    assert not mine.allowed and mine.determining == ("maker-checker",)
    other = pdp.decide(retail, _review("bob", action, roles=("supervisor",), makers=["ann"]))
    assert other.allowed
    edit = pdp.decide(retail, _review("ann", "review.edit", roles=("supervisor",), makers=["ann"]))
    assert edit.allowed


def test_the_example_policies_let_only_supervisors_reassign(
    pdp: PolicyDecisionPoint, retail: PolicyBundle
) -> None:
    assert pdp.decide(
        retail, _review("max", "review.reassign", roles=("supervisor",), makers=[])
    ).allowed
    refused = pdp.decide(retail, _review("sue", "review.reassign", roles=("support",), makers=[]))
    assert not refused.allowed and refused.reason == "no_permit"
