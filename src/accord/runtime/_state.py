"""A run's durable execution state: tokens (positions), step outputs, scopes and visits.

A run holds one token per active path: one for a plain sequence, one per branch of a parallel
block, one per map item in flight. The state is serialised to JSON once per transition.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

_COMPACT = json.JSONEncoder(separators=(",", ":"))


def derived_id(prefix: str, key: str) -> str:
    """An id derived from what it names (run, block, visit...), so a replayed transition
    derives the same one: ``prefix`` and 26 hex digits of the key's SHA-256."""
    return f"{prefix}_" + hashlib.sha256(key.encode()).hexdigest()[:26]


TokenStatus = Literal["ready", "waiting", "joining"]
WaitKind = Literal["timer", "retry", "event", "human", "child", "hold", "confirm", "dead_letter"]


@dataclass(slots=True)
class Wait:
    """What a waiting token waits for; ``timer_id``/``at`` is its timer (deadline or wake-up)."""

    kind: WaitKind
    name: str | None = None
    correlation: str | None = None
    timer_id: str | None = None
    at: float | None = None
    run_id: str | None = None
    roles: list[str] | None = None
    item: str | None = None
    digest: str | None = None
    since: float | None = None  # when a person was first asked (human and confirm waits)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Wait:
        return cls(**data)


@dataclass(slots=True)
class Join:
    """A parallel or map block waiting for its children."""

    mode: Literal["all", "any", "map"]
    pending: list[str] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)
    items: list[Any] = field(default_factory=list)
    next_index: int = 0
    results: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode, "pending": self.pending}
        if self.mode == "map":
            data.update(items=self.items, next_index=self.next_index, results=self.results)
        else:
            data["branches"] = self.branches
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Join:
        return cls(**data)


@dataclass(slots=True)
class Token:
    """One position in the run: the block it is at and what it waits for."""

    id: str
    flow: str
    block: str
    status: TokenStatus = "ready"
    visit: int = 0
    attempt: int = 1
    parent: str | None = None
    scope: str | None = None
    branch: str | None = None
    wait: Wait | None = None
    join: Join | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    holds: int = 0
    makers: list[str] = field(default_factory=list)
    edited: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "flow": self.flow,
            "block": self.block,
            "status": self.status,
            "visit": self.visit,
            "attempt": self.attempt,
        }
        if self.parent is not None:
            data["parent"] = self.parent
        if self.scope is not None:
            data["scope"] = self.scope
        if self.branch is not None:
            data["branch"] = self.branch
        if self.wait is not None:
            data["wait"] = self.wait.to_json()
        if self.join is not None:
            data["join"] = self.join.to_json()
        if self.approvals:
            data["approvals"] = self.approvals
        if self.holds:
            data["holds"] = self.holds
        if self.makers:
            data["makers"] = self.makers
        if self.edited is not None:
            data["edited"] = self.edited
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Token:
        wait = data.get("wait")
        join = data.get("join")
        return cls(
            id=data["id"],
            flow=data["flow"],
            block=data["block"],
            status=data["status"],
            visit=data["visit"],
            attempt=data["attempt"],
            parent=data.get("parent"),
            scope=data.get("scope"),
            branch=data.get("branch"),
            wait=Wait.from_json(wait) if wait else None,
            join=Join.from_json(join) if join else None,
            approvals=data.get("approvals", []),
            holds=data.get("holds", 0),
            makers=data.get("makers", []),
            edited=data.get("edited"),
        )


@dataclass(slots=True)
class Scope:
    """The variables of one map iteration: its item, index and the outputs of its blocks."""

    item: Any
    index: int
    parent: str | None
    steps: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"item": self.item, "index": self.index, "parent": self.parent, "steps": self.steps}


@dataclass(slots=True)
class Compensating:
    """A failed run undoing its side effects: ``remaining`` entries of ``compensations`` are
    still to undo (the last first); ``failure`` is the compensation that failed, once a person
    was asked to take over."""

    error: dict[str, Any] | None
    remaining: int
    failure: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "remaining": self.remaining, "failure": self.failure}


@dataclass(slots=True)
class RunState:
    """Everything the runtime needs to continue a run, besides its input and journey."""

    tokens: dict[str, Token] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Any] = field(default_factory=dict)
    scopes: dict[str, Scope] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)
    compensations: list[dict[str, Any]] = field(default_factory=list)
    compensating: Compensating | None = None
    counter: int = 0
    inbox_seen: int = 0
    output: Any = None

    def new_token_id(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def new_serial(self) -> int:
        self.counter += 1
        return self.counter

    def dumps(self) -> str:
        return _COMPACT.encode(
            {
                "tokens": [t.to_json() for t in self.tokens.values()],
                "steps": self.steps,
                "errors": self.errors,
                "scopes": {k: s.to_json() for k, s in self.scopes.items()},
                "visits": self.visits,
                "compensations": self.compensations,
                "compensating": self.compensating.to_json() if self.compensating else None,
                "counter": self.counter,
                "inbox_seen": self.inbox_seen,
                "output": self.output,
            }
        )

    @classmethod
    def loads(cls, text: str) -> RunState:
        data = json.loads(text)
        return cls(
            tokens={t["id"]: Token.from_json(t) for t in data["tokens"]},
            steps=data["steps"],
            errors=data["errors"],
            scopes={k: Scope(**s) for k, s in data["scopes"].items()},
            visits=data["visits"],
            compensations=data["compensations"],
            compensating=Compensating(**data["compensating"]) if data.get("compensating") else None,
            counter=data["counter"],
            inbox_seen=data["inbox_seen"],
            output=data["output"],
        )
