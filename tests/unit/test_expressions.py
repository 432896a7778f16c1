"""CEL expressions: compiling, evaluating, mapping semantics, and the variables lint knows about."""

from __future__ import annotations

from textwrap import dedent
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import Diagnostic, ExpressionError
from accord.journeys import (
    ExpressionSyntaxError,
    JourneyBuilder,
    compile_expression,
    compile_journey,
    lint,
    load_journey_text,
)


def test_an_expression_evaluates_against_variables() -> None:
    expression = compile_expression('input.amount * 2.0 > 100.0 && input.country in ["DE", "FR"]')
    assert expression.evaluate({"input": {"amount": 60.0, "country": "DE"}}) is True
    assert expression.evaluate({"input": {"amount": 40.0, "country": "DE"}}) is False


def test_an_expression_is_compiled_once_and_evaluated_many_times() -> None:
    expression = compile_expression("item * 10")
    assert [expression.evaluate({"item": i}) for i in range(3)] == [0, 10, 20]


def test_reading_a_missing_field_names_it_and_suggests_has() -> None:
    expression = compile_expression("input.reason")
    with pytest.raises(ExpressionError) as caught:
        expression.evaluate({"input": {}})
    assert caught.value.message == "expression `input.reason` read a missing field 'reason'"
    assert caught.value.hint is not None and "has(" in caught.value.hint
    assert caught.value.retryable is False


def test_has_guards_an_optional_field() -> None:
    expression = compile_expression('has(input.reason) ? input.reason : "none"')
    assert expression.evaluate({"input": {}}) == "none"
    assert expression.evaluate({"input": {"reason": "late"}}) == "late"


@pytest.mark.parametrize(
    ("source", "variables"),
    [
        ('input.amount > "x"', {"input": {"amount": 1.5}}),
        ("1 / input.zero", {"input": {"zero": 0}}),
        ("undefined_name + 1", {}),
    ],
)
def test_a_failing_expression_raises_a_non_retryable_expression_error(
    source: str, variables: dict[str, Any]
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source).evaluate(variables)
    assert caught.value.message.startswith(f"expression `{source}` failed: ")
    assert caught.value.retryable is False


def test_cel_does_not_convert_types_but_offers_conversions() -> None:
    assert compile_expression('string(input.n) + " items"').evaluate({"input": {"n": 3}}) == (
        "3 items"
    )
    assert compile_expression("int(input.n) + 1").evaluate({"input": {"n": 2.9}}) == 3
    assert compile_expression("double(input.n) / 2.0").evaluate({"input": {"n": 3}}) == 1.5


@pytest.mark.parametrize(
    ("source", "offset"),
    [("input.amount >", 14), ("a ==== b", 4), ("(input.x", 8), ("x.", 2), ("a + é", 4)],
)
def test_a_syntax_error_carries_the_offset_where_parsing_stopped(source: str, offset: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_expression(source)
    assert caught.value.offset == offset
    assert caught.value.source == source
    assert caught.value.message.startswith("CEL syntax error: ")


def test_a_syntax_error_offset_counts_earlier_lines() -> None:
    source = "input.a &&\n  input.b ||\n  )"
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_expression(source)
    assert source[caught.value.offset] == ")"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab1. +-*/()[]{}\"'=<>!&|?:,é\n")), max_size=20))
def test_any_text_compiles_or_reports_an_offset_inside_it(source: str) -> None:
    try:
        compile_expression(source)
    except ExpressionSyntaxError as exc:
        assert 0 <= exc.offset <= len(source)
        assert exc.message


@settings(max_examples=100, deadline=None)
@given(st.integers(-(2**31), 2**31), st.integers(-(2**31), 2**31), st.integers(1, 1000))
def test_integer_arithmetic_matches_python(a: int, b: int, c: int) -> None:
    expression = compile_expression("(a + b) * 2 - a % c")
    # CEL's % truncates toward zero, like math.fmod, not like Python's %
    remainder = abs(a) % c * (1 if a >= 0 else -1)
    assert expression.evaluate({"a": a, "b": b, "c": c}) == (a + b) * 2 - remainder


def test_mapping_strings_are_cel_and_other_scalars_are_literals() -> None:
    spec = (
        JourneyBuilder("mapping")
        .input(order_id="string", amount="number")
        .end(
            "done",
            output={
                "order": "input.order_id",
                "label": '"refund for " + input.order_id',
                "count": 3,
                "ratio": 0.5,
                "flag": True,
                "nothing": None,
                "nested": {"twice": "input.amount * 2.0", "fixed": 1},
                "listed": ["input.order_id", 7, {"x": "input.amount"}],
            },
        )
        .build()
    )
    mapping = compile_journey(spec).nodes["done"].mapping
    assert mapping is not None
    assert mapping.evaluate({"input": {"order_id": "o-1", "amount": 2.5}}) == {
        "order": "o-1",
        "label": "refund for o-1",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
        "nested": {"twice": 5.0, "fixed": 1},
        "listed": ["o-1", 7, {"x": 2.5}],
    }


