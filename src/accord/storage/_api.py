"""What the HTTP API keeps: POST requests by idempotency key with their first response, and
the access decision of every request."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.storage._records import json_text
from accord.storage._schema import access_decisions, api_requests

RequestStatus = Literal["in_flight", "done"]


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """A POST seen under an idempotency key: in flight, or done with its response."""

    tenant_id: str
    principal: str
    key: str
    operation: str
    request_digest: str
    status: RequestStatus
    response_status: int | None
    response_body: str | None
    created_at: float


def _request(row: RowMapping) -> StoredRequest:
    return StoredRequest(
        tenant_id=row["tenant_id"],
        principal=row["principal"],
        key=row["idempotency_key"],
        operation=row["operation"],
        request_digest=row["request_digest"],
        status=row["status"],
        response_status=row["response_status"],
        response_body=row["response_body"],
        created_at=row["created_at"],
    )


def _key(tenant: str, principal: str, key: str) -> Any:
    return sa.and_(
        api_requests.c.tenant_id == tenant,
        api_requests.c.principal == principal,
        api_requests.c.idempotency_key == key,
    )


def begin_request(
    connection: Connection,
    *,
    tenant: str,
    principal: str,
    key: str,
    operation: str,
    request_digest: str,
    now: float,
) -> None:
    """Claim ``key`` for a request in flight. Raises IntegrityError when it is taken."""
    connection.execute(
        api_requests.insert().values(
            tenant_id=tenant,
            principal=principal,
            idempotency_key=key,
            operation=operation,
            request_digest=request_digest,
            status="in_flight",
            created_at=now,
        )
    )


def get_request(
    connection: Connection, tenant: str, principal: str, key: str
) -> StoredRequest | None:
    row = connection.execute(sa.select(api_requests).where(_key(tenant, principal, key)))
    found = row.mappings().first()
    return None if found is None else _request(found)


def take_over_request(
    connection: Connection,
    *,
    tenant: str,
    principal: str,
    key: str,
    request_digest: str,
    stale_before: float,
    now: float,
) -> bool:
    """Claim a request left in flight since before ``stale_before`` (its process died)."""
    result = connection.execute(
        api_requests.update()
        .where(
            _key(tenant, principal, key),
            api_requests.c.status == "in_flight",
            api_requests.c.request_digest == request_digest,
            api_requests.c.created_at < stale_before,
        )
        .values(created_at=now)
    )
    return result.rowcount == 1


def finish_request(
    connection: Connection,
    *,
    tenant: str,
    principal: str,
    key: str,
    status: int,
    body: str,
    now: float,
) -> None:
    connection.execute(
        api_requests.update()
        .where(_key(tenant, principal, key))
        .values(status="done", response_status=status, response_body=body, completed_at=now)
    )


def abandon_request(connection: Connection, *, tenant: str, principal: str, key: str) -> None:
    """Forget a request that failed without an answer worth replaying, so it can be sent again."""
    connection.execute(
        api_requests.delete().where(
            _key(tenant, principal, key), api_requests.c.status == "in_flight"
        )
    )


@dataclass(frozen=True, slots=True)
class AccessDecisionRecord:
    """Whether one API request was allowed, by which policies, for whom."""

    decision_id: str
    tenant_id: str
    principal: str
    roles: tuple[str, ...]
    action: str
    method: str
    path: str
    allowed: bool
    reason: str
    policies: tuple[str, ...]
    bundle_digest: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "principal": self.principal,
            "roles": list(self.roles),
            "action": self.action,
            "method": self.method,
            "path": self.path,
            "allowed": self.allowed,
            "reason": self.reason,
            "policies": list(self.policies),
            "bundle_digest": self.bundle_digest,
            "at": self.at,
        }


def insert_access_decision(connection: Connection, record: AccessDecisionRecord) -> None:
    connection.execute(
        access_decisions.insert().values(
            decision_id=record.decision_id,
            tenant_id=record.tenant_id,
            principal=record.principal,
            roles=json_text(list(record.roles)),
            action=record.action,
            method=record.method,
            path=record.path,
            allowed=record.allowed,
            reason=record.reason,
            policies=json_text(list(record.policies)),
            bundle_digest=record.bundle_digest,
            at=record.at,
        )
    )


def list_access_decisions(
    connection: Connection,
    tenant: str,
    *,
    principal: str | None = None,
    allowed: bool | None = None,
    limit: int = 50,
    before: tuple[float, str] | None = None,
) -> list[AccessDecisionRecord]:
    """Access decisions of ``tenant``, newest first; ``before`` is the last page's cursor."""
    query = sa.select(access_decisions).where(access_decisions.c.tenant_id == tenant)
    if principal is not None:
        query = query.where(access_decisions.c.principal == principal)
    if allowed is not None:
        query = query.where(access_decisions.c.allowed == allowed)
    if before is not None:
        query = query.where(
            sa.or_(
                access_decisions.c.at < before[0],
                sa.and_(
                    access_decisions.c.at == before[0],
                    access_decisions.c.decision_id < before[1],
                ),
            )
        )
    query = query.order_by(access_decisions.c.at.desc(), access_decisions.c.decision_id.desc())
    return [
        AccessDecisionRecord(
            decision_id=row["decision_id"],
            tenant_id=row["tenant_id"],
            principal=row["principal"],
            roles=tuple(json.loads(row["roles"])),
            action=row["action"],
            method=row["method"],
            path=row["path"],
            allowed=bool(row["allowed"]),
            reason=row["reason"],
            policies=tuple(json.loads(row["policies"])),
            bundle_digest=row["bundle_digest"],
            at=row["at"],
        )
        for row in connection.execute(query.limit(limit)).mappings()
    ]
