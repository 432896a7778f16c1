"""The flags of each tenant in the database, and the in-memory table the provider reads."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field

from accord.audit import Ledger, entries
from accord.core import Clock, IdGenerator, TenantId
from accord.errors import InputError
from accord.flags._keys import KILL_SWITCH_KINDS, check_flag_value, parse_flag_key
from accord.storage import Database, NewEvent
from accord.storage import _flags as stored
from accord.storage import runs as stored_runs
from accord.storage._flags import FlagChange, FlagRecord, FlagValue
from accord.storage._records import json_text

_ACTOR_MAX = 128


@dataclass(frozen=True, slots=True)
class FlagTable:
    """All flags of one tenant as of ``version``, ready for lookups without the database.

    Attributes:
        tenant: the tenant the flags belong to.
        version: the tenant's flag version the table was read at (0: no flag set yet).
        records: the stored flags by key.
        switched_off: the kill switches that are off, so an all-clear check is one test.
    """

    tenant: str
    version: int
    records: Mapping[str, FlagRecord]
    switched_off: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, tenant: str, records: list[FlagRecord]) -> FlagTable:
        """The table of ``records``; its version is the highest version among them."""
        off = frozenset(
            r.key
            for r in records
            if r.value is False and r.key.partition(":")[0] in KILL_SWITCH_KINDS
        )
        return cls(
            tenant=tenant,
            version=max((r.version for r in records), default=0),
            records={r.key: r for r in records},
            switched_off=off,
        )

    def value(self, key: str) -> FlagValue | None:
        """The stored value of ``key``, or None when it was never set."""
        record = self.records.get(key)
        return None if record is None else record.value


class FlagStore:
    """Reads and writes the flags of tenants, logging every change with who and why.

    Args:
        db: the database holding the ``flags`` and ``flag_changes`` tables.
        clock: stamps changes; the provider also uses it to pace its version checks.
        ids: names each change.
    """

    def __init__(self, db: Database, *, clock: Clock, ids: IdGenerator, ledger: Ledger) -> None:
        self.db = db
        self.clock = clock
        self.ids = ids
        self.ledger = ledger

    def set(
        self, tenant: str, key: str, value: FlagValue, *, actor: str, reason: str = ""
    ) -> FlagRecord:
        """Set a flag and record the change (with the value before it) in one transaction.

        Args:
            tenant: whose flag.
            key: ``<kind>:<name>``, e.g. ``capability:orders.lookup``.
            value: True/False for kill switches and shadow mode, 0-100 for rollouts.
            actor: who sets it; recorded with the change.
            reason: why; required to switch a kill switch off.

        Returns:
            The flag as stored, with the tenant's new version.

        Raises:
            InputError: the key, value, actor or reason is not acceptable; nothing was written.
        """
        parsed = parse_flag_key(key)
        checked = check_flag_value(parsed, value)
        actor = actor.strip()
        reason = reason.strip()
        if not actor or len(actor) > _ACTOR_MAX:
            raise InputError(
                f"setting {key} needs an actor of 1 to {_ACTOR_MAX} characters, got {actor!r}",
                hint="name the person or system that changes the flag (CLI: --actor)",
            )
        if parsed.is_kill_switch and checked is False and not reason:
            raise InputError(
                f"switching {key} off needs a reason",
                hint="say why, e.g. reason='incident 1234: refunds double-charged' "
                "(CLI: --reason); it is recorded with the change",
            )
        with self.db.transaction() as connection:
            record, change = stored.write(
                connection,
                TenantId(tenant),
                str(parsed),
                checked,
                change_id=self.ids.new_id("flag"),
                at=self.clock.now(),
                actor=actor,
                reason=reason,
            )
            stored_runs.insert_outbox(
                connection,
                tenant,
                None,
                None,
                [
                    NewEvent(
                        stored_runs.derived_event_id("flag.changed", tenant, change.change_id),
                        "flag.changed",
                        {
                            "change_id": change.change_id,
                            "key": change.key,
                            "value": change.value,
                            "previous": change.previous,
                            "kill_switch": parsed.is_kill_switch,
                            "actor": change.actor,
                            "reason": change.reason,
                        },
                    )
                ],
                change.at,
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.flag_change(
                        change_id=change.change_id,
                        key=change.key,
                        value=json_text(change.value),
                        previous=None if change.previous is None else json_text(change.previous),
                        reason=change.reason,
                        actor=change.actor,
                        at=change.at,
                    )
                ],
            )
        return record

    def get(self, tenant: str, key: str) -> FlagRecord | None:
        """The stored flag, or None when it was never set (its default applies)."""
        with self.db.read() as connection:
            return stored.get(connection, TenantId(tenant), str(parse_flag_key(key)))

    def history(self, tenant: str, key: str | None = None) -> builtins.list[FlagChange]:
        """Every change of the tenant's flags (or of one key), oldest first."""
        if key is not None:
            key = str(parse_flag_key(key))
        with self.db.read() as connection:
            return stored.history(connection, TenantId(tenant), key)

    def version(self, tenant: str) -> int:
        """The tenant's flag version; it grows with every change, so equal means unchanged."""
        with self.db.read() as connection:
            return stored.version(connection, TenantId(tenant))

    def load(self, tenant: str) -> FlagTable:
        """All flags of the tenant and their version, read in one query."""
        with self.db.read() as connection:
            return FlagTable.of(tenant, stored.list_flags(connection, TenantId(tenant)))

    def list(self, tenant: str) -> builtins.list[FlagRecord]:
        """All flags of the tenant, by key."""
        with self.db.read() as connection:
            return stored.list_flags(connection, TenantId(tenant))
