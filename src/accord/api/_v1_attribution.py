"""``GET /v1/journeys/{name}/attribution``: a journey's outcomes attributed to the decisions on
its runs' paths, each estimate with its interval and the method that made it (causal only for
experiment arms), and each decision point's share of the credit by its removal effect."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from accord.api._auth import Principal
from accord.api._http import GuardedRoute, caller
from accord.api._v1 import VERSION_MAX, Name, Out, _op, accord_of


class ValueOut(Out):
    value: str
    runs: int = Field(ge=0)
    successes: int = Field(ge=0)
    success_rate: float
    interval: list[float] = Field(description="Wilson score interval of the success rate")


class EstimateOut(Out):
    value: str
    reference: str
    method: str = Field(description="how the difference was estimated")
    causal: bool = Field(description="true only for a randomised point (an experiment arm)")
    runs: int
    reference_runs: int
    difference: float | None = Field(description="null when there were too few runs")
    interval: list[float] | None
    interval_method: str
    raw_difference: float | None = Field(description="the difference before adjustment")
    adjusted_for: list[str] = Field(description="the earlier decision points stratified by")
    left_out: int = Field(description="runs in strata holding only one of the two values")
    note: str | None


class PointOut(Out):
    block_id: str
    kind: str
    label: str
    randomised: bool
    experiment: str | None
    runs: int
    successes: int
    reference: str | None
    values: list[ValueOut]
    estimates: list[EstimateOut]
    removal_effect: float | None
    share: float | None = Field(description="percent of the credit; the points sum to 100")
    share_method: str
    note: str | None


class RemovalOut(Out):
    method: str
    success_rate: float | None
    note: str | None


class AttributionOut(Out):
    journey: str
    version: int | None
    since: float | None
    until: float | None
    success: list[str]
    runs: int
    successes: int
    success_rate: float | None
    outcomes: dict[str, int]
    erased_runs_left_out: int
    min_runs: int
    confidence: float
    removal: RemovalOut
    points: list[PointOut]
    notes: list[str]


def attribution_router() -> APIRouter:
    router = APIRouter(prefix="/v1/journeys", tags=["journeys"], route_class=GuardedRoute)

    @router.get(
        "/{name}/attribution",
        summary="Outcomes attributed to the decisions on the journey's paths",
        response_model=AttributionOut,
        **_op("journeys.attribution", 404, 422),
    )
    def attribution(
        request: Request,
        name: Name,
        who: Annotated[Principal, Depends(caller("journeys.attribution"))],
        success: Annotated[
            str,
            Query(
                max_length=2000,
                description="the outcomes that count as success, comma-separated",
            ),
        ],
        since: Annotated[
            str | None,
            Query(max_length=64, description="runs started from: an RFC 3339 time or 7d, 24h"),
        ] = None,
        until: Annotated[
            str | None,
            Query(max_length=64, description="runs started before: a time or a duration"),
        ] = None,
        version: Annotated[int | None, Query(ge=1, le=VERSION_MAX)] = None,
        min_runs: Annotated[
            int, Query(ge=1, le=1_000_000, description="the fewest runs a figure needs")
        ] = 30,
        confidence: Annotated[float, Query(ge=0.5, le=0.999)] = 0.95,
    ) -> dict[str, Any]:
        found = accord_of(request).attribution(
            name,
            success=success,
            version=version,
            since=since,
            until=until,
            min_runs=min_runs,
            confidence=confidence,
            tenant=who.tenant,
        )
        answer: dict[str, Any] = found.to_json()
        return answer

    return router
