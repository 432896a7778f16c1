"""``/v1/experiments``: the tenant's experiments, each one's report with its always-valid
figures, a new design (YAML or JSON), and the decisions to ship a variant or stop, each with a
reason the ledger keeps.

Reading a report checks the guardrails, as ``accord experiment report`` does: a running
experiment whose guardrail is breached is stopped then, by ``accord``, with the figures in the
ledger. The list only reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError, model_validator

from accord.api._auth import Principal
from accord.api._http import GuardedRoute, IdempotencyKey, caller, idempotent, page
from accord.api._problems import Problem
from accord.api._v1 import IDEMPOTENT, Body, Out, _op, accord_of
from accord.core import TenantId
from accord.errors import InputError
from accord.experiments import (
    Comparison,
    ExperimentNotFound,
    ExperimentSpec,
    Report,
    parse_experiment,
)
from accord.service import Accord

T = TypeVar("T")

ExperimentName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="the experiment's name",
    ),
]
Reason = Annotated[
    str,
    Field(min_length=1, max_length=2000, pattern=r"\S", description="why; the ledger keeps it"),
]


# -- bodies and answers ----------------------------------------------------------------------


class ExperimentDesign(Body):
    """A design: ``source`` as YAML (or JSON) text, or ``design`` as a JSON object."""

    source: str | None = Field(
        None, min_length=1, max_length=200_000, description="the design as YAML or JSON text"
    )
    design: dict[str, Any] | None = Field(
        None, description="the design as an object (the fields of docs/experiments.md)"
    )

    @model_validator(mode="after")
    def _one(self) -> ExperimentDesign:
        if (self.source is None) == (self.design is None):
            raise ValueError("send the design as either 'source' (YAML or JSON) or 'design'")
        return self


class ShipVariant(Body):
    variant: str = Field(min_length=1, max_length=64, description="what everyone new gets")
    reason: Reason


class StopExperiment(Body):
    reason: Reason


class Target(Out):
    kind: str
    name: str


class Decision(Out):
    status: str
    variant: str | None = None
    by: str
    reason: str


class ExperimentSummary(Out):
    experiment: str
    version: int
    description: str
    target: Target
    control: str
    variants: list[str]
    holdout: float
    status: Literal["running", "shipped", "stopped"]
    decision: Decision | None
    verdict: str
    assigned: dict[str, int] = Field(description="subjects per arm, the holdout included")
    subjects: int = Field(ge=0, description="subjects assigned, the holdout included")
    created_at: float
    error: str | None = Field(
        None, description="why the stored design cannot be read (its verdict is 'invalid')"
    )


class ExperimentPage(Out):
    items: list[ExperimentSummary]
    next_cursor: str | None


class Arm(Out):
    name: str
    weight: float
    description: str
    control: bool


class ComparisonOut(Out):
    """A variant against the control on one metric."""

    variant: str
    control: str
    n_control: int
    n_variant: int
    control_mean: float
    variant_mean: float
    effect: float = Field(description="variant mean minus control mean")
    relative: float | None = Field(description="the effect as a share of the control's mean")
    low: float | None = Field(description="lower end of the always-valid interval; null: open")
    high: float | None = Field(description="upper end of the always-valid interval; null: open")
    p_value: float = Field(description="always valid: it keeps its meaning at every look")
    significant: bool
    method: str
    breached: bool | None = Field(None, description="guardrails: worse beyond the tolerance")


class Metric(Out):
    name: str
    role: Literal["primary", "guardrail"]
    kind: str | None = Field(None, description="primary: binary or number")
    better: Literal["higher", "lower"]
    minimum_effect: float | None = Field(None, description="primary: the smallest change sought")
    tolerance: float | None = Field(None, description="guardrail: the harm tolerated")
    breached: bool | None = Field(None, description="guardrail: breached by some variant")
    comparisons: list[ComparisonOut]


class ExperimentReport(ExperimentSummary):
    arms: list[Arm]
    alpha: float
    metrics: list[Metric]
    planned_sample: int | None = Field(description="per arm, for the design's power")
    minimum_sample: int = Field(description="per arm, before a verdict is drawn")
    reasons: list[str]


# -- what the API and the console show -------------------------------------------------------


def experiment_summaries(accord: Accord, tenant: str) -> list[dict[str, Any]]:
    """Every experiment of ``tenant``, by name, with where it stands (reading only)."""
    store, t = accord.experiments, TenantId(tenant)
    found = []
    for row in sorted(store.list(t), key=lambda r: str(r["experiment"])):
        name = str(row["experiment"])
        try:
            found.append(_summary(store.spec(t, name), store.report(t, name), row["created_at"]))
        except ExperimentNotFound:
            continue  # removed between the list and the read
        except (ValidationError, InputError, ArithmeticError, ValueError) as exc:
            # one stored design that no longer reads must not hide the others
            found.append(_unreadable(row, exc))
    return found


def _unreadable(row: dict[str, Any], exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ValidationError):
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
    else:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return {
        "experiment": str(row["experiment"]),
        "version": int(row["version"]),
        "description": "",
        "target": {"kind": "unknown", "name": ""},
        "control": "",
        "variants": [],
        "holdout": 0.0,
        "status": row["status"],
        "decision": row["decision"],
        "verdict": "invalid",
        "assigned": {},
        "subjects": 0,
        "created_at": row["created_at"],
        "error": f"the stored design cannot be read: {message}",
    }


def experiment_report(accord: Accord, tenant: str, name: str) -> dict[str, Any]:
    """The report of ``name``, its guardrails checked first (a breach stops it now).

    Raises:
        ExperimentNotFound: ``tenant`` has no experiment ``name``.
    """
    return _report(accord, tenant, name, accord.experiments.watch(TenantId(tenant), name))


def _report(accord: Accord, tenant: str, name: str, report: Report) -> dict[str, Any]:
    spec = accord.experiments.spec(TenantId(tenant), name)
    found = _summary(spec, report, _listed(accord, tenant, name)["created_at"])
    primary = spec.primary
    metrics: list[dict[str, Any]] = [
        {
            "name": primary.name,
            "role": "primary",
            "kind": primary.kind,
            "better": primary.better,
            "minimum_effect": primary.minimum_effect,
            "comparisons": [_comparison(c) for c in report.primary],
        }
    ]
    for guardrail in spec.guardrails:
        checks = [g for g in report.guardrails if g.metric == guardrail.name]
        metrics.append(
            {
                "name": guardrail.name,
                "role": "guardrail",
                "better": "lower" if guardrail.worse == "higher" else "higher",
                "tolerance": guardrail.tolerance,
                "breached": any(g.breached for g in checks),
                "comparisons": [
                    {**_comparison(g.comparison), "breached": g.breached} for g in checks
                ],
            }
        )
    found.update(
        arms=[
            {
                "name": v.name,
                "weight": v.weight,
                "description": v.description,
                "control": v.name == spec.control,
            }
            for v in spec.variants
        ],
        alpha=report.alpha,
        metrics=metrics,
        planned_sample=report.planned_sample,
        minimum_sample=spec.minimum_sample,
        reasons=list(report.reasons),
    )
    return found


def _summary(spec: ExperimentSpec, report: Report, created_at: float) -> dict[str, Any]:
    return {
        "experiment": spec.experiment,
        "version": spec.version,
        "description": spec.description,
        "target": spec.target.model_dump(),
        "control": spec.control,
        "variants": [v.name for v in spec.variants],
        "holdout": spec.holdout,
        "status": report.status,
        "decision": report.decision,
        "verdict": report.verdict,
        "assigned": dict(report.assigned),
        "subjects": sum(report.assigned.values()),
        "created_at": created_at,
    }


def _comparison(c: Comparison) -> dict[str, Any]:
    return {
        "variant": c.variant,
        "control": c.control,
        "n_control": c.n_control,
        "n_variant": c.n_variant,
        "control_mean": c.control_mean,
        "variant_mean": c.variant_mean,
        "effect": c.effect,
        "relative": _finite(c.relative),
        "low": _finite(c.low),
        "high": _finite(c.high),
        "p_value": c.p_value,
        "significant": c.significant,
        "method": c.method,
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _found(call: Callable[[], T]) -> T:
    try:
        return call()
    except ExperimentNotFound as exc:
        raise _not_found(exc.message) from exc


def _not_found(detail: str) -> Problem:
    return Problem(
        404, "experiment_not_found", detail, hint="GET /v1/experiments lists the experiments"
    )


def _listed(accord: Accord, tenant: str, name: str) -> dict[str, Any]:
    for row in accord.experiments.list(TenantId(tenant)):
        if row["experiment"] == name:
            return row
    raise ExperimentNotFound(f"no experiment {name!r}")


def _ended(accord: Accord, tenant: str, name: str) -> Problem | None:
    """409 when ``name`` has ended already (404 when there is no such experiment)."""
    row = _found(lambda: _listed(accord, tenant, name))
    if row["status"] == "running":
        return None
    decision = row["decision"] or {}
    how = f"{row['status']} by {decision.get('by')}" if decision.get("by") else row["status"]
    return Problem(
        409,
        "experiment_ended",
        f"experiment {name!r} has already ended ({how}: {decision.get('reason', '')})",
        hint="a new design of a higher version starts it again: POST /v1/experiments",
    )


def _decided(accord: Accord, tenant: str, name: str, act: Callable[[], None]) -> None:
    """Run ``act`` (a ship or a stop); an experiment that ended first answers 409."""
    if (conflict := _ended(accord, tenant, name)) is not None:
        raise conflict
    try:
        act()
    except ExperimentNotFound as exc:
        raise _not_found(exc.message) from exc
    except InputError:
        # ended by someone else (or by a guardrail) between the check and the decision
        if (conflict := _ended(accord, tenant, name)) is not None:
            raise conflict from None
        raise


def _design(body: ExperimentDesign) -> ExperimentSpec:
    """The design in ``body``, or 422 naming each field that is wrong."""
    if body.design is not None:
        try:
            return ExperimentSpec.model_validate(body.design)
        except ValidationError as exc:
            raise _invalid(exc, "body.design") from exc
    assert body.source is not None
    try:
        return parse_experiment(body.source, source="source")
    except InputError as exc:
        if isinstance(exc.__cause__, ValidationError):
            raise _invalid(exc.__cause__, "body.source") from exc
        raise Problem(
            422,
            "experiment_invalid",
            exc.message,
            hint=exc.hint,
            errors=[{"location": "body.source", "message": exc.message}],
        ) from exc


def _invalid(exc: ValidationError, where: str) -> Problem:
    found = [
        {
            "location": ".".join([where, *(str(p) for p in error["loc"])]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors()
    ]
    fields = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
    )
    return Problem(
        422,
        "experiment_invalid",
        f"the design is not valid: {fields}",
        hint="see docs/experiments.md for the fields",
        errors=found,
    )


def _conflict(accord: Accord, tenant: str, spec: ExperimentSpec) -> Problem | None:
    """409 when a design of this name runs, or an ended one has this version or a higher."""
    for row in accord.experiments.list(TenantId(tenant)):
        if row["experiment"] != spec.experiment:
            continue
        if row["status"] == "running":
            return Problem(
                409,
                "experiment_conflict",
                f"experiment {spec.experiment!r} is running",
                hint=f"ship or stop it first: POST /v1/experiments/{spec.experiment}/stop",
            )
        if spec.version <= row["version"]:
            return Problem(
                409,
                "experiment_conflict",
                f"experiment {spec.experiment!r} v{row['version']} exists; a new design "
                f"needs a higher version than {row['version']}",
                hint=f"set 'version: {row['version'] + 1}' in the design",
            )
    return None


# -- the routes ------------------------------------------------------------------------------


def experiments_router() -> APIRouter:
    router = APIRouter(prefix="/v1/experiments", tags=["experiments"], route_class=GuardedRoute)

    @router.get(
        "",
        summary="The tenant's experiments and where each stands",
        response_model=ExperimentPage,
        **_op("experiments.list"),
    )
    def list_experiments(
        request: Request, who: Annotated[Principal, Depends(caller("experiments.list"))]
    ) -> dict[str, Any]:
        return page(experiment_summaries(accord_of(request), who.tenant), None)

    @router.get(
        "/{name}",
        summary="An experiment's report: counts, always-valid figures, verdict",
        response_model=ExperimentReport,
        **_op("experiments.get", 404, 422),
    )
    def report(
        request: Request,
        name: ExperimentName,
        who: Annotated[Principal, Depends(caller("experiments.get"))],
    ) -> dict[str, Any]:
        return _found(lambda: experiment_report(accord_of(request), who.tenant, name))

    @router.post(
        "",
        status_code=201,
        summary="Start an experiment from its design",
        response_model=ExperimentReport,
        **_op("experiments.create", *IDEMPOTENT),
    )
    def create(
        request: Request,
        body: ExperimentDesign,
        who: Annotated[Principal, Depends(caller("experiments.create"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        accord = accord_of(request)

        def run() -> tuple[int, Any]:
            spec = _design(body)
            if (conflict := _conflict(accord, who.tenant, spec)) is not None:
                raise conflict
            try:
                accord.experiments.create(TenantId(who.tenant), spec, actor=who.subject)
            except InputError:
                # another design of the name arrived between the check and the insert
                if (conflict := _conflict(accord, who.tenant, spec)) is not None:
                    raise conflict from None
                raise
            found = accord.experiments.report(TenantId(who.tenant), spec.experiment)
            return 201, _report(accord, who.tenant, spec.experiment, found)

        return idempotent(request, who, key, "experiments.create", body, run)

    @router.post(
        "/{name}/ship",
        summary="End the experiment: a variant for everyone new, with a reason",
        response_model=ExperimentReport,
        **_op("experiments.ship", *IDEMPOTENT, 404),
    )
    def ship(
        request: Request,
        name: ExperimentName,
        body: ShipVariant,
        who: Annotated[Principal, Depends(caller("experiments.ship"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        accord = accord_of(request)
        tenant = TenantId(who.tenant)

        def run() -> tuple[int, Any]:
            spec = _found(lambda: accord.experiments.spec(tenant, name))
            variants = [v.name for v in spec.variants]
            if body.variant not in variants:
                raise Problem(
                    422,
                    "unknown_variant",
                    f"{body.variant!r} is not a variant of {name!r}",
                    hint="one of " + ", ".join(variants),
                    errors=[{"location": "body.variant", "message": "not a variant"}],
                )
            _decided(
                accord,
                who.tenant,
                name,
                lambda: accord.experiments.ship(
                    tenant, name, body.variant, actor=who.subject, reason=body.reason
                ),
            )
            found = accord.experiments.report(tenant, name)
            return 200, _report(accord, who.tenant, name, found)

        return idempotent(request, who, key, "experiments.ship", body, run)

    @router.post(
        "/{name}/stop",
        summary="End the experiment without shipping, with a reason",
        response_model=ExperimentReport,
        **_op("experiments.stop", *IDEMPOTENT, 404),
    )
    def stop(
        request: Request,
        name: ExperimentName,
        body: StopExperiment,
        who: Annotated[Principal, Depends(caller("experiments.stop"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        accord = accord_of(request)
        tenant = TenantId(who.tenant)

        def run() -> tuple[int, Any]:
            _decided(
                accord,
                who.tenant,
                name,
                lambda: accord.experiments.stop(
                    tenant, name, actor=who.subject, reason=body.reason
                ),
            )
            found = accord.experiments.report(tenant, name)
            return 200, _report(accord, who.tenant, name, found)

        return idempotent(request, who, key, "experiments.stop", body, run)

    return router
