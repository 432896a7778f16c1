"""The dashboard's attribution section: a journey and its success outcomes in, per decision
point the estimate, its interval and its method out, computed by the service facade."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from accord.attribution import Attribution
from accord.core import TenantId
from accord.errors import AccordError
from accord.service import Accord

MIN_RUNS_MAX = 1_000_000


@dataclass(frozen=True, slots=True)
class Section:
    """What the section shows: the form's choices, and the result or the error."""

    journeys: tuple[str, ...]
    journey: str
    success: str
    min_runs: int
    result: Attribution | None = None
    error: str | None = None
    hint: str | None = None


def attribution_section(
    accord: Accord, tenant: str, params: Mapping[str, str], *, since: float
) -> Section:
    """The section for the dashboard's query: ``attribution`` (the journey), ``success``
    (comma-separated outcomes) and ``min_runs``, over runs started from ``since``."""
    journeys = tuple(sorted({r.name for r in accord.runtime.catalog.versions(TenantId(tenant))}))
    journey = (params.get("attribution") or "").strip()
    success = params.get("success") or ""
    min_runs = _int(params.get("min_runs"), 30)
    if not journey:
        return Section(journeys, journey, success, min_runs)
    try:
        result = accord.attribution(
            journey, success=success, since=since, min_runs=min_runs, tenant=tenant
        )
    except AccordError as exc:
        return Section(journeys, journey, success, min_runs, error=exc.message, hint=exc.hint)
    return Section(journeys, journey, success, min_runs, result=result)


def _int(text: str | None, default: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return min(max(value, 1), MIN_RUNS_MAX)
