"""Experiments wired into the gateway: a journey reads its subject's arm with
``experiment.assign`` and records an outcome with ``experiment.record``, each call decided by
the gateway (kill switch, policy) and recorded like any other."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from accord.connectors import CallContext, Capability, CapabilityRegistry
from accord.core import TenantId
from accord.errors import CapabilityFailed, InputError
from accord.experiments import Experiments

ASSIGN = "experiment.assign"
RECORD = "experiment.record"


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: str = Field(min_length=1, max_length=128)


class AssignResult(BaseModel):
    experiment: str
    variant: str
    in_experiment: bool
    status: str


class RecordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: str = Field(min_length=1, max_length=128)
    metric: str = Field(min_length=1, max_length=64)
    value: float


class RecordResult(BaseModel):
    result: str


def experiment_capabilities(store: Experiments, over: CapabilityRegistry) -> CapabilityRegistry:
    """``experiment.assign`` and ``experiment.record`` over ``over`` (``over`` itself when it
    has them already, as a replay's shadow does)."""
    if over.find(ASSIGN) is not None:
        return over
    registry = CapabilityRegistry(over=over)

    def subject_of(ctx: CallContext, what: str) -> str:
        if ctx.subject_id is None:
            raise CapabilityFailed(
                f"{what} needs the run's subject: experiments assign and measure subjects",
                error_type="InputError",
                retryable=False,
            )
        return ctx.subject_id

    def assign(request: AssignRequest, ctx: CallContext) -> AssignResult:
        try:
            found = store.assign(
                TenantId(ctx.tenant_id), request.experiment, subject_of(ctx, ASSIGN)
            )
        except InputError as exc:
            raise CapabilityFailed(exc.message, error_type="InputError", retryable=False) from exc
        return AssignResult(
            experiment=found.experiment,
            variant=found.variant,
            in_experiment=found.in_experiment,
            status=found.status,
        )

    def record(request: RecordRequest, ctx: CallContext) -> RecordResult:
        try:
            result = store.record(
                TenantId(ctx.tenant_id),
                request.experiment,
                subject_of(ctx, RECORD),
                request.metric,
                request.value,
                run_id=None if ctx.run_id.startswith("direct/") else ctx.run_id,
            )
        except InputError as exc:
            raise CapabilityFailed(exc.message, error_type="InputError", retryable=False) from exc
        return RecordResult(result=result)

    registry.add(
        Capability(
            name=ASSIGN,
            input_model=AssignRequest,
            output_model=AssignResult,
            handler=assign,
            side_effect="write",
            idempotent=True,
            description="The subject's sticky arm of an experiment",
            source=f"accord.service:{ASSIGN}",
        )
    )
    registry.add(
        Capability(
            name=RECORD,
            input_model=RecordRequest,
            output_model=RecordResult,
            handler=record,
            side_effect="write",
            idempotent=True,
            description="The subject's outcome on one of an experiment's metrics",
            source=f"accord.service:{RECORD}",
        )
    )
    return registry
