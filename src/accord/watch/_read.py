"""Reading one window's facts from Accord's own records, scoped to one tenant.

A window holds the runs started in it (``runs.created_at``), and, for those runs only: their
escalations and gateway refusals (``transitions``), their failed and refused gateway decisions
(``decisions``), their agents' outputs and how people reviewed them (``agent_outcomes``), and
their ``decide`` and ``choice`` visits (``transitions``). Reading by the run's start keeps every
count of a run in one window, and lets each table be reached through its run index.
"""

from __future__ import annotations

import json
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage._schema import agent_outcomes, decisions, runs, transitions
from accord.watch._metrics import AgentFact, Facts, RouteFact, RunFact

ESCALATIONS = ("escalated", "agent.escalated")
REFUSED = "gateway.refused"
ROUTES = {"decision.made": "decide", "choice.taken": "choice"}


def read_facts(connection: Connection, tenant: str, start: float, end: float) -> Facts:
    """The facts of the runs ``tenant`` started in ``[start, end)``."""
    r = runs.c
    in_window = sa.and_(r.tenant_id == tenant, r.created_at >= start, r.created_at < end)
    window_runs = sa.select(r.run_id).where(in_window)
    rows = connection.execute(
        sa.select(
            r.run_id, r.journey_name, r.journey_version, r.status, r.created_at, r.ended_at
        ).where(in_window)
    ).all()
    journeys = {row.run_id: str(row.journey_name) for row in rows}

    t = transitions.c
    escalated: set[str] = set()
    refused: set[str] = set()
    for run_id, kind in connection.execute(
        sa.select(t.run_id, t.kind)
        .where(
            t.tenant_id == tenant,
            t.kind.in_([*ESCALATIONS, REFUSED]),
            t.run_id.in_(window_runs),
        )
        .distinct()
    ):
        (refused if kind == REFUSED else escalated).add(str(run_id))

    d = decisions.c
    failed: dict[str, set[str]] = defaultdict(set)
    refusals: dict[str, list[str]] = defaultdict(list)
    for run_id, capability, outcome, reason in connection.execute(
        sa.select(d.run_id, d.capability, d.outcome, d.reason).where(
            d.tenant_id == tenant,
            d.outcome.in_(["failed", "refused"]),
            d.run_id.in_(window_runs),
        )
    ):
        if outcome == "failed":
            failed[str(run_id)].add(str(capability))
        else:
            refusals[str(run_id)].append(f"{capability}: {reason or 'refused'}")

    a = agent_outcomes.c
    outputs = tuple(
        AgentFact(
            run_id=str(row.run_id),
            journey=journeys.get(str(row.run_id), ""),
            block=point_of(str(row.block)),
            agent=str(row.agent),
            version=int(row.version),
            arm=str(row.arm),
            rollout_id=row.rollout_id,
            band=str(row.band),
            review_outcome=row.review_outcome,
        )
        for row in connection.execute(
            sa.select(
                a.run_id,
                a.block,
                a.agent,
                a.version,
                a.arm,
                a.rollout_id,
                a.band,
                a.review_outcome,
            ).where(a.tenant_id == tenant, a.arm != "shadow", a.run_id.in_(window_runs))
        )
        if str(row.run_id) in journeys
    )

    routes = tuple(
        RouteFact(
            run_id=str(row.run_id),
            journey=journeys[str(row.run_id)],
            block=point_of(str(row.block)),
            kind="decide" if row.kind == "decision.made" else "choice",
            outcome=route_outcome(str(row.kind), json.loads(row.detail)),
        )
        for row in connection.execute(
            sa.select(t.run_id, t.block, t.kind, t.detail).where(
                t.tenant_id == tenant, t.kind.in_(list(ROUTES)), t.run_id.in_(window_runs)
            )
        )
        if str(row.run_id) in journeys and row.block is not None
    )

    return Facts(
        start=start,
        end=end,
        runs=tuple(
            RunFact(
                run_id=str(row.run_id),
                journey=str(row.journey_name),
                version=int(row.journey_version),
                status=str(row.status),
                created_at=float(row.created_at),
                ended_at=None if row.ended_at is None else float(row.ended_at),
                escalated=row.run_id in escalated,
                refused=row.run_id in refused,
                failed_capabilities=tuple(sorted(failed.get(str(row.run_id), ()))),
                refusals=tuple(refusals.get(str(row.run_id), ())),
            )
            for row in rows
        ),
        agents=outputs,
        routes=routes,
    )


def point_of(path: str) -> str:
    """The block id of a block path: a block inside a ``map`` or ``parallel`` scope counts as
    one decision point, whichever item or branch it ran for."""
    return path.rsplit("/", 1)[-1]


def route_outcome(kind: str, detail: dict[str, object]) -> str:
    """What a ``decide`` visit matched (``rule 2``, ``rules 1+3``, ``default``) or which
    block a ``choice`` visit went on to."""
    if kind == "choice.taken":
        target = detail.get("next")
        return str(target) if target is not None else "(end)"
    matched = detail.get("rules")
    if not isinstance(matched, list) or not matched:
        return "default"
    if len(matched) == 1:
        return f"rule {matched[0]}"
    return "rules " + "+".join(str(m) for m in matched)


__all__ = ["point_of", "read_facts", "route_outcome"]
