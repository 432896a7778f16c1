"""Flags: kill switches, rollouts and shadow mode per tenant, evaluated through OpenFeature.

Keys are ``<kind>:<name>``. ``capability``, ``journey``, ``channel`` and ``agent`` flags are kill
switches (on unless switched off, and switching one off needs a reason); ``rollout:<journey>``
holds a canary percentage (0-100); ``shadow:<agent>`` turns shadow mode on. :class:`FlagStore`
keeps them in the database with a log of every change, :class:`AccordFlagProvider` serves them
to the OpenFeature SDK from memory, and :class:`Flags` ties the two together for the gateway and
the service.
"""

from accord.flags._flags import Flags
from accord.flags._keys import (
    FLAG_KINDS,
    KILL_SWITCH_KINDS,
    FlagKey,
    FlagKind,
    check_flag_value,
    parse_flag_key,
    parse_flag_value,
)
from accord.flags._provider import AccordFlagProvider
from accord.flags._store import FlagStore, FlagTable
from accord.storage._flags import FlagChange, FlagRecord, FlagValue

__all__ = [
    "FLAG_KINDS",
    "KILL_SWITCH_KINDS",
    "AccordFlagProvider",
    "FlagChange",
    "FlagKey",
    "FlagKind",
    "FlagRecord",
    "FlagStore",
    "FlagTable",
    "FlagValue",
    "Flags",
    "check_flag_value",
    "parse_flag_key",
    "parse_flag_value",
]
