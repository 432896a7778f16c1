"""The ledger's tables: entries, Merkle nodes, the tree state, signed heads, subject keys, holds.

Appends are serialised per tenant: :func:`lock_state` takes the tenant's ledger lock (an advisory
lock on PostgreSQL; SQLite transactions are serial already) and returns the tree state, so leaf
indexes are gap-free and follow commit order. Every query names its tenant.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage import _postgres
from accord.storage._agents import cache_forget
from accord.storage._dead_letters import scrub_letters
from accord.storage._records import ACTIVE
from accord.storage._schema import (
    decisions,
    experiment_assignments,
    experiment_observations,
    ledger_entries,
    ledger_heads,
    ledger_nodes,
    ledger_state,
    legal_holds,
    offer_outcomes,
    review_items,
    runs,
    signals,
    subject_keys,
    transitions,
)

_INSERT_ENTRIES = ledger_entries.insert()
_INSERT_NODES = ledger_nodes.insert()


@dataclass(frozen=True, slots=True)
class TreeState:
    """How many entries a tenant's ledger holds and the right edge of its tree (hex hashes)."""

    size: int
    frontier: str
    exists: bool


@dataclass(frozen=True, slots=True)
class EntryRow:
    """A stored entry: its index, the columns it is found by, and its exact canonical bytes."""

    idx: int
    kind: str
    at: float
    run_id: str | None
    subject_id: str | None
    entry: bytes


@dataclass(frozen=True, slots=True)
class HeadRow:
    """A stored signed tree head."""

    tenant_id: str
    tree_size: int
    timestamp: int
    log_id: str
    root_hash: bytes
    key_id: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class SubjectKeyRow:
    subject_id: str
    wrapped_key: bytes | None
    master_key_id: str
    created_at: float
    erased_at: float | None


@dataclass(frozen=True, slots=True)
class HoldRow:
    subject_id: str
    reason: str
    placed_by: str
    placed_at: float


def lock_state(connection: Connection, tenant: str) -> TreeState:
    """Take the tenant's ledger lock for the rest of the transaction and read its tree state."""
    if connection.dialect.name == "postgresql":
        _postgres.advisory_xact_lock(connection, f"accord.ledger\x1f{tenant}")
    return read_state(connection, tenant)


def read_state(connection: Connection, tenant: str) -> TreeState:
    row = connection.execute(
        sa.select(ledger_state.c.size, ledger_state.c.frontier).where(
            ledger_state.c.tenant_id == tenant
        )
    ).first()
    if row is None:
        return TreeState(0, "[]", exists=False)
    return TreeState(int(row[0]), row[1], exists=True)


def save_state(
    connection: Connection, tenant: str, state: TreeState, *, size: int, frontier: str, at: float
) -> None:
    values = {"size": size, "frontier": frontier, "updated_at": at}
    if state.exists:
        connection.execute(
            ledger_state.update().where(ledger_state.c.tenant_id == tenant).values(**values)
        )
    else:
        connection.execute(ledger_state.insert().values(tenant_id=tenant, **values))


