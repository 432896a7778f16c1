"""``/v1`` for governance and evidence: consents, subjects, ledger entries and exports,
policies, agents and rollouts, dead letters, outbound and inbound events."""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from accord.api._auth import Principal
from accord.api._http import (
    Cursor,
    GuardedRoute,
    IdempotencyKey,
    Limit,
    caller,
    decode_cursor,
    encode_cursor,
    idempotent,
    page,
)
from accord.api._problems import Problem
from accord.api._v1 import (
    IDEMPOTENT,
    SEGMENT,
    VERSION_MAX,
    Body,
    Id,
    Name,
    Out,
    Signalled,
    _op,
    _plain,
    accord_of,
)
from accord.audit import ERASED
from accord.core import TenantId
from accord.policy import Entity, PolicyRequest, parse_entity_ref

Subject = Annotated[str, Path(min_length=1, max_length=128, pattern=SEGMENT)]
Purpose = Annotated[str, Query(min_length=1, max_length=128, description="a dpv: purpose")]


# -- consents --------------------------------------------------------------------------------


class GrantConsent(Body):
    subject: str = Field(min_length=1, max_length=128)
    purpose: str = Field(min_length=1, max_length=128)
    categories: list[str] = Field(min_length=1, max_length=64)
    channel: str = Field("api", min_length=1, max_length=32)
    notice_version: str = Field("1", min_length=1, max_length=64)
    expires_at: float | None = Field(None, ge=0)


class ConsentGrant(Out):
    grant_id: str
    tenant_id: str
    subject_id: str
    purpose: str
    categories: list[str]
    channel: str
    notice_version: str
    granted_at: float
    expires_at: float | None
    withdrawn_at: float | None


class GrantPage(Out):
    items: list[ConsentGrant]
    next_cursor: str | None


class HoldReleased(Out):
    subject: str
    hold: Literal["released"]


class Reopened(Out):
    reopened: int = Field(ge=0, description="events set to be sent again")


class PolicyDeployed(Out):
    version: int
    digest: str


class Withdraw(Body):
    reason: str = Field("", max_length=2000)


