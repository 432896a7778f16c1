"""What every ``/v1`` route shares: the caller (authenticated, then authorised by Cedar, before
the request is read), cursor pagination, and ``Idempotency-Key`` on POSTs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from accord.api._access import OPERATIONS, AccessControl, Operation
from accord.api._auth import Principal, TokenVerifier, Unauthenticated
from accord.api._problems import Problem, from_error
from accord.errors import AccordError
from accord.service import Accord
from accord.storage import api as stored_api

T = TypeVar("T")

IN_FLIGHT_STALE_SECONDS = 300.0
"""A request in flight longer than this is taken to have died with its process."""

CURSOR_INT_MAX = 2**53

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="an OIDC/JWT access token, or one from `accord token create`",
)


@dataclass
class ApiContext:
    """The instance and the two gatekeepers every route uses."""

    accord: Accord
    verifier: TokenVerifier
    access: AccessControl


def context_of(request: Request) -> ApiContext:
    found: ApiContext = request.app.state.api
    return found


def authorise(
    request: Request, credentials: HTTPAuthorizationCredentials | None, op: Operation
) -> Principal:
    """The verified caller of ``request``, allowed by Cedar to perform ``op``.

    Raises:
        Problem: 401 without valid credentials, 403 when the access policies deny (naming
            the policies and the reason); both are recorded with the other access decisions.
    """
    api = context_of(request)
    if credentials is None:
        raise Problem(
            401,
            "unauthenticated",
            "this operation needs 'Authorization: Bearer <token>'",
            hint="'accord token create --role ROLE --tenant TENANT' makes a development token",
        )
    try:
        principal = api.verifier.verify(credentials.credentials)
    except Unauthenticated as exc:
        raise Problem(401, "unauthenticated", exc.detail) from exc
    decision = api.access.decide(principal, op, method=request.method, path=request.url.path)
    if not decision.allowed:
        roles = ", ".join(sorted(principal.roles)) or "no roles"
        raise Problem(
            403,
            "forbidden",
            f"{principal.subject} ({roles}) may not perform {op.name}",
            hint="ask an admin for a role that allows it",
            operation=op.name,
            reason=decision.reason,
            policies=list(decision.determining),
        )
    return principal


class GuardedRoute(APIRoute):
    """A ``/v1`` route that decides who is calling before it reads the request.

    FastAPI parses the body before it solves dependencies, so without this a malformed body
    would answer 400 or 422 to a caller without credentials, or to one the policies deny.
    The route's ``operation_id`` names its operation; :func:`caller` then finds the decided
    principal instead of deciding (and recording) again.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        op = OPERATIONS[str(self.operation_id)]

        async def guarded(request: Request) -> Response:
            credentials = await bearer(request)
            try:
                principal = await run_in_threadpool(authorise, request, credentials, op)
            except Problem as exc:
                return exc.response()
            request.state.principal = principal
            request.state.operation = op.name
            return await handler(request)

        return guarded


def caller(operation: str) -> Callable[..., Principal]:
    """A dependency: the verified caller, allowed by Cedar to perform ``operation``.

    Under a :class:`GuardedRoute` the route has decided already; elsewhere the dependency
    decides (see :func:`authorise`).
    """
    op = OPERATIONS[operation]

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if getattr(request.state, "operation", None) == op.name:
            decided: Principal = request.state.principal
            return decided
        principal = authorise(request, credentials, op)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"caller_{operation.replace('.', '_')}"
    return dependency


