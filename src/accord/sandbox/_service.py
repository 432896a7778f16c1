"""What every sandbox service shares: its app, idempotent writes, the effect log and admin routes.

A write declares ``mutation: Write`` and hands its effect to :meth:`Mutation.apply`. With an
``Idempotency-Key`` the first request reserves the key, then applies the effect and stores its
response in the same transaction; a repeat with the same request gets the stored response back
(``Idempotent-Replayed: true``), a repeat with another request is refused (422), and a repeat
while the first is still running is refused (409). Keys are scoped per operation. Only successful
responses are stored: a request that failed changed nothing and freed its key.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from accord.core import Clock, digest
from accord.sandbox._faults import FaultInjector, FaultLayer, FaultRule, describe
from accord.sandbox._problems import (
    PROBLEM_MEDIA_TYPE,
    ProblemError,
    install_problem_handlers,
)
from accord.sandbox._store import Seeder, Store

M = TypeVar("M", bound=BaseModel)
Effect = Callable[[sqlite3.Connection], M]

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class Strict(BaseModel):
    """Base of request and response bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class StrictInput(BaseModel):
    """Base of request bodies: unknown fields are refused and types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class EffectEntry(Strict):
    """One applied effect (replays are not effects)."""

    seq: int
    operation: str
    idempotency_key: str | None
    at: dt.datetime


class SandboxService:
    """One sandbox system: its FastAPI app, database, clock and fault rules.

    Args:
        name: the service's name (``crm``, ``billing``, ...).
        database: its SQLite file.
        title: the OpenAPI title.
        description: the OpenAPI description.
        schema: its tables, as ``CREATE TABLE IF NOT EXISTS`` statements.
        seed: fills the tables of a new database.
        clock: the time effects are stamped with.
    """

    def __init__(
        self,
        name: str,
        database: Path,
        *,
        title: str,
        description: str,
        schema: str,
        seed: Seeder,
        clock: Clock,
    ) -> None:
        self.name = name
        self.clock = clock
        self.store = Store(database, schema=schema, seed=seed)
        self.faults = FaultInjector(self.operations)
        self.app = _SandboxAPI(title=title, version="1.0.0", description=description)
        self.app.state.sandbox = self
        install_problem_handlers(self.app)
        self.app.add_middleware(FaultLayer, injector=self.faults, router=self.app.router)
        self.traceparents: deque[dict[str, str]] = deque(maxlen=TRACEPARENTS_KEPT)
        self.app.add_middleware(TraceparentLog, seen=self.traceparents)
        _add_admin_routes(self)

    def now(self) -> dt.datetime:
        """The current time, in UTC, to the second."""
        return dt.datetime.fromtimestamp(int(self.clock.now()), tz=dt.UTC)

    def timestamp(self) -> str:
        """The current time as stored: ISO 8601 in UTC."""
        return iso(self.now())

    def operations(self) -> dict[str, str]:
        """The documented operations: operationId to HTTP method."""
        return {
            route.operation_id: sorted(route.methods or {"GET"})[0]
            for route in self.app.routes
            if isinstance(route, APIRoute) and route.include_in_schema and route.operation_id
        }

    def close(self) -> None:
        """Close the database."""
        self.store.close()


def next_id(tx: sqlite3.Connection, table: str, prefix: str) -> str:
    """The next id of ``table`` (whose rows are never deleted), e.g. ``ref_000001``."""
    (count,) = tx.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return f"{prefix}_{count + 1:06d}"


def iso(moment: dt.datetime) -> str:
    """``moment`` as stored and sent: ISO 8601, UTC, ``Z``."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Mutation:
    """One write request: its operation, idempotency key and request fingerprint."""

    service: SandboxService
    operation: str
    key: str | None
    fingerprint: str
    status_code: int

    def apply(self, effect: Effect[M]) -> Response:
        """Apply ``effect`` once per idempotency key and answer with its result.

        ``effect`` runs inside the transaction that logs it and stores its response; raising
        :class:`ProblemError` in it rolls everything back.
        """
        store = self.service.store
        if self.key is None:
            with store.transaction() as tx:
                body = _encode(effect(tx))
                self._log(tx)
            return self._response(body)
        with store.transaction() as tx:
            stored = tx.execute(
                "SELECT fingerprint, state, status, body FROM idempotency "
                "WHERE operation = ? AND key = ?",
                (self.operation, self.key),
            ).fetchone()
            if stored is None:
                tx.execute(
                    "INSERT INTO idempotency (operation, key, fingerprint, state, created_at) "
                    "VALUES (?, ?, ?, 'in_flight', ?)",
                    (self.operation, self.key, self.fingerprint, self.service.timestamp()),
                )
        if stored is not None:
            return self._replay(stored)
        try:
            with store.transaction() as tx:
                body = _encode(effect(tx))
                tx.execute(
                    "UPDATE idempotency SET state = 'done', status = ?, body = ? "
                    "WHERE operation = ? AND key = ?",
                    (self.status_code, body, self.operation, self.key),
                )
                self._log(tx)
        except BaseException:
            with store.transaction() as tx:
                tx.execute(
                    "DELETE FROM idempotency "
                    "WHERE operation = ? AND key = ? AND state = 'in_flight'",
                    (self.operation, self.key),
                )
            raise
        return self._response(body)

    def _replay(self, stored: sqlite3.Row) -> Response:
        if stored["fingerprint"] != self.fingerprint:
            raise ProblemError(
                422,
                "idempotency_key_reused",
                f"Idempotency-Key {self.key!r} was already used for a different "
                f"{self.operation} request; use a new key for a new request",
            )
        if stored["state"] == "in_flight":
            raise ProblemError(
                409,
                "idempotency_key_in_flight",
                f"a {self.operation} request with Idempotency-Key {self.key!r} is still being "
                "processed; retry shortly to get its response",
                headers={"Retry-After": "1"},
            )
        return Response(
            stored["body"],
            status_code=stored["status"],
            media_type="application/json",
            headers={REPLAYED_HEADER: "true"},
        )

    def _response(self, body: str) -> Response:
        return Response(body, status_code=self.status_code, media_type="application/json")

    def _log(self, tx: sqlite3.Connection) -> None:
        tx.execute(
            "INSERT INTO effects (operation, idempotency_key, at) VALUES (?, ?, ?)",
            (self.operation, self.key, self.service.timestamp()),
        )


