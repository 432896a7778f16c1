"""The journey language: loading YAML, the implicit ``next`` rule, lint diagnostics, the builder.

Every bad-input test writes a small YAML document and asserts the exact file, line and column the
diagnostic points at (1-based, as an editor shows them) and that it carries a hint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from accord.connectors import CallContext, CapabilityRegistry
from accord.errors import ContractViolation, Diagnostic, JourneyInvalid
from accord.journeys import (
    BLOCK_KINDS,
    ApproveBlock,
    FlowBuilder,
    JourneyBuilder,
    JourneySpec,
    LoadedJourney,
    MapBlock,
    ParallelBlock,
    SourceMap,
    compile_journey,
    journey_json_schema,
    lint,
    load_journey_file,
    load_journey_text,
)
from accord.sandbox import register as register_sandbox
from tests.unit.diagnostics import assert_error_at, only

ROOT = Path(__file__).resolve().parents[2]

FILE = "journey.yaml"


def load(text: str) -> LoadedJourney:
    return load_journey_text(dedent(text), source_name=FILE)


def load_problems(text: str) -> list[Diagnostic]:
    with pytest.raises(JourneyInvalid) as caught:
        load(text)
    return caught.value.diagnostics


def lint_problems(text: str, *, capabilities: CapabilityRegistry | None = None) -> list[Diagnostic]:
    loaded = load(text)
    return lint(loaded.spec, loaded.source_map, capabilities=capabilities)


def assert_at(diagnostic: Diagnostic, line: int, column: int) -> None:
    assert_error_at(diagnostic, FILE, line, column)


class OrderQuery(BaseModel):
    order_id: str


class Item(BaseModel):
    sku: str
    quantity: int


class Order(BaseModel):
    order_id: str
    total: float
    status: str
    items: list[Item]


class Reservation(BaseModel):
    sku: str
    quantity: int
    note: str = ""


class Reserved(BaseModel):
    reservation_id: str


@pytest.fixture(scope="module")
def shop() -> CapabilityRegistry:
    registry = CapabilityRegistry()

    @registry.capability("orders.lookup")
    def lookup(request: OrderQuery, ctx: CallContext) -> Order:
        raise AssertionError("lint never calls a capability")

    @registry.capability("stock.reserve", side_effect="write")
    def reserve(request: Reservation, ctx: CallContext) -> Reserved:
        raise AssertionError("lint never calls a capability")

    return registry


def test_bad_indentation_is_reported_where_the_parser_stopped() -> None:
    problem = only(
        load_problems("""\
            journey: refund
            blocks:
              - id: lookup
                kind: task
               capability: orders.lookup
            """)
    )
    assert problem.message.startswith("invalid YAML")
    assert_at(problem, 5, 4)


def test_unclosed_flow_list_is_reported_at_the_end_of_input() -> None:
    problem = only(load_problems("journey: refund\nblocks: [\n"))
    assert problem.message.startswith("invalid YAML")
    assert_at(problem, 3, 1)


def test_tab_indentation_is_reported_on_its_line() -> None:
    problem = only(load_problems("journey: refund\nblocks:\n  - id: a\n\tkind: end\n"))
    assert "'\\t'" in problem.message
    assert_at(problem, 4, 1)


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n"])
def test_an_empty_file_is_rejected(text: str) -> None:
    problem = only(load_problems(text))
    assert problem.message == "the file is empty"
    assert_at(problem, 1, 1)


def test_a_file_that_is_not_a_mapping_is_rejected() -> None:
    problem = only(load_problems("- id: a\n  kind: end\n"))
    assert "mapping at the top level" in problem.message
    assert_at(problem, 1, 1)


def test_an_alias_inside_its_own_anchor_is_rejected_instead_of_recursing() -> None:
    problem = only(
        load_problems("""\
            journey: refund
            blocks:
              - &block
                id: done
                kind: end
                output: {again: *block}
            """)
    )
    assert "alias" in problem.message
    assert problem.path == "blocks[0].output.again"
    assert_at(problem, 6, 13)


def test_aliases_may_repeat_a_value() -> None:
    loaded = load("""\
        journey: refund
        blocks:
          - id: first
            kind: task
            capability: orders.lookup
            retry: &patient {max_attempts: 9}
          - id: second
            kind: task
            capability: orders.lookup
            retry: *patient
        """)
    first, second = loaded.spec.blocks
    assert first.retry == second.retry
    assert second.retry is not None and second.retry.max_attempts == 9


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(JourneyInvalid) as caught:
        load_journey_file(missing)
    problem = only(caught.value.diagnostics)
    assert problem.file == str(missing)
    assert problem.hint == "check the path"


def test_load_journey_file_names_diagnostics_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("journey: refund\nblocks:\n  - id: a\n    kind: ned\n", encoding="utf-8")
    with pytest.raises(JourneyInvalid) as caught:
        load_journey_file(path)
    problem = only(caught.value.diagnostics)
    assert (problem.file, problem.line, problem.column) == (str(path), 4, 11)
    assert f"{path}:4:11: error: unknown block kind 'ned'" in str(caught.value)


def test_unknown_block_kind_suggests_the_closest_kind() -> None:
    problem = only(
        load_problems("""\
            journey: refund
            blocks:
              - id: lookup
                kind: tsak
                capability: orders.lookup
            """)
    )
    assert problem.message == "unknown block kind 'tsak'"
    assert problem.path == "blocks[0].kind"
    assert problem.hint is not None and problem.hint.startswith("did you mean 'task'?")
    assert_at(problem, 4, 11)


def test_unknown_block_kinds_are_found_inside_branches_and_map_bodies() -> None:
    problems = load_problems("""\
        journey: refund
        blocks:
          - id: both
            kind: parallel
            branches:
              - blocks:
                  - id: left
                    kind: robot
          - id: each
            kind: map
            items: input.items
            do:
              blocks:
                - id: one
                  kind: wiat
        """)
    assert [p.message for p in problems] == [
        "unknown block kind 'robot'",
        "unknown block kind 'wiat'",
    ]
    assert_at(problems[0], 8, 19)
    assert_at(problems[1], 15, 17)
    assert problems[1].hint is not None and "did you mean 'wait'?" in problems[1].hint


def test_block_without_kind_lists_the_kinds() -> None:
    problem = only(
        load_problems("""\
            journey: refund
            blocks:
              - id: lookup
                capability: orders.lookup
            """)
    )
    assert problem.message == "block 'lookup' has no 'kind'"
    assert problem.hint is not None and "task" in problem.hint and "escalate" in problem.hint
    assert_at(problem, 3, 5)


def test_unknown_field_of_a_block_is_located_at_its_value() -> None:
    problem = only(
        load_problems("""\
            journey: refund
            blocks:
              - id: lookup
                kind: task
                capability: orders.lookup
                retries: 3
            """)
    )
    assert problem.message == "unknown field 'retries'"
    assert problem.path == "blocks[0].retries"
    assert_at(problem, 6, 14)


def test_missing_required_field_is_located_at_its_block() -> None:
    problem = only(
        load_problems("""\
            journey: refund
            blocks:
              - id: lookup
                kind: task
            """)
    )
    assert problem.message == "missing required field 'capability'"
    assert_at(problem, 3, 5)


def test_block_id_must_be_an_identifier() -> None:
    problem = only(
        load_problems("""\
            journey: refund
            blocks:
              - id: look-up
                kind: end
            """)
    )
    assert problem.message == "'id' has an invalid value 'look-up'"
    assert_at(problem, 3, 9)


def test_duplicate_yaml_key_points_at_the_second_and_names_the_first() -> None:
    problem = only(
        load_problems("""\
            journey: refund
            blocks:
              - id: pause
                kind: wait
                timer: 1h
                timer: 2h
            """)
    )
    assert problem.message == "duplicate key 'timer'"
    assert problem.hint is not None and "line 5" in problem.hint
    assert_at(problem, 6, 5)


def test_duplicate_block_ids_are_found_across_flows() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: split
                kind: parallel
                branches:
                  - blocks:
                      - id: done
                        kind: wait
                        timer: 1s
              - id: done
                kind: end
            """)
    )
    assert problem.message == "block id 'done' is used twice (first on line 7)"
    assert_at(problem, 10, 9)


