"""The journey file format (language v1), as Pydantic models.

YAML files and the Python builder both produce a :class:`JourneySpec`; linting, deployment and the
runtime consume it. String values in ``input``/``output`` mappings are CEL expressions; numbers,
booleans and ``null`` are literals; nested maps and lists are mapped field by field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from accord.core import parse_duration

BLOCK_KINDS = (
    "task",
    "decide",
    "choice",
    "wait",
    "approve",
    "parallel",
    "map",
    "call",
    "end",
    "escalate",
    "confirm",
    "agent",
    "offer",
)

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"

# Files may write "30s" or "1h30m"; the validators below turn that text into seconds first.
DURATION_PATTERN = r"^(\s*\d+(\.\d+)?\s*(ms|s|m|h|d))+\s*$"
Duration = Annotated[
    float,
    Field(ge=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "seconds, or text such as '250ms', '30s', '5m', '2h', '7d', '1h30m'",
        }
    ),
]
InputType = Literal["string", "integer", "number", "boolean", "object", "array", "any"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_duration(value)
    return value


class RetryPolicy(_Model):
    """How a failed block is retried: exponential backoff with jitter, for retryable errors only."""

    max_attempts: int = Field(3, ge=1, le=1000)
    initial_interval: Duration = 1.0
    backoff: float = Field(2.0, ge=1.0, le=100.0)
    max_interval: Duration = 300.0
    jitter: float = Field(0.2, ge=0.0, le=1.0)
    non_retryable: tuple[str, ...] = ()

    _parse = field_validator("initial_interval", "max_interval", mode="before")(_duration)

    def delay(self, attempt: int, random_fraction: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``random_fraction`` in [0, 1) spreads the delay by ±``jitter`` of itself.
        """
        try:
            grown = self.initial_interval * self.backoff ** (attempt - 1)
        except OverflowError:
            grown = math.inf if self.initial_interval > 0 else 0.0
        base = min(grown, self.max_interval)
        spread = base * self.jitter * (2.0 * random_fraction - 1.0)
        return max(0.0, base + spread)


class Compensation(_Model):
    """The capability that undoes a block's side effect, and its input mapping."""

    capability: str = Field(pattern=NAME)
    input: dict[str, Any] = Field(default_factory=dict)


class InputField(_Model):
    """One field of a journey's input contract."""

    type: InputType = "string"
    required: bool = True
    default: Any = None
    description: str = ""


class _Block(_Model):
    id: str = Field(pattern=IDENT, max_length=64)
    description: str = ""
    purpose: str | None = None
    reads: tuple[str, ...] = ()
    next: str | None = None
    timeout: Duration | None = None
    retry: RetryPolicy | None = None
    on_error: str | None = None
    compensate: Compensation | None = None

    _parse = field_validator("timeout", mode="before")(_duration)


GATEWAY_FACTS = frozenset(
    {"purpose", "journey", "time", "side_effect", "region", "processing_region"}
)
"""Policy context attributes the gateway sets from what it knows; a journey may not set them."""


class TaskBlock(_Block):
    """Invoke a capability through the gateway.

    ``context`` maps what the policy sees in the request context (``amount``, ``channel``,
    ``risk_tier``…) and ``resource`` the attributes of the subject (``region``, ``tier``…); both
    are mapped like ``input``. ``on_refusal`` routes a refusal by its reason (or ``"*"``) to the
    block that handles it: ask for consent, take another path, escalate.
    """

    kind: Literal["task"]
    capability: str = Field(pattern=NAME)
    input: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    resource: dict[str, Any] = Field(default_factory=dict)
    on_refusal: dict[str, str] = Field(default_factory=dict)
    maker: str | None = Field(
        None,
        description=(
            "CEL: the person who initiated this action; maker-checker keeps them from "
            "approving it when a policy asks for approval"
        ),
    )

    @field_validator("context")
    @classmethod
    def _no_gateway_facts(cls, context: dict[str, Any]) -> dict[str, Any]:
        taken = sorted(GATEWAY_FACTS & context.keys())
        if taken:
            raise ValueError(
                f"context key {', '.join(repr(k) for k in taken)} is set by the gateway "
                "itself (from the capability, the run and the deployment), not by a journey; "
                "remove it, or pass the fact under another name"
            )
        return context


class Rule(_Model):
    when: dict[str, Any] = Field(default_factory=dict)
    then: dict[str, Any]
    priority: int = 0
    description: str = ""