def _encode(result: BaseModel) -> str:
    return json.dumps(result.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)


async def _mutation(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            min_length=1,
            max_length=255,
            description=(
                "Makes the request safe to retry: a repeat with the same key and request "
                "returns the first response (marked Idempotent-Replayed) without acting again."
            ),
        ),
    ] = None,
) -> Mutation:
    route = request.scope["route"]
    assert isinstance(route, APIRoute) and route.operation_id
    service: SandboxService = request.app.state.sandbox
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    fingerprint = digest(
        {
            "method": request.method,
            "path": request.url.path,
            "query": sorted(parse_qsl(request.url.query, keep_blank_values=True)),
            "body": body,
        }
    )
    return Mutation(
        service, route.operation_id, idempotency_key, fingerprint, route.status_code or 200
    )


Write = Annotated[Mutation, Depends(_mutation)]
"""The parameter a write operation declares: its idempotency key and the way to apply it."""


class _SandboxAPI(FastAPI):
    """FastAPI whose OpenAPI document says errors are ``application/problem+json``."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        schema = super().openapi()
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                _document_operation(operation)
        self.openapi_schema = schema
        return schema


def _document_operation(operation: dict[str, Any]) -> None:
    idempotent = any(
        parameter.get("name") == IDEMPOTENCY_HEADER for parameter in operation.get("parameters", [])
    )
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {})
        if status[0] in "45" and "application/json" in content:
            response["content"] = {PROBLEM_MEDIA_TYPE: content["application/json"]}
        if idempotent and status.startswith("2"):
            response.setdefault("headers", {})[REPLAYED_HEADER] = {
                "description": "true when this is the stored response of an earlier request",
                "schema": {"type": "string", "enum": ["true"]},
            }


TRACEPARENTS_KEPT = 1000
"""How many received ``traceparent`` headers a service remembers (newest kept)."""


class TraceparentLog:
    """ASGI middleware remembering the W3C ``traceparent`` of each request, with its path,
    so a test (or a person) can see which trace a call belonged to."""

    def __init__(self, app: ASGIApp, *, seen: deque[dict[str, str]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"traceparent":
                    self.seen.append(
                        {"path": scope.get("path", ""), "traceparent": value.decode("latin-1")}
                    )
        await self.app(scope, receive, send)


def _add_admin_routes(service: SandboxService) -> None:
    app = service.app

    @app.get("/_sandbox/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"service": service.name, "status": "ok"}

    @app.get("/_sandbox/effects", include_in_schema=False)
    def effects(
        operation: Annotated[str | None, Query(min_length=1)] = None,
        idempotency_key: Annotated[str | None, Query(min_length=1)] = None,
    ) -> list[EffectEntry]:
        query = "SELECT seq, operation, idempotency_key, at FROM effects"
        conditions = []
        arguments: tuple[str, ...] = ()
        if operation is not None:
            conditions.append("operation = ?")
            arguments += (operation,)
        if idempotency_key is not None:
            conditions.append("idempotency_key = ?")
            arguments += (idempotency_key,)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        with service.store.transaction() as tx:
            rows = tx.execute(query + " ORDER BY seq", arguments).fetchall()
        return [EffectEntry.model_validate(dict(row)) for row in rows]

    @app.get("/_sandbox/traceparents", include_in_schema=False)
    async def traceparents() -> list[dict[str, str]]:
        return list(service.traceparents)

    @app.get("/_sandbox/faults", include_in_schema=False)
    async def get_faults() -> list[dict[str, Any]]:
        return describe(service.faults.rules())

    @app.put("/_sandbox/faults", include_in_schema=False)
    async def set_faults(rules: list[FaultRule]) -> list[dict[str, Any]]:
        return describe(service.faults.set_rules(rules))

    @app.delete("/_sandbox/faults", include_in_schema=False, status_code=204)
    async def clear_faults() -> Response:
        service.faults.clear()
        return Response(status_code=204)
