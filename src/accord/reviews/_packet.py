"""The handoff packet: everything a person needs to take a case over where automation stopped.

A packet is a typed, versioned document (schema ``accord.handoff/1``, published in
``docs/reviews.md``). ``version`` counts the packet's revisions: it starts at 1 and grows when
information a reviewer asked for arrives. Decisions and the ledger name the version they were
made on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PACKET_SCHEMA = "accord.handoff/1"

ReviewKind = Literal["approval", "policy_approval", "escalation", "agent"]
"""What opened the item: an ``approve`` block, a policy's approval obligation on a task, an
``escalate`` block, or an agent output below its confirm band."""

Band = Literal["execute", "confirm", "escalate"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRef(_Model):
    run_id: str
    journey: str
    version: int
    block: str
    visit: int


class SubjectSummary(_Model):
    """The subject's data the reviewer's purpose allows, and what was withheld from them."""

    subject_id: str | None
    purpose: str | None
    fields: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="by step: the fields the reviewer may see"
    )
    categories: list[str] = Field(
        default_factory=list, description="the personal-data categories shown"
    )
    withheld: list[str] = Field(
        default_factory=list, description="step.field names left out, with no values"
    )


class Verified(_Model):
    """A call that succeeded: what it established and which system said so."""

    block: str
    capability: str
    system: str
    decision_id: str
    at: float


class Attempt(_Model):
    """Something tried that did not succeed: a refusal, a failure, a hold."""

    block: str | None
    what: str
    outcome: str
    reason: str | None = None
    message: str | None = None
    decision_id: str | None = None


class Source(_Model):
    """The rule, agent, prompt or journey version that made the recommendation."""

    kind: Literal["journey", "rule", "agent", "prompt", "policy"]
    id: str
    version: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}@{self.version}"


class Recommendation(_Model):
    decision: str = Field(description="what the recommender would do, e.g. approve")
    value: Any = None
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    band: Band | None = None
    rationale: str | None = None
    source: Source


class PolicyContext(_Model):
    """Why policy put a person in the loop, when it did."""

    decision_id: str | None = None
    bundle_version: int | None = None
    determining: list[str] = Field(default_factory=list)
    obligations: list[dict[str, str]] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)


class ProposedCall(_Model):
    """The gated call a policy approval is about: exactly what will run when approved."""

    capability: str
    input: dict[str, Any]
    context: dict[str, Any]
    digest: str


class Evidence(_Model):
    """A pointer into the ledger: a gateway decision, or the run's history."""

    kind: Literal["gateway.decision", "run.transition"]
    ref: str


class InfoExchange(_Model):
    """A reviewer's request for more information and, once it came, the answer."""

    asked_by: str
    question: str
    asked_at: float
    answered_by: str | None = None
    answer: Any = None
    answered_at: float | None = None


class HandoffPacket(_Model):
    """The handoff packet of one review item (see the module docstring)."""

    schema_: Literal["accord.handoff/1"] = Field("accord.handoff/1", alias="schema")
    version: int = Field(1, ge=1)
    item_id: str
    kind: ReviewKind
    title: str
    reason: str
    run: RunRef
    subject: SubjectSummary
    verified: list[Verified] = Field(default_factory=list)
    attempted: list[Attempt] = Field(default_factory=list)
    remaining: list[str] = Field(default_factory=list, description="blocks still ahead")
    recommendation: Recommendation
    policy: PolicyContext = Field(default_factory=PolicyContext)
    proposed: ProposedCall | None = None
    decisions: list[str] = Field(description="the decisions this item takes")
    routes: list[str] = Field(
        default_factory=list, description="decisions and outcomes the journey routes"
    )
    edit_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema an edited value must satisfy; none: no edits"
    )
    evidence: list[Evidence] = Field(default_factory=list)
    info: list[InfoExchange] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def packet_json_schema() -> dict[str, Any]:
    """The JSON Schema of the handoff packet, as published in ``docs/``."""
    schema = HandoffPacket.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://accord.dev/schemas/handoff-v1.json"
    schema["title"] = "Accord handoff packet (accord.handoff/1)"
    return schema
