"""``/v1``: journeys, runs, reviews, consents, subjects, audit, policies, flags, agents, dead
letters, events and access decisions. Each route authenticates, asks Cedar, and calls the
service facade with the caller's tenant; it decides nothing itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from accord.api._access import OPERATIONS
from accord.api._auth import Principal
from accord.api._http import (
    Cursor,
    GuardedRoute,
    IdempotencyKey,
    Limit,
    caller,
    context_of,
    decode_cursor,
    encode_cursor,
    idempotent,
    page,
)
from accord.api._problems import Problem, problem_responses
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.reviews import item_packet
from accord.service import Accord
from accord.storage import api as stored_api

SEGMENT = r"^[A-Za-z0-9_.:@-]*[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]*$"
"""One path segment: no '/', which would reach another route, and not '.' or '..', which
clients collapse before sending."""

Name = Annotated[str, Path(min_length=1, max_length=128, pattern=SEGMENT)]
Id = Annotated[str, Path(min_length=1, max_length=128, pattern=SEGMENT)]

VERSION_MAX = 2**31 - 1
"""Versions are 32-bit integers in the database; a larger one is invalid, not a crash."""

IDEMPOTENT = (400, 409, 422)
"""What ``Idempotency-Key`` adds: a malformed key, a request still in flight, a changed body."""


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """An answer's documented shape; fields added later do not break it."""

    model_config = ConfigDict(extra="allow")


class Signalled(Out):
    """The signals a request sent, and the runs they reached."""

    signal_ids: list[str]
    run_ids: list[str]


