"""Decision tables: unary-test cells, hit policies and their errors, and what lint says about them.

Tables are built with the public builder, compiled with :func:`compile_journey`, and evaluated the
way the runtime does: against the run's variables.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import DecisionError, Diagnostic
from accord.journeys import JourneyBuilder, compile_journey, lint, load_journey_text
from tests.unit.diagnostics import assert_error_at, only

Evaluate = Callable[..., tuple[Any, list[int]]]


def table(
    rules: list[dict[str, Any]],
    *,
    hit_policy: str = "unique",
    default: dict[str, Any] | None = None,
) -> Evaluate:
    """A decide block on columns ``amount`` (number), ``count`` (integer) and ``country``."""
    spec = (
        JourneyBuilder("tables")
        .input(amount="number", count="integer", country="string", vip="boolean")
        .decide(
            "table",
            inputs={
                "amount": "input.amount",
                "count": "input.count",
                "country": "input.country",
                "vip": "input.vip",
            },
            rules=rules,
            hit_policy=hit_policy,
            default=default,
        )
        .build()
    )
    compiled = compile_journey(spec).nodes["table"].table
    assert compiled is not None

    def evaluate(**values: Any) -> tuple[Any, list[int]]:
        row = {"amount": 0.0, "count": 0, "country": "DE", "vip": False, **values}
        return compiled.evaluate({"input": row})

    return evaluate


def matches(column: str, cell: Any, value: Any) -> bool:
    evaluate = table([{"when": {column: cell}, "then": {"hit": True}}], default={"hit": False})
    result, _ = evaluate(**{column: value})
    return bool(result["hit"])


@pytest.mark.parametrize(
    ("cell", "value", "expected"),
    [
        ("> 100", 100, False),
        ("> 100", 100.5, True),
        (">= 100", 100, True),
        ("< 0", -0.5, True),
        ("<= 0", 0, True),
        ("== 5", 5.0, True),
        ("!= 5", 5, False),
        (">100", 101, True),
        ("[1..10]", 1, True),
        ("[1..10]", 10, True),
        ("[1..10]", 10.5, False),
        ("(1..10]", 1, False),
        ("(1..10]", 1.01, True),
        ("[1..10)", 10, False),
        ("[1..10)", 9.99, True),
        ("]1..10[", 1, False),
        ("]1..10[", 10, False),
        ("]1..10[", 5, True),
        ("[ 1 .. 10 ]", 5, True),
        ("[-5..-1]", -3, True),
        ("[0.5..1.5]", 1.5, True),
        ("not(> 5)", 6, False),
        ("not(> 5)", 5, True),
        (5, 5.0, True),
        (5, 6, False),
        ("-", 123456, True),
        ("", -1, True),
        (None, 0, True),
    ],
)
def test_number_cells(cell: Any, value: float, expected: bool) -> None:
    assert matches("amount", cell, value) is expected


@pytest.mark.parametrize(
    ("cell", "value", "expected"),
    [
        ('"DE"', "DE", True),
        ('"DE"', "de", False),
        ('in ["DE", "FR"]', "FR", True),
        ('in ["DE", "FR"]', "NO", False),
        (["DE", "FR"], "DE", True),
        (["DE", "FR"], "IT", False),
        ('not("DE")', "FR", True),
        ('not("DE")', "DE", False),
        ('?.startsWith("D")', "DK", True),
        ("size(?) == 3", "GBR", True),
    ],
)
def test_text_cells(cell: Any, value: str, expected: bool) -> None:
    assert matches("country", cell, value) is expected


@pytest.mark.parametrize(
    ("cell", "value", "expected"),
    [("? % 2 == 0", 4, True), ("? % 2 == 0", 3, False), ("[1..3]", 3, True)],
)
def test_placeholder_cells(cell: str, value: int, expected: bool) -> None:
    assert matches("count", cell, value) is expected


@pytest.mark.parametrize(("cell", "value", "expected"), [(True, True, True), (True, False, False)])
def test_boolean_cells(cell: bool, value: bool, expected: bool) -> None:
    assert matches("vip", cell, value) is expected


def test_a_rule_matches_only_when_every_cell_matches() -> None:
    evaluate = table(
        [{"when": {"amount": "> 100", "country": '"DE"'}, "then": {"hit": True}}],
        default={"hit": False},
    )
    assert evaluate(amount=200, country="DE")[0] == {"hit": True}
    assert evaluate(amount=200, country="FR")[0] == {"hit": False}
    assert evaluate(amount=50, country="DE")[0] == {"hit": False}


def test_a_rule_without_cells_always_matches() -> None:
    assert table([{"then": {"hit": True}}])() == ({"hit": True}, [0])


COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
NUMBERS = st.integers(-1000, 1000) | st.floats(-1000, 1000, allow_nan=False, width=32).map(float)


@st.composite
def number_cells(draw: st.DrawFn) -> tuple[Any, Callable[[float], bool]]:
    """A cell and the Python predicate it should mean."""
    form = draw(st.sampled_from(["comparison", "range", "literal", "list", "negated"]))
    if form == "comparison":
        op = draw(st.sampled_from(sorted(COMPARISONS)))
        bound = draw(NUMBERS)
        return f"{op} {bound!r}", lambda x: COMPARISONS[op](x, bound)
    if form == "range":
        low, high = sorted((draw(NUMBERS), draw(NUMBERS)))
        opening = draw(st.sampled_from(["[", "(", "]"]))
        closing = draw(st.sampled_from(["]", ")", "["]))
        low_ok = operator.ge if opening == "[" else operator.gt
        high_ok = operator.le if closing == "]" else operator.lt
        return (
            f"{opening}{low!r}..{high!r}{closing}",
            lambda x: low_ok(x, low) and high_ok(x, high),
        )
    if form == "literal":
        literal = draw(NUMBERS)
        return literal, lambda x: x == literal
    if form == "list":
        options = draw(st.lists(st.integers(-5, 5), min_size=1, max_size=4))
        return options, lambda x: x in options
    op = draw(st.sampled_from(sorted(COMPARISONS)))
    bound = draw(NUMBERS)
    return f"not({op} {bound!r})", lambda x: not COMPARISONS[op](x, bound)


@settings(max_examples=150, deadline=None)
@given(number_cells(), NUMBERS | st.integers(-5, 5))
def test_number_cells_mean_what_python_means(
    cell_and_meaning: tuple[Any, Callable[[float], bool]], value: float
) -> None:
    cell, meaning = cell_and_meaning
    assert matches("amount", cell, value) is meaning(value), f"cell {cell!r} with {value!r}"


TIERS = [
    {"when": {"amount": "<= 100"}, "then": {"tier": "small"}, "priority": 1},
    {"when": {"amount": "> 50"}, "then": {"tier": "medium"}, "priority": 3},
    {"when": {"amount": "> 1000"}, "then": {"tier": "large"}, "priority": 3},
]


def test_unique_returns_the_one_matching_row() -> None:
    assert table(TIERS)(amount=10) == ({"tier": "small"}, [0])


def test_unique_with_two_matches_is_an_error_naming_the_rules() -> None:
    with pytest.raises(DecisionError) as caught:
        table(TIERS)(amount=75)
    assert "matched rules [1, 2]" in caught.value.message
    assert caught.value.hint is not None and "hit_policy" in caught.value.hint
    assert caught.value.retryable is False


def test_no_match_without_default_is_an_error() -> None:
    rules = [{"when": {"amount": "> 100"}, "then": {"tier": "large"}}]
    for policy in ("unique", "first", "priority", "any"):
        with pytest.raises(DecisionError) as caught:
            table(rules, hit_policy=policy)(amount=5)
        assert "matched no rule" in caught.value.message
        assert caught.value.hint is not None and "default" in caught.value.hint


def test_no_match_with_default_returns_the_default() -> None:
    rules = [{"when": {"amount": "> 100"}, "then": {"tier": "large"}}]
    for policy in ("unique", "first", "priority", "any"):
        assert table(rules, hit_policy=policy, default={"tier": "none"})(amount=5) == (
            {"tier": "none"},
            [],
        )


def test_first_returns_the_earliest_matching_rule() -> None:
    assert table(TIERS, hit_policy="first")(amount=2000) == ({"tier": "medium"}, [1])


def test_priority_returns_the_highest_priority_and_the_earliest_on_a_tie() -> None:
    evaluate = table(TIERS, hit_policy="priority")
    assert evaluate(amount=75) == ({"tier": "medium"}, [1])
    assert evaluate(amount=2000) == ({"tier": "medium"}, [1])
    assert evaluate(amount=10) == ({"tier": "small"}, [0])


def test_any_accepts_overlapping_rules_that_agree() -> None:
    rules = [
        {"when": {"amount": "> 10"}, "then": {"review": True}},
        {"when": {"country": '"NO"'}, "then": {"review": True}},
    ]
    assert table(rules, hit_policy="any")(amount=20, country="NO") == ({"review": True}, [0, 1])


def test_any_with_conflicting_outputs_is_an_error() -> None:
    with pytest.raises(DecisionError) as caught:
        table(TIERS, hit_policy="any")(amount=75)
    assert "different outputs: [1, 2]" in caught.value.message
    assert caught.value.hint is not None


@pytest.mark.parametrize("policy", ["collect", "rule_order"])
def test_collect_and_rule_order_return_every_match_in_rule_order(policy: str) -> None:
    evaluate = table(TIERS, hit_policy=policy, default={"tier": "unused"})
    assert evaluate(amount=2000) == ([{"tier": "medium"}, {"tier": "large"}], [1, 2])
    assert evaluate(amount=-1) == ([{"tier": "small"}], [0])


@pytest.mark.parametrize("policy", ["collect", "rule_order"])
def test_collect_and_rule_order_give_an_empty_list_when_nothing_matches(policy: str) -> None:
    rules = [{"when": {"amount": "> 100"}, "then": {"tier": "large"}}]
    assert table(rules, hit_policy=policy)(amount=1) == ([], [])


def test_a_cell_that_is_not_boolean_does_not_match() -> None:
    assert matches("amount", "? + 1.0", 5.0) is False


RANGES = st.tuples(st.integers(0, 10), st.integers(0, 10)).map(sorted)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.tuples(RANGES, st.integers(0, 3), st.sampled_from(["a", "b", "c"])),
        min_size=1,
        max_size=5,
    ),
    st.integers(-1, 11),
    st.sampled_from(["unique", "first", "priority", "any", "collect", "rule_order"]),
)
def test_hit_policies_agree_with_a_reference_model(
    rows: list[tuple[list[int], int, str]], value: int, policy: str
) -> None:
    rules = [
        {"when": {"count": f"[{low}..{high}]"}, "then": {"out": out}, "priority": priority}
        for (low, high), priority, out in rows
    ]
    hits = [i for i, ((low, high), _, _) in enumerate(rows) if low <= value <= high]
    outputs = [{"out": rows[i][2]} for i in hits]
    evaluate = table(rules, hit_policy=policy, default={"out": "default"})

    expected: Any
    if policy in ("collect", "rule_order"):
        expected = (outputs, hits)
    elif not hits:
        expected = ({"out": "default"}, [])
    elif policy == "first":
        expected = (outputs[0], hits[:1])
    elif policy == "priority":
        best = max(hits, key=lambda i: (rows[i][1], -i))
        expected = ({"out": rows[best][2]}, [best])
    elif (policy == "unique" and len(hits) > 1) or (
        policy == "any" and any(o != outputs[0] for o in outputs)
    ):
        expected = DecisionError
    else:
        expected = (outputs[0], hits)

    if expected is DecisionError:
        with pytest.raises(DecisionError):
            evaluate(count=value)
    else:
        assert evaluate(count=value) == expected


FILE = "table.yaml"


def lint_table(text: str) -> list[Diagnostic]:
    loaded = load_journey_text(dedent(text), source_name=FILE)
    return lint(loaded.spec, loaded.source_map)


def assert_at(diagnostic: Diagnostic, line: int, column: int) -> None:
    assert_error_at(diagnostic, FILE, line, column)


def test_a_cell_that_does_not_parse_is_reported_at_the_cell() -> None:
    problem = only(
        lint_table("""\
            journey: tiers
            input:
              amount: number
            blocks:
              - id: tier
                kind: decide
                inputs: {amount: input.amount}
                rules:
                  - when: {amount: "[1..]"}
                    then: {tier: small}
            """)
    )
    assert problem.message.startswith("cell '[1..]' is not a valid test: CEL syntax error")
    assert problem.path == "blocks[0].rules[0].when.amount"
    assert_at(problem, 9, 25)


def test_a_cell_for_an_unknown_column_lists_the_columns() -> None:
    problem = only(
        lint_table("""\
            journey: tiers
            input:
              amount: number
            blocks:
              - id: tier
                kind: decide
                inputs: {amount: input.amount}
                rules:
                  - when: {amount: "> 1", country: '"DE"'}
                    then: {tier: small}
            """)
    )
    assert problem.message == "rule tests 'country', which is not an input column"
    assert problem.hint == "columns: amount"
    assert_at(problem, 9, 41)


def test_unquoted_text_in_a_cell_is_an_unknown_name() -> None:
    problem = only(
        lint_table("""\
            journey: tiers
            input:
              status: string
            blocks:
              - id: tier
                kind: decide
                inputs: {status: input.status}
                rules:
                  - when: {status: cancelled}
                    then: {tier: none}
            """)
    )
    assert (
        problem.message == "cell 'cancelled': unknown name 'cancelled' in `status == (cancelled)`"
    )
    assert_at(problem, 9, 24)


def test_a_cell_cannot_read_run_variables() -> None:
    problem = only(
        lint_table("""\
            journey: tiers
            input:
              amount: number
              limit: number
            blocks:
              - id: tier
                kind: decide
                inputs: {amount: input.amount, limit: input.limit}
                rules:
                  - when: {amount: "> input.limit"}
                    then: {over: true}
                  - when: {amount: "> limit"}
                    then: {over: true}
            """)
    )
    assert (
        problem.message == "cell '> input.limit': unknown name 'input' in `amount > (input.limit)`"
    )
    assert_at(problem, 10, 25)


def test_a_cell_comparing_text_with_a_number_is_a_type_error() -> None:
    problem = only(
        lint_table("""\
            journey: tiers
            input:
              country: string
            blocks:
              - id: tier
                kind: decide
                inputs: {country: input.country}
                rules:
                  - when: {country: "> 5"}
                    then: {tier: none}
            """)
    )
    assert problem.message.startswith("cell '> 5': type error in `country > (5)`")
    assert_at(problem, 9, 26)


def test_rules_must_give_the_same_outputs() -> None:
    problem = only(
        lint_table("""\
            journey: tiers
            input:
              amount: number
            blocks:
              - id: tier
                kind: decide
                inputs: {amount: input.amount}
                rules:
                  - when: {amount: "> 1"}
                    then: {tier: big}
                  - when: {amount: "<= 1"}
                    then: {size: small}
            """)
    )
    assert problem.message == "rules set different output columns: size / tier"
    assert_at(problem, 9, 7)


def test_later_blocks_see_the_table_outputs() -> None:
    problem = only(
        lint_table("""\
            journey: tiers
            input:
              amount: number
            blocks:
              - id: tier
                kind: decide
                inputs: {amount: input.amount}
                rules:
                  - when: {amount: "> 1"}
                    then: {tier: big}
              - id: done
                kind: end
                output: {tier: steps.tier.tier, size: steps.tier.size}
            """)
    )
    assert problem.message == "`steps.tier` has no field 'size' in `steps.tier.size`"
    assert problem.hint == "fields of steps.tier: tier"
    assert_at(problem, 13, 43)