def insert_entries(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Entry rows: tenant_id, idx, kind, at, run_id, subject_id, entry."""
    if rows:
        connection.execute(_INSERT_ENTRIES, rows)


def insert_nodes(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Node rows: tenant_id, level, idx, hash."""
    if rows:
        connection.execute(_INSERT_NODES, rows)


def read_nodes(
    connection: Connection, tenant: str, ids: Collection[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """The stored hashes of the given (level, index) nodes, in one statement."""
    if not ids:
        return {}
    by_level: dict[int, list[int]] = {}
    for level, idx in ids:
        by_level.setdefault(level, []).append(idx)
    # one indexed lookup per level: SQLite does not use the primary key for a row-value IN
    parts = [
        sa.select(ledger_nodes.c.level, ledger_nodes.c.idx, ledger_nodes.c.hash).where(
            ledger_nodes.c.tenant_id == tenant,
            ledger_nodes.c.level == level,
            ledger_nodes.c.idx.in_(sorted(set(indexes))),
        )
        for level, indexes in sorted(by_level.items())
    ]
    statement = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    rows = connection.execute(statement)
    return {(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}


def _entry_rows(result: Any) -> list[EntryRow]:
    return [EntryRow(int(r[0]), r[1], r[2], r[3], r[4], bytes(r[5])) for r in result]


_ENTRY_COLUMNS = (
    ledger_entries.c.idx,
    ledger_entries.c.kind,
    ledger_entries.c.at,
    ledger_entries.c.run_id,
    ledger_entries.c.subject_id,
    ledger_entries.c.entry,
)


def entries_where(
    connection: Connection,
    tenant: str,
    *,
    run_id: str | None = None,
    subject_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    kinds: Sequence[str] | None = None,
    limit: int | None = None,
    newest: bool = False,
    after: int | None = None,
) -> list[EntryRow]:
    """Entries of one tenant matching every filter given, in ledger order (with ``limit`` and
    ``newest``, the last ``limit`` of them; with ``after``, those past that index)."""
    query = sa.select(*_ENTRY_COLUMNS).where(ledger_entries.c.tenant_id == tenant)
    if after is not None:
        query = query.where(ledger_entries.c.idx > after)
    if run_id is not None:
        query = query.where(ledger_entries.c.run_id == run_id)
    if subject_id is not None:
        query = query.where(ledger_entries.c.subject_id == subject_id)
    if since is not None:
        query = query.where(ledger_entries.c.at >= since)
    if until is not None:
        query = query.where(ledger_entries.c.at < until)
    if kinds:
        query = query.where(ledger_entries.c.kind.in_(list(kinds)))
    query = query.order_by(ledger_entries.c.idx.desc() if newest else ledger_entries.c.idx)
    if limit is not None:
        query = query.limit(limit)
    found = _entry_rows(connection.execute(query))
    return found[::-1] if newest else found


def stream_entries(
    connection: Connection, tenant: str, *, chunk: int = 5000
) -> Iterator[tuple[EntryRow, bytes | None]]:
    """Every entry in index order with its stored leaf hash (None when the leaf node is missing),
    read in keyset-paginated chunks so memory stays flat."""
    leaf = ledger_nodes.alias("leaf")
    after = -1
    while True:
        rows = connection.execute(
            sa.select(*_ENTRY_COLUMNS, leaf.c.hash)
            .select_from(
                ledger_entries.outerjoin(
                    leaf,
                    sa.and_(
                        leaf.c.tenant_id == ledger_entries.c.tenant_id,
                        leaf.c.level == 0,
                        leaf.c.idx == ledger_entries.c.idx,
                    ),
                )
            )
            .where(ledger_entries.c.tenant_id == tenant, ledger_entries.c.idx > after)
            .order_by(ledger_entries.c.idx)
            .limit(chunk)
        ).all()
        if not rows:
            return
        for r in rows:
            yield (
                EntryRow(int(r[0]), r[1], r[2], r[3], r[4], bytes(r[5])),
                None if r[6] is None else bytes(r[6]),
            )
        after = int(rows[-1][0])


def stream_nodes(
    connection: Connection, tenant: str, *, level: int | None = None, chunk: int = 20000
) -> Iterator[tuple[int, int, bytes]]:
    """Stored nodes ordered by (level, index): all of them, or one level's."""
    after = (-1, -1)
    while True:
        query = sa.select(ledger_nodes.c.level, ledger_nodes.c.idx, ledger_nodes.c.hash).where(
            ledger_nodes.c.tenant_id == tenant,
            sa.tuple_(ledger_nodes.c.level, ledger_nodes.c.idx) > sa.tuple_(*after),
        )
        if level is not None:
            query = query.where(ledger_nodes.c.level == level)
        rows = connection.execute(
            query.order_by(ledger_nodes.c.level, ledger_nodes.c.idx).limit(chunk)
        ).all()
        if not rows:
            return
        for r in rows:
            yield int(r[0]), int(r[1]), bytes(r[2])
        after = (int(rows[-1][0]), int(rows[-1][1]))


def count_entries(connection: Connection, tenant: str, *, subject_id: str | None = None) -> int:
    """How many entries the tenant's ledger holds (about one subject, when given)."""
    query = (
        sa.select(sa.func.count())
        .select_from(ledger_entries)
        .where(ledger_entries.c.tenant_id == tenant)
    )
    if subject_id is not None:
        query = query.where(ledger_entries.c.subject_id == subject_id)
    return int(connection.execute(query).scalar_one())


def insert_head(connection: Connection, head: HeadRow) -> None:
    connection.execute(
        ledger_heads.insert().values(
            tenant_id=head.tenant_id,
            tree_size=head.tree_size,
            timestamp=head.timestamp,
            log_id=head.log_id,
            root_hash=head.root_hash,
            key_id=head.key_id,
            signature=head.signature,
        )
    )


def heads(connection: Connection, tenant: str) -> list[HeadRow]:
    """Every signed head of the tenant's log, oldest first."""
    rows = connection.execute(
        sa.select(ledger_heads)
        .where(ledger_heads.c.tenant_id == tenant)
        .order_by(ledger_heads.c.tree_size, ledger_heads.c.timestamp)
    ).mappings()
    return [_head(r) for r in rows]


def latest_head(connection: Connection, tenant: str) -> HeadRow | None:
    row = (
        connection.execute(
            sa.select(ledger_heads)
            .where(ledger_heads.c.tenant_id == tenant)
            .order_by(ledger_heads.c.tree_size.desc(), ledger_heads.c.timestamp.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else _head(row)


def _head(r: Any) -> HeadRow:
    return HeadRow(
        tenant_id=r["tenant_id"],
        tree_size=int(r["tree_size"]),
        timestamp=int(r["timestamp"]),
        log_id=r["log_id"],
        root_hash=bytes(r["root_hash"]),
        key_id=r["key_id"],
        signature=bytes(r["signature"]),
    )


def ledger_tenants(connection: Connection) -> list[str]:
    """Tenants that have a ledger (for issuing heads on an interval across tenants)."""
    return [r[0] for r in connection.execute(sa.select(ledger_state.c.tenant_id))]


def subject_key_rows(
    connection: Connection, tenant: str, subject_ids: Collection[str]
) -> dict[str, SubjectKeyRow]:
    if not subject_ids:
        return {}
    rows = connection.execute(
        sa.select(subject_keys).where(
            subject_keys.c.tenant_id == tenant, subject_keys.c.subject_id.in_(list(subject_ids))
        )
    ).mappings()
    return {
        r["subject_id"]: SubjectKeyRow(
            r["subject_id"],
            None if r["wrapped_key"] is None else bytes(r["wrapped_key"]),
            r["master_key_id"],
            r["created_at"],
            r["erased_at"],
        )
        for r in rows
    }


def insert_subject_keys(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Rows: tenant_id, subject_id, wrapped_key, master_key_id, created_at, erased_at."""
    if rows:
        connection.execute(subject_keys.insert(), rows)


def destroy_subject_key(connection: Connection, tenant: str, subject_id: str, at: float) -> None:
    """Forget the subject's wrapped data key for good, keeping the row as the erasure mark."""
    connection.execute(
        subject_keys.update()
        .where(subject_keys.c.tenant_id == tenant, subject_keys.c.subject_id == subject_id)
        .values(wrapped_key=None, erased_at=at)
    )


def get_hold(connection: Connection, tenant: str, subject_id: str) -> HoldRow | None:
    row = (
        connection.execute(
            sa.select(legal_holds).where(
                legal_holds.c.tenant_id == tenant, legal_holds.c.subject_id == subject_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return HoldRow(row["subject_id"], row["reason"], row["placed_by"], row["placed_at"])


def place_hold(connection: Connection, tenant: str, hold: HoldRow) -> None:
    connection.execute(
        legal_holds.insert().values(
            tenant_id=tenant,
            subject_id=hold.subject_id,
            reason=hold.reason,
            placed_by=hold.placed_by,
            placed_at=hold.placed_at,
        )
    )


def release_hold(connection: Connection, tenant: str, subject_id: str) -> None:
    connection.execute(
        legal_holds.delete().where(
            legal_holds.c.tenant_id == tenant, legal_holds.c.subject_id == subject_id
        )
    )


_ERASED = '{"erased":true}'


def active_runs_of(connection: Connection, tenant: str, subject_id: str) -> list[str]:
    return [
        r[0]
        for r in connection.execute(
            sa.select(runs.c.run_id).where(
                runs.c.tenant_id == tenant,
                runs.c.subject_id == subject_id,
                runs.c.status.in_(ACTIVE),
            )
        )
    ]


def forget_choices(connection: Connection, tenant: str, subject_id: str) -> int:
    """Delete what experiments and offers keep by a subject's id in clear: their arms, their
    outcomes and their answers to offers. Returns how many rows went."""
    removed = 0
    for table in (experiment_assignments, experiment_observations, offer_outcomes):
        result = connection.execute(
            table.delete().where(table.c.tenant_id == tenant, table.c.subject_id == subject_id)
        )
        removed += int(result.rowcount or 0)
    return removed


def scrub_subject(connection: Connection, tenant: str, subject_id: str, *, empty_state: str) -> int:
    """Replace the personal data the runtime tables hold about a subject's ended runs: run
    inputs, states (with ``empty_state``) and errors, history details, decision records,
    signal payloads, review items' packets and decisions, and what dead letters' errors said.
    Returns how many runs were scrubbed."""
    run_ids = [
        r[0]
        for r in connection.execute(
            sa.select(runs.c.run_id).where(
                runs.c.tenant_id == tenant, runs.c.subject_id == subject_id
            )
        )
    ]
    if not run_ids:
        return 0
    connection.execute(
        runs.update()
        .where(runs.c.tenant_id == tenant, runs.c.run_id.in_(run_ids))
        .values(
            input="{}",
            state=empty_state,
            error=sa.case((runs.c.error.is_(None), None), else_=_ERASED),
        )
    )
    connection.execute(
        transitions.update()
        .where(transitions.c.tenant_id == tenant, transitions.c.run_id.in_(run_ids))
        .values(detail=_ERASED)
    )
    connection.execute(
        decisions.update()
        .where(decisions.c.tenant_id == tenant, decisions.c.run_id.in_(run_ids))
        .values(record=_ERASED)
    )
    connection.execute(
        review_items.update()
        .where(review_items.c.tenant_id == tenant, review_items.c.run_id.in_(run_ids))
        .values(
            packet=_ERASED,
            decision=sa.case((review_items.c.decision.is_(None), None), else_=_ERASED),
        )
    )
    connection.execute(
        signals.update()
        .where(signals.c.tenant_id == tenant, signals.c.run_id.in_(run_ids))
        .values(payload=_ERASED)
    )
    scrub_letters(connection, tenant, run_ids)
    cache_forget(connection, tenant, subject_id)
    return len(run_ids)
