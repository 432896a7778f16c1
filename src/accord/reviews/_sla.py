"""Review SLAs: overdue items move to their queue's supervisor queue, and everyone hears of it."""

from __future__ import annotations

from typing import Any

from accord.audit import Ledger, entries
from accord.core import IdGenerator
from accord.reviews._people import stored_queue
from accord.storage import OPEN_REVIEW, Database, NewEvent
from accord.storage import reviews as stored
from accord.storage import runs as stored_runs


def sweep_overdue(db: Database, ledger: Ledger, ids: IdGenerator, *, now: float, limit: int) -> int:
    """Escalate the items of every tenant whose SLA ran out by ``now``; how many moved.

    Each item moves in its own transaction, under a conditional update on its escalation
    count and due time, so two workers sweeping at once move it once.
    """
    with db.read() as connection:
        due = stored.overdue_items(connection, now, limit=limit)
    moved = 0
    for item in due:
        with db.transaction() as connection:
            queue = stored_queue(connection, item.tenant_id, item.queue)
            target_name = queue.escalate_to if queue else None
            target = stored_queue(connection, item.tenant_id, target_name) if target_name else None
            values: dict[str, Any] = {
                "escalations": item.escalations + 1,
                "updated_at": now,
                "due_at": now + target.sla if target and target.sla else None,
            }
            if target_name:
                values.update(queue=target_name, owner=None, claimed_at=None)
                if item.status == "claimed":
                    values["status"] = "open"
            if not stored.update_item(
                connection,
                item.tenant_id,
                item.item_id,
                expect_status=OPEN_REVIEW,
                expect={"escalations": item.escalations, "due_at": item.due_at},
                values=values,
            ):
                continue
            event = {
                "item": item.item_id,
                "run_id": item.run_id,
                "from_queue": item.queue,
                "to_queue": target_name or item.queue,
                "owner": item.owner,
                "overdue_since": item.due_at,
                "escalations": item.escalations + 1,
            }
            stored_runs.insert_outbox(
                connection,
                item.tenant_id,
                item.run_id,
                None,
                [NewEvent(ids.new_id("evt"), "review.overdue", event)],
                now,
            )
            ledger.append(
                connection,
                item.tenant_id,
                [
                    entries.review_event(
                        "review.escalated",
                        item_id=item.item_id,
                        run_id=item.run_id,
                        subject_id=item.subject_id,
                        at=now,
                        body={k: v for k, v in event.items() if k not in ("item", "run_id")},
                    )
                ],
            )
            moved += 1
    return moved


__all__ = ["sweep_overdue"]
