"""Attribution read from the runtime's own records: a journey's ended runs, the decision points
on their paths (from each run's history), and the estimates :mod:`accord.attribution` makes
of them. Nothing is stored; every answer is computed from the runs as they are."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from accord.attribution import (
    PATH_EVENT_KINDS,
    Attribution,
    Point,
    RecordedRun,
    RunPath,
    attribute,
    outcome_of,
    paths_of,
)
from accord.core import TenantId, parse_duration
from accord.errors import InputError
from accord.experiments import Experiments
from accord.journeys import EndBlock
from accord.runtime import Runtime
from accord.storage._paths import ended_runs, journey_outcomes, open_runs, run_events

MAX_RUNS = 100_000
"""The most runs one attribution reads (the newest of the window)."""

ASSIGN_DETAIL = '"capability":"experiment.assign"'
ERASED_DETAIL = '{"erased":true}'
"""The detail an erased subject's events keep: it marks the run as erased."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which runs to read: a journey, optionally one version, started in [since, until)."""

    tenant: TenantId
    journey: str
    version: int | None
    since: float | None
    until: float | None


def success_outcomes(success: str | Sequence[str]) -> tuple[str, ...]:
    """The outcomes named, from a comma-separated text or a sequence, in order, once each.

    Raises:
        InputError: none is named.
    """
    names = success.split(",") if isinstance(success, str) else list(success)
    found = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not found:
        raise InputError(
            "no success outcome given: attribution needs the outcomes that count as success",
            hint="name the outcomes that count as success, comma-separated, "
            "e.g. retained,converted",
        )
    return found


def moment(value: float | str | None, *, now: float, name: str) -> float | None:
    """Epoch seconds from a number, an RFC 3339 time, or a duration before ``now`` (``7d``).

    Raises:
        InputError: the text is neither a time nor a duration.
    """
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    text = value.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{name} {value!r} is neither an RFC 3339 time nor a duration",
            hint=f"e.g. {name} 7d (also 24h, 90m, 30s) or {name} 2026-01-01T00:00:00Z",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def read_paths(
    runtime: Runtime, selection: Selection, *, limit: int
) -> tuple[list[RunPath], int, bool]:
    """The decision-point paths of the selected ended runs, oldest first; how many runs of
    erased subjects were left out; and whether older runs were left unread past ``limit``.

    Raises:
        JourneyNotFound: the journey (or the version) is not deployed in the tenant.
    """
    runtime.catalog.get(selection.tenant, selection.journey, selection.version)
    with runtime.db.read() as connection:
        found, more = ended_runs(
            connection,
            selection.tenant,
            selection.journey,
            version=selection.version,
            since=selection.since,
            until=selection.until,
            limit=limit,
        )
        events = run_events(
            connection,
            selection.tenant,
            [r.run_id for r in found],
            kinds=PATH_EVENT_KINDS,
            only_if={"block.completed": (ASSIGN_DETAIL, ERASED_DETAIL)},
        )
    recorded = [
        RecordedRun(
            run_id=r.run_id,
            version=r.version,
            subject=r.subject_id,
            started_at=r.created_at,
            status=r.status,
            outcome=r.outcome,
            events=events[r.run_id],
        )
        for r in found
    ]
    paths, erased = paths_of(recorded)
    return paths, erased, more


def still_open(runtime: Runtime, selection: Selection) -> int:
    """How many of the selected runs have not ended yet: their outcomes are not known."""
    with runtime.db.read() as connection:
        return open_runs(
            connection,
            selection.tenant,
            selection.journey,
            version=selection.version,
            since=selection.since,
            until=selection.until,
        )


def known_outcomes(runtime: Runtime, selection: Selection) -> set[str]:
    """What the journey (the version) can end with: its ``end`` blocks' outcomes, and every
    outcome its ended runs came to (escalated, cancelled, failed…)."""
    catalog = runtime.catalog
    if selection.version is not None:
        versions = [selection.version]
    else:
        versions = [r.version for r in catalog.versions(selection.tenant, selection.journey)]
    found = set()
    for version in versions:
        journey = catalog.get(selection.tenant, selection.journey, version)
        found |= {n.block.outcome for n in journey.nodes.values() if isinstance(n.block, EndBlock)}
    with runtime.db.read() as connection:
        ended = journey_outcomes(
            connection, selection.tenant, selection.journey, version=selection.version
        )
    return found | {outcome_of(status, outcome) for status, outcome in ended}


def attribution(
    runtime: Runtime,
    experiments: Experiments,
    selection: Selection,
    *,
    success: str | Sequence[str],
    min_runs: int,
    confidence: float,
) -> Attribution:
    """The attribution of the selected runs' outcomes to their decision points.

    Raises:
        JourneyNotFound: the journey (or the version) is not deployed in the tenant.
        InputError: no success outcome, one the journey never ends with, or a minimum or
            confidence out of range.
    """
    wanted = success_outcomes(success)
    runtime.catalog.get(selection.tenant, selection.journey, selection.version)
    known = known_outcomes(runtime, selection)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        version = f" version {selection.version}" if selection.version is not None else ""
        raise InputError(
            f"journey {selection.journey!r}{version} never ends with {names}",
            hint="its outcomes: " + ", ".join(sorted(known)),
        )
    # counted before the ended runs are read: a run ending in between counts as still open
    unended = still_open(runtime, selection)
    paths, erased, more = read_paths(runtime, selection, limit=MAX_RUNS)
    found = attribute(
        paths,
        success=wanted,
        min_runs=min_runs,
        confidence=confidence,
        references=_controls(experiments, selection.tenant, paths),
        journey=selection.journey,
        version=selection.version,
        since=selection.since,
        until=selection.until,
        erased=erased,
        open_runs=unended,
    )
    if more:
        note = f"only the newest {MAX_RUNS} ended runs were read; narrow the window with since"
        found = replace(found, notes=(*found.notes, note))
    return found


def _controls(experiments: Experiments, tenant: TenantId, paths: list[RunPath]) -> dict[Point, str]:
    """Each experiment point's control arm, for experiments the tenant still has."""
    named = {s.point: s.experiment for p in paths for s in p.steps if s.experiment is not None}
    controls = {}
    for point, name in named.items():
        try:
            controls[point] = experiments.spec(tenant, name).control
        except InputError:
            continue
    return controls