def _op(
    name: str, *problems: int, answers: dict[int | str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Route options naming the Cedar action a route is decided as, and documenting the
    problem details it answers: ``problems``, and 401, 403 and 500 that every route may;
    ``answers`` documents successes other than the route's own status."""
    op = OPERATIONS[name]
    return {
        "operation_id": name,
        "responses": {**(answers or {}), **problem_responses(401, 403, 500, *problems)},
        "openapi_extra": {"x-accord-operation": name, "x-accord-kind": op.kind},
    }


def accord_of(request: Request) -> Accord:
    return context_of(request).accord


# -- journeys --------------------------------------------------------------------------------


class JourneySource(Body):
    source: str = Field(min_length=1, max_length=1_000_000, description="journey YAML")
    source_name: str = Field("<api>", max_length=256)


class JourneyVersion(Out):
    name: str
    version: int
    digest: str
    deployed_at: float
    deployed_by: str
    source: str | None = Field(None, description="the journey YAML (versions only)")


class JourneyPage(Out):
    items: list[JourneyVersion]
    next_cursor: str | None


class LintDiagnostic(Out):
    message: str
    line: int | None
    column: int | None
    path: str | None
    hint: str | None
    severity: str


class Linted(Out):
    journey: str
    valid: bool
    diagnostics: list[LintDiagnostic]


class Deployed(Out):
    journey: str
    version: int
    digest: str
    created: bool
    warnings: list[str]


def journeys_router() -> APIRouter:
    router = APIRouter(prefix="/v1/journeys", tags=["journeys"], route_class=GuardedRoute)

    @router.get(
        "",
        summary="Deployed journeys, their latest versions",
        response_model=JourneyPage,
        **_op("journeys.list"),
    )
    def list_journeys(
        request: Request, who: Annotated[Principal, Depends(caller("journeys.list"))]
    ) -> dict[str, Any]:
        records = accord_of(request).runtime.catalog.versions(TenantId(who.tenant))
        latest: dict[str, Any] = {}
        for record in records:
            if record.name not in latest or record.version > latest[record.name]["version"]:
                latest[record.name] = _journey(record)
        return page(sorted(latest.values(), key=lambda j: j["name"]), None)

    @router.get(
        "/{name}/versions",
        summary="Every version of a journey",
        response_model=JourneyPage,
        **_op("journeys.get", 404, 422),
    )
    def journey_versions(
        request: Request, name: Name, who: Annotated[Principal, Depends(caller("journeys.get"))]
    ) -> dict[str, Any]:
        records = accord_of(request).runtime.catalog.versions(TenantId(who.tenant), name)
        if not records:
            raise Problem(404, "journey_not_found", f"no journey {name!r} is deployed")
        return page([_journey(r, source=True) for r in records], None)

    @router.post(
        "/lint",
        summary="Check a journey without deploying it",
        response_model=Linted,
        **_op("journeys.lint", 400, 422),
    )
    def lint_journey(
        request: Request,
        body: JourneySource,
        who: Annotated[Principal, Depends(caller("journeys.lint"))],
    ) -> dict[str, Any]:
        loaded = load_journey_text(body.source, source_name=body.source_name)
        found = accord_of(request).runtime.catalog.lint(TenantId(who.tenant), loaded)
        return {
            "journey": loaded.spec.journey,
            "valid": not any(d.severity == "error" for d in found),
            "diagnostics": [
                {
                    "message": d.message,
                    "line": d.line,
                    "column": d.column,
                    "path": d.path,
                    "hint": d.hint,
                    "severity": d.severity,
                }
                for d in found
            ],
        }

    @router.post(
        "",
        status_code=201,
        summary="Deploy a journey version",
        response_model=Deployed,
        **_op(
            "journeys.deploy",
            *IDEMPOTENT,
            answers={200: {"model": Deployed, "description": "deployed already: nothing changed"}},
        ),
    )
    def deploy_journey(
        request: Request,
        body: JourneySource,
        who: Annotated[Principal, Depends(caller("journeys.deploy"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        def run() -> tuple[int, Any]:
            loaded = load_journey_text(body.source, source_name=body.source_name)
            done = accord_of(request).runtime.catalog.deploy(
                TenantId(who.tenant), loaded, deployed_by=who.subject
            )
            return (201 if done.created else 200), {
                "journey": done.name,
                "version": done.version,
                "digest": done.digest,
                "created": done.created,
                "warnings": [d.render() for d in done.warnings],
            }

        return idempotent(request, who, key, "journeys.deploy", body, run)

    return router


def _journey(record: Any, *, source: bool = False) -> dict[str, Any]:
    found = {
        "name": record.name,
        "version": record.version,
        "digest": record.digest,
        "deployed_at": record.deployed_at,
        "deployed_by": record.deployed_by,
    }
    if source:
        found["source"] = record.source
    return found


# -- runs ------------------------------------------------------------------------------------


class StartRun(Body):
    journey: str = Field(min_length=1, max_length=128)
    input: dict[str, Any] = Field(default_factory=dict)
    subject: str | None = Field(None, min_length=1, max_length=128)
    version: int | None = Field(None, ge=1, le=VERSION_MAX)


class SignalRun(Body):
    name: str = Field(min_length=1, max_length=128)
    payload: dict[str, Any] = Field(default_factory=dict)


class CancelRun(Body):
    reason: str = Field(min_length=1, max_length=2000)


class Position(Out):
    block: str
    status: str
    waiting_for: str | None
    until: float | None


class RunSummary(Out):
    run_id: str
    journey: str
    version: int
    subject_id: str | None
    status: str
    outcome: str | None
    error: dict[str, Any] | None
    created_at: float
    updated_at: float
    ended_at: float | None
    parent_run_id: str | None
    positions: list[Position]


class RunDetail(RunSummary):
    input: dict[str, Any]
    steps: dict[str, Any]
    output: Any


class RunPage(Out):
    items: list[RunSummary]
    next_cursor: str | None


class HistoryItem(Out):
    run_id: str
    seq: int
    at: float
    kind: str
    block: str | None
    visit: int | None
    attempt: int | None
    detail: dict[str, Any]
    worker: str | None


class HistoryPage(Out):
    items: list[HistoryItem]
    next_cursor: str | None


RunStatusFilter = Literal["running", "waiting", "completed", "failed", "cancelled", "compensated"]


def runs_router() -> APIRouter:
    router = APIRouter(prefix="/v1/runs", tags=["runs"], route_class=GuardedRoute)

    @router.post(
        "",
        status_code=201,
        summary="Start a run",
        response_model=RunSummary,
        **_op("runs.start", *IDEMPOTENT, 404, 410),
    )
    def start_run(
        request: Request,
        body: StartRun,
        who: Annotated[Principal, Depends(caller("runs.start"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        accord = accord_of(request)

        def run() -> tuple[int, Any]:
            started = accord.runtime.start(
                TenantId(who.tenant),
                body.journey,
                input=body.input,
                subject=body.subject,
                version=body.version,
                idempotency_key=None if key is None else f"api/{who.subject}/{key}",
            )
            view = accord.runtime.get(TenantId(who.tenant), started.run_id)
            return 201, _run(view)

        return idempotent(request, who, key, "runs.start", body, run)

    @router.get(
        "", summary="Runs, newest first", response_model=RunPage, **_op("runs.list", 400, 422)
    )
    def list_runs(
        request: Request,
        who: Annotated[Principal, Depends(caller("runs.list"))],
        journey: Annotated[str | None, Query(max_length=128)] = None,
        status: RunStatusFilter | None = None,
        subject: Annotated[str | None, Query(max_length=128)] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        before = None
        if cursor is not None:
            at, run_id = decode_cursor(cursor, (float, str))
            before = (float(at), str(run_id))
        views = accord_of(request).runtime.list_runs(
            TenantId(who.tenant),
            journey=journey,
            status=status,
            subject=subject,
            limit=limit + 1,
            before=before,
        )
        more = len(views) > limit
        views = views[:limit]
        following = encode_cursor(views[-1].created_at, views[-1].run_id) if more else None
        return page([_run(v) for v in views], following)

    @router.get(
        "/{run_id}", summary="One run", response_model=RunDetail, **_op("runs.get", 404, 422)
    )
    def get_run(
        request: Request, run_id: Id, who: Annotated[Principal, Depends(caller("runs.get"))]
    ) -> dict[str, Any]:
        return _run(accord_of(request).runtime.get(TenantId(who.tenant), run_id), full=True)

    @router.get(
        "/{run_id}/history",
        summary="A run's history, in order",
        response_model=HistoryPage,
        **_op("runs.history", 400, 404, 422),
    )
    def run_history(
        request: Request,
        run_id: Id,
        who: Annotated[Principal, Depends(caller("runs.history"))],
        limit: Limit = 200,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        after = 0
        if cursor is not None:
            (after,) = decode_cursor(cursor, (int,))
        entries = accord_of(request).runtime.history(TenantId(who.tenant), run_id)
        chosen = [e for e in entries if e.seq > after][: limit + 1]
        more = len(chosen) > limit
        chosen = chosen[:limit]
        return page(chosen, encode_cursor(chosen[-1].seq) if more else None)

    @router.get(
        "/{run_id}/explanation",
        summary="Why the run went as it did",
        **_op("runs.explain", 404, 422),
    )
    def explain_run(
        request: Request, run_id: Id, who: Annotated[Principal, Depends(caller("runs.explain"))]
    ) -> dict[str, Any]:
        accord = accord_of(request)
        accord.runtime.get(TenantId(who.tenant), run_id)
        explanation = accord.explain(run_id, tenant=who.tenant)
        found: dict[str, Any] = explanation.to_json()
        return found

    @router.post(
        "/{run_id}/signals",
        status_code=202,
        summary="Signal a run",
        response_model=Signalled,
        **_op("runs.signal", *IDEMPOTENT, 404),
    )
    def signal_run(
        request: Request,
        run_id: Id,
        body: SignalRun,
        who: Annotated[Principal, Depends(caller("runs.signal"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        accord = accord_of(request)

        def run() -> tuple[int, Any]:
            accord.runtime.get(TenantId(who.tenant), run_id)
            result = accord.runtime.signal(
                TenantId(who.tenant), body.name, run_id=run_id, payload=body.payload
            )
            return 202, {"signal_ids": list(result.signal_ids), "run_ids": list(result.run_ids)}

        return idempotent(
            request, who, key, "runs.signal", {"run": run_id, **body.model_dump()}, run
        )

    @router.post(
        "/{run_id}/cancel",
        status_code=202,
        summary="Cancel a run",
        response_model=Signalled,
        **_op("runs.cancel", *IDEMPOTENT, 404),
    )
    def cancel_run(
        request: Request,
        run_id: Id,
        body: CancelRun,
        who: Annotated[Principal, Depends(caller("runs.cancel"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        accord = accord_of(request)

        def run() -> tuple[int, Any]:
            result = accord.runtime.cancel(
                TenantId(who.tenant), run_id, reason=body.reason, by=who.subject
            )
            return 202, {"signal_ids": list(result.signal_ids), "run_ids": list(result.run_ids)}

        return idempotent(
            request, who, key, "runs.cancel", {"run": run_id, **body.model_dump()}, run
        )

    return router


def _run(view: Any, *, full: bool = False) -> dict[str, Any]:
    found = {
        "run_id": view.run_id,
        "journey": view.journey,
        "version": view.version,
        "subject_id": view.subject_id,
        "status": view.status,
        "outcome": view.outcome,
        "error": view.error,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "ended_at": view.ended_at,
        "parent_run_id": view.parent_run_id,
        "positions": [{k: getattr(p, k) for k in p.__slots__} for p in view.positions],
    }
    if full:
        found.update(input=view.input, steps=view.steps, output=view.output)
    return found


# -- reviews ---------------------------------------------------------------------------------


class Decide(Body):
    decision: Literal["approve", "edit", "reject", "override", "request_info"]
    reason: str | None = Field(None, max_length=4000)
    value: Any = None
    outcome: str | None = Field(None, max_length=128)
    question: str | None = Field(None, max_length=4000)


class Reassign(Body):
    to: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=2000)


class ReviewItem(Out):
    item_id: str
    run_id: str
    block: str
    kind: str
    subject_id: str | None
    queue: str
    roles: list[str]
    priority: int
    status: str
    owner: str | None
    created_at: float
    due_at: float | None
    outcome: str | None
    decided_by: str | None
    decided_at: float | None
    title: str | None


class ReviewDetail(ReviewItem):
    packet: dict[str, Any]
    decision: dict[str, Any] | None


class ReviewPage(Out):
    items: list[ReviewItem]
    next_cursor: str | None


ReviewStatusFilter = Literal["open", "claimed", "info_requested", "decided", "expired", "cancelled"]


def reviews_router() -> APIRouter:
    router = APIRouter(prefix="/v1/reviews", tags=["reviews"], route_class=GuardedRoute)

    @router.get(
        "",
        summary="The caller's inbox: items they may work",
        response_model=ReviewPage,
        **_op("reviews.list", 400, 422),
    )
    def inbox(
        request: Request,
        who: Annotated[Principal, Depends(caller("reviews.list"))],
        queue: Annotated[str | None, Query(max_length=128)] = None,
        mine: bool = False,
        run_id: Annotated[str | None, Query(max_length=128)] = None,
        everyone: Annotated[
            bool, Query(description="every open item, not only the caller's")
        ] = False,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        offset = 0
        if cursor is not None:
            (offset,) = decode_cursor(cursor, (int,))
        accord = accord_of(request)
        person = None if everyone else who.subject
        items = accord.review_items(
            tenant=who.tenant,
            person=person,
            queue=queue,
            mine=mine,
            run_id=run_id,
            limit=offset + limit + 1,
        )
        chosen = items[offset : offset + limit]
        more = len(items) > offset + limit
        return page([_item(i) for i in chosen], encode_cursor(offset + limit) if more else None)

    @router.get(
        "/{item_id}",
        summary="An item with its handoff packet",
        response_model=ReviewDetail,
        **_op("reviews.get", 404, 422),
    )
    def get_item(
        request: Request, item_id: Id, who: Annotated[Principal, Depends(caller("reviews.get"))]
    ) -> dict[str, Any]:
        item = accord_of(request).review_item(item_id, tenant=who.tenant)
        return {**_item(item), "packet": item_packet(item).to_json(), "decision": item.decision}

    @router.post(
        "/{item_id}/claim",
        summary="Claim an item",
        response_model=ReviewItem,
        **_op("reviews.claim", 404, 409, 422),
    )
    def claim(
        request: Request, item_id: Id, who: Annotated[Principal, Depends(caller("reviews.claim"))]
    ) -> dict[str, Any]:
        return _item(accord_of(request).claim_review(item_id, who.subject, tenant=who.tenant))

    @router.post(
        "/{item_id}/release",
        summary="Give a claimed item back",
        response_model=ReviewItem,
        **_op("reviews.release", 404, 409, 422),
    )
    def release(
        request: Request,
        item_id: Id,
        who: Annotated[Principal, Depends(caller("reviews.release"))],
    ) -> dict[str, Any]:
        return _item(accord_of(request).release_review(item_id, who.subject, tenant=who.tenant))

    @router.post(
        "/{item_id}/decision",
        summary="Decide: approve, edit, reject, override, ask",
        **_op("reviews.decide", *IDEMPOTENT, 404),
    )
    def decide(
        request: Request,
        item_id: Id,
        body: Decide,
        who: Annotated[Principal, Depends(caller("reviews.decide"))],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        accord = accord_of(request)

        def run() -> tuple[int, Any]:
            details = body.model_dump(exclude={"decision"}, exclude_none=True)
            result = accord.decide_review(
                item_id, who.subject, body.decision, tenant=who.tenant, **details
            )
            return 200, _plain(result)

        return idempotent(
            request, who, key, "reviews.decide", {"item": item_id, **body.model_dump()}, run
        )

    @router.post(
        "/{item_id}/reassign",
        summary="Give an item to someone",
        response_model=ReviewItem,
        **_op("reviews.reassign", 400, 404, 409, 422),
    )
    def reassign(
        request: Request,
        item_id: Id,
        body: Reassign,
        who: Annotated[Principal, Depends(caller("reviews.reassign"))],
    ) -> dict[str, Any]:
        item = accord_of(request).reassign_review(
            item_id, by=who.subject, to=body.to, reason=body.reason, tenant=who.tenant
        )
        return _item(item)

    return router


def _plain(value: Any) -> dict[str, Any]:
    return {k: getattr(value, k) for k in value.__slots__}


def _item(item: Any) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "run_id": item.run_id,
        "block": item.block,
        "kind": item.kind,
        "subject_id": item.subject_id,
        "queue": item.queue,
        "roles": list(item.roles),
        "priority": item.priority,
        "status": item.status,
        "owner": item.owner,
        "created_at": item.created_at,
        "due_at": item.due_at,
        "outcome": item.outcome,
        "decided_by": item.decided_by,
        "decided_at": item.decided_at,
        "title": item.packet.get("title"),
    }


# -- audit -----------------------------------------------------------------------------------


def audit_router() -> APIRouter:
    router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=GuardedRoute)

    @router.get("/head", summary="The latest signed tree head", **_op("audit.head"))
    def head(
        request: Request, who: Annotated[Principal, Depends(caller("audit.head"))]
    ) -> dict[str, Any]:
        found: dict[str, Any] = accord_of(request).tree_head(who.tenant).to_json()
        return found

    @router.get(
        "/proofs/inclusion/{index}",
        summary="Inclusion proof of one entry",
        **_op("audit.inclusion", 404, 422),
    )
    def inclusion(
        request: Request,
        index: Annotated[int, Path(ge=0, le=2**53)],
        who: Annotated[Principal, Depends(caller("audit.inclusion"))],
        tree_size: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    ) -> dict[str, Any]:
        proof = accord_of(request).inclusion_proof(index, tenant=who.tenant, tree_size=tree_size)
        found: dict[str, Any] = proof.to_json()
        return found

    @router.get(
        "/proofs/consistency",
        summary="Consistency proof between two tree sizes",
        **_op("audit.consistency", 422),
    )
    def consistency(
        request: Request,
        first: Annotated[int, Query(ge=1, le=2**53)],
        second: Annotated[int, Query(ge=1, le=2**53)],
        who: Annotated[Principal, Depends(caller("audit.consistency"))],
    ) -> dict[str, Any]:
        proof = accord_of(request).consistency_proof(first, second, tenant=who.tenant)
        found: dict[str, Any] = proof.to_json()
        return found

    @router.post("/verify", summary="Verify the ledger end to end", **_op("audit.verify"))
    def verify(
        request: Request, who: Annotated[Principal, Depends(caller("audit.verify"))]
    ) -> dict[str, Any]:
        found: dict[str, Any] = accord_of(request).verify_ledger(tenant=who.tenant).to_json()
        return found

    return router


# -- flags, dead letters, access -------------------------------------------------------------


class SetFlag(Body):
    value: bool | int
    reason: str = Field(min_length=1, max_length=2000)


def operations_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["operations"], route_class=GuardedRoute)

    @router.get("/flags", summary="Flags and kill switches", **_op("flags.list"))
    def flags(
        request: Request, who: Annotated[Principal, Depends(caller("flags.list"))]
    ) -> dict[str, Any]:
        records = accord_of(request).flags.store.list(who.tenant)
        return page([_plain(r) for r in records], None)

    @router.put("/flags/{key}", summary="Set a flag or kill switch", **_op("flags.set", 400, 422))
    def set_flag(
        request: Request,
        key: Annotated[str, Path(min_length=1, max_length=256, pattern=SEGMENT)],
        body: SetFlag,
        who: Annotated[Principal, Depends(caller("flags.set"))],
    ) -> dict[str, Any]:
        record = accord_of(request).set_flag(
            key, body.value, actor=who.subject, reason=body.reason, tenant=who.tenant
        )
        return _plain(record)

    @router.get("/dead-letters", summary="Parked connector calls", **_op("dlq.list", 422))
    def dead_letters(
        request: Request,
        who: Annotated[Principal, Depends(caller("dlq.list"))],
        status: Literal["pending", "retried", "discarded"] | None = "pending",
        limit: Limit = 50,
    ) -> dict[str, Any]:
        letters = accord_of(request).dead_letters(status=status, limit=limit, tenant=who.tenant)
        return page([_plain(letter) for letter in letters], None)

    @router.get(
        "/access/decisions",
        summary="Recorded access decisions",
        **_op("access.decisions", 400, 422),
    )
    def access_decisions(
        request: Request,
        who: Annotated[Principal, Depends(caller("access.decisions"))],
        principal: Annotated[str | None, Query(max_length=256)] = None,
        allowed: bool | None = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        before = None
        if cursor is not None:
            at, decision_id = decode_cursor(cursor, (float, str))
            before = (float(at), str(decision_id))
        accord = accord_of(request)
        with accord.db.read() as connection:
            found = stored_api.list_access_decisions(
                connection,
                who.tenant,
                principal=principal,
                allowed=allowed,
                limit=limit + 1,
                before=before,
            )
        more = len(found) > limit
        found = found[:limit]
        following = encode_cursor(found[-1].at, found[-1].decision_id) if more else None
        return page([d.to_json() for d in found], following)

    return router