def test_on_keys_and_yes_no_are_strings_under_yaml_1_2() -> None:
    loaded = load("""\
        journey: refund
        input:
          country: {type: string, required: false, default: NO}
        blocks:
          - id: review
            kind: approve
            on: {yes: paid, no: declined, on: paid, off: declined}
          - id: paid
            kind: end
          - id: declined
            kind: end
        """)
    review = loaded.spec.blocks[0]
    assert isinstance(review, ApproveBlock)
    assert review.on == {"yes": "paid", "no": "declined", "on": "paid", "off": "declined"}
    assert loaded.spec.input["country"].default == "NO"
    assert loaded.spec.input["country"].required is False
    assert lint(loaded.spec, loaded.source_map) == []


def test_blocks_without_next_continue_with_the_following_block() -> None:
    spec = load("""\
        journey: refund
        blocks:
          - id: first
            kind: wait
            timer: 1s
          - id: route
            kind: choice
            choices: [{when: "true", next: third}]
            default: last
          - id: third
            kind: wait
            timer: 1s
            next: null
          - id: jump
            kind: wait
            timer: 1s
            next: last
          - id: last
            kind: end
        """).spec
    assert [b.next for b in spec.blocks] == ["route", None, None, "last", None]


def test_the_implicit_next_rule_applies_inside_branches_and_map_bodies() -> None:
    spec = load("""\
        journey: refund
        blocks:
          - id: split
            kind: parallel
            branches:
              - blocks:
                  - {id: a1, kind: wait, timer: 1s}
                  - {id: a2, kind: wait, timer: 1s}
          - id: each
            kind: map
            items: "[1, 2]"
            do:
              blocks:
                - {id: b1, kind: wait, timer: 1s}
                - {id: b2, kind: wait, timer: 1s}
        """).spec
    split, each = spec.blocks
    assert split.next == "each" and each.next is None
    assert isinstance(split, ParallelBlock) and isinstance(each, MapBlock)
    assert [b.next for b in split.branches[0].blocks] == ["a2", None]
    assert [b.next for b in each.do.blocks] == ["b2", None]


