"""What the decision point answers: allow or deny, why, and what an Allow obliges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ObligationKind = Literal["approval", "notify", "redact", "sensitive"]
OBLIGATION_KINDS: tuple[ObligationKind, ...] = ("approval", "notify", "redact", "sensitive")

DecisionReason = Literal["permit", "no_permit", "forbid", "error", "no_bundle"]


@dataclass(frozen=True, slots=True)
class Obligation:
    """A duty that comes with an Allow, taken from an annotation of a determining policy.

    Attributes:
        kind: ``approval`` (a person in role ``value`` must approve first), ``notify`` (tell
            ``value`` afterwards) or ``redact`` (strip data category ``value``, a DPV term such
            as ``pd:EmailAddress``, from what is returned).
        value: one value of the annotation; ``@redact("a,b")`` gives two obligations.
        policy: the id of the policy that carries the annotation.
    """

    kind: ObligationKind
    value: str
    policy: str


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The answer to one request. Anything but a clean Allow is a deny.

    Attributes:
        allowed: True only when a permit matched, no forbid matched and nothing failed.
        bundle_version: the bundle that decided, None when there was none.
        determining: ids of the policies that decided (each policy's ``@id``, else Cedar's
            positional ``policyN``): the matching permits of an Allow, the matching forbids of
            a forbid deny, nothing otherwise.
        obligations: duties of an Allow, from the annotations of its determining policies.
        errors: what went wrong when ``reason`` is ``error`` or ``no_bundle``.
        reason: ``permit``; or why the request was denied: ``no_permit`` (nothing matched),
            ``forbid``, ``error`` (a policy, the request or Cedar failed; fail closed) or
            ``no_bundle`` (the tenant has no policy bundle).
    """

    allowed: bool
    bundle_version: int | None
    determining: tuple[str, ...]
    obligations: tuple[Obligation, ...]
    errors: tuple[str, ...]
    reason: DecisionReason

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """The determining policy ids, as a decision record stores them."""
        return self.determining

    def obligations_of(self, kind: ObligationKind) -> tuple[str, ...]:
        """The values of every obligation of ``kind``, in order, e.g. the approver roles."""
        return tuple(o.value for o in self.obligations if o.kind == kind)
