"""Who works review items, and where: members of staff and review queues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from accord.errors import InputError
from accord.storage import ReviewItemRecord
from accord.storage import reviews as stored


@dataclass(frozen=True, slots=True)
class Person:
    """A member of staff: who they are, the roles they hold and the skills they have."""

    person_id: str
    name: str
    roles: tuple[str, ...]
    skills: tuple[str, ...]
    active: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "roles": list(self.roles),
            "skills": list(self.skills),
            "active": self.active,
        }


@dataclass(frozen=True, slots=True)
class Queue:
    """A review queue: who may work it, its SLA, and where overdue items go."""

    name: str
    roles: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    sla: float | None = None
    escalate_to: str | None = None
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "roles": list(self.roles),
            "skills": list(self.skills),
            "sla_seconds": self.sla,
            "escalate_to": self.escalate_to,
            "description": self.description,
        }


def require_name(value: str, what: str) -> None:
    if not value or len(value) > 128 or not value.strip() or value != value.strip():
        raise InputError(f"{value!r} is not {what}: 1 to 128 characters without surrounding spaces")


def eligible(who: Person, item: ReviewItemRecord, queue: Queue | None) -> str | None:
    """Why ``who`` may not work ``item`` in ``queue``, or None if they may."""
    roles = set(item.roles) | set(queue.roles if queue else ())
    if roles and not roles & set(who.roles):
        return f"it needs one of the roles {', '.join(sorted(roles))}"
    missing = set(queue.skills if queue else ()) - set(who.skills)
    if missing:
        return f"queue {item.queue} needs the skills {', '.join(sorted(missing))}"
    return None


def person_of(record: stored.StaffRecord) -> Person:
    return Person(record.person_id, record.name, record.roles, record.skills, record.active)


def queue_of(record: stored.QueueRecord) -> Queue:
    return Queue(
        record.name,
        record.roles,
        record.skills,
        record.sla_seconds,
        record.escalate_to,
        record.description,
    )


def stored_queue(connection: Connection, tenant: str, name: str) -> Queue | None:
    """The tenant's queue of that name, if one is defined."""
    record = stored.get_queue(connection, tenant, name)
    return None if record is None else queue_of(record)


__all__ = ["Person", "Queue", "eligible", "person_of", "queue_of", "require_name", "stored_queue"]