def test_an_explicit_null_next_ends_the_flow_and_leaves_later_blocks_unreachable() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: pause
                kind: wait
                timer: 1s
                next: null
              - id: orphan
                kind: end
            """)
    )
    assert problem.message == "block 'orphan' can never be reached"
    assert_at(problem, 7, 9)


def test_next_to_a_missing_block_suggests_a_close_name() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: pause
                kind: wait
                timer: 1s
                next: refnud
              - id: refund
                kind: end
            """)
    )
    assert problem.message == "next of 'pause' points to 'refnud', which does not exist"
    assert problem.hint == "did you mean 'refund'?"
    assert_at(problem, 6, 11)


@pytest.mark.parametrize(
    ("field", "yaml_field", "line", "column"),
    [
        ("on_error", "on_error: nowhere", 6, 15),
        ("on_timeout", "on_timeout: nowhere", 6, 17),
        ("on.reject", "on: {reject: nowhere}", 6, 18),
    ],
)
def test_every_routing_field_is_checked(
    field: str, yaml_field: str, line: int, column: int
) -> None:
    problem = only(
        lint_problems(f"""\
            journey: refund
            blocks:
              - id: review
                kind: approve
                timeout: 1h
                {yaml_field}
              - id: done
                kind: end
            """)
    )
    assert problem.message == f"{field} of 'review' points to 'nowhere', which does not exist"
    assert_at(problem, line, column)


def test_choice_targets_are_checked() -> None:
    problems = lint_problems("""\
        journey: refund
        blocks:
          - id: route
            kind: choice
            choices:
              - when: "true"
                next: gone
            default: missing
          - id: done
            kind: end
        """)
    assert [(p.path, p.line, p.column) for p in problems] == [
        ("blocks[0].choices[0].next", 7, 15),
        ("blocks[0].default", 8, 14),
    ]


def test_next_from_a_branch_to_the_top_level_flow_is_rejected() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: split
                kind: parallel
                branches:
                  - blocks:
                      - id: inner
                        kind: wait
                        timer: 1s
                        next: done
              - id: done
                kind: end
            """)
    )
    assert problem.message == "next of 'inner' points to 'done', which belongs to another flow"
    assert_at(problem, 10, 19)


def test_next_from_the_top_level_into_a_map_body_is_rejected() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: each
                kind: map
                items: "[1]"
                do:
                  blocks:
                    - {id: body, kind: wait, timer: 1s}
                next: body
            """)
    )
    assert problem.message == "next of 'each' points to 'body', which belongs to another flow"
    assert_at(problem, 9, 11)


def test_missing_start_block_is_reported_at_start() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            start: begin
            blocks:
              - id: done
                kind: end
            """)
    )
    assert problem.message == "start block 'begin' does not exist in this flow"
    assert_at(problem, 2, 8)


def test_a_block_after_an_end_is_unreachable() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: done
                kind: end
              - id: afterwards
                kind: wait
                timer: 1s
            """)
    )
    assert problem.message == "block 'afterwards' can never be reached"
    assert problem.hint is not None and "starts at 'done'" in problem.hint
    assert_at(problem, 5, 9)


def test_a_block_reached_only_through_on_error_is_reachable() -> None:
    assert (
        lint_problems("""\
            journey: refund
            blocks:
              - id: refund
                kind: task
                capability: payments.refund
                on_error: apologise
                next: done
              - id: apologise
                kind: task
                capability: notify.send
              - id: done
                kind: end
            """)
        == []
    )


def test_a_loop_without_a_wait_is_rejected() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: poll
                kind: task
                capability: orders.lookup
              - id: settled
                kind: choice
                choices:
                  - when: "false"
                    next: poll
                default: done
              - id: done
                kind: end
            """)
    )
    assert problem.message == "loop without a wait: poll → settled → poll"
    assert_at(problem, 3, 9)


def test_a_block_that_routes_its_errors_to_itself_is_a_loop() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: poll
                kind: task
                capability: orders.lookup
                on_error: poll
            """)
    )
    assert problem.message == "loop without a wait: poll → poll"
    assert_at(problem, 3, 9)


@pytest.mark.parametrize(
    "pause",
    [
        "{id: pause, kind: wait, timer: 10m, next: poll}",
        "{id: pause, kind: approve, next: poll}",
        "{id: pause, kind: escalate, next: poll}",
    ],
)
def test_a_loop_through_a_wait_approve_or_escalate_is_accepted(pause: str) -> None:
    assert (
        lint_problems(f"""\
            journey: refund
            blocks:
              - id: poll
                kind: task
                capability: orders.lookup
              - id: settled
                kind: choice
                choices:
                  - when: "false"
                    next: pause
                default: done
              - {pause}
              - id: done
                kind: end
            """)
        == []
    )


