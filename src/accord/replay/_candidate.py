"""What a replay tries: a candidate journey version, policy bundle or agent version.

A candidate is written ``KIND:WHAT``:

=====================  ==========================================================
``journey:NAME@N``      deployed version ``N`` of journey ``NAME``
``journey-file:PATH``   an undeployed journey YAML file
``policy:N``            deployed policy bundle version ``N`` of the tenant
``policy-file:PATH``    an undeployed Cedar file, with the tenant's current schema
``agent:NAME@N``        deployed version ``N`` of agent ``NAME``
=====================  ==========================================================

The window of recorded runs is ``--since`` (an RFC 3339 time or a duration back from now,
``7d``, ``24h``, ``90m``) and an optional ``--until``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from accord.errors import InputError

CandidateKind = Literal["journey", "journey-file", "policy", "policy-file", "agent"]
KINDS: tuple[CandidateKind, ...] = ("journey", "journey-file", "policy", "policy-file", "agent")

SYNTAX = (
    "journey:NAME@VERSION, journey-file:PATH.yaml, policy:VERSION, "
    "policy-file:PATH.cedar or agent:NAME@VERSION"
)

_NAMED_VERSION = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,127})@(?P<version>[0-9]+)$")
_DURATION = re.compile(r"^(?P<amount>[0-9]+(?:\.[0-9]+)?)(?P<unit>s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A parsed ``--candidate``.

    Attributes:
        kind: what is tried instead of what the recorded runs used.
        name: the journey or agent name (``journey``, ``agent``), else None.
        version: the deployed version (``journey``, ``policy``, ``agent``), else None.
        path: the file (``journey-file``, ``policy-file``), else None.
    """

    kind: CandidateKind
    name: str | None = None
    version: int | None = None
    path: Path | None = None

    @property
    def label(self) -> str:
        """The candidate as it was written."""
        if self.path is not None:
            return f"{self.kind}:{self.path}"
        if self.name is not None:
            return f"{self.kind}:{self.name}@{self.version}"
        return f"{self.kind}:{self.version}"


def parse_candidate(text: str) -> Candidate:
    """Parse ``KIND:WHAT``.

    Raises:
        InputError: the kind is unknown, the version is not a positive integer, or a file
            does not exist; the message names the part that is wrong.
    """
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise InputError(
            f"candidate {text!r} has no kind: write KIND:WHAT",
            hint=f"one of {SYNTAX}, e.g. --candidate journey:refund_request@3",
        )
    if kind not in KINDS:
        raise InputError(
            f"candidate {text!r}: unknown kind {kind!r}",
            hint=f"the kinds are {', '.join(KINDS)}; e.g. --candidate policy:7",
        )
    if kind in ("journey-file", "policy-file"):
        path = Path(rest)
        if not path.is_file():
            raise InputError(
                f"candidate {text!r}: no file {rest!r}",
                hint="give the path of the file to try, relative to the current directory",
            )
        return Candidate(kind, path=path)
    if kind == "policy":
        if not rest.isdigit() or int(rest) < 1:
            raise InputError(
                f"candidate {text!r}: policy bundle version {rest!r} is not a positive integer",
                hint="'accord policy list' shows the deployed versions, e.g. --candidate policy:7",
            )
        return Candidate("policy", version=int(rest))
    match = _NAMED_VERSION.match(rest)
    if match is None or int(match["version"]) < 1:
        raise InputError(
            f"candidate {text!r}: expected {kind}:NAME@VERSION with a version from 1",
            hint=f"e.g. --candidate {kind}:"
            + ("refund_request@3" if kind == "journey" else "support-triage@2"),
        )
    return Candidate(kind, name=match["name"], version=int(match["version"]))


def parse_time(text: str, *, now: float, option: str = "--since") -> float:
    """An RFC 3339 time, or a duration (``7d``, ``24h``, ``90m``, ``30s``, ``2w``) before
    ``now``, as epoch seconds.

    Raises:
        InputError: neither a time nor a duration.
    """
    duration = _DURATION.match(text.strip())
    if duration is not None:
        return now - float(duration["amount"]) * _UNIT_SECONDS[duration["unit"]]
    try:
        parsed = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise InputError(
            f"{option} {text!r} is neither an RFC 3339 time nor a duration",
            hint=f"e.g. {option} 2026-12-01T09:00:00Z or {option} 7d (also 24h, 90m, 30s, 2w)",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
