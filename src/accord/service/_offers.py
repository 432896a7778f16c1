"""Offers wired into the runtime and the gateway: offer blocks read catalogues, contact
history and outcomes from :class:`~accord.offers.Offers`, and a journey records whether the
customer took an offer with ``offer.record``, a built-in capability decided by the gateway
like any other."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from accord.connectors import CallContext, Capability, CapabilityRegistry
from accord.errors import CapabilityFailed, InputError
from accord.offers import Offers
from accord.runtime import OfferServices

RECORD = "offer.record"


class RecordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choice: str = Field(min_length=1, max_length=400, description="the offer block's `choice`")
    catalogue: str = Field(min_length=1, max_length=128)
    offer: str = Field(min_length=1, max_length=64)
    accepted: bool


class RecordResult(BaseModel):
    result: str


def offer_services(store: Offers) -> OfferServices:
    return OfferServices(catalogue=store.catalogue, contacts=store.contacts, stats=store.stats)


def offer_capabilities(store: Offers, over: CapabilityRegistry) -> CapabilityRegistry:
    """``offer.record`` over ``over`` (``over`` itself when it has it already)."""
    if over.find(RECORD) is not None:
        return over
    registry = CapabilityRegistry(over=over)

    def record(request: RecordRequest, ctx: CallContext) -> RecordResult:
        if ctx.subject_id is None:
            raise CapabilityFailed(
                f"{RECORD} needs the run's subject: outcomes are the subject's answers",
                error_type="InputError",
                retryable=False,
            )
        chosen = store.chosen(ctx.tenant_id, ctx.run_id, request.choice)
        if chosen is None:
            raise CapabilityFailed(
                f"{RECORD}: choice {request.choice!r} is not one this run made; pass the "
                "offer block's `choice` (steps.BLOCK.choice)",
                error_type="InputError",
                retryable=False,
            )
        if (chosen.catalogue, chosen.offer) != (request.catalogue, request.offer):
            raise CapabilityFailed(
                f"{RECORD}: choice {request.choice!r} offered {chosen.offer!r} from "
                f"{chosen.catalogue!r}, not {request.offer!r} from {request.catalogue!r}",
                error_type="InputError",
                retryable=False,
            )
        try:
            result = store.record(
                ctx.tenant_id,
                choice_id=chosen.choice_id,
                catalogue=chosen.catalogue,
                offer=chosen.offer,
                version=chosen.version,
                subject_id=ctx.subject_id,
                accepted=request.accepted,
            )
        except InputError as exc:
            raise CapabilityFailed(exc.message, error_type="InputError", retryable=False) from exc
        return RecordResult(result=result)

    registry.add(
        Capability(
            name=RECORD,
            input_model=RecordRequest,
            output_model=RecordResult,
            handler=record,
            side_effect="write",
            idempotent=True,
            description="Whether the subject accepted the offer a next-best-action block chose",
            source=f"accord.service:{RECORD}",
        )
    )
    return registry