class DecideBlock(_Block):
    """A decision table: input columns (CEL), rules of unary tests, and a hit policy."""

    kind: Literal["decide"]
    inputs: dict[str, str]
    rules: tuple[Rule, ...] = Field(min_length=1)
    hit_policy: Literal["unique", "first", "priority", "any", "collect", "rule_order"] = "unique"
    default: dict[str, Any] | None = None


class Choice(_Model):
    when: str
    next: str


class ChoiceBlock(_Block):
    """Branch on the first CEL condition that holds, else ``default``."""

    kind: Literal["choice"]
    choices: tuple[Choice, ...] = Field(min_length=1)
    default: str


class EventWait(_Model):
    name: str = Field(pattern=NAME, max_length=128)
    correlation: str | None = None


class WaitBlock(_Block):
    """Wait durably for a timer (``timer``/``until``) or an external event."""

    kind: Literal["wait"]
    timer: Duration | None = None
    until: str | None = None
    event: EventWait | None = None
    on_timeout: str | None = None

    _parse_timer = field_validator("timer", mode="before")(_duration)


HUMAN_DECISIONS = ("approve", "edit", "reject", "override", "request_info")
"""What a person may decide on a review item (see ``docs/reviews.md``)."""


class _HumanBlock(_Block):
    """What approve and escalate blocks share: the queue, the recommendation, the ways on.

    ``recommend`` maps the recommendation the reviewer sees (CEL leaves): ``decision``,
    ``value``, ``confidence``, ``band``, ``rationale`` and ``source`` (``kind``, ``id``,
    ``version`` of the rule, agent or prompt that made it). ``on`` routes each decision
    (``approve``, ``edit``, ``reject``, ``override``, ``request_info``) or an override's
    ``outcome`` to a block.
    """

    queue: str | None = Field(None, pattern=NAME, max_length=128)
    priority: int = Field(0, ge=0, le=100)
    recommend: dict[str, Any] = Field(default_factory=dict)
    on: dict[str, str] = Field(default_factory=dict)
    on_timeout: str | None = None