def test_wait_needs_exactly_one_of_timer_until_event() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: pause
                kind: wait
                timer: 1h
                event: {name: paid}
            """)
    )
    assert problem.message == (
        "wait block 'pause' needs exactly one of timer, until or event (has timer, event)"
    )
    assert_at(problem, 3, 5)


def test_on_timeout_needs_an_event_wait_with_a_timeout() -> None:
    problems = lint_problems("""\
        journey: refund
        blocks:
          - id: pause
            kind: wait
            timer: 1h
            on_timeout: done
          - id: done
            kind: end
        """)
    assert [p.message for p in problems] == [
        "on_timeout applies to event waits only",
        "on_timeout needs a timeout",
    ]
    for problem in problems:
        assert_at(problem, 6, 17)


def test_end_and_choice_cannot_have_next() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: done
                kind: end
                next: again
              - id: again
                kind: wait
                timer: 1s
                next: null
            """)
    )
    assert problem.message == "a end block cannot have 'next'"
    assert_at(problem, 5, 11)


def test_an_end_block_inside_a_map_body_is_rejected() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: each
                kind: map
                items: "[1, 2]"
                do:
                  blocks:
                    - id: stop
                      kind: end
            """)
    )
    assert "end block inside a map body" in problem.message
    assert_at(problem, 8, 11)


def test_a_journey_may_not_call_itself() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: again
                kind: call
                journey: refund
            """)
    )
    assert problem.message == "journey 'refund' calls itself"
    assert_at(problem, 5, 14)


def test_a_call_to_an_undeployed_journey_is_only_a_warning() -> None:
    loaded = load("""\
        journey: refund
        blocks:
          - id: tell
            kind: call
            journey: notify_customer
        """)
    problem = only(lint(loaded.spec, loaded.source_map, journey_exists=lambda name: False))
    assert problem.severity == "warning"
    assert (problem.line, problem.column) == (5, 14)


def test_retry_on_a_block_that_cannot_fail_is_a_warning() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: pause
                kind: wait
                timer: 1s
                retry: {max_attempts: 2}
            """)
    )
    assert problem.severity == "warning"
    assert problem.message == "retry has no effect on a wait block"


def test_comparing_a_number_with_a_string_is_a_type_error() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            input:
              amount: number
            blocks:
              - id: route
                kind: choice
                choices:
                  - when: input.amount > "x"
                    next: big
                default: big
              - id: big
                kind: end
            """)
    )
    assert problem.message.startswith('type error in `input.amount > "x"`')
    assert problem.hint is not None and "input.amount is number" in problem.hint
    assert_at(problem, 8, 15)


def test_a_choice_condition_must_be_boolean() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            input:
              amount: number
            blocks:
              - id: route
                kind: choice
                choices:
                  - when: input.amount + 1.0
                    next: big
                default: big
              - id: big
                kind: end
            """)
    )
    assert problem.message == "`input.amount + 1.0` is number, but choices.0.when needs boolean"
    assert_at(problem, 8, 15)


def test_unknown_name_lists_the_names_available() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: done
                kind: end
                output: {total: amount * 2}
            """)
    )
    assert problem.message == "unknown name 'amount' in `amount * 2`"
    assert problem.hint == "available here: errors, input, now, run, steps"
    assert_at(problem, 5, 21)


def test_unknown_input_field_lists_the_declared_fields() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            input:
              order_id: string
            blocks:
              - id: done
                kind: end
                output: {order: input.order}
            """)
    )
    assert problem.message == "`input` has no field 'order' in `input.order`"
    assert problem.hint == "fields of input: order_id"
    assert_at(problem, 7, 21)


def test_cel_syntax_error_points_into_the_expression() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            input:
              amount: number
            blocks:
              - id: route
                kind: choice
                choices:
                  - when: input.amount >
                    next: big
                default: big
              - id: big
                kind: end
            """)
    )
    assert problem.message.startswith("CEL syntax error")
    # the value starts in column 15; the parser stops after its 14 characters
    assert_at(problem, 8, 29)


