"""Residency: may this deployment run a journey for a subject whose data lives in a region?

A deployment that names its region (setting ``region``) asks the policy bundle before it starts
a run for a subject whose home region the identity store knows. The request is the action
``journey.start`` by the journey's service principal on the subject, with the subject's region as
``resource.region`` and the deployment's as ``context.processing_region``; a forbid (or no
permit) refuses the start. Either way the decision is recorded like a gateway decision, with
the determining policies. Once started, every call of the run carries the same two regions to
the policy, so a bundle can keep the data where it belongs call by call as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.core import TenantId
from accord.gateway._gateway import Governance, _policy_message
from accord.policy import Entity, PolicyBundleNotFound, PolicyInvalid, PolicyRequest
from accord.storage import NewDecision
from accord.storage import governance as stored_governance

START_ACTION = "journey.start"


@dataclass(frozen=True, slots=True)
class ResidencyDecision:
    """Whether the start may go ahead, why, and the decision record to keep."""

    allowed: bool
    message: str
    record: NewDecision | None


def decide_residency(
    governance: Governance,
    tenant: TenantId,
    *,
    subject_id: str,
    journey: str,
    purpose: str | None,
    now: float,
) -> ResidencyDecision:
    """The policy's answer for starting ``journey`` for ``subject_id`` here.

    Nothing is asked (and nothing recorded) when the deployment names no region or the
    subject has no known home region.
    """
    here = governance.region
    if here is None:
        return ResidencyDecision(True, "the deployment names no region", None)
    with governance.db.statement() as connection:
        state = stored_governance.read(connection, tenant, [subject_id])
    home = state.regions.get(subject_id)
    if home is None:
        return ResidencyDecision(True, "the subject has no known home region", None)
    bundle = None
    errors: list[str] = []
    if state.policy_version:
        try:
            bundle = governance.policies.get_compiled(tenant, state.policy_version)
        except (PolicyInvalid, PolicyBundleNotFound) as exc:
            errors.append(f"policy bundle v{state.policy_version} is unusable: {exc.message}")
    request = PolicyRequest(
        Entity(
            "Service",
            f"journey/{journey}",
            {"role": "journey", "tier": "automated", "journey": journey},
        ),
        START_ACTION,
        Entity("Subject", subject_id, {"region": home}),
        {"processing_region": here, "journey": journey, "purpose": purpose, "time": int(now)},
    )
    decision = governance.pdp.decide(bundle, request) if not errors else None
    allowed = decision is not None and decision.allowed
    if decision is None:
        message = errors[0]
    elif allowed:
        message = f"the policy lets {here} process data of a subject at home in {home}"
    else:
        message = (
            f"the subject's data lives in {home} and this deployment runs in {here}: "
            + _policy_message(decision)
        )
    record = {
        "capability": START_ACTION,
        "subject": subject_id,
        "principal": {"type": "Service", "id": f"journey/{journey}"},
        "resource": {"type": "Subject", "id": subject_id},
        "context": {"processing_region": here, "subject_region": home, "journey": journey},
        "policy": {
            "bundle_version": None if decision is None else decision.bundle_version,
            "allowed": allowed,
            "reason": None if decision is None else decision.reason,
            "determining": [] if decision is None else list(decision.determining),
            "errors": errors if decision is None else list(decision.errors),
        },
        "message": message,
        "outcome": "executed" if allowed else "refused",
        "reason": None if allowed else "residency",
    }
    return ResidencyDecision(
        allowed,
        message,
        NewDecision(
            decision_id=governance.new_id("dec"),
            capability=START_ACTION,
            outcome="allowed" if allowed else "refused",
            reason=None if allowed else "residency",
            at=now,
            record=record,
            subject_id=subject_id,
            purpose=purpose,
        ),
    )
