"""The context store: what Accord knows about a subject, item by item, each tagged with its data
category, source system (and record), region and the purpose it was collected for.

An *attribute* is a current value (an e-mail address, a preferred language); a newer value from
the same source and record replaces the older. A *signal* is something that happened (an order,
a ticket, a message) and is only ever added. Nothing reads this store but the ``context.read``
capability, behind the gateway: a read names a purpose, and what comes back is grouped by
category so that the gateway can withhold every category the purpose does not allow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from accord.audit import Ledger, entries
from accord.core import Clock, TenantId
from accord.errors import InputError
from accord.storage import Database
from accord.storage import identity as stored

MAX_NAME = 128
MAX_VALUE = 16_384
MAX_SIGNALS = 200
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
_TERM = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class ContextItem:
    """One thing to remember about a subject.

    Attributes:
        name: what it is, e.g. ``email`` or ``order``.
        value: any JSON value.
        category: the DPV personal-data category it carries, e.g. ``pd:Purchase``.
        source: the system it came from, e.g. ``orders``.
        kind: ``attribute`` (a current value) or ``signal`` (an event).
        record_id: the source record it came from, if one.
        region: where the data lives.
        purpose: the DPV purpose it was collected for; retention rules can differ by purpose.
        recorded_at: when it was true (epoch seconds); now, if not given.
    """

    name: str
    value: Any
    category: str
    source: str
    kind: stored.ItemKind = "attribute"
    record_id: str | None = None
    region: str | None = None
    purpose: str | None = None
    recorded_at: float | None = None


@dataclass
class ContextStore:
    """Writes items, and reads them for the ``context.read`` capability."""

    db: Database
    ledger: Ledger
    clock: Clock
    new_id: Callable[[str], str]
    check_categories: Callable[[Sequence[str]], object] | None = None

    def record(
        self, tenant: str, subject_id: str, items: Sequence[ContextItem], *, by: str
    ) -> list[str]:
        """Store ``items`` about an active subject; returns their ids.

        Raises:
            InputError: the subject is unknown or not active, or an item is malformed
                (which one, and why); nothing was stored.
        """
        for index, item in enumerate(items):
            _check(index, item)
        if self.check_categories is not None and items:
            self.check_categories(sorted({item.category for item in items}))
        tenant_id = TenantId(tenant)
        now = self.clock.now()
        rows = [
            stored.ContextItemRow(
                item_id=self.new_id("ctx"),
                subject_id=subject_id,
                kind=item.kind,
                name=item.name,
                value=item.value,
                category=item.category,
                source=item.source,
                record_id=item.record_id,
                region=item.region,
                purpose=item.purpose,
                recorded_at=now if item.recorded_at is None else item.recorded_at,
                anonymised_at=None,
            )
            for item in items
        ]
        with self.db.transaction() as connection:
            subject = stored.get_subject(connection, tenant_id, subject_id)
            if subject is None or subject.status != "active":
                state = "unknown" if subject is None else subject.status
                raise InputError(
                    f"subject {subject_id!r} is {state}; context is kept for active subjects",
                    hint="accord identity show SUBJECT follows merges to the current subject",
                )
            replaced = replace_attributes(connection, tenant_id, subject_id, rows)
            stored.insert_items(connection, tenant_id, rows)
            if rows:
                self.ledger.append(
                    connection,
                    tenant,
                    [
                        entries.identity_event(
                            "context.recorded",
                            at=now,
                            subject_id=subject_id,
                            body={
                                "subject": subject_id,
                                "items": [r.item_id for r in rows],
                                "replaced": replaced,
                                "categories": sorted({r.category for r in rows}),
                                "sources": sorted({r.source for r in rows}),
                                "by": by,
                            },
                        )
                    ],
                )
        return [row.item_id for row in rows]

    def read(
        self,
        tenant: str,
        subject_id: str,
        *,
        categories: Collection[str] | None = None,
        signals: int = 50,
    ) -> dict[str, dict[str, Any]]:
        """The subject's items grouped by category: for each, the newest value of every
        attribute (with every source that holds it) and the newest ``signals`` signals. A
        merged subject is followed to the one it was merged into; an unknown one has none.

        This is the connector's side of ``context.read``; callers go through the gateway.
        """
        tenant_id = TenantId(tenant)
        with self.db.read() as connection:
            current = subject_id
            for _ in range(16):  # a subject merged into one that was merged in turn...
                row = stored.get_subject(connection, tenant_id, current)
                if row is None:
                    return {}
                if row.status != "merged" or row.merged_into is None:
                    break
                current = row.merged_into
            rows = stored.items_of(connection, tenant_id, [current], categories=categories)
        return group(rows, signals=signals)


def group(rows: Sequence[stored.ContextItemRow], *, signals: int) -> dict[str, dict[str, Any]]:
    """Rows (newest first) as ``{category: {"attributes": {...}, "signals": [...]}}``."""
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        section = grouped.setdefault(row.category, {"attributes": {}, "signals": []})
        described = {
            "value": row.value,
            "source": row.source,
            "region": row.region,
            "recorded_at": row.recorded_at,
        }
        if row.kind == "signal":
            if len(section["signals"]) < signals:
                section["signals"].append({"name": row.name, **described})
            continue
        held = section["attributes"].get(row.name)
        if held is None:
            section["attributes"][row.name] = {**described, "sources": [row.source]}
        elif row.source not in held["sources"]:
            held["sources"].append(row.source)
    return grouped


def replace_attributes(
    connection: Connection, tenant: TenantId, subject_id: str, rows: Sequence[stored.ContextItemRow]
) -> int:
    """Delete the subject's attributes that ``rows`` hold new values of; returns how many."""
    keys = [(r.name, r.source, r.record_id) for r in rows if r.kind == "attribute"]
    return stored.delete_attributes(connection, tenant, subject_id, keys) if keys else 0


def _check(index: int, item: ContextItem) -> None:
    where = f"item {index + 1} ({item.name!r})"
    if not _NAME.match(item.name):
        raise InputError(
            f"{where}: a name starts with a letter and has letters, digits, '_', '.', '-' "
            f"(at most {MAX_NAME})",
            hint="e.g. email, order, ticket",
        )
    if not _TERM.match(item.category):
        raise InputError(
            f"{where}: category {item.category!r} is not a DPV term",
            hint="e.g. pd:Purchase; see accord consent terms",
        )
    if not _NAME.match(item.source) or len(item.source) > 64:
        raise InputError(f"{where}: source {item.source!r} is not a system name")
    if item.kind not in ("attribute", "signal"):
        raise InputError(f"{where}: kind is attribute or signal, not {item.kind!r}")
    if item.purpose is not None and not _TERM.match(item.purpose):
        raise InputError(f"{where}: purpose {item.purpose!r} is not a DPV term")
    try:
        size = len(json.dumps(item.value))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: the value is not JSON: {exc}") from exc
    if size > MAX_VALUE:
        raise InputError(f"{where}: the value has {size} bytes of JSON, at most {MAX_VALUE}")