def test_a_quoted_yaml_string_is_a_cel_string_literal() -> None:
    loaded = load_journey_text(
        dedent("""\
            journey: mapping
            blocks:
              - id: done
                kind: end
                output: {template: '"refund_issued"', number: '42', bare: 42}
            """)
    )
    mapping = compile_journey(loaded.spec).nodes["done"].mapping
    assert mapping is not None
    assert mapping.evaluate({}) == {"template": "refund_issued", "number": 42, "bare": 42}


def problems(text: str) -> list[Diagnostic]:
    loaded = load_journey_text(dedent(text), source_name="vars.yaml")
    return lint(loaded.spec, loaded.source_map)


def test_run_now_errors_input_and_steps_are_known_everywhere() -> None:
    assert (
        problems("""\
            journey: variables
            input:
              order_id: string
            blocks:
              - id: pause
                kind: wait
                timer: 1s
                on_error: done
              - id: done
                kind: end
                output:
                  run: run.id + run.journey + run.subject + run.tenant + string(run.version)
                  now: now + 1.0
                  error: 'has(errors.pause) ? errors.pause.message : ""'
                  order: input.order_id
                  fired: steps.pause.fired_at
            """)
        == []
    )


def test_run_has_only_its_documented_fields() -> None:
    (problem,) = problems("""\
        journey: variables
        blocks:
          - id: done
            kind: end
            output: {who: run.tenant_id}
        """)
    assert problem.message == "`run` has no field 'tenant_id' in `run.tenant_id`"
    assert problem.hint == "fields of run: id, journey, subject, tenant, version"
    assert (problem.line, problem.column) == (5, 19)


def test_approve_output_holds_the_decision() -> None:
    (problem,) = problems("""\
        journey: variables
        blocks:
          - id: review
            kind: approve
          - id: done
            kind: end
            output:
              by: steps.review.by
              decision: steps.review.decision
              reason: steps.review.reason
              payload: steps.review.data
              verdict: steps.review.verdict
        """)
    assert problem.message == "`steps.review` has no field 'verdict' in `steps.review.verdict`"
    assert (problem.line, problem.column) == (12, 16)


def test_call_output_holds_the_child_run() -> None:
    (problem,) = problems("""\
        journey: variables
        blocks:
          - id: child
            kind: call
            journey: other
          - id: done
            kind: end
            output:
              run: steps.child.run_id
              outcome: steps.child.outcome
              anything: steps.child.output.whatever
              wrong: steps.child.result
        """)
    assert problem.message == "`steps.child` has no field 'result' in `steps.child.result`"


def test_event_payloads_are_not_typed() -> None:
    assert (
        problems("""\
            journey: variables
            blocks:
              - id: paid
                kind: wait
                event: {name: payment_settled, correlation: run.subject}
              - id: done
                kind: end
                output: {amount: steps.paid.amount + 1}
            """)
        == []
    )


def test_text_inside_a_string_literal_is_not_read_as_a_name() -> None:
    assert (
        problems("""\
            journey: variables
            blocks:
              - id: done
                kind: end
                output:
                  note: '"see input.missing and steps.nothing in the log"'
                  quoted: "'single run.gone' + run.id"
            """)
        == []
    )


def test_string_methods_are_not_mistaken_for_fields() -> None:
    assert (
        problems("""\
            journey: variables
            input:
              email: string
            blocks:
              - id: route
                kind: choice
                choices:
                  - when: input.email.endsWith("@example.com") && input.email.size() > 3
                    next: done
                default: done
              - id: done
                kind: end
            """)
        == []
    )


def test_escalate_reason_must_be_text() -> None:
    (problem,) = problems("""\
        journey: variables
        input:
          amount: number
        blocks:
          - id: handoff
            kind: escalate
            reason: input.amount
        """)
    assert problem.message == "`input.amount` is number, but reason needs string"
    assert (problem.line, problem.column) == (7, 13)
    assert problem.hint


def test_wait_until_accepts_a_number_or_a_timestamp_string() -> None:
    assert (
        problems("""\
            journey: variables
            input:
              due: string
            blocks:
              - {id: later, kind: wait, until: now + 3600.0}
              - {id: due, kind: wait, until: input.due}
            """)
        == []
    )
