"""Triggers in the journey language: the model, lint located at the culprit, the JSON Schema."""

from __future__ import annotations

import json
from textwrap import dedent

from accord.errors import Diagnostic
from accord.journeys import (
    JourneySpec,
    journey_digest,
    journey_json_schema,
    lint,
    load_journey_text,
)
from tests.unit.diagnostics import assert_error_at, only

FILE = "journey.yaml"

HEAD = """\
journey: fulfil
input: {order: string, amount: integer, note: {type: string, required: false}}
"""
BLOCKS = """\
blocks:
  - id: paid
    kind: wait
    event: {name: payment_received, correlation: input.order}
  - {id: ok, kind: end}
"""


def problems(triggers: str) -> list[Diagnostic]:
    loaded = load_journey_text(HEAD + dedent(triggers) + BLOCKS, source_name=FILE)
    return lint(loaded.spec, loaded.source_map)


def test_a_journey_with_start_and_signal_triggers_lints_clean() -> None:
    assert (
        problems("""\
            triggers:
              - event: com.shop.order.placed
                source: /shop
                when: data.amount > 10 && event.source == "/shop"
                start:
                  subject: data.customer
                  input: {order: data.order_id, amount: data.amount}
                  idempotency: data.order_id
              - event: com.shop.payment.received
                signal: {name: payment_received, correlation: data.order_id}
            """)
        == []
    )


def test_a_cel_syntax_error_in_when_is_located_in_the_expression() -> None:
    problem = only(
        problems("""\
            triggers:
              - event: com.shop.order.placed
                when: data.amount >
                start: {input: {order: data.order_id, amount: data.amount}}
            """)
    )
    assert problem.message.startswith("CEL syntax error")
    assert_error_at(problem, FILE, 5, 24)


def test_when_must_be_a_boolean() -> None:
    problem = only(
        problems("""\
            triggers:
              - event: com.shop.order.placed
                when: '"yes"'
                start: {input: {order: data.order_id, amount: data.amount}}
            """)
    )
    assert "when needs boolean" in problem.message
    assert_error_at(problem, FILE, 5, 12)


def test_the_start_input_must_cover_the_required_input() -> None:
    problem = only(
        problems("""\
            triggers:
              - event: com.shop.order.placed
                start:
                  input: {order: data.order_id}
            """)
    )
    assert problem.message == "journey 'fulfil' needs input field 'amount'"
    assert_error_at(problem, FILE, 6, 14)


def test_the_start_input_may_not_invent_fields() -> None:
    problem = only(
        problems("""\
            triggers:
              - event: com.shop.order.placed
                start:
                  input: {order: data.order_id, amount: data.amount, colour: data.colour}
            """)
    )
    assert problem.message == "journey 'fulfil' has no input field 'colour'"
    assert problem.line == 6


def test_expressions_see_only_the_event_attributes_and_data() -> None:
    problem = only(
        problems("""\
            triggers:
              - event: com.shop.order.placed
                start: {input: {order: event.idd, amount: 1}}
            """)
    )
    assert "`event` has no field 'idd'" in problem.message
    assert problem.hint is not None and "source" in problem.hint


def test_a_signal_must_name_an_event_the_journey_waits_for() -> None:
    problem = only(
        problems("""\
            triggers:
              - event: com.shop.payment.received
                signal: {name: payment_recieved, correlation: data.order_id}
            """)
    )
    assert "no wait block of this journey waits for that event" in problem.message
    assert problem.hint == "did you mean 'payment_received'?"
    assert_error_at(problem, FILE, 5, 20)


def test_a_trigger_does_exactly_one_thing() -> None:
    neither, both = problems("""\
        triggers:
          - event: com.shop.x
          - event: com.shop.y
            start: {input: {order: data.o, amount: 1}}
            signal: {name: payment_received, correlation: data.o}
        """)
    assert "needs exactly one of start or signal (has none)" in neither.message
    assert "(has start, signal)" in both.message
    assert_error_at(neither, FILE, 4, 5)


def test_journeys_without_triggers_keep_their_digest() -> None:
    spec = JourneySpec.model_validate({"journey": "j", "blocks": [{"id": "done", "kind": "end"}]})
    with_empty = JourneySpec.model_validate(
        {"journey": "j", "blocks": [{"id": "done", "kind": "end"}], "triggers": []}
    )
    assert journey_digest(spec) == journey_digest(with_empty)
    assert "triggers" not in json.dumps(spec.model_dump(mode="json", exclude_defaults=True))


def test_the_json_schema_describes_triggers() -> None:
    schema = journey_json_schema()
    assert schema["properties"]["triggers"]["items"] == {"$ref": "#/$defs/Trigger"}
    trigger = schema["$defs"]["Trigger"]
    assert set(trigger["properties"]) == {
        "event",
        "source",
        "when",
        "start",
        "signal",
        "description",
    }
    assert trigger["required"] == ["event"]
