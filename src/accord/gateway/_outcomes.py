"""What a caller asks of the gateway, and the four ways a gateway pass can end."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from accord.connectors import CallContext
from accord.core import digest

RefusalReason = Literal[
    "subject_missing",
    "purpose_missing",
    "consent_missing",
    "consent_expired",
    "consent_withdrawn",
    "policy_denied",
    "policy_error",
    "approval_rejected",
    "tool_not_allowed",
]
"""Why the gateway refused a call. Journeys route on these in ``on_refusal``."""

REFUSAL_REASONS: tuple[str, ...] = get_args(RefusalReason)


@dataclass(frozen=True, slots=True)
class Approval:
    """A person's approval of a call that a policy obligation held for ``roles``.

    ``digest`` is the :func:`call_digest` of the call as the person saw it: the approval
    counts only for that exact call, so a call whose input or policy context changed after
    the approval needs a new one.
    """

    roles: tuple[str, ...]
    by: str
    reason: str | None = None
    at: float | None = None
    digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"roles": list(self.roles), "by": self.by, "reason": self.reason, "at": self.at}
        if self.digest is not None:
            data["digest"] = self.digest
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Approval:
        return cls(
            roles=tuple(data.get("roles") or ()),
            by=str(data.get("by") or ""),
            reason=data.get("reason"),
            at=data.get("at"),
            digest=data.get("digest"),
        )


def call_digest(capability: str, payload: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """What an approval is bound to: the capability, its input and its policy context."""
    return digest({"capability": capability, "input": dict(payload), "context": dict(context)})


@dataclass(frozen=True, slots=True)
class Invocation:
    """One request to invoke a capability, with everything governance judges it by.

    ``context`` and ``resource`` are the block's policy context and the attributes of the subject
    as the policy sees them; ``agent`` names the agent whose tool call this is, if any, with
    ``agent_model`` its version (``name@version``) and ``agent_tools`` the tools its spec
    allows: a call to any other capability is refused with ``tool_not_allowed``.
    ``reads`` narrows the categories the caller wants back (a block's ``reads``); empty means
    whatever the capability returns. ``approvals`` are the approvals a person already gave for
    this call. ``before_call`` runs once governance has let the call through, just before the
    connector is called: the runtime records the intent of a call a repeat could duplicate.
    """

    capability: str
    payload: Mapping[str, Any]
    call: CallContext
    journey: str | None = None
    channel: str | None = None
    agent: str | None = None
    agent_model: str | None = None
    agent_tools: tuple[str, ...] | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    resource: Mapping[str, Any] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    approvals: tuple[Approval, ...] = ()
    before_call: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Executed:
    """The capability ran; ``output`` is its result projected to what the purpose allows."""

    output: dict[str, Any]
    decision_id: str | None
    withheld: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Refused:
    """The gateway refused the call before any connector was called."""

    reason: RefusalReason
    message: str
    decision_id: str | None


@dataclass(frozen=True, slots=True)
class Held:
    """A kill switch is off: the call was not made, and the caller should wait and ask again."""

    flag: str
    decision_id: str | None


@dataclass(frozen=True, slots=True)
class ApprovalRequired:
    """A policy obligation asks a person in ``roles`` to approve the call first."""

    roles: tuple[str, ...]
    policies: tuple[str, ...]
    decision_id: str | None


@dataclass(frozen=True, slots=True)
class Checked:
    """The gateway would let the call through: what :meth:`GatewaySession.check` answers
    when the kill switch, the lawful basis and the policy all allow it. ``obligations`` are the
    Allow's duties as ``(kind, value, policy)``; ``approvals`` the roles that would still have
    to approve it."""

    bundle_version: int | None
    determining: tuple[str, ...]
    obligations: tuple[tuple[str, str, str], ...]
    approvals: tuple[str, ...]


Outcome = Executed | Refused | Held | ApprovalRequired