def consents_router() -> APIRouter:
    router = APIRouter(prefix="/v1/consents", tags=["consents"], route_class=GuardedRoute)

    @router.get(
        "",
        summary="A subject's consent grants",
        response_model=GrantPage,
        **_op("consents.list", 422),
    )
    def grants(
        request: Request,
        who: Annotated[Principal, Depends(caller("consents.list"))],
        subject: Annotated[str, Query(min_length=1, max_length=128)],
    ) -> dict[str, Any]:
        found = accord_of(request).consent.grants(TenantId(who.tenant), subject)
        return page([_grant(g) for g in found], None)

    @router.get(
        "/{grant_id}/receipt",
        summary="A grant's consent receipt",
        **_op("consents.receipt", 404, 422),
    )
    def receipt(
        request: Request,
        grant_id: Id,
        who: Annotated[Principal, Depends(caller("consents.receipt"))],
    ) -> dict[str, Any]:
        found: dict[str, Any] = accord_of(request).consent.receipt(TenantId(who.tenant), grant_id)
        return found

    @router.post(
        "",
        status_code=201,
        summary="Record a consent",
        response_model=ConsentGrant,
        **_op("consents.grant", *IDEMPOTENT, 410),
    )
    def grant(
        request: Request,
        body: GrantConsent,
        who: Annotated[Principal, Depends(caller("consents.grant"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        def run() -> tuple[int, Any]:
            made = accord_of(request).consent.grant(
                TenantId(who.tenant),
                body.subject,
                purpose=body.purpose,
                categories=body.categories,
                channel=body.channel,
                notice_version=body.notice_version,
                expires_at=body.expires_at,
                actor=who.subject,
            )
            return 201, _grant(made)

        return idempotent(request, who, key, "consents.grant", body, run)

    @router.post(
        "/{grant_id}/withdrawal",
        summary="Withdraw a consent",
        response_model=ConsentGrant,
        **_op("consents.withdraw", 400, 404, 409, 422),
    )
    def withdraw(
        request: Request,
        grant_id: Id,
        body: Withdraw,
        who: Annotated[Principal, Depends(caller("consents.withdraw"))],
    ) -> dict[str, Any]:
        done = accord_of(request).consent.withdraw(
            TenantId(who.tenant), grant_id, actor=who.subject, reason=body.reason
        )
        return _grant(done)

    return router


def _grant(grant: Any) -> dict[str, Any]:
    found = _plain(grant)
    found["categories"] = list(grant.categories)
    found.pop("receipt", None)
    return found


# -- subjects --------------------------------------------------------------------------------


class Reasoned(Body):
    reason: str = Field(min_length=1, max_length=2000)


def subjects_router() -> APIRouter:
    router = APIRouter(prefix="/v1/subjects", tags=["subjects"], route_class=GuardedRoute)

    @router.get(
        "/{subject}", summary="A subject's key, hold and entries", **_op("subjects.get", 410, 422)
    )
    def status(
        request: Request,
        subject: Subject,
        who: Annotated[Principal, Depends(caller("subjects.get"))],
    ) -> dict[str, Any]:
        return accord_of(request).subject_status(subject, tenant=who.tenant)

    @router.get(
        "/{subject}/context",
        summary="The subject's context, through a purpose (gateway-checked)",
        **_op("subjects.context", 404, 410, 422, 502),
    )
    def context(
        request: Request,
        subject: Subject,
        purpose: Purpose,
        who: Annotated[Principal, Depends(caller("subjects.context"))],
    ) -> dict[str, Any]:
        result = accord_of(request).read_context(
            subject, purpose=purpose, principal=f"staff/{who.subject}", tenant=who.tenant
        )
        return _plain(result)

    @router.post(
        "/{subject}/erasure",
        summary="Crypto-shred a subject",
        **_op("subjects.erase", 400, 409, 410, 422),
    )
    def erase(
        request: Request,
        subject: Subject,
        body: Reasoned,
        who: Annotated[Principal, Depends(caller("subjects.erase"))],
    ) -> dict[str, Any]:
        done = accord_of(request).erase_subject(
            subject, actor=who.subject, reason=body.reason, tenant=who.tenant
        )
        return _plain(done)

    @router.post(
        "/{subject}/hold", summary="Place a legal hold", **_op("subjects.hold", 400, 409, 410, 422)
    )
    def hold(
        request: Request,
        subject: Subject,
        body: Reasoned,
        who: Annotated[Principal, Depends(caller("subjects.hold"))],
    ) -> dict[str, Any]:
        placed = accord_of(request).place_hold(
            subject, actor=who.subject, reason=body.reason, tenant=who.tenant
        )
        return _plain(placed)

    @router.post(
        "/{subject}/hold/release",
        summary="Release a legal hold",
        response_model=HoldReleased,
        **_op("subjects.release", 400, 409, 410, 422),
    )
    def release(
        request: Request,
        subject: Subject,
        body: Reasoned,
        who: Annotated[Principal, Depends(caller("subjects.release"))],
    ) -> dict[str, str]:
        accord_of(request).release_hold(
            subject, actor=who.subject, reason=body.reason, tenant=who.tenant
        )
        return {"subject": subject, "hold": "released"}

    return router


# -- ledger entries and evidence -------------------------------------------------------------


def evidence_router() -> APIRouter:
    router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=GuardedRoute)

    @router.get(
        "/entries", summary="Ledger entries, in ledger order", **_op("audit.entries", 400, 422)
    )
    def entries(
        request: Request,
        who: Annotated[Principal, Depends(caller("audit.entries"))],
        run_id: Annotated[str | None, Query(max_length=128)] = None,
        subject: Annotated[str | None, Query(max_length=128)] = None,
        kind: Annotated[str | None, Query(max_length=64)] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        after = None
        if cursor is not None:
            (after,) = decode_cursor(cursor, (int,))
        found = accord_of(request).ledger.entries(
            who.tenant,
            run_id=run_id,
            subject_id=subject,
            kinds=[kind] if kind else None,
            limit=limit + 1,
            after=after,
        )
        more = len(found) > limit
        found = found[:limit]
        return page(
            [_entry(e) for e in found],
            encode_cursor(found[-1].index) if more else None,
        )

    @router.get("/export", summary="An evidence bundle", **_op("audit.export", 422))
    def export(
        request: Request,
        who: Annotated[Principal, Depends(caller("audit.export"))],
        run_id: Annotated[str | None, Query(max_length=128)] = None,
        subject: Annotated[str | None, Query(max_length=128)] = None,
        since: Annotated[float | None, Query(ge=0)] = None,
        until: Annotated[float | None, Query(ge=0)] = None,
    ) -> dict[str, Any]:
        return accord_of(request).export_evidence(
            tenant=who.tenant, run_id=run_id, subject_id=subject, since=since, until=until
        )

    return router


def _entry(entry: Any) -> dict[str, Any]:
    # the personal part stays sealed here: subject data is read through a purpose, at the
    # gateway (GET /v1/subjects/{id}/context), never straight from the ledger
    leaf = hashlib.sha256(b"\x00" + entry.data).hexdigest()
    found = {
        "index": entry.index,
        "kind": entry.kind,
        "at": entry.at,
        "run_id": entry.run_id,
        "subject_id": entry.subject_id,
        "body": entry.body,
        "leaf_hash": leaf,
        "data": base64.b64encode(entry.data).decode(),
        "personal": "erased"
        if entry.personal is ERASED
        else ("none" if entry.personal is None else "present"),
    }
    return found


# -- policies --------------------------------------------------------------------------------


class DeployPolicies(Body):
    policies: str = Field(min_length=1, max_length=1_000_000)
    schema_text: str = Field(min_length=1, max_length=1_000_000, alias="schema")
    source_name: str = Field("<api>", max_length=256)


class EntityIn(Body):
    ref: str = Field(min_length=3, max_length=256, description='Type::"id", e.g. Person::"ann"')
    attrs: dict[str, Any] = Field(default_factory=dict)
    parents: list[str] = Field(default_factory=list, max_length=32)


class ExplainRequest(Body):
    principal: EntityIn
    action: str = Field(min_length=1, max_length=128)
    resource: EntityIn
    context: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(None, ge=1, le=VERSION_MAX)


def policies_router() -> APIRouter:
    router = APIRouter(prefix="/v1/policies", tags=["policies"], route_class=GuardedRoute)

    @router.get("", summary="Policy bundle versions, newest first", **_op("policies.list"))
    def versions(
        request: Request, who: Annotated[Principal, Depends(caller("policies.list"))]
    ) -> dict[str, Any]:
        found = accord_of(request).policies.versions(who.tenant)
        return page([_plain(v) for v in found], None)

    @router.get(
        "/{version}", summary="One bundle version with its texts", **_op("policies.get", 404, 422)
    )
    def bundle(
        request: Request,
        version: Annotated[int, Path(ge=1, le=VERSION_MAX)],
        who: Annotated[Principal, Depends(caller("policies.get"))],
    ) -> dict[str, Any]:
        found = accord_of(request).policies.bundle(who.tenant, version)
        return {
            "version": found.version,
            "digest": found.digest,
            "source_name": found.source_name,
            "deployed_at": found.deployed_at,
            "deployed_by": found.deployed_by,
            "policies": found.policies,
            "schema": found.schema,
        }

    @router.post(
        "",
        status_code=201,
        summary="Deploy a policy bundle",
        response_model=PolicyDeployed,
        **_op("policies.deploy", *IDEMPOTENT),
    )
    def deploy(
        request: Request,
        body: DeployPolicies,
        who: Annotated[Principal, Depends(caller("policies.deploy"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        def run() -> tuple[int, Any]:
            found = accord_of(request).policies.deploy(
                who.tenant,
                body.policies,
                body.schema_text,
                source_name=body.source_name,
                actor=who.subject,
            )
            return 201, {"version": found.version, "digest": found.digest}

        return idempotent(request, who, key, "policies.deploy", body.model_dump(), run)

    @router.post(
        "/explain",
        summary="Decide a request and explain every policy's part",
        **_op("policies.explain", 400, 404, 422),
    )
    def explain(
        request: Request,
        body: ExplainRequest,
        who: Annotated[Principal, Depends(caller("policies.explain"))],
    ) -> dict[str, Any]:
        accord = accord_of(request)
        bundle = accord.policies.bundle(who.tenant, body.version)
        asked = PolicyRequest(
            principal=_entity(body.principal, "principal"),
            action=body.action,
            resource=_entity(body.resource, "resource"),
            context=body.context,
        )
        found = accord.pdp.explain(bundle, asked)
        decision = found.decision
        return {
            "allowed": decision.allowed,
            "reason": decision.reason,
            "determining": list(decision.determining),
            "errors": list(decision.errors),
            "obligations": [_plain(o) for o in decision.obligations],
            "bundle_version": decision.bundle_version,
            "policies": [
                {
                    "id": p.id,
                    "effect": p.effect,
                    "matched": p.matched,
                    "determining": p.determining,
                    "error": p.error,
                    "line": p.line,
                }
                for p in found.policies
            ],
        }

    return router


def _entity(given: EntityIn, where: str) -> Entity:
    try:
        kind, ident = parse_entity_ref(given.ref)
        parents = tuple(parse_entity_ref(p) for p in given.parents)
    except ValueError as exc:
        raise Problem(
            422, "validation_failed", f"{where}: {exc}", hint='write Type::"id", e.g. Person::"ann"'
        ) from exc
    return Entity(kind, ident, given.attrs, parents=parents)


# -- agents ----------------------------------------------------------------------------------


class RolloutAction(Body):
    action: Literal["start", "advance", "promote", "stop"]
    agent: str | None = Field(None, min_length=1, max_length=128)
    candidate: int | None = Field(None, ge=1, le=VERSION_MAX)
    rollout_id: str | None = Field(None, min_length=1, max_length=128)
    mode: Literal["canary", "shadow"] = "canary"
    percent: float | None = Field(None, gt=0, le=100)
    reason: str | None = Field(None, max_length=2000)


def agents_router() -> APIRouter:
    router = APIRouter(prefix="/v1/agents", tags=["agents"], route_class=GuardedRoute)

    @router.get("", summary="Agent versions, rollouts and outcome figures", **_op("agents.list"))
    def agents(
        request: Request, who: Annotated[Principal, Depends(caller("agents.list"))]
    ) -> dict[str, Any]:
        accord = accord_of(request)
        tenant = TenantId(who.tenant)
        versions = accord.agents.versions(tenant)
        return {
            "items": [
                {
                    k: getattr(v, k)
                    for k in ("name", "version", "digest", "deployed_at", "deployed_by")
                }
                for v in versions
            ],
            "rollouts": [_plain(r) for r in accord.agents.rollouts(tenant)],
            "stats": [_plain(s) for s in accord.agent_stats(tenant=who.tenant)],
            "next_cursor": None,
        }

    @router.get(
        "/{name}", summary="One agent's versions and current version", **_op("agents.get", 404, 422)
    )
    def agent(
        request: Request, name: Name, who: Annotated[Principal, Depends(caller("agents.get"))]
    ) -> dict[str, Any]:
        accord = accord_of(request)
        tenant = TenantId(who.tenant)
        versions = accord.agents.versions(tenant, name)
        if not versions:
            raise Problem(404, "agent_not_found", f"no agent {name!r} is deployed")
        return {
            "name": name,
            "current_version": accord.agents.current_version(who.tenant, name),
            "versions": [_plain(v) for v in versions],
            "rollouts": [_plain(r) for r in accord.agents.rollouts(tenant, name)],
        }

    @router.post(
        "/rollouts",
        summary="Start, advance, promote or stop a rollout",
        **_op("agents.rollout", 400, 404, 409, 422),
    )
    def rollout(
        request: Request,
        body: RolloutAction,
        who: Annotated[Principal, Depends(caller("agents.rollout"))],
    ) -> dict[str, Any]:
        accord = accord_of(request)
        tenant = who.tenant
        if body.action == "start":
            if body.agent is None or body.candidate is None:
                raise Problem(422, "validation_failed", "start needs 'agent' and 'candidate'")
            done = accord.start_rollout(
                body.agent,
                body.candidate,
                mode=body.mode,
                percent=body.percent or 5.0,
                by=who.subject,
                tenant=tenant,
            )
            return _plain(done)
        if body.rollout_id is None:
            raise Problem(422, "validation_failed", f"{body.action} needs 'rollout_id'")
        if body.action == "advance":
            done = accord.advance_rollout(
                body.rollout_id, percent=body.percent, by=who.subject, tenant=tenant
            )
        elif body.action == "promote":
            done = accord.promote_rollout(body.rollout_id, by=who.subject, tenant=tenant)
        else:
            done = accord.stop_rollout(
                body.rollout_id, reason=body.reason or "stopped", by=who.subject, tenant=tenant
            )
        return _plain(done)

    return router


# -- dead letters and events -----------------------------------------------------------------


class Note(Body):
    note: str | None = Field(None, max_length=2000)


class Redeliver(Body):
    event_ids: list[str] = Field(default_factory=list, max_length=1000)
    dead: bool = False
    sink: str | None = Field(None, max_length=64)


def delivery_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["operations"], route_class=GuardedRoute)

    @router.post(
        "/dead-letters/{letter_id}/retry",
        summary="Run a parked call again",
        response_model=Signalled,
        **_op("dlq.retry", 400, 404, 409, 422),
    )
    def retry(
        request: Request,
        letter_id: Id,
        body: Note,
        who: Annotated[Principal, Depends(caller("dlq.retry"))],
    ) -> dict[str, Any]:
        done = accord_of(request).retry_dead_letter(
            letter_id, by=who.subject, note=body.note, tenant=who.tenant
        )
        return {"signal_ids": list(done.signal_ids), "run_ids": list(done.run_ids)}

    @router.post(
        "/dead-letters/{letter_id}/discard",
        summary="Give a parked call up",
        response_model=Signalled,
        **_op("dlq.discard", 400, 404, 409, 422),
    )
    def discard(
        request: Request,
        letter_id: Id,
        body: Note,
        who: Annotated[Principal, Depends(caller("dlq.discard"))],
    ) -> dict[str, Any]:
        done = accord_of(request).discard_dead_letter(
            letter_id, by=who.subject, note=body.note, tenant=who.tenant
        )
        return {"signal_ids": list(done.signal_ids), "run_ids": list(done.run_ids)}

    @router.get(
        "/outbound-events", summary="Domain events as CloudEvents", **_op("events.list", 400, 422)
    )
    def outbound(
        request: Request,
        who: Annotated[Principal, Depends(caller("events.list"))],
        type: Annotated[str | None, Query(max_length=128)] = None,
        run_id: Annotated[str | None, Query(max_length=128)] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        after = None
        if cursor is not None:
            at, event_id = decode_cursor(cursor, (float, str))
            after = (float(at), str(event_id))
        found = accord_of(request).events(
            who.tenant, types=[type] if type else (), run_id=run_id, after=after, limit=limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        last = found[-1].event if found else None
        following = encode_cursor(last.created_at, last.event_id) if more and last else None
        return page([v.to_json() for v in found], following)

    @router.post(
        "/outbound-events/redelivery",
        summary="Send events again",
        response_model=Reopened,
        **_op("events.redeliver", 400, 422),
    )
    def redeliver(
        request: Request,
        body: Redeliver,
        who: Annotated[Principal, Depends(caller("events.redeliver"))],
    ) -> dict[str, int]:
        count = accord_of(request).redeliver_events(
            body.event_ids, dead=body.dead, sink=body.sink, tenant=who.tenant
        )
        return {"reopened": count}

    @router.get(
        "/inbound-events", summary="Inbound events and what each did", **_op("events.inbound", 422)
    )
    def inbound(
        request: Request,
        who: Annotated[Principal, Depends(caller("events.inbound"))],
        status: Literal["started", "signalled", "parked", "ignored", "refused"] | None = None,
        limit: Limit = 50,
    ) -> dict[str, Any]:
        found = accord_of(request).inbound_events(who.tenant, status=status, limit=limit)
        return page([_plain(r) for r in found], None)

    return router
