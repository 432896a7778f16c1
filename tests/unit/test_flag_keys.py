"""Flag keys and values: what each kind accepts, and errors that say how to fix the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.errors import InputError
from accord.flags import (
    FLAG_KINDS,
    KILL_SWITCH_KINDS,
    check_flag_value,
    parse_flag_key,
    parse_flag_value,
)


@pytest.mark.parametrize("kind", KILL_SWITCH_KINDS)
def test_kill_switch_keys_are_on_by_default(kind: str) -> None:
    key = parse_flag_key(f"{kind}:orders.lookup")
    assert (key.kind, key.name) == (kind, "orders.lookup")
    assert str(key) == f"{kind}:orders.lookup"
    assert key.is_kill_switch and key.is_boolean
    assert key.default is True


def test_rollout_and_shadow_keys() -> None:
    rollout = parse_flag_key("rollout:refund_request")
    assert (rollout.kind, rollout.is_kill_switch, rollout.is_boolean) == ("rollout", False, False)
    assert rollout.default is None
    shadow = parse_flag_key("shadow:triage-v2")
    assert (shadow.kind, shadow.is_kill_switch, shadow.is_boolean) == ("shadow", False, True)
    assert shadow.default is False


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(InputError) as caught:
        parse_flag_key("feature:dark_mode")
    assert "unknown flag kind 'feature'" in caught.value.message
    assert "capability, journey, channel, agent, rollout, shadow" in caught.value.message
    assert caught.value.hint is not None and "<kind>:<name>" in caught.value.hint


def test_key_without_kind_says_so() -> None:
    with pytest.raises(InputError) as caught:
        parse_flag_key("orders.lookup")
    assert "has no kind" in caught.value.message
    assert caught.value.hint is not None and "capability:orders.lookup" in caught.value.hint


@pytest.mark.parametrize(
    "text", ["capability:", "capability:two words", "journey:a:b", "agent:9lives", "channel:é"]
)
def test_invalid_names_are_refused(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_flag_key(text)
    assert "invalid name" in caught.value.message
    assert caught.value.hint is not None and "starts with a letter" in caught.value.hint


def test_names_are_at_most_128_characters() -> None:
    assert parse_flag_key("journey:" + "j" * 128).name == "j" * 128
    with pytest.raises(InputError, match="invalid name"):
        parse_flag_key("journey:" + "j" * 129)


@given(
    kind=st.sampled_from(FLAG_KINDS),
    name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}", fullmatch=True),
)
def test_every_valid_key_parses_back_to_itself(kind: str, name: str) -> None:
    key = parse_flag_key(f"{kind}:{name}")
    assert parse_flag_key(str(key)) == key
    assert (key.kind, key.name) == (kind, name)


@pytest.mark.parametrize("key", ["capability:a", "journey:a", "channel:a", "agent:a", "shadow:a"])
def test_boolean_flags_take_only_booleans(key: str) -> None:
    parsed = parse_flag_key(key)
    assert check_flag_value(parsed, True) is True
    assert check_flag_value(parsed, False) is False
    for wrong in (1, 0, "on", None, 1.0):
        with pytest.raises(InputError) as caught:
            check_flag_value(parsed, wrong)
        assert f"flag {key} takes on or off" in caught.value.message
        assert type(wrong).__name__ in caught.value.message


def test_rollouts_take_integers_from_0_to_100() -> None:
    rollout = parse_flag_key("rollout:refund_request")
    for good in (0, 1, 50, 100):
        assert check_flag_value(rollout, good) == good
    for wrong in (-1, 101, True, False, 5.5, "10", None):
        with pytest.raises(InputError) as caught:
            check_flag_value(rollout, wrong)
        assert "integer from 0 to 100" in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("on", True), ("ON", True), (" true ", True), ("off", False), ("False", False)],
)
def test_typed_boolean_values(text: str, expected: bool) -> None:
    assert parse_flag_value(parse_flag_key("capability:orders.lookup"), text) is expected


def test_typed_boolean_value_that_is_not_one_says_which_words_work() -> None:
    with pytest.raises(InputError) as caught:
        parse_flag_value(parse_flag_key("capability:orders.lookup"), "disabled")
    assert "takes on, off, true or false, got 'disabled'" in caught.value.message


def test_typed_rollout_values() -> None:
    rollout = parse_flag_key("rollout:refund_request")
    assert parse_flag_value(rollout, "25") == 25
    with pytest.raises(InputError, match="integer from 0 to 100, got 'half'"):
        parse_flag_value(rollout, "half")
    with pytest.raises(InputError, match="integer from 0 to 100, got 150"):
        parse_flag_value(rollout, "150")
    with pytest.raises(InputError, match="integer from 0 to 100"):
        parse_flag_value(rollout, "on")
