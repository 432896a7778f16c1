"""The journey language's human blocks: approve and escalate fields, confirm blocks, the
published handoff packet schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accord.errors import JourneyInvalid
from accord.journeys import ApproveBlock, ConfirmBlock, edit_json_schema, lint, load_journey_text
from accord.reviews import packet_json_schema

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> str:
    loaded = load_journey_text(text)
    return "\n".join(d.render() for d in lint(loaded.spec, loaded.source_map))


def test_the_published_packet_schema_is_current() -> None:
    published = json.loads((ROOT / "docs" / "handoff-v1.schema.json").read_text(encoding="utf-8"))
    assert published == packet_json_schema(), (
        "docs/handoff-v1.schema.json is out of date; regenerate it with "
        "`.venv/bin/accord review schema > docs/handoff-v1.schema.json`"
    )
    assert published["properties"]["schema"]["const"] == "accord.handoff/1"


def test_an_approve_blocks_edit_schema_becomes_json_schema() -> None:
    loaded = load_journey_text(
        """
journey: j
blocks:
  - id: a
    kind: approve
    edit_schema: {credit: number, note: {type: string, required: false}}
"""
    )
    block = loaded.spec.blocks[0]
    assert isinstance(block, ApproveBlock)
    assert edit_json_schema(block) == {
        "type": "object",
        "properties": {"credit": {"type": "number"}, "note": {"type": "string"}},
        "required": ["credit"],
        "additionalProperties": False,
    }


def test_a_confirm_block_routes_only_its_three_answers() -> None:
    with pytest.raises(JourneyInvalid, match="confirmed, refused and expired"):
        load_journey_text(
            """
journey: j
blocks:
  - id: c
    kind: confirm
    proposal: {x: '"y"'}
    on: {maybe: c}
"""
        )


def test_a_confirm_blocks_implicit_must_be_boolean() -> None:
    found = problems(
        """
journey: j
input: {amount: number}
blocks:
  - id: c
    kind: confirm
    proposal: {amount: input.amount}
    implicit: input.amount
"""
    )
    assert "implicit" in found and "boolean" in found


def test_a_confirm_block_parses_durations_and_channels() -> None:
    loaded = load_journey_text(
        """
journey: j
blocks:
  - id: c
    kind: confirm
    proposal: {x: '"y"'}
    channels: [sms]
    expires: 90m
"""
    )
    block = loaded.spec.blocks[0]
    assert isinstance(block, ConfirmBlock)
    assert (block.expires, block.channels) == (5400.0, ("sms",))


def test_recommend_and_maker_expressions_are_linted() -> None:
    found = problems(
        """
journey: j
blocks:
  - id: a
    kind: approve
    recommend: {decision: '"approve"', value: nothing_here.x}
"""
    )
    assert "recommend.value" in found and "nothing_here" in found
    found = problems(
        """
journey: j
input: {n: number}
blocks:
  - id: a
    kind: approve
    maker: input.n
"""
    )
    assert "maker" in found and "string" in found