# -- pagination ------------------------------------------------------------------------------


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: Sequence[type]) -> tuple[Any, ...]:
    """The values a cursor holds, checked against ``shape`` (400 for a broken cursor)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(400, "invalid_cursor", "the cursor is not one this API gave") from exc
    if (
        not isinstance(values, list)
        or len(values) != len(shape)
        or not all(_fits(v, t) for v, t in zip(values, shape, strict=True))
    ):
        raise Problem(400, "invalid_cursor", "the cursor is not one this API gave")
    return tuple(values)


def _fits(value: Any, kind: type) -> bool:
    """Whether a cursor value is a ``kind`` that a page could have ended on: positions are
    integers from 0 to 2**53, times finite numbers."""
    if not isinstance(value, kind) or isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value <= CURSOR_INT_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    return True


Limit = Annotated[int, Query(ge=1, le=200, description="items per page")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="next_cursor of the previous page"),
]


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": jsonable_encoder(items), "next_cursor": next_cursor}


# -- idempotency -----------------------------------------------------------------------------

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description=(
            "repeat a POST safely: the same key and body replay the first response; "
            "409 while the first is in flight; 422 for a changed body"
        ),
    ),
]


def request_digest(operation: str, path: str, body: Any) -> str:
    canonical = json.dumps(
        [operation, path, jsonable_encoder(body)], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent(
    request: Request,
    principal: Principal,
    key: str | None,
    operation: str,
    body: Any,
    handler: Callable[[], tuple[int, Any]],
) -> JSONResponse:
    """Run ``handler`` (returning status and body) at most once per ``key``.

    Without a key it just runs. With one: the first request runs and its answer, success or
    problem, is kept; a repeat with the same body gets that answer again (header
    ``Idempotency-Replayed: true``), one while the first is still running gets 409, and one
    with a different body 422. An unexpected failure forgets the key, so it can be retried.
    """
    if key is None:
        status, answer = _run(handler)
        return _response(status, answer)
    if not _KEY.match(key):
        raise Problem(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            hint="a UUID is a good key",
        )
    api = context_of(request)
    db, clock = api.accord.db, api.accord.runtime.clock
    tenant, who = principal.tenant, principal.subject
    digest = request_digest(operation, request.url.path, body)
    try:
        with db.transaction() as connection:
            stored_api.begin_request(
                connection,
                tenant=tenant,
                principal=who,
                key=key,
                operation=operation,
                request_digest=digest,
                now=clock.now(),
            )
    except IntegrityError:
        replay = _earlier(api, tenant, who, key, digest)
        if replay is not None:
            return replay
    try:
        status, answer = _run(handler)
    except BaseException:
        with db.transaction() as connection:
            stored_api.abandon_request(connection, tenant=tenant, principal=who, key=key)
        raise
    encoded = json.dumps(jsonable_encoder(answer))
    with db.transaction() as connection:
        stored_api.finish_request(
            connection,
            tenant=tenant,
            principal=who,
            key=key,
            status=status,
            body=encoded,
            now=clock.now(),
        )
    return _response(status, answer)


def _earlier(api: ApiContext, tenant: str, who: str, key: str, digest: str) -> JSONResponse | None:
    """The answer to a key seen before, or None when this request may run after all."""
    with api.accord.db.read() as connection:
        first = stored_api.get_request(connection, tenant, who, key)
    if first is None:
        # the first request failed and let the key go between our insert and this read
        raise Problem(
            409,
            "request_in_flight",
            "a request with this Idempotency-Key just failed",
            hint="send it again",
            headers={"Retry-After": "1"},
        )
    if first.request_digest != digest:
        raise Problem(
            422,
            "idempotency_key_reused",
            f"Idempotency-Key {key!r} was used for a different request",
            hint="use a new key for a new request",
        )
    if first.status == "in_flight":
        now = api.accord.runtime.clock.now()
        with api.accord.db.transaction() as connection:
            taken = stored_api.take_over_request(
                connection,
                tenant=tenant,
                principal=who,
                key=key,
                request_digest=digest,
                stale_before=now - IN_FLIGHT_STALE_SECONDS,
                now=now,
            )
        if taken:
            return None
        raise Problem(
            409,
            "request_in_flight",
            f"a request with Idempotency-Key {key!r} is still being processed",
            hint="wait for it, then send this one again to get its answer",
            headers={"Retry-After": "1"},
        )
    assert first.response_status is not None and first.response_body is not None
    return _response(
        first.response_status,
        json.loads(first.response_body),
        headers={"Idempotency-Replayed": "true"},
    )


def _run(handler: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
    try:
        return handler()
    except Problem as exc:
        if exc.status >= 500:
            raise
        return exc.status, exc.body()
    except AccordError as exc:
        problem = from_error(exc)
        if problem.status >= 500:
            raise
        return problem.status, problem.body()


def _response(status: int, answer: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    problem = status >= 400
    return JSONResponse(
        jsonable_encoder(answer),
        status_code=status,
        media_type="application/problem+json" if problem else "application/json",
        headers=headers,
    )
