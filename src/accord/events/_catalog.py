"""The domain events Accord emits, each with a versioned JSON Schema of its ``data``.

An event's CloudEvents ``type`` is ``accord.<name>`` (``accord.run.completed``); its
``dataschema`` is the URL of the schema below, version in the path. A field is added to a
version only when it is optional; anything else is a new version, published beside the old.
The schemas are written to ``docs/schemas/events/`` by ``accord events schemas --out``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from accord.errors import InputError

SCHEMA_BASE = "https://accord.dev/schemas/events"
TYPE_PREFIX = "accord."

_STRING = {"type": "string"}
_OPT_STRING = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_NUMBER = {"type": "number"}
_OPT_NUMBER = {"type": ["number", "null"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_ERROR = {
    "type": ["object", "null"],
    "properties": {"type": _STRING, "message": _STRING},
    "description": "what went wrong, when the run did not complete",
}


@dataclass(frozen=True, slots=True)
class EventType:
    """One kind of domain event: its name, schema version, meaning and data contract."""

    name: str
    version: int
    description: str
    properties: dict[str, Any]
    required: tuple[str, ...]

    @property
    def cloudevents_type(self) -> str:
        return TYPE_PREFIX + self.name

    @property
    def schema_url(self) -> str:
        return f"{SCHEMA_BASE}/{self.name}/v{self.version}.json"

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of this event's ``data``."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": self.schema_url,
            "title": f"{self.cloudevents_type} data (v{self.version})",
            "description": self.description,
            "type": "object",
            "properties": self.properties,
            "required": list(self.required),
            "additionalProperties": True,
        }


def _run(**fields: Any) -> dict[str, Any]:
    return {"run_id": _STRING, "journey": _STRING, **fields}


_RUN_REQUIRED = ("run_id", "journey")


def _ended(status: str, meaning: str) -> EventType:
    return EventType(
        f"run.{status}",
        1,
        meaning,
        _run(outcome={"type": ["string", "null"]}, error=_ERROR),
        _RUN_REQUIRED,
    )


EVENT_TYPES: tuple[EventType, ...] = (
    EventType(
        "run.started",
        1,
        "A run of a journey was started.",
        _run(version=_INT),
        (*_RUN_REQUIRED, "version"),
    ),
    EventType(
        "run.waiting",
        1,
        "A run waits for an external event (by name and correlation key).",
        _run(block=_STRING, waiting_for=_STRING, correlation=_OPT_STRING),
        (*_RUN_REQUIRED, "block", "waiting_for"),
    ),
    EventType(
        "run.held",
        1,
        "A kill switch holds a run before a block; it resumes when the switch is released.",
        _run(block=_STRING, flag=_STRING),
        (*_RUN_REQUIRED, "block", "flag"),
    ),
    EventType(
        "run.escalated",
        1,
        "A run handed its case to a person in a queue, with a handoff packet.",
        _run(block=_STRING, queue=_STRING, reason=_OPT_STRING, item=_STRING),
        (*_RUN_REQUIRED, "block", "queue", "item"),
    ),
    EventType(
        "run.compensating",
        1,
        "A run failed after side effects and is undoing them, newest first.",
        _run(error=_ERROR, steps=_INT),
        (*_RUN_REQUIRED, "steps"),
    ),
    _ended("completed", "A run reached an end block."),
    _ended("failed", "A run failed; its error says why."),
    _ended("cancelled", "A run was cancelled on request."),
    _ended("compensated", "A failed run undid every side effect it had made."),
    EventType(
        "review.requested",
        1,
        "A review item was created: an approval, a confirmation band or a handoff.",
        _run(
            block=_STRING,
            item=_STRING,
            role=_OPT_STRING,
            roles=_STRINGS,
            queue=_OPT_STRING,
            title=_OPT_STRING,
            capability=_OPT_STRING,
            policies=_STRINGS,
            decision=_OPT_STRING,
            reason=_OPT_STRING,
        ),
        (*_RUN_REQUIRED, "block", "item"),
    ),
    EventType(
        "review.decided",
        1,
        "A person decided a review item (approve, edit, reject or override).",
        {
            "item": _STRING,
            "run_id": _STRING,
            "queue": _STRING,
            "block": _STRING,
            "decision": {"enum": ["approve", "edit", "reject", "override"]},
            "outcome": _OPT_STRING,
            "decided_by": _STRING,
            "reason": _OPT_STRING,
        },
        ("item", "run_id", "queue", "decision", "decided_by"),
    ),
    EventType(
        "review.info_requested",
        1,
        "A reviewer asked for more information before deciding.",
        {
            "item": _STRING,
            "run_id": _STRING,
            "subject_id": _OPT_STRING,
            "question": _STRING,
            "asked_by": _STRING,
        },
        ("item", "run_id", "question", "asked_by"),
    ),
    EventType(
        "review.overdue",
        1,
        "A review item passed its SLA and moved to its escalation queue.",
        {
            "item": _STRING,
            "run_id": _STRING,
            "from_queue": _STRING,
            "to_queue": _STRING,
            "owner": _OPT_STRING,
            "overdue_since": _OPT_NUMBER,
            "escalations": _INT,
        },
        ("item", "run_id", "from_queue", "to_queue", "escalations"),
    ),
    EventType(
        "confirmation.requested",
        1,
        "A run proposes an action to its subject, who confirms or refuses it with the "
        "signed, single-use token (for the notification channel to deliver).",
        _run(
            block=_STRING,
            confirmation=_STRING,
            token=_STRING,
            proposal={"type": "object"},
            channels=_STRINGS,
            expires_at=_OPT_NUMBER,
            subject_id=_OPT_STRING,
        ),
        (*_RUN_REQUIRED, "block", "confirmation", "token"),
    ),
    EventType(
        "call.dead_lettered",
        1,
        "A capability call exhausted its retries; the run waits for the dead letter to be "
        "retried or discarded.",
        _run(letter=_STRING, block=_STRING, capability=_STRING, reason=_OPT_STRING),
        (*_RUN_REQUIRED, "letter", "block", "capability"),
    ),
    EventType(
        "gateway.notify",
        1,
        "A policy obliged the gateway to notify someone of a call it allowed.",
        {
            "target": _STRING,
            "policy": _OPT_STRING,
            "capability": _STRING,
            "decision": _STRING,
            "block": _OPT_STRING,
            "run_id": _STRING,
            "journey": _STRING,
        },
        ("target", "capability", "decision"),
    ),
    EventType(
        "consent.granted",
        1,
        "A subject granted consent for a purpose and data categories.",
        {
            "grant_id": _STRING,
            "subject_id": _STRING,
            "actor": _STRING,
            "purpose": _STRING,
            "categories": _STRINGS,
            "channel": _OPT_STRING,
            "granted_at": _NUMBER,
            "expires_at": _OPT_NUMBER,
        },
        ("grant_id", "subject_id", "purpose", "categories", "granted_at"),
    ),
    EventType(
        "consent.withdrawn",
        1,
        "A subject withdrew a consent grant; it allows nothing from withdrawn_at on.",
        {
            "grant_id": _STRING,
            "subject_id": _STRING,
            "actor": _STRING,
            "purpose": _STRING,
            "withdrawn_at": _NUMBER,
            "reason": _OPT_STRING,
        },
        ("grant_id", "subject_id", "purpose", "withdrawn_at"),
    ),
    EventType(
        "policy.deployed",
        1,
        "A new version of the tenant's Cedar policy bundle became active.",
        {
            "version": _INT,
            "digest": _STRING,
            "source_name": _OPT_STRING,
            "deployed_by": _STRING,
            "policies": _STRINGS,
        },
        ("version", "digest", "deployed_by", "policies"),
    ),
    EventType(
        "flag.changed",
        1,
        "A flag (kill switch, shadow mode or rollout percentage) was set.",
        {
            "change_id": _STRING,
            "key": _STRING,
            "value": {"type": ["boolean", "number"]},
            "previous": {"type": ["boolean", "number", "null"]},
            "kill_switch": {"type": "boolean"},
            "actor": _STRING,
            "reason": _OPT_STRING,
        },
        ("change_id", "key", "value", "kill_switch", "actor"),
    ),
    EventType(
        "rollout.changed",
        1,
        "An agent rollout started, advanced, was promoted, stopped or rolled back.",
        {
            "rollout_id": _STRING,
            "agent": _STRING,
            "change": _STRING,
            "mode": {"enum": ["canary", "shadow"]},
            "status": _STRING,
            "primary_version": _INT,
            "candidate_version": _INT,
            "percent": _NUMBER,
            "reason": _OPT_STRING,
            "by": _STRING,
        },
        ("rollout_id", "agent", "change", "mode", "status", "candidate_version"),
    ),
)

_BY_NAME = {t.name: t for t in EVENT_TYPES}


def event_type(name: str) -> EventType | None:
    """The catalogue entry for an outbox type (``run.completed``), None for an unknown one."""
    return _BY_NAME.get(name)


def matches(patterns: tuple[str, ...] | list[str], name: str) -> bool:
    """Whether ``name`` is selected by any pattern (``*``, ``run.*`` or an exact type)."""
    return any(p == "*" or fnmatch.fnmatchcase(name, p) for p in patterns)


def check_type_pattern(pattern: str) -> str:
    """A type pattern the catalogue can match, or an error naming the known types."""
    if pattern == "*" or any(fnmatch.fnmatchcase(t.name, pattern) for t in EVENT_TYPES):
        return pattern
    raise InputError(
        f"no event type matches {pattern!r}",
        hint="known types: " + ", ".join(t.name for t in EVENT_TYPES),
    )
