"""Agent versions, trained models, the answer cache, rollouts and agent outcomes.

A deployed agent version is never changed. Outcomes (one per agent block visit, and one per
shadow run) are written in the transition that produced them; rollouts change by conditional
updates, so that two workers never roll one back twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.core import TenantId
from accord.storage._schema import (
    agent_cache,
    agent_models,
    agent_outcomes,
    agent_rollouts,
    agent_versions,
)

RolloutMode = Literal["canary", "shadow"]
RolloutStatus = Literal["active", "rolled_back", "promoted", "stopped"]
Arm = Literal["primary", "candidate", "shadow", "pinned"]


@dataclass(frozen=True, slots=True)
class AgentVersionRecord:
    tenant_id: str
    name: str
    version: int
    digest: str
    source_name: str
    definition: str
    deployed_at: float
    deployed_by: str

    @classmethod
    def from_row(cls, row: RowMapping) -> AgentVersionRecord:
        return cls(**{k: row[k] for k in cls.__slots__})


def get_agent_version(
    connection: Connection, tenant: TenantId, name: str, version: int | None
) -> AgentVersionRecord | None:
    """A version, or the latest when ``version`` is None."""
    query = sa.select(agent_versions).where(
        agent_versions.c.tenant_id == tenant, agent_versions.c.name == name
    )
    if version is None:
        query = query.order_by(agent_versions.c.version.desc()).limit(1)
    else:
        query = query.where(agent_versions.c.version == version)
    row = connection.execute(query).mappings().first()
    return None if row is None else AgentVersionRecord.from_row(row)


def list_agent_versions(
    connection: Connection, tenant: TenantId, name: str | None = None
) -> list[AgentVersionRecord]:
    query = sa.select(agent_versions).where(agent_versions.c.tenant_id == tenant)
    if name is not None:
        query = query.where(agent_versions.c.name == name)
    query = query.order_by(agent_versions.c.name, agent_versions.c.version)
    return [AgentVersionRecord.from_row(r) for r in connection.execute(query).mappings()]


def insert_agent_version(connection: Connection, record: AgentVersionRecord) -> None:
    connection.execute(
        agent_versions.insert().values(**{k: getattr(record, k) for k in record.__slots__})
    )


def put_model(
    connection: Connection, tenant: TenantId, digest: str, data: bytes, at: float
) -> None:
    """Store a trained model's bytes under their digest, once."""
    exists = connection.execute(
        sa.select(agent_models.c.digest).where(
            agent_models.c.tenant_id == tenant, agent_models.c.digest == digest
        )
    ).first()
    if exists is None:
        connection.execute(
            agent_models.insert().values(tenant_id=tenant, digest=digest, data=data, created_at=at)
        )


def get_model(connection: Connection, tenant: TenantId, digest: str) -> bytes | None:
    value = connection.execute(
        sa.select(agent_models.c.data).where(
            agent_models.c.tenant_id == tenant, agent_models.c.digest == digest
        )
    ).scalar()
    return None if value is None else bytes(value)


def cache_get(connection: Connection, tenant: TenantId, key: str, now: float) -> str | None:
    return connection.execute(
        sa.select(agent_cache.c.answer).where(
            agent_cache.c.tenant_id == tenant,
            agent_cache.c.cache_key == key,
            agent_cache.c.expires_at > now,
        )
    ).scalar()


def cache_put(
    connection: Connection,
    tenant: TenantId,
    key: str,
    *,
    model: str,
    subject_id: str | None,
    answer: str,
    now: float,
    expires_at: float,
) -> None:
    connection.execute(
        agent_cache.delete().where(
            agent_cache.c.tenant_id == tenant, agent_cache.c.cache_key == key
        )
    )
    connection.execute(
        agent_cache.insert().values(
            tenant_id=tenant,
            cache_key=key,
            model=model,
            subject_id=subject_id,
            answer=answer,
            created_at=now,
            expires_at=expires_at,
        )
    )


def cache_forget(connection: Connection, tenant: str, subject_id: str) -> None:
    """Delete the answers cached from a subject's runs (on erasure)."""
    connection.execute(
        agent_cache.delete().where(
            agent_cache.c.tenant_id == tenant, agent_cache.c.subject_id == subject_id
        )
    )


def cache_purge_all(connection: Connection, now: float) -> int:
    """Delete every tenant's expired answers; returns how many."""
    result = connection.execute(agent_cache.delete().where(agent_cache.c.expires_at <= now))
    return int(result.rowcount or 0)


