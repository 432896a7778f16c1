"""Flag keys (``<kind>:<name>``) and the values each kind takes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from accord.errors import InputError
from accord.storage._flags import FlagValue

FlagKind = Literal["capability", "journey", "channel", "agent", "rollout", "shadow"]
"""What a flag is about. The first four are kill switches."""

FLAG_KINDS: tuple[FlagKind, ...] = get_args(FlagKind)
KILL_SWITCH_KINDS: tuple[FlagKind, ...] = ("capability", "journey", "channel", "agent")
_KINDS: dict[str, FlagKind] = {kind: kind for kind in FLAG_KINDS}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NAME_MAX = 128
_ON = ("on", "true")
_OFF = ("off", "false")

_KINDS_HINT = (
    "flag keys are <kind>:<name> with kind one of capability, journey, channel, agent "
    "(kill switches, on or off), rollout (a percentage 0-100) or shadow (on or off), "
    "e.g. capability:orders.lookup"
)


@dataclass(frozen=True, slots=True)
class FlagKey:
    """A parsed flag key. ``str(key)`` gives it back as ``<kind>:<name>``."""

    kind: FlagKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def is_kill_switch(self) -> bool:
        """True for capability, journey, channel and agent flags."""
        return self.kind in KILL_SWITCH_KINDS

    @property
    def is_boolean(self) -> bool:
        """True when the flag holds on/off rather than a number."""
        return self.kind != "rollout"

    @property
    def default(self) -> FlagValue | None:
        """The value in force while no flag is stored: kill switches are on, shadow mode off.

        Rollouts have no default here; their caller decides what an unset percentage means.
        """
        if self.is_kill_switch:
            return True
        if self.kind == "shadow":
            return False
        return None


def parse_flag_key(text: str) -> FlagKey:
    """Parse and validate ``<kind>:<name>``.

    Raises:
        InputError: the kind is unknown or the name is not a valid name.
    """
    prefix, sep, name = text.partition(":")
    if not sep:
        raise InputError(f"flag key {text!r} has no kind", hint=_KINDS_HINT)
    kind = _KINDS.get(prefix)
    if kind is None:
        raise InputError(
            f"unknown flag kind {prefix!r} in key {text!r}; known kinds: {', '.join(FLAG_KINDS)}",
            hint=_KINDS_HINT,
        )
    if not _NAME.fullmatch(name) or len(name) > _NAME_MAX:
        raise InputError(
            f"flag key {text!r} has an invalid name {name!r}",
            hint=(
                "a name starts with a letter or '_' and has letters, digits, '_', '.' or '-' "
                f"(at most {_NAME_MAX} characters), like the {kind} it names"
            ),
        )
    return FlagKey(kind, name)


def check_flag_value(key: FlagKey, value: object) -> FlagValue:
    """Return ``value`` if the kind of ``key`` takes it.

    Raises:
        InputError: a boolean flag got something else than True/False, or a rollout got
            something else than an integer from 0 to 100.
    """
    if key.is_boolean:
        if isinstance(value, bool):
            return value
        raise InputError(
            f"flag {key} takes on or off (a boolean), got {value!r} ({type(value).__name__})",
            hint=f"set {key} to True/False (on the command line: on, off, true or false)",
        )
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100:
        return value
    raise InputError(
        f"flag {key} is a rollout percentage and takes an integer from 0 to 100, "
        f"got {value!r} ({type(value).__name__})",
        hint=f"e.g. {key} = 10 for a 10% canary of journey {key.name!r}",
    )


def parse_flag_value(key: FlagKey, text: str) -> FlagValue:
    """Read a value typed by a person: on/off/true/false, or an integer for rollouts.

    Raises:
        InputError: the text is not a value the kind of ``key`` takes.
    """
    word = text.strip().lower()
    if key.is_boolean:
        if word in _ON:
            return True
        if word in _OFF:
            return False
        raise InputError(
            f"flag {key} takes on, off, true or false, got {text!r}",
            hint=f"e.g. {key} off",
        )
    try:
        number = int(word)
    except ValueError as exc:
        raise InputError(
            f"flag {key} is a rollout percentage and takes an integer from 0 to 100, got {text!r}",
            hint=f"e.g. {key} 10",
        ) from exc
    return check_flag_value(key, number)