def test_cel_syntax_error_in_a_quoted_value_accounts_for_the_quote() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: done
                kind: end
                output: {note: '"refund " + + 1'}
            """)
    )
    assert problem.message.startswith("CEL syntax error")
    # the quote sits in column 20, so the expression starts in 21; the second '+' is at offset 12
    assert_at(problem, 5, 33)


def test_a_block_cannot_read_the_output_of_a_block_that_runs_after_it() -> None:
    problem = only(
        lint_problems("""\
            journey: refund
            blocks:
              - id: route
                kind: choice
                choices:
                  - when: steps.later.fired_at > 0.0
                    next: later
                default: later
              - id: later
                kind: wait
                timer: 1s
            """)
    )
    assert problem.message == "`steps` has no field 'later' in `steps.later.fired_at > 0.0`"
    assert problem.hint == "fields of steps: none"
    assert_at(problem, 6, 15)


def test_a_string_mapped_into_an_integer_field_is_a_type_error(shop: CapabilityRegistry) -> None:
    problem = only(
        lint_problems(
            """\
            journey: restock
            input:
              sku: string
            blocks:
              - id: reserve
                kind: task
                capability: stock.reserve
                input:
                  sku: input.sku
                  quantity: input.sku
            """,
            capabilities=shop,
        )
    )
    assert problem.message == (
        "input field 'quantity' of 'stock.reserve' needs integer, but `input.sku` is string"
    )
    assert problem.path == "blocks[0].input.quantity"
    assert_at(problem, 10, 17)


def test_a_literal_of_the_wrong_type_is_a_type_error(shop: CapabilityRegistry) -> None:
    problem = only(
        lint_problems(
            """\
            journey: restock
            blocks:
              - id: reserve
                kind: task
                capability: stock.reserve
                input: {sku: '"A-1"', quantity: 2.5}
            """,
            capabilities=shop,
        )
    )
    assert (
        problem.message
        == "input field 'quantity' of 'stock.reserve' needs integer, but 2.5 is number"
    )
    assert_at(problem, 6, 37)


def test_an_unknown_input_field_suggests_the_right_one(shop: CapabilityRegistry) -> None:
    problem = only(
        lint_problems(
            """\
            journey: restock
            blocks:
              - id: reserve
                kind: task
                capability: stock.reserve
                input: {sku: '"A-1"', quantity: 1, quantty: 1}
            """,
            capabilities=shop,
        )
    )
    assert problem.message == "'stock.reserve' has no input field 'quantty'"
    assert problem.hint == "did you mean 'quantity'?"
    assert_at(problem, 6, 49)


def test_an_unknown_input_field_without_a_close_match_lists_the_fields(
    shop: CapabilityRegistry,
) -> None:
    problem = only(
        lint_problems(
            """\
            journey: restock
            blocks:
              - id: reserve
                kind: task
                capability: stock.reserve
                input: {sku: '"A-1"', quantity: 1, colour: '"red"'}
            """,
            capabilities=shop,
        )
    )
    assert problem.hint == "its fields: note, quantity, sku"


def test_a_missing_required_input_field_is_reported_at_the_mapping(
    shop: CapabilityRegistry,
) -> None:
    problem = only(
        lint_problems(
            """\
            journey: restock
            blocks:
              - id: reserve
                kind: task
                capability: stock.reserve
                input:
                  sku: '"A-1"'
            """,
            capabilities=shop,
        )
    )
    assert problem.message == "'stock.reserve' needs input field 'quantity'"
    assert_at(problem, 7, 7)


def test_an_unknown_field_of_a_step_output_lists_its_fields(shop: CapabilityRegistry) -> None:
    problem = only(
        lint_problems(
            """\
            journey: refund
            input:
              order_id: string
            blocks:
              - id: lookup
                kind: task
                capability: orders.lookup
                input: {order_id: input.order_id}
              - id: done
                kind: end
                output: {total: steps.lookup.totl}
            """,
            capabilities=shop,
        )
    )
    assert problem.message == "`steps.lookup` has no field 'totl' in `steps.lookup.totl`"
    assert problem.hint == "fields of steps.lookup: items, order_id, status, total"
    assert_at(problem, 11, 21)


def test_step_outputs_are_typed_from_the_capability_contract(shop: CapabilityRegistry) -> None:
    problem = only(
        lint_problems(
            """\
            journey: refund
            input:
              order_id: string
            blocks:
              - id: lookup
                kind: task
                capability: orders.lookup
                input: {order_id: input.order_id}
              - id: reserve
                kind: task
                capability: stock.reserve
                input:
                  sku: steps.lookup.items[0].sku
                  quantity: steps.lookup.total
            """,
            capabilities=shop,
        )
    )
    assert problem.message == (
        "input field 'quantity' of 'stock.reserve' needs integer, but `steps.lookup.total` is "
        "number"
    )
    assert_at(problem, 14, 17)


def test_an_unknown_capability_suggests_a_registered_one(shop: CapabilityRegistry) -> None:
    problem = only(
        lint_problems(
            """\
            journey: refund
            blocks:
              - id: lookup
                kind: task
                capability: orders.lokup
            """,
            capabilities=shop,
        )
    )
    assert problem.message == "unknown capability 'orders.lokup'"
    assert problem.hint == "did you mean 'orders.lookup'?"
    assert_at(problem, 5, 17)


def test_an_unknown_compensating_capability_is_reported(shop: CapabilityRegistry) -> None:
    problem = only(
        lint_problems(
            """\
            journey: restock
            blocks:
              - id: reserve
                kind: task
                capability: stock.reserve
                input: {sku: '"A-1"', quantity: 1}
                compensate:
                  capability: stock.release
            """,
            capabilities=shop,
        )
    )
    assert problem.message == "unknown compensating capability 'stock.release'"
    assert_at(problem, 8, 19)


def test_a_compensation_may_read_the_output_of_its_own_block(shop: CapabilityRegistry) -> None:
    problem = only(
        lint_problems(
            """\
            journey: restock
            blocks:
              - id: reserve
                kind: task
                capability: stock.reserve
                input: {sku: '"A-1"', quantity: 1}
                compensate:
                  capability: stock.reserve
                  input:
                    sku: steps.reserve.reservation_id
                    quantity: steps.reserve.reservation_id
            """,
            capabilities=shop,
        )
    )
    assert problem.path == "blocks[0].compensate.input.quantity"
    assert problem.message.endswith("needs integer, but `steps.reserve.reservation_id` is string")
    assert_at(problem, 11, 19)


def test_map_items_must_be_a_list() -> None:
    problem = only(
        lint_problems("""\
            journey: restock
            input:
              count: integer
            blocks:
              - id: each
                kind: map
                items: input.count
                do:
                  blocks:
                    - {id: one, kind: wait, timer: 1s}
            """)
    )
    assert problem.message == "`input.count` is integer, but items needs array"
    assert_at(problem, 7, 12)


def test_a_bad_items_expression_is_reported_once_however_many_blocks_the_body_has() -> None:
    problem = only(
        lint_problems("""\
            journey: restock
            blocks:
              - id: each
                kind: map
                items: input.skus
                do:
                  blocks:
                    - {id: one, kind: wait, timer: 1s}
                    - {id: two, kind: wait, timer: 1s}
                    - {id: three, kind: wait, timer: 1s}
            """)
    )
    assert problem.message == "`input` has no field 'skus' in `input.skus`"
    assert_at(problem, 5, 12)


def test_item_and_index_are_typed_inside_a_map_body() -> None:
    problem = only(
        lint_problems("""\
            journey: restock
            blocks:
              - id: each
                kind: map
                items: '[{"sku": "A-1", "quantity": 2}]'
                do:
                  blocks:
                    - id: one
                      kind: call
                      journey: restock_one
                      input: {sku: item.sku, position: index + 1, count: item.qty}
            """)
    )
    assert problem.message == "`item` has no field 'qty' in `item.qty`"
    assert problem.hint == "fields of item: quantity, sku"
    assert_at(problem, 11, 62)


def test_item_is_unknown_outside_a_map_body() -> None:
    problem = only(
        lint_problems("""\
            journey: restock
            blocks:
              - id: done
                kind: end
                output: {sku: item.sku}
            """)
    )
    assert problem.message == "unknown name 'item' in `item.sku`"
    assert_at(problem, 5, 19)


def test_map_result_is_checked_in_the_scope_of_the_body() -> None:
    problems = lint_problems("""\
        journey: restock
        blocks:
          - id: each
            kind: map
            items: "[1, 2]"
            do:
              blocks:
                - {id: one, kind: wait, timer: 1s}
            result: steps.one.fired
          - id: again
            kind: map
            items: "[1, 2]"
            do:
              blocks:
                - {id: two, kind: wait, timer: 1s}
            result: item +
        """)
    assert [(p.message.split(":")[0], p.line, p.column) for p in problems] == [
        ("`steps.one` has no field 'fired' in `steps.one.fired`", 9, 13),
        ("CEL syntax error", 16, 19),
    ]
    assert all(p.hint for p in problems)


def test_a_valid_map_result_passes() -> None:
    assert (
        lint_problems("""\
            journey: restock
            blocks:
              - id: each
                kind: map
                items: "[1, 2]"
                do:
                  blocks:
                    - {id: one, kind: wait, timer: 1s}
                result: steps.one.fired_at + double(item) + double(index)
              - id: done
                kind: end
                output: {first: "steps.each[0]"}
            """)
        == []
    )


def demo_capabilities() -> CapabilityRegistry:
    registry = CapabilityRegistry()
    register_sandbox(registry)
    return registry


LANGUAGE_DOC = ROOT / "docs" / "language.md"


def doc_examples(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", LANGUAGE_DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("example", doc_examples("yaml"), ids=lambda text: text.split("\n")[0])
def test_every_yaml_example_in_the_language_reference_passes_lint(example: str) -> None:
    loaded = load_journey_text(example, source_name="docs/language.md example")
    assert lint(loaded.spec, loaded.source_map, capabilities=demo_capabilities()) == []


def test_the_builder_example_in_the_language_reference_builds_a_clean_journey() -> None:
    (example,) = doc_examples("python")
    namespace: dict[str, Any] = {}
    exec(compile(example, str(LANGUAGE_DOC), "exec"), namespace)
    spec = namespace["spec"]
    assert isinstance(spec, JourneySpec)
    assert lint(spec, SourceMap(file="<builder>"), capabilities=demo_capabilities()) == []


@pytest.mark.parametrize("name", ["refund_request.yaml", "notify_customer.yaml"])
def test_the_example_journeys_pass_lint_against_the_demo_capabilities(name: str) -> None:
    loaded = load_journey_file(ROOT / "examples" / "journeys" / name)
    assert lint(loaded.spec, loaded.source_map, capabilities=demo_capabilities()) == []


@pytest.fixture(scope="module")
def contract_journey() -> JourneySpec:
    return load("""\
        journey: refund
        input:
          order_id: string
          amount: number
          count: {type: integer, required: false}
          reason: {type: string, required: false, default: "not as described"}
        blocks:
          - id: done
            kind: end
        """).spec


def test_validate_input_fills_defaults_and_converts_numbers(contract_journey: JourneySpec) -> None:
    compiled = compile_journey(contract_journey)
    assert compiled.validate_input({"order_id": "o-1", "amount": 12}) == {
        "order_id": "o-1",
        "amount": 12.0,
        "count": None,
        "reason": "not as described",
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"amount": 5}, "order_id: Field required"),
        ({"order_id": "o-1", "amount": "lots"}, "amount: Input should be a valid number"),
        (
            {"order_id": "o-1", "amount": 5, "colour": "red"},
            "colour: Extra inputs are not permitted",
        ),
        ({"order_id": 7, "amount": 5}, "order_id: Input should be a valid string"),
    ],
)
def test_validate_input_names_every_bad_field(
    contract_journey: JourneySpec, data: dict[str, object], expected: str
) -> None:
    with pytest.raises(ContractViolation) as caught:
        compile_journey(contract_journey).validate_input(data)
    assert expected in caught.value.message
    assert caught.value.hint == (
        "the journey takes: order_id (string), amount (number), count (integer), reason (string)"
    )


def test_validate_input_rejects_a_non_object(contract_journey: JourneySpec) -> None:
    with pytest.raises(ContractViolation) as caught:
        compile_journey(contract_journey).validate_input(["o-1", 5])
    assert caught.value.message == "input for journey 'refund' must be an object, got list"


REFUND_YAML = """\
journey: refund
description: Refund an order.
input:
  order_id: string
  amount: {type: number, required: false, default: 0}