def cache_purge(connection: Connection, tenant: TenantId, now: float) -> int:
    """Delete expired answers; returns how many."""
    result = connection.execute(
        agent_cache.delete().where(
            agent_cache.c.tenant_id == tenant, agent_cache.c.expires_at <= now
        )
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    tenant_id: str
    rollout_id: str
    agent: str
    mode: str
    primary_version: int
    candidate_version: int
    percent: float
    margin: float
    min_samples: int
    status: str
    reason: str | None
    created_by: str
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: RowMapping) -> RolloutRecord:
        return cls(**{k: row[k] for k in cls.__slots__})

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def insert_rollout(connection: Connection, record: RolloutRecord) -> None:
    connection.execute(agent_rollouts.insert().values(**record.to_json()))


def active_rollouts(
    connection: Connection, tenant: TenantId, agent: str | None = None
) -> list[RolloutRecord]:
    query = sa.select(agent_rollouts).where(
        agent_rollouts.c.tenant_id == tenant, agent_rollouts.c.status == "active"
    )
    if agent is not None:
        query = query.where(agent_rollouts.c.agent == agent)
    query = query.order_by(agent_rollouts.c.created_at, agent_rollouts.c.rollout_id)
    return [RolloutRecord.from_row(r) for r in connection.execute(query).mappings()]


def all_active_rollouts(connection: Connection) -> list[RolloutRecord]:
    query = sa.select(agent_rollouts).where(agent_rollouts.c.status == "active")
    return [RolloutRecord.from_row(r) for r in connection.execute(query).mappings()]


def list_rollouts(
    connection: Connection, tenant: TenantId, agent: str | None = None
) -> list[RolloutRecord]:
    query = sa.select(agent_rollouts).where(agent_rollouts.c.tenant_id == tenant)
    if agent is not None:
        query = query.where(agent_rollouts.c.agent == agent)
    query = query.order_by(agent_rollouts.c.created_at, agent_rollouts.c.rollout_id)
    return [RolloutRecord.from_row(r) for r in connection.execute(query).mappings()]


