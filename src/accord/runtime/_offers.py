"""The ``offer`` block: choose the next best action for the run's subject.

Every feature is read through the gateway under its purpose, as the journey, so a feature
whose read is refused (no consent, a withdrawn one, a kill switch) is absent from the choice;
each offer still in the running is put to the gateway's check (kill switch, lawful basis,
policy) on the channel it would use, without being carried out; the contact history comes
from Accord's own decision records. The choice itself is pure and seeded by the run, block
and visit, so a retried visit chooses the same way.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accord.connectors import CallContext
from accord.errors import CapabilityFailed, ExecutionError, ExpressionError, InputError
from accord.gateway import ApprovalRequired, Checked, Executed, Held, Invocation, Refused
from accord.journeys import OfferBlock
from accord.offers import Compiled, Contact, Offer, PolicyVerdict, Stats, choose, plain_data
from accord.runtime._state import Token

if TYPE_CHECKING:
    from accord.runtime._advance import Advance


@dataclass(frozen=True)
class OfferServices:
    """What offer blocks read besides the gateway: catalogues, contact history, outcomes."""

    catalogue: Callable[[str, str], Compiled]
    contacts: Callable[[str, str, Mapping[str, tuple[str, ...]], float], list[Contact]]
    stats: Callable[[str, str], dict[str, Stats]]


def run_offer(adv: Advance, token: Token, block: OfferBlock, node: Any) -> None:
    services = adv.deps.offers
    if services is None:
        raise _config_error(f"offer block {block.id!r}: this Accord serves no offer catalogues")
    subject = adv.run.subject_id
    if subject is None:
        raise _config_error(
            f"offer block {block.id!r} needs the run's subject: offers are chosen for someone",
        )
    tenant = adv.run.tenant_id
    try:
        catalogue = services.catalogue(tenant, block.catalogue)
    except InputError as exc:
        raise _config_error(exc.message) from exc
    spec = catalogue.spec
    args = node.mapping.evaluate(adv.variables(token)) if node.mapping is not None else {}
    features, withheld, reads, answers = _read_features(adv, token, block, catalogue, args, subject)
    window = spec.contact.window()
    contacts = (
        services.contacts(tenant, subject, spec.contact.channels, adv.now - window)
        if window > 0
        else []
    )
    check = _PolicyCheck(adv, token, block)
    blocked: dict[str, str] = {}
    for channel, capabilities in spec.contact.channels.items():
        if block.channels is not None and channel not in block.channels:
            continue
        if not capabilities:
            switched = adv._gateway_session().switched_off(
                journey=adv.run.journey_name, channel=channel
            )
            if switched is not None:
                blocked[channel] = f"kill switch {switched} is off"
            continue
        try:
            context = (
                plain_data(
                    catalogue.contact_context[channel].evaluate(
                        {"features": features, "now": adv.now}
                    )
                )
                if channel in catalogue.contact_context
                else {}
            )
        except ExpressionError as exc:
            blocked[channel] = f"policy context unavailable: {exc.message}"
            continue
        why = check.channel(channel, capabilities[0], spec.contact.purpose, context)
        if why is not None:
            blocked[channel] = why
    key = f"{adv.run.run_id}/{adv._path(token)}/{token.visit}"
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    choice = choose(
        catalogue,
        features,
        withheld,
        contacts=contacts,
        now=adv.now,
        policy=check,
        stats=services.stats(tenant, spec.catalogue) if spec.ranking.method == "bandit" else {},
        channels=block.channels,
        blocked=blocked,
        explore=block.explore,
        rng=random.Random(seed),
    )
    output = choice.to_json()
    output["choice"] = key if choice.offer is not None else None
    output["explanation"]["sources"] = reads
    output["explanation"]["contacts_counted"] = len(contacts)
    adv._set_output(token, output)
    adv._event(
        "offer.chosen",
        token,
        catalogue=spec.catalogue,
        version=spec.version,
        offer=choice.offer,
        output=output,
        sources={
            name: {"capability": spec.sources[name].capability, "output": answer}
            for name, answer in answers.items()
        },
    )
    if choice.offer is None and "none" in block.on:
        adv._goto(token, block.on["none"])
    else:
        adv._goto(token, block.next)


def _config_error(message: str) -> CapabilityFailed:
    return CapabilityFailed(message, error_type="InputError", retryable=False)


def _read_features(
    adv: Advance, token: Token, block: OfferBlock, catalogue: Compiled, args: Any, subject: str
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], dict[str, Any]]:
    """The features that could be read lawfully, why the others could not, what each source
    read came to, and the answers read (as the gateway let them through)."""
    spec = catalogue.spec
    path = adv._path(token)
    answers: dict[str, Any] = {}
    failed: dict[str, str] = {}
    reads: dict[str, Any] = {}
    deadline = time.time() + block.timeout if block.timeout else None
    for name, source in spec.sources.items():
        capability = adv.deps.gateway.capabilities.find(source.capability)
        if capability is None or capability.side_effect != "read":
            raise _config_error(
                f"offer catalogue {spec.catalogue!r} v{spec.version}: source {name!r} "
                + (
                    f"names {source.capability!r}, which is not registered"
                    if capability is None
                    else f"names {source.capability!r}, a {capability.side_effect}: sources read"
                )
            )
        try:
            payload = catalogue.source_inputs[name].evaluate(
                {"args": args, "subject": subject, "sources": answers}
            )
        except ExpressionError as exc:
            failed[name] = f"input: {exc.message}"
            reads[name] = {"read": False, "why": failed[name]}
            continue
        call = CallContext(
            tenant_id=adv.run.tenant_id,
            run_id=adv.run.run_id,
            block=path,
            visit=token.visit,
            attempt=token.attempt,
            idempotency_key=f"{adv.run.run_id}/{path}/{token.visit}/source/{name}",
            subject_id=subject,
            purpose=source.purpose or spec.purpose,
            deadline=deadline,
        )
        invocation = Invocation(
            capability=source.capability,
            payload=payload,
            call=call,
            journey=adv.run.journey_name,
            reads=source.reads,
        )
        try:
            outcome = adv._gateway_session().invoke(invocation, now=adv.now)
        except ExecutionError as exc:
            if exc.retryable:
                raise
            # the error's type only: a system's message may quote personal data
            failed[name] = f"failed: {exc.error_type}"
            reads[name] = {"read": False, "why": failed[name]}
            continue
        if isinstance(outcome, Executed):
            answers[name] = outcome.output
            reads[name] = {"read": True, "decision": outcome.decision_id}
            continue
        if isinstance(outcome, Refused):
            failed[name] = outcome.reason
        elif isinstance(outcome, Held):
            failed[name] = "kill_switch"
        else:
            assert isinstance(outcome, ApprovalRequired)
            failed[name] = "approval_required"
        reads[name] = {"read": False, "why": failed[name], "decision": outcome.decision_id}
    features: dict[str, Any] = {}
    withheld: dict[str, str] = {}
    for name, feature in spec.features.items():
        if feature.source in failed:
            withheld[name] = failed[feature.source]
            continue
        try:
            value = catalogue.features[name].evaluate({"source": answers[feature.source]})
        except ExpressionError:
            withheld[name] = "not in the answer"
            continue
        features[name] = value
    return features, withheld, reads, answers


class _PolicyCheck:
    """Asks the gateway whether each offer's action could be carried out on a channel."""

    def __init__(self, adv: Advance, token: Token, block: OfferBlock) -> None:
        self._adv = adv
        self._token = token
        self._block = block

    def channel(
        self, channel: str, capability: str, purpose: str | None, context: Mapping[str, Any]
    ) -> str | None:
        """Why the subject may not be contacted on ``channel`` (its first contact capability
        would be refused), or None when they may."""
        if self._adv.deps.gateway.capabilities.find(capability) is None:
            return f"no capability {capability!r} is registered"
        result = self._check(capability, f"channel/{channel}", purpose, channel, context)
        if isinstance(result, Refused):
            return f"{result.reason}: {result.message}"
        if isinstance(result, Held):
            return f"kill switch {result.flag} is off"
        return None

    def __call__(self, offer: Offer, channel: str, context: Mapping[str, Any]) -> PolicyVerdict:
        if offer.action is None:
            return PolicyVerdict(True)
        if self._adv.deps.gateway.capabilities.find(offer.action) is None:
            return PolicyVerdict(
                False, "unknown_capability", f"no capability {offer.action!r} is registered"
            )
        result = self._check(offer.action, offer.name, offer.purpose, channel, context)
        if isinstance(result, Refused):
            return PolicyVerdict(False, result.reason, result.message)
        if isinstance(result, Held):
            return PolicyVerdict(False, "kill_switch", f"kill switch {result.flag} is off")
        sensitive = tuple(value for kind, value, _ in result.obligations if kind == "sensitive")
        message = f"needs approval by {', '.join(result.approvals)}" if result.approvals else ""
        return PolicyVerdict(
            True,
            None,
            message,
            sensitive=bool(sensitive),
            policies=result.determining,
            bundle_version=result.bundle_version,
        )

    def _check(
        self,
        capability: str,
        what: str,
        purpose: str | None,
        channel: str,
        context: Mapping[str, Any],
    ) -> Checked | Refused | Held:
        adv, token = self._adv, self._token
        path = adv._path(token)
        call = CallContext(
            tenant_id=adv.run.tenant_id,
            run_id=adv.run.run_id,
            block=path,
            visit=token.visit,
            attempt=token.attempt,
            idempotency_key=f"{adv.run.run_id}/{path}/{token.visit}/check/{what}",
            subject_id=adv.run.subject_id,
            purpose=purpose or self._block.purpose or adv.journey.spec.purpose,
        )
        invocation = Invocation(
            capability=capability,
            payload={},
            call=call,
            journey=adv.run.journey_name,
            channel=channel,
            context=dict(context),
        )
        return adv._gateway_session().check(invocation, now=adv.now)
