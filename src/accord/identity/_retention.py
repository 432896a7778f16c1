"""Retention: how long each data category is kept, per purpose, and the job that enforces it.

A rule says that items of a category (collected for a purpose, or for any purpose without a
rule of its own) are deleted or anonymised once older than a period. The job finds every expired
item, leaves alone those of subjects under legal hold, acts on the rest, and records what it did
and what it kept, in the same transaction: either all of a run's work is done and recorded, or
none of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import get_args

from sqlalchemy.engine import Connection

from accord.audit import Ledger, entries
from accord.core import Clock, TenantId
from accord.errors import InputError
from accord.storage import Database
from accord.storage import identity as stored
from accord.storage import ledger as stored_ledger

_TERM = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$")
ACTIONS: tuple[str, ...] = get_args(stored.RetentionAction)
MAX_PERIOD = 100 * 365 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Keep ``category`` (collected for ``purpose``; None: any purpose without its own rule)
    for ``period`` seconds, then ``delete`` or ``anonymise`` it."""

    category: str
    period: float
    action: stored.RetentionAction = "delete"
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one run of the job did, by item id."""

    at: float
    deleted: tuple[str, ...]
    anonymised: tuple[str, ...]
    held: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at,
            "deleted": list(self.deleted),
            "anonymised": list(self.anonymised),
            "held": list(self.held),
        }


@dataclass
class Retention:
    """Retention rules and the job, for every tenant of one database."""

    db: Database
    ledger: Ledger
    clock: Clock
    check_categories: Callable[[Sequence[str]], object] | None = None
    check_purpose: Callable[[str], object] | None = None

    def set_rule(self, tenant: str, rule: RetentionRule, *, by: str) -> None:
        """Add or change a rule (recorded in the ledger).

        Raises:
            InputError: the category or purpose is not a DPV term, the period is not positive,
                or the action is unknown.
        """
        _check(rule)
        if self.check_categories is not None:
            self.check_categories([rule.category])
        if self.check_purpose is not None and rule.purpose is not None:
            self.check_purpose(rule.purpose)
        now = self.clock.now()
        with self.db.transaction() as connection:
            stored.put_rule(
                connection,
                TenantId(tenant),
                stored.RetentionRuleRow(
                    rule.category, rule.purpose, rule.period, rule.action, by, now
                ),
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.identity_event(
                        "retention.rule",
                        at=now,
                        body={
                            "category": rule.category,
                            "purpose": rule.purpose,
                            "period_seconds": rule.period,
                            "action": rule.action,
                            "by": by,
                        },
                    )
                ],
            )

    def remove_rule(self, tenant: str, category: str, purpose: str | None, *, by: str) -> bool:
        now = self.clock.now()
        with self.db.transaction() as connection:
            removed = stored.delete_rule(connection, TenantId(tenant), category, purpose)
            if removed:
                self.ledger.append(
                    connection,
                    tenant,
                    [
                        entries.identity_event(
                            "retention.rule",
                            at=now,
                            body={
                                "category": category,
                                "purpose": purpose,
                                "removed": True,
                                "by": by,
                            },
                        )
                    ],
                )
        return removed

    def rules(self, tenant: str) -> list[stored.RetentionRuleRow]:
        with self.db.read() as connection:
            return stored.list_rules(connection, TenantId(tenant))

    def apply(self, tenant: str, *, by: str = "retention") -> RetentionReport:
        """Delete or anonymise every expired item not under legal hold, and record it."""
        tenant_id = TenantId(tenant)
        now = self.clock.now()
        with self.db.transaction() as connection:
            rules = stored.list_rules(connection, tenant_id)
            specific = {(r.category, r.purpose) for r in rules if r.purpose is not None}
            due: dict[str, tuple[stored.ContextItemRow, stored.RetentionRuleRow]] = {}
            for rule in rules:
                found = stored.items_recorded_before(
                    connection,
                    tenant_id,
                    category=rule.category,
                    purpose=rule.purpose,
                    before=now - rule.period_seconds,
                    exclude_purposes=[p for c, p in specific if c == rule.category and p],
                )
                for item in found:
                    due.setdefault(item.item_id, (item, rule))
            holds = _held(connection, tenant_id, {i.subject_id for i, _ in due.values()})
            held = sorted(i for i, (item, _) in due.items() if item.subject_id in holds)
            deleting = sorted(
                i for i, (item, r) in due.items() if i not in held and r.action == "delete"
            )
            anonymising = sorted(
                i for i, (item, r) in due.items() if i not in held and r.action == "anonymise"
            )
            stored.delete_items(connection, tenant_id, deleting)
            stored.anonymise_items(connection, tenant_id, anonymising, at=now)
            self.ledger.append(
                connection, tenant, _entries(due, deleting, anonymising, held, by=by, at=now)
            )
        return RetentionReport(now, tuple(deleting), tuple(anonymising), tuple(held))


def _entries(
    due: dict[str, tuple[stored.ContextItemRow, stored.RetentionRuleRow]],
    deleting: Sequence[str],
    anonymising: Sequence[str],
    held: Sequence[str],
    *,
    by: str,
    at: float,
) -> list[entries.Entry]:
    """One entry per subject touched (what was removed and kept of theirs) and a summary."""
    by_subject: dict[str, dict[str, list[str]]] = {}
    for outcome, ids in (("deleted", deleting), ("anonymised", anonymising), ("held", held)):
        for item_id in ids:
            item, _ = due[item_id]
            subject = item.subject_id or ""
            by_subject.setdefault(subject, {"deleted": [], "anonymised": [], "held": []})
            by_subject[subject][outcome].append(item_id)
    recorded = [
        entries.identity_event(
            "retention.applied",
            at=at,
            subject_id=subject or None,
            body={
                "subject": subject or None,
                **outcomes,
                "categories": sorted(
                    {due[i][0].category for ids in outcomes.values() for i in ids}
                ),
                "legal_hold": bool(outcomes["held"]),
                "by": by,
            },
        )
        for subject, outcomes in sorted(by_subject.items())
    ]
    recorded.append(
        entries.identity_event(
            "retention.applied",
            at=at,
            body={
                "summary": True,
                "deleted": len(deleting),
                "anonymised": len(anonymising),
                "held": len(held),
                "subjects": len(by_subject),
                "by": by,
            },
        )
    )
    return recorded


def _held(connection: Connection, tenant: TenantId, subjects: set[str | None]) -> set[str]:
    return {
        s
        for s in subjects
        if s is not None and stored_ledger.get_hold(connection, tenant, s) is not None
    }


def _check(rule: RetentionRule) -> None:
    if not _TERM.match(rule.category):
        raise InputError(f"category {rule.category!r} is not a DPV term", hint="e.g. pd:Purchase")
    if rule.purpose is not None and not _TERM.match(rule.purpose):
        raise InputError(f"purpose {rule.purpose!r} is not a DPV term", hint="e.g. dpv:Marketing")
    if (
        isinstance(rule.period, bool)
        or not isinstance(rule.period, int | float)
        or not 0 < rule.period <= MAX_PERIOD
    ):
        raise InputError(
            f"a retention period is more than 0 and at most 100 years, got {rule.period}s",
            hint="e.g. 30d, 2y",
        )
    if rule.action not in ACTIONS:
        raise InputError(
            f"unknown retention action {rule.action!r}", hint="one of: " + ", ".join(ACTIONS)
        )