blocks:
  - id: lookup
    kind: task
    capability: orders.lookup
    input: {order_id: input.order_id}
    timeout: 10s
    retry: {max_attempts: 5, initial_interval: 200ms}
  - id: tier
    kind: decide
    hit_policy: first
    inputs: {amount: steps.lookup.total}
    rules:
      - when: {amount: "<= 100"}
        then: {approval: auto}
      - when: {amount: "> 100"}
        then: {approval: manual}
  - id: route
    kind: choice
    choices:
      - when: steps.tier.approval == "auto"
        next: refund
    default: approval
  - id: approval
    kind: approve
    role: supervisor
    timeout: 48h
    on_timeout: escalated
    on: {reject: declined}
  - id: refund
    kind: task
    capability: payments.refund
    input: {order_id: input.order_id, amount: steps.lookup.total}
    compensate:
      capability: notify.send
      input: {to: '"ops"', template: '"refund_reversed"'}
    on_error: escalated
  - id: aftercare
    kind: parallel
    join: any
    branches:
      - name: stock
        blocks:
          - id: restock
            kind: map
            items: steps.lookup.items
            max_concurrency: 2
            do:
              blocks:
                - id: restock_one
                  kind: task
                  capability: inventory.restock
                  input: {sku: item.sku, quantity: item.quantity}
      - name: customer
        blocks:
          - id: paid
            kind: wait
            event: {name: payment_settled, correlation: input.order_id}
            timeout: 1d
          - id: tell
            kind: call
            journey: notify_customer
            version: 2
            input: {customer_id: '"c-1"'}
  - id: done
    kind: end
    outcome: refunded
    output: {amount: steps.lookup.total}
  - id: declined
    kind: end
    outcome: declined
  - id: escalated
    kind: escalate
    queue: seniors
    reason: '"refund needs a senior"'