class ApproveBlock(_HumanBlock):
    """A durable human wait: a review item in ``queue`` (default: ``role``) until decided.

    ``edit_schema`` is the contract of an edited value (fields as in a journey's ``input``);
    a block without one takes no edits. ``maker`` (CEL) names the person who initiated the
    action, whom maker-checker keeps from approving it.
    """

    kind: Literal["approve"]
    role: str = Field("reviewer", pattern=NAME, max_length=128)
    title: str = ""
    maker: str | None = None
    edit_schema: dict[str, InputField] = Field(default_factory=dict)

    @field_validator("edit_schema", mode="before")
    @classmethod
    def _short_fields(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


class EscalateBlock(_HumanBlock):
    """Hand the case to a human queue; the decision's outcome picks the way on (or ends the run)."""

    kind: Literal["escalate"]
    queue: str | None = Field("supervisors", pattern=NAME, max_length=128)
    reason: str = '"escalated"'


class ConfirmBlock(_Block):
    """Propose an action to the subject and wait for them to confirm or refuse it.

    The subject answers with a signed, expiring, single-use confirmation token, sent on the
    journey's ``channels`` (the ``confirmation.requested`` event carries it). ``implicit`` (CEL,
    boolean) confirms a low-risk proposal without asking. ``on`` routes ``confirmed``,
    ``refused`` and ``expired``; without a route a confirmation continues with ``next``, a
    refusal fails the block (``ConfirmationRefused``) and an expiry times it out.
    """

    kind: Literal["confirm"]
    proposal: dict[str, Any] = Field(min_length=1)
    channels: tuple[str, ...] = Field(("portal",), min_length=1)
    expires: Duration = 86400.0
    implicit: str | None = None
    on: dict[str, str] = Field(default_factory=dict)

    _parse_expires = field_validator("expires", mode="before")(_duration)

    @field_validator("on")
    @classmethod
    def _known_answers(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - {"confirmed", "refused", "expired"})
        if unknown:
            raise ValueError(
                f"a confirm block routes confirmed, refused and expired, not {', '.join(unknown)}"
            )
        return value


def link_sequence(data: Any) -> Any:
    """Give every block without ``next`` the following block of its list as ``next``.

    ``end`` and ``choice`` blocks route themselves, the last block of a list ends its flow, and an
    explicit ``next: null`` ends the flow early.
    """
    if not isinstance(data, dict) or not isinstance(data.get("blocks"), list):
        return data
    blocks = list(data["blocks"])
    for i, block in enumerate(blocks[:-1]):
        following = blocks[i + 1]
        if (
            isinstance(block, dict)
            and "next" not in block
            and block.get("kind") not in ("end", "choice")
            and isinstance(following, dict)
            and isinstance(following.get("id"), str)
        ):
            blocks[i] = {**block, "next": following["id"]}
    return {**data, "blocks": blocks}


class Flow(_Model):
    """A sequence of blocks with its own entry point: a parallel branch or a map iteration."""

    name: str | None = Field(None, pattern=IDENT)
    start: str | None = None
    blocks: tuple[Block, ...] = Field(min_length=1)

    _link = model_validator(mode="before")(link_sequence)


AGENT_REF = r"^[A-Za-z_][A-Za-z0-9_.\-]*(@[0-9]+)?$"
AGENT_ROUTES = ("confirm", "escalate", "reject")


class Bands(_Model):
    """Confidence thresholds: ``>= auto`` executes, ``>= confirm`` is proposed for
    confirmation first, anything lower escalates to a person with a handoff packet."""

    auto: float = Field(ge=0.0, le=1.0)
    confirm: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.confirm > self.auto:
            raise ValueError(
                f"bands.confirm ({self.confirm}) is above bands.auto ({self.auto}); "
                "confirm must be the lower threshold"
            )
        return self


class AgentBlock(_Block):
    """Ask an agent for a typed output, validated before anything happens, and route it by
    its confidence band.

    ``agent`` names a deployed spec: ``NAME@VERSION`` pins a version; ``NAME`` takes the agent's
    active rollout (a sticky share of subjects goes to the candidate) or else its current
    version (the first deployed, until a rollout promotes another). ``bands`` override the
    spec's thresholds. In the ``auto`` band the run goes on to ``next``; in the ``confirm`` band
    to ``on.confirm`` (for instance a ``confirm`` block that asks the subject), or, without that
    route, to a person who confirms; in the ``escalate`` band (and when the output stays invalid
    after repair, or the budget runs out) to ``on.escalate``, or else to a review item in
    ``queue`` with a handoff packet. A person's approval or edit continues with ``next``; a
    rejection takes ``on.reject`` or fails the block (``AgentRejected``).

    The block's output is ``{output, confidence, band, reason, agent, version, model,
    reviewed, outcome_id}``.
    """

    kind: Literal["agent"]
    agent: str = Field(pattern=AGENT_REF, max_length=160)
    input: dict[str, Any] = Field(default_factory=dict)
    bands: Bands | None = None
    queue: str = Field("agents", pattern=NAME, max_length=128)
    priority: int = Field(0, ge=0, le=100)
    on: dict[str, str] = Field(default_factory=dict)

    @field_validator("on")
    @classmethod
    def _known_routes(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(AGENT_ROUTES))
        if unknown:
            raise ValueError(
                f"unknown route(s) {', '.join(unknown)}; an agent block routes "
                f"{', '.join(AGENT_ROUTES)}"
            )
        return value

    @property
    def agent_name(self) -> str:
        return self.agent.partition("@")[0]

    @property
    def agent_version(self) -> int | None:
        _, _, version = self.agent.partition("@")
        return int(version) if version else None


OFFER_ROUTES = ("none",)


class OfferBlock(_Block):
    """Choose the next best action for the run's subject from an offer catalogue.

    The catalogue (deployed on its own, see ``accord offers deploy``) says which features
    may be used and where each is read; every read passes the gateway under its purpose, and a
    feature whose read is refused (consent withdrawn, say) is simply absent. The choice then
    keeps the offers whose eligibility holds, that the contact policy lets reach the subject
    (frequency caps across channels, quiet hours, preferences, no contact after a complaint)
    and that policy allows, and ranks them by rules or by what recorded outcomes taught.
    ``explore`` lets it try offers it knows less about (Thompson sampling); offers marked
    sensitive are never explored. ``input`` maps the catalogue sources' ``args``.

    The block's output is ``{offer, title, action, channel, reason, send_at, context,
    explored, method, score, choice, explanation}``: ``reason`` is what the customer reads,
    ``explanation`` what a reviewer or auditor reads. With nothing to offer, ``offer`` is
    null and the run takes ``on.none`` (else ``next``).
    """

    kind: Literal["offer"]
    catalogue: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    input: dict[str, Any] = Field(default_factory=dict)
    channels: tuple[str, ...] | None = Field(
        None, min_length=1, description="the channels this journey can reach; all when absent"
    )
    explore: bool = False
    on: dict[str, str] = Field(default_factory=dict)

    @field_validator("on")
    @classmethod
    def _known_routes(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(OFFER_ROUTES))
        if unknown:
            raise ValueError(
                f"unknown route(s) {', '.join(unknown)}; an offer block routes "
                f"{', '.join(OFFER_ROUTES)}"
            )
        return value


class ParallelBlock(_Block):
    """Run branches concurrently; continue when all (or any) have finished."""

    kind: Literal["parallel"]
    branches: tuple[Flow, ...] = Field(min_length=1)
    join: Literal["all", "any"] = "all"


class MapBlock(_Block):
    """Run a flow once per item of a list, at most ``max_concurrency`` at a time."""

    kind: Literal["map"]
    items: str
    do: Flow
    max_concurrency: int = Field(8, ge=1, le=1000)
    result: str | None = None


class CallBlock(_Block):
    """Start a sub-journey and wait for it to end."""

    kind: Literal["call"]
    journey: str = Field(pattern=NAME)
    version: int | None = Field(None, ge=1)
    input: dict[str, Any] = Field(default_factory=dict)


class EndBlock(_Block):
    """End the run with an outcome and an optional output mapping."""

    kind: Literal["end"]
    outcome: str = Field("completed", pattern=IDENT, max_length=64)
    output: dict[str, Any] = Field(default_factory=dict)


Block = Annotated[
    TaskBlock
    | DecideBlock
    | ChoiceBlock
    | WaitBlock
    | ApproveBlock
    | ParallelBlock
    | MapBlock
    | CallBlock
    | EndBlock
    | EscalateBlock
    | ConfirmBlock
    | AgentBlock
    | OfferBlock,
    Field(discriminator="kind"),
]


class TriggerStart(_Model):
    """Start a run of the journey from the event.

    ``subject`` (CEL) names the run's subject, ``input`` maps the journey's input fields to CEL
    over ``event`` and ``data``. ``idempotency`` (CEL) gives the run's idempotency key; without
    it the key is the event's ``source`` and ``id``, so a redelivered event never starts a
    second run.
    """

    subject: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    idempotency: str | None = None


class TriggerSignal(_Model):
    """Deliver the event's ``data`` to the runs waiting for ``name`` with the correlation key
    ``correlation`` (CEL); with no run waiting yet, the event is parked for the first one."""

    name: str = Field(pattern=NAME, max_length=128)
    correlation: str


class Trigger(_Model):
    """An inbound CloudEvent that starts a run or signals waiting ones.

    ``event`` is the CloudEvents ``type`` (exact), ``source`` the exact ``source`` when given,
    ``when`` a CEL filter over ``event`` (``id``, ``source``, ``type``, ``subject``, ``time``,
    ``extensions``) and ``data``. Exactly one of ``start`` or ``signal`` says what happens.
    """

    event: str = Field(min_length=1, max_length=256)
    source: str | None = Field(None, min_length=1, max_length=256)
    when: str | None = None
    start: TriggerStart | None = None
    signal: TriggerSignal | None = None
    description: str = ""


class JourneySpec(_Model):
    """A whole journey definition: its name, input contract, triggers and top-level flow."""

    journey: str = Field(pattern=NAME, max_length=128)
    description: str = ""
    language: Literal[1] = 1
    purpose: str | None = Field(
        None, description="the purpose of blocks that declare none (a DPV term)"
    )
    input: dict[str, InputField] = Field(default_factory=dict)
    start: str | None = None
    blocks: tuple[Block, ...] = Field(min_length=1)
    triggers: tuple[Trigger, ...] = ()

    _link = model_validator(mode="before")(link_sequence)

    @field_validator("input", mode="before")
    @classmethod
    def _short_fields(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @property
    def name(self) -> str:
        return self.journey


Flow.model_rebuild()
ParallelBlock.model_rebuild()
MapBlock.model_rebuild()
JourneySpec.model_rebuild()

AnyBlock = (
    TaskBlock
    | DecideBlock
    | ChoiceBlock
    | WaitBlock
    | ApproveBlock
    | ParallelBlock
    | MapBlock
    | CallBlock
    | EndBlock
    | EscalateBlock
    | ConfirmBlock
    | AgentBlock
    | OfferBlock
)


def journey_json_schema() -> dict[str, Any]:
    """The JSON Schema of the journey file format, as published in ``docs/``."""
    schema = JourneySpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://accord.dev/schemas/journey-v1.json"
    schema["title"] = "Accord journey (language v1)"
    # the short form `order_id: string` gives the type alone
    fields = schema["properties"]["input"]
    fields["additionalProperties"] = {
        "anyOf": [fields["additionalProperties"], {"enum": list(get_args(InputType))}]
    }
    return schema