def get_rollout(connection: Connection, tenant: TenantId, rollout_id: str) -> RolloutRecord | None:
    row = (
        connection.execute(
            sa.select(agent_rollouts).where(
                agent_rollouts.c.tenant_id == tenant, agent_rollouts.c.rollout_id == rollout_id
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else RolloutRecord.from_row(row)


def update_rollout(
    connection: Connection,
    tenant: TenantId,
    rollout_id: str,
    *,
    expected_status: str,
    expected_percent: float | None = None,
    at: float,
    **values: Any,
) -> bool:
    """Change an active rollout if it is still as the caller saw it; False if it was not."""
    condition = sa.and_(
        agent_rollouts.c.tenant_id == tenant,
        agent_rollouts.c.rollout_id == rollout_id,
        agent_rollouts.c.status == expected_status,
    )
    if expected_percent is not None:
        condition = sa.and_(condition, agent_rollouts.c.percent == expected_percent)
    result = connection.execute(
        agent_rollouts.update().where(condition).values(updated_at=at, **values)
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class NewAgentOutcome:
    """One agent answer a transition records (the primary's, a candidate's or a shadow's)."""

    outcome_id: str
    block: str
    visit: int
    agent: str
    version: int
    arm: str
    rollout_id: str | None
    band: str
    valid: bool
    confidence: float
    input_tokens: int
    output_tokens: int
    cost: float
    cached: bool
    output_digest: str
    agrees: bool | None = None


def insert_outcomes(
    connection: Connection,
    tenant: str,
    run_id: str,
    outcomes: Sequence[NewAgentOutcome],
    at: float,
) -> None:
    if not outcomes:
        return
    rows = [
        {
            "tenant_id": tenant,
            "run_id": run_id,
            "created_at": at,
            "review_outcome": None,
            **{k: getattr(o, k) for k in o.__slots__},
        }
        for o in outcomes
    ]
    connection.execute(agent_outcomes.insert(), rows)


def set_review_outcomes(
    connection: Connection, tenant: str, reviewed: Sequence[tuple[str, str]]
) -> None:
    for outcome_id, review_outcome in reviewed:
        connection.execute(
            agent_outcomes.update()
            .where(agent_outcomes.c.tenant_id == tenant, agent_outcomes.c.outcome_id == outcome_id)
            .values(review_outcome=review_outcome)
        )


@dataclass(frozen=True, slots=True)
class OutcomeStats:
    """Counts over a set of agent outcomes (one version, or one arm of a rollout)."""

    agent: str
    version: int
    arm: str
    outputs: int
    auto: int
    confirm: int
    escalated: int
    invalid: int
    reviewed: int
    overridden: int
    cached: int
    agreed: int
    compared: int
    input_tokens: int
    output_tokens: int
    cost: float
    confidence_sum: float

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.outputs if self.outputs else 0.0

    @property
    def override_rate(self) -> float:
        return self.overridden / self.reviewed if self.reviewed else 0.0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {k: getattr(self, k) for k in self.__slots__}
        data["escalation_rate"] = round(self.escalation_rate, 6)
        data["override_rate"] = round(self.override_rate, 6)
        data["agreement_rate"] = round(self.agreed / self.compared, 6) if self.compared else None
        data["cost"] = round(self.cost, 8)
        return data


_OVERRIDDEN = ("edited", "rejected", "overridden")


def outcome_stats(
    connection: Connection,
    tenant: TenantId,
    *,
    agent: str | None = None,
    rollout_id: str | None = None,
    since: float | None = None,
) -> list[OutcomeStats]:
    """Counts per (agent, version, arm), filtered by agent, rollout and time."""
    t = agent_outcomes.c
    condition = t.tenant_id == tenant
    if agent is not None:
        condition = sa.and_(condition, t.agent == agent)
    if rollout_id is not None:
        condition = sa.and_(condition, t.rollout_id == rollout_id)
    if since is not None:
        condition = sa.and_(condition, t.created_at >= since)

    def count(when: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((when, 1), else_=0)), 0)

    query = (
        sa.select(
            t.agent,
            t.version,
            t.arm,
            sa.func.count().label("outputs"),
            count(t.band == "auto").label("auto"),
            count(t.band == "confirm").label("confirm"),
            count(t.band == "escalate").label("escalated"),
            count(t.valid == sa.false()).label("invalid"),
            count(t.review_outcome.is_not(None)).label("reviewed"),
            count(t.review_outcome.in_(_OVERRIDDEN)).label("overridden"),
            count(t.cached == sa.true()).label("cached"),
            count(t.agrees == sa.true()).label("agreed"),
            count(t.agrees.is_not(None)).label("compared"),
            sa.func.coalesce(sa.func.sum(t.input_tokens), 0).label("input_tokens"),
            sa.func.coalesce(sa.func.sum(t.output_tokens), 0).label("output_tokens"),
            sa.func.coalesce(sa.func.sum(t.cost), 0.0).label("cost"),
            sa.func.coalesce(sa.func.sum(t.confidence), 0.0).label("confidence_sum"),
        )
        .where(condition)
        .group_by(t.agent, t.version, t.arm)
        .order_by(t.agent, t.version, t.arm)
    )
    return [
        OutcomeStats(
            agent=r["agent"],
            version=int(r["version"]),
            arm=r["arm"],
            outputs=int(r["outputs"]),
            auto=int(r["auto"]),
            confirm=int(r["confirm"]),
            escalated=int(r["escalated"]),
            invalid=int(r["invalid"]),
            reviewed=int(r["reviewed"]),
            overridden=int(r["overridden"]),
            cached=int(r["cached"]),
            agreed=int(r["agreed"]),
            compared=int(r["compared"]),
            input_tokens=int(r["input_tokens"]),
            output_tokens=int(r["output_tokens"]),
            cost=float(r["cost"]),
            confidence_sum=float(r["confidence_sum"]),
        )
        for r in connection.execute(query).mappings()
    ]


def run_usage(connection: Connection, tenant: TenantId, run_id: str) -> dict[str, Any]:
    """Tokens and cost a run's agents used (shadow runs not included)."""
    t = agent_outcomes.c
    row = (
        connection.execute(
            sa.select(
                sa.func.count().label("outputs"),
                sa.func.coalesce(sa.func.sum(t.input_tokens), 0).label("input_tokens"),
                sa.func.coalesce(sa.func.sum(t.output_tokens), 0).label("output_tokens"),
                sa.func.coalesce(sa.func.sum(t.cost), 0.0).label("cost"),
            ).where(t.tenant_id == tenant, t.run_id == run_id, t.arm != "shadow")
        )
        .mappings()
        .one()
    )
    return {
        "outputs": int(row["outputs"]),
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost": round(float(row["cost"]), 8),
    }