"""


def test_the_builder_produces_the_same_spec_as_yaml() -> None:
    built = (
        JourneyBuilder("refund", description="Refund an order.")
        .input(order_id="string", amount={"type": "number", "required": False, "default": 0})
        .task(
            "lookup",
            "orders.lookup",
            input={"order_id": "input.order_id"},
            timeout="10s",
            retry={"max_attempts": 5, "initial_interval": "200ms"},
        )
        .decide(
            "tier",
            hit_policy="first",
            inputs={"amount": "steps.lookup.total"},
            rules=[
                {"when": {"amount": "<= 100"}, "then": {"approval": "auto"}},
                {"when": {"amount": "> 100"}, "then": {"approval": "manual"}},
            ],
        )
        .choice("route", choices={'steps.tier.approval == "auto"': "refund"}, default="approval")
        .approve(
            "approval",
            role="supervisor",
            timeout="48h",
            on_timeout="escalated",
            on={"reject": "declined"},
        )
        .task(
            "refund",
            "payments.refund",
            input={"order_id": "input.order_id", "amount": "steps.lookup.total"},
            compensate={
                "capability": "notify.send",
                "input": {"to": '"ops"', "template": '"refund_reversed"'},
            },
            on_error="escalated",
        )
        .parallel(
            "aftercare",
            FlowBuilder(name="stock").map(
                "restock",
                items="steps.lookup.items",
                max_concurrency=2,
                do=FlowBuilder().task(
                    "restock_one",
                    "inventory.restock",
                    input={"sku": "item.sku", "quantity": "item.quantity"},
                ),
            ),
            FlowBuilder(name="customer")
            .wait("paid", event="payment_settled", correlation="input.order_id", timeout="1d")
            .call("tell", "notify_customer", version=2, input={"customer_id": '"c-1"'}),
            join="any",
        )
        .end("done", outcome="refunded", output={"amount": "steps.lookup.total"})
        .end("declined", outcome="declined")
        .escalate("escalated", queue="seniors", reason='"refund needs a senior"')
        .build()
    )
    assert built == load(REFUND_YAML).spec


def test_builder_yaml_loads_back_to_the_same_spec() -> None:
    builder = (
        JourneyBuilder("notify")
        .input(to="string")
        .task("send", "notify.send", input={"to": "input.to", "template": '"hello"'})
        .wait("pause", timer="1h", next=None)
        .end("unused")
    )
    assert load(builder.to_yaml()).spec == builder.build()


def test_builder_next_none_ends_the_flow_like_yaml_next_null() -> None:
    spec = JourneyBuilder("notify").wait("pause", timer="1s", next=None).end("done").build()
    assert spec.blocks[0].next is None
    assert (
        spec
        == load("""\
        journey: notify
        blocks:
          - {id: pause, kind: wait, timer: 1s, next: null}
          - {id: done, kind: end}
        """).spec
    )


def test_builder_reports_problems_by_path() -> None:
    with pytest.raises(JourneyInvalid) as caught:
        JourneyBuilder("notify").task("send", "notify.send", retries=3).build()
    problem = only(caught.value.diagnostics)
    assert (problem.file, problem.path, problem.message) == (
        "<builder notify>",
        "blocks[0].retries",
        "unknown field 'retries'",
    )
    assert problem.line is None


IDS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in ("true", "false", "null")
) | st.sampled_from(["no", "yes", "on", "off", "y", "n"])


@st.composite
def linear_journeys(draw: st.DrawFn) -> list[dict[str, object]]:
    ids = draw(st.lists(IDS, min_size=1, max_size=8, unique=True))
    blocks: list[dict[str, object]] = []
    for i, block_id in enumerate(ids):
        kind = draw(st.sampled_from(["task", "wait", "approve", "end"]))
        block: dict[str, object] = {"id": block_id, "kind": kind}
        if kind == "task":
            block["capability"] = draw(st.sampled_from(["orders.lookup", "notify.send"]))
            block["input"] = {"order_id": draw(st.sampled_from(["input.order_id", '"o-1"']))}
            if draw(st.booleans()):
                block["retry"] = {"max_attempts": draw(st.integers(1, 9))}
        elif kind == "wait":
            block["timer"] = draw(st.sampled_from(["250ms", "30s", "1h30m", "2d"]))
        elif kind == "approve":
            block["role"] = draw(st.sampled_from(["clerk", "supervisor"]))
            if i + 1 < len(ids) and draw(st.booleans()):
                block["on"] = {"no": ids[-1]}
        if kind != "end" and draw(st.integers(0, 4)) == 0:
            block["next"] = draw(st.sampled_from([None, ids[-1]]))
        blocks.append(block)
    return blocks


def render_yaml(blocks: list[dict[str, object]]) -> str:
    lines = ["journey: generated", "input:", "  order_id: string", "blocks:"]
    for block in blocks:
        lines.append(f"  - id: {block['id']}")
        for key, value in block.items():
            if key == "id":
                continue
            if value is None:
                rendered = "null"
            elif isinstance(value, dict):
                rendered = json.dumps(value)
            else:
                rendered = str(value)
            lines.append(f"    {key}: {rendered}")
    return "\n".join(lines) + "\n"


def build(blocks: list[dict[str, object]]) -> JourneySpec:
    builder = JourneyBuilder("generated").input(order_id="string")
    for block in blocks:
        options: dict[str, Any] = {k: v for k, v in block.items() if k not in ("id", "kind")}
        if block["kind"] == "task":
            capability = options.pop("capability")
            builder.task(str(block["id"]), str(capability), **options)
        elif block["kind"] == "wait":
            builder.wait(str(block["id"]), **options)
        elif block["kind"] == "approve":
            builder.approve(str(block["id"]), **options)
        else:
            builder.end(str(block["id"]), **options)
    return builder.build()


@settings(max_examples=60, deadline=None)
@given(linear_journeys())
def test_builder_and_yaml_agree_on_generated_linear_journeys(
    blocks: list[dict[str, object]],
) -> None:
    from_yaml = load_journey_text(render_yaml(blocks)).spec
    assert build(blocks) == from_yaml
    for block, parsed in zip(blocks, from_yaml.blocks, strict=True):
        if "next" in block:
            assert parsed.next == block["next"]


def test_the_published_json_schema_is_current() -> None:
    published = json.loads((ROOT / "docs" / "journey-v1.schema.json").read_text(encoding="utf-8"))
    assert published == journey_json_schema(), (
        "docs/journey-v1.schema.json is out of date with the journey models; regenerate it with "
        "`.venv/bin/accord journey schema -o docs/journey-v1.schema.json` and commit the result"
    )


def test_the_json_schema_accepts_the_short_form_of_input_fields() -> None:
    fields = journey_json_schema()["properties"]["input"]["additionalProperties"]
    (full, short) = fields["anyOf"]
    assert full == {"$ref": "#/$defs/InputField"}
    assert short == {"enum": ["string", "integer", "number", "boolean", "object", "array", "any"]}


def test_the_json_schema_names_every_block_kind() -> None:
    text = json.dumps(journey_json_schema())
    for kind in BLOCK_KINDS:
        assert f'"const": "{kind}"' in text


def test_a_character_yaml_forbids_is_located_not_a_crash() -> None:
    with pytest.raises(JourneyInvalid) as caught:
        load_journey_text('journey: a\nblocks:\n  - {id: x, kind: end, outcome: "\x90"}\n')
    (found,) = caught.value.diagnostics
    assert (found.line, found.column) == (3, 34)
    assert "U+0090" in found.message
