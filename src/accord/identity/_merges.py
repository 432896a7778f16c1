"""What people decide about who is who: merges, their undoing, splits, and possible links
settled one way or the other. Each change commits with its ledger entry; a merge remembers what
it moved so that it can be undone exactly."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Connection

from accord.audit import Ledger, entries
from accord.core import Clock, TenantId
from accord.errors import InputError
from accord.storage import Database
from accord.storage import identity as stored


class SubjectDecisions:
    """Merges, splits and possible links; :class:`Resolver` builds on it."""

    db: Database
    ledger: Ledger
    clock: Clock
    new_id: Callable[[str], str]

    def merge(
        self,
        tenant: str,
        keep: str,
        other: str,
        *,
        by: str,
        reason: str,
        candidate_id: str | None = None,
    ) -> stored.MergeRow:
        """Move every record and context item of ``other`` to ``keep``; ``other`` points to
        ``keep`` from then on. Reversible with :meth:`split` (``merge_id``).

        Raises:
            InputError: a subject is unknown, not active, the same as the other, or a person
                kept the two apart; or the actor or reason is missing. Nothing changed.
        """
        _require_actor(by, reason)
        with self.db.transaction() as connection:
            stored.lock(connection, TenantId(tenant))
            return self._merge(connection, tenant, keep, other, by, reason, candidate_id)

    def _merge(
        self,
        connection: Connection,
        tenant: str,
        keep: str,
        other: str,
        by: str,
        reason: str,
        candidate_id: str | None,
    ) -> stored.MergeRow:
        tenant_id = TenantId(tenant)
        now = self.clock.now()
        if keep == other:
            raise InputError(f"cannot merge subject {keep!r} with itself")
        kept = _active(connection, tenant_id, keep)
        _active(connection, tenant_id, other)
        if candidate_id is None and stored.kept_apart(connection, tenant_id, keep, other):
            raise InputError(
                f"a person decided that {keep} and {other} are different people",
                hint="see accord identity show " + keep,
            )
        records = stored.records_of(connection, tenant_id, [other])
        items = stored.items_of(connection, tenant_id, [other])
        moved = [(r.source, r.record_id) for r in records]
        stored.move_records(connection, tenant_id, moved, to_subject=keep, link="merged", at=now)
        stored.move_items(connection, tenant_id, [i.item_id for i in items], to_subject=keep)
        stored.update_subject(
            connection, tenant_id, other, at=now, status="merged", merged_into=keep
        )
        if kept.region is None:
            other_row = stored.get_subject(connection, tenant_id, other)
            if other_row is not None and other_row.region is not None:
                stored.update_subject(
                    connection,
                    tenant_id,
                    keep,
                    at=now,
                    region=other_row.region,
                    set_region=True,
                )
        merge = stored.MergeRow(
            merge_id=self.new_id("mrg"),
            into_subject=keep,
            from_subject=other,
            records=tuple(moved),
            items=tuple(i.item_id for i in items),
            candidate_id=candidate_id,
            merged_by=by,
            reason=reason,
            merged_at=now,
            undone_by=None,
            undone_at=None,
        )
        stored.insert_merge(connection, tenant_id, merge)
        self.ledger.append(
            connection,
            tenant,
            [
                entries.identity_event(
                    "identity.merged",
                    at=now,
                    subject_id=keep,
                    body={
                        "merge": merge.merge_id,
                        "into": keep,
                        "from": other,
                        "records": [f"{s}/{r}" for s, r in moved],
                        "items": len(items),
                        "candidate": candidate_id,
                        "by": by,
                        "reason": reason,
                    },
                )
            ],
        )
        return merge

    def split(
        self,
        tenant: str,
        subject_id: str,
        *,
        by: str,
        reason: str,
        merge_id: str | None = None,
        records: Sequence[tuple[str, str]] = (),
    ) -> str:
        """Undo a merge (``merge_id``), or move chosen ``records`` (with the context items
        that came from them) to a new subject. Either way the two are kept apart from then on.
        Returns the subject the records moved to.

        Raises:
            InputError: the merge is unknown or undone, a record is not the subject's, or
                nothing was named; nothing changed.
        """
        _require_actor(by, reason)
        if (merge_id is None) == (not records):
            raise InputError(
                "name either the merge to undo or the records to split off",
                hint="accord identity split SUBJECT --merge MERGE_ID, or --record SOURCE/ID",
            )
        tenant_id = TenantId(tenant)
        now = self.clock.now()
        with self.db.transaction() as connection:
            stored.lock(connection, tenant_id)
            _active(connection, tenant_id, subject_id)
            if merge_id is not None:
                merge = stored.get_merge(connection, tenant_id, merge_id)
                if merge is None or merge.into_subject != subject_id:
                    raise InputError(
                        f"subject {subject_id!r} has no merge {merge_id!r}",
                        hint="accord identity show " + subject_id + " lists its merges",
                    )
                if not stored.undo_merge(connection, tenant_id, merge_id, by=by, at=now):
                    raise InputError(f"merge {merge_id!r} was already undone")
                target = merge.from_subject
                here = {
                    (r.source, r.record_id)
                    for r in stored.records_of(connection, tenant_id, [subject_id])
                }
                moving = [r for r in merge.records if r in here]
                item_ids = list(merge.items)
                stored.update_subject(connection, tenant_id, target, at=now, status="active")
            else:
                mine = {
                    (r.source, r.record_id): r
                    for r in stored.records_of(connection, tenant_id, [subject_id])
                }
                missing = [f"{s}/{r}" for s, r in records if (s, r) not in mine]
                if missing:
                    raise InputError(
                        f"subject {subject_id!r} has no record {', '.join(missing)}",
                        hint="accord identity show " + subject_id + " lists its records",
                    )
                if len(set(records)) == len(mine):
                    raise InputError(
                        "splitting off every record leaves the subject empty",
                        hint="leave at least one record with the subject",
                    )
                moving = list(dict.fromkeys(records))
                target = self.new_id("sub")
                first = mine[moving[0]]
                stored.insert_subject(connection, tenant_id, target, region=first.region, at=now)
                wanted = set(moving)
                item_ids = [
                    i.item_id
                    for i in stored.items_of(connection, tenant_id, [subject_id])
                    if i.record_id is not None and (i.source, i.record_id) in wanted
                ]
            stored.move_records(
                connection, tenant_id, moving, to_subject=target, link="split", at=now
            )
            stored.move_items(connection, tenant_id, item_ids, to_subject=target)
            apart = self.new_id("idc")
            stored.insert_candidate(
                connection,
                tenant_id,
                stored.CandidateRow(
                    candidate_id=apart,
                    source=moving[0][0] if moving else "",
                    record_id=moving[0][1] if moving else "",
                    subject_id=target,
                    other_subject_id=subject_id,
                    probability=0.0,
                    weight=0.0,
                    evidence={"levels": {}, "split": merge_id or "records"},
                    status="kept_apart",
                    run_id=None,
                    created_at=now,
                    decided_at=now,
                    decided_by=by,
                    reason=reason,
                ),
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.identity_event(
                        "identity.split",
                        at=now,
                        subject_id=subject_id,
                        body={
                            "subject": subject_id,
                            "to": target,
                            "merge": merge_id,
                            "records": [f"{s}/{r}" for s, r in moving],
                            "items": len(item_ids),
                            "by": by,
                            "reason": reason,
                        },
                    )
                ],
            )
        return target

    def keep_apart(self, tenant: str, candidate_id: str, *, by: str, reason: str) -> bool:
        """Close a possible link as two different people. False: it was already decided."""
        _require_actor(by, reason)
        tenant_id = TenantId(tenant)
        now = self.clock.now()
        with self.db.transaction() as connection:
            stored.lock(connection, tenant_id)
            candidate = _candidate_of(connection, tenant_id, candidate_id)
            done = stored.decide_candidate(
                connection,
                TenantId(tenant),
                candidate_id,
                status="kept_apart",
                by=by,
                reason=reason,
                at=now,
            )
            if done:
                self.ledger.append(
                    connection,
                    tenant,
                    [_decided(candidate, "kept_apart", by=by, reason=reason, at=now)],
                )
        return done

    def merge_candidate(
        self, tenant: str, candidate_id: str, *, by: str, reason: str
    ) -> stored.MergeRow | None:
        """Merge a possible link's two subjects (the candidate's record joins the subject it
        resembled). None: the candidate was already decided, and nothing changed. The
        decision and the merge commit together."""
        _require_actor(by, reason)
        tenant_id = TenantId(tenant)
        now = self.clock.now()
        with self.db.transaction() as connection:
            stored.lock(connection, tenant_id)
            candidate = _candidate_of(connection, tenant_id, candidate_id)
            keep = current_of(connection, tenant_id, candidate.other_subject_id)
            other = current_of(connection, tenant_id, candidate.subject_id)
            if not stored.decide_candidate(
                connection, tenant_id, candidate_id, status="merged", by=by, reason=reason, at=now
            ):
                return None
            self.ledger.append(
                connection, tenant, [_decided(candidate, "merged", by=by, reason=reason, at=now)]
            )
            if keep == other:
                return None
            return self._merge(connection, tenant, keep, other, by, reason, candidate_id)

    def current_subject(self, tenant: str, subject_id: str) -> str:
        """The active subject ``subject_id`` is, following merges."""
        with self.db.read() as connection:
            return current_of(connection, TenantId(tenant), subject_id)


def _decided(
    candidate: stored.CandidateRow, status: str, *, by: str, reason: str, at: float
) -> entries.Entry:
    return entries.identity_event(
        "identity.candidate",
        at=at,
        subject_id=candidate.subject_id,
        body={
            "candidate": candidate.candidate_id,
            "status": status,
            "subject": candidate.subject_id,
            "other_subject": candidate.other_subject_id,
            "by": by,
            "reason": reason,
        },
    )


def _require_actor(by: str, reason: str) -> None:
    if not by or len(by) > 128:
        raise InputError("name who acts (1 to 128 characters)", hint="CLI: --by NAME")
    if not reason.strip() or len(reason) > 2000:
        raise InputError(
            "give a reason (1 to 2000 characters); it is recorded in the ledger",
            hint="e.g. --reason 'same e-mail and date of birth, confirmed by phone'",
        )


def _active(connection: Connection, tenant: TenantId, subject_id: str) -> stored.SubjectRow:
    row = stored.get_subject(connection, tenant, subject_id)
    if row is None:
        raise InputError(
            f"no subject {subject_id!r}", hint="accord identity show lists what is known"
        )
    if row.status != "active":
        where = f" into {row.merged_into}" if row.merged_into else ""
        raise InputError(f"subject {subject_id!r} is {row.status}{where}")
    return row


def current_of(connection: Connection, tenant: TenantId, subject_id: str) -> str:
    seen: set[str] = set()
    current = subject_id
    while True:
        row = stored.get_subject(connection, tenant, current)
        if row is None:
            raise InputError(
                f"no subject {subject_id!r}", hint="resolve records first: accord identity resolve"
            )
        if row.status != "merged" or row.merged_into is None or current in seen:
            return current
        seen.add(current)
        current = row.merged_into


def _candidate_of(
    connection: Connection, tenant: TenantId, candidate_id: str
) -> stored.CandidateRow:
    candidate = stored.get_candidate(connection, tenant, candidate_id)
    if candidate is None:
        raise InputError(
            f"no possible link {candidate_id!r}", hint="accord identity candidates lists them"
        )
    return candidate
