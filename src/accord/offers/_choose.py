"""Choosing the next best action for one subject, given what is known of them: the features
read lawfully, their contact history and what policy says of each offer. Pure: every input is
passed in, and the same inputs (with the same seeded generator) give the same choice."""

from __future__ import annotations

import base64
import datetime as dt
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from accord.errors import ExpressionError
from accord.offers._catalogue import Compiled, Offer


@dataclass(frozen=True)
class Contact:
    """One contact made with the subject: an executed call of a contact capability."""

    channel: str
    capability: str
    at: float


@dataclass(frozen=True)
class PolicyVerdict:
    """What policy says of carrying an offer out on a channel, asked before it is chosen."""

    allowed: bool
    reason: str | None = None
    message: str = ""
    sensitive: bool = False
    policies: tuple[str, ...] = ()
    bundle_version: int | None = None


@dataclass(frozen=True)
class Stats:
    """Recorded outcomes of one offer: how many were accepted out of how many."""

    accepted: int = 0
    trials: int = 0


PolicyCheck = Callable[[Offer, str, Mapping[str, Any]], PolicyVerdict]


@dataclass(frozen=True)
class Choice:
    """The block's answer. ``offer`` is None when nothing may be offered; ``explanation`` says
    why either way, for the people who answer for the decision."""

    offer: str | None
    title: str | None
    action: str | None
    channel: str | None
    reason: str | None
    send_at: float | None
    context: dict[str, Any]
    explored: bool
    method: str
    score: float | None
    explanation: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "offer": self.offer,
            "title": self.title,
            "action": self.action,
            "channel": self.channel,
            "reason": self.reason,
            "send_at": self.send_at,
            "context": self.context,
            "explored": self.explored,
            "method": self.method,
            "score": self.score,
            "explanation": self.explanation,
        }


def choose(
    catalogue: Compiled,
    features: Mapping[str, Any],
    withheld: Mapping[str, str],
    *,
    contacts: Sequence[Contact],
    now: float,
    policy: PolicyCheck,
    stats: Mapping[str, Stats],
    channels: Sequence[str] | None = None,
    blocked: Mapping[str, str] | None = None,
    explore: bool = False,
    rng: random.Random | None = None,
) -> Choice:
    """The best offer for the subject now, or none, with the reasons.

    Args:
        features: the features that could be read, by name; an absent one was not.
        withheld: why each absent feature is absent (``consent_withdrawn``, ``failed``…).
        contacts: the subject's contacts within the contact policy's window.
        policy: asked for each offer still in the running, on the channel it would use.
        stats: recorded outcomes by offer, for method ``bandit``.
        channels: the channels the journey can reach; every declared channel when None.
        blocked: channels that may not be used, with why (the gateway would refuse the
            contact capability: no consent to be contacted there, a kill switch…).
        explore: whether the journey allows exploration (Thompson sampling); offers marked
            sensitive, by the catalogue or by policy, are never explored.
        rng: the generator exploration draws from; seed it for a repeatable choice.
    """
    spec = catalogue.spec
    method = spec.ranking.method
    exploring = explore and method == "bandit"
    scope = {"features": dict(features), "now": now}
    contact = _contact_verdicts(
        catalogue, features, withheld, contacts, now, channels, blocked or {}
    )
    explanation: dict[str, Any] = {
        "catalogue": spec.catalogue,
        "version": spec.version,
        "method": method,
        "exploration": exploring,
        "features_used": sorted(features),
        "features_withheld": dict(sorted(withheld.items())),
        "contact": contact["channels"],
        "candidates": [],
    }
    if contact["suppressed"] is not None:
        explanation["suppressed"] = contact["suppressed"]
        explanation["chosen"] = None
        return _none(method, explanation)
    draw = rng or random.Random(0)
    best: tuple[float, int, Offer, str, float, str, dict[str, Any], bool] | None = None
    for index, offer in enumerate(spec.offers):
        entry: dict[str, Any] = {"offer": offer.name}
        explanation["candidates"].append(entry)
        eligible = _condition(catalogue.eligible[offer.name], scope)
        if eligible is not True:
            entry["excluded"] = "not eligible" if eligible is False else f"not eligible: {eligible}"
            continue
        picked = _channel(offer, contact["channels"])
        if picked is None:
            entry["excluded"] = "no channel the subject may be contacted on now"
            continue
        channel, send_at = picked
        entry["channel"] = channel
        try:
            offer_context = plain_data(catalogue.context[offer.name].evaluate(scope))
        except ExpressionError as exc:
            entry["excluded"] = f"policy context unavailable: {exc.message}"
            continue
        verdict = policy(offer, channel, offer_context)
        entry["policy"] = {
            "allowed": verdict.allowed,
            "reason": verdict.reason,
            "policies": list(verdict.policies),
            "bundle_version": verdict.bundle_version,
        }
        if not verdict.allowed:
            entry["excluded"] = f"refused by the gateway: {verdict.reason}: {verdict.message}"
            continue
        reason = _reason(catalogue, offer, scope)
        if reason is None:
            entry["excluded"] = "no customer-facing reason could be given"
            continue
        sensitive = offer.sensitive or verdict.sensitive
        entry["sensitive"] = sensitive
        score, explored = _score(catalogue, offer, scope, stats, exploring and not sensitive, draw)
        if score is None:
            entry["excluded"] = "its score could not be computed from the features"
            continue
        entry["score"] = round(score, 6)
        if explored:
            entry["sampled"] = True
        entry["reason"] = reason
        if best is None or score > best[0]:
            best = (score, index, offer, channel, send_at, reason, offer_context, explored)
    if best is None:
        explanation["chosen"] = None
        return _none(method, explanation)
    score, _, offer, channel, send_at, reason, offer_context, explored = best
    explanation["chosen"] = offer.name
    return Choice(
        offer=offer.name,
        title=offer.title,
        action=offer.action,
        channel=channel,
        reason=reason,
        send_at=send_at,
        context=offer_context,
        explored=explored,
        method=method,
        score=score,
        explanation=explanation,
    )


def plain_data(value: Any) -> Any:
    """``value`` as JSON data: CEL timestamps, durations and bytes become ISO text, seconds
    and base64."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(v) for v in value]
    return value


def _none(method: str, explanation: dict[str, Any]) -> Choice:
    return Choice(None, None, None, None, None, None, {}, False, method, None, explanation)


def _condition(expression: Any, scope: Mapping[str, Any]) -> bool | str:
    try:
        value = expression.evaluate(scope)
    except ExpressionError as exc:
        return exc.message
    if not isinstance(value, bool):
        return f"`{expression.source}` gave {type(value).__name__}, not a boolean"
    return value


def _reason(catalogue: Compiled, offer: Offer, scope: Mapping[str, Any]) -> str | None:
    for when, text in catalogue.reasons[offer.name]:
        if _condition(when, scope) is not True:
            continue
        try:
            value = text.evaluate(scope)
        except ExpressionError:
            continue
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _score(
    catalogue: Compiled,
    offer: Offer,
    scope: Mapping[str, Any],
    stats: Mapping[str, Stats],
    explore: bool,
    rng: random.Random,
) -> tuple[float | None, bool]:
    spec = catalogue.spec
    if spec.ranking.method == "rules":
        try:
            value = catalogue.score[offer.name].evaluate(scope)
        except ExpressionError:
            return None, False
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, False
        if not math.isfinite(value):
            return None, False
        return float(value), False
    prior = spec.ranking.prior
    seen = stats.get(offer.name, Stats())
    alpha = prior.rate * prior.weight + seen.accepted
    beta = (1 - prior.rate) * prior.weight + (seen.trials - seen.accepted)
    if explore:
        return rng.betavariate(alpha, beta) * offer.value, True
    return alpha / (alpha + beta) * offer.value, False


def _contact_verdicts(
    catalogue: Compiled,
    features: Mapping[str, Any],
    withheld: Mapping[str, str],
    contacts: Sequence[Contact],
    now: float,
    reachable: Sequence[str] | None,
    blocked: Mapping[str, str],
) -> dict[str, Any]:
    """Per channel: whether the subject may be contacted on it now, later, or not at all."""
    policy = catalogue.spec.contact
    suppressed: str | None = None
    if policy.complaint is not None:
        name = policy.complaint.feature
        if name not in features:
            suppressed = (
                f"the complaint history ({name}) could not be read "
                f"({withheld.get(name, 'unavailable')}), so nobody is contacted"
            )
        else:
            last = features[name]
            if isinstance(last, dt.datetime):
                last = last.timestamp() if last.tzinfo else last.replace(tzinfo=dt.UTC).timestamp()
            if isinstance(last, int | float) and not isinstance(last, bool):
                if now - float(last) < policy.complaint.suppress_for:
                    days = (now - float(last)) / 86400
                    suppressed = f"a complaint {days:.0f} day(s) ago suppresses every contact"
            elif last is not None:
                suppressed = f"{name} is {type(last).__name__}, not a time: nobody is contacted"
    scope = {"features": dict(features), "now": now}
    verdicts: dict[str, dict[str, Any]] = {}
    for channel in policy.channels:
        verdict: dict[str, Any] = {"allowed": True, "send_at": now}
        if reachable is not None and channel not in reachable:
            verdict = {"allowed": False, "why": "the journey does not reach this channel"}
        elif channel in blocked:
            verdict = {"allowed": False, "why": blocked[channel]}
        elif channel in catalogue.preferences:
            accepts = _condition(catalogue.preferences[channel], scope)
            if accepts is not True:
                why = "the subject's preference says no" if accepts is False else accepts
                verdict = {"allowed": False, "why": f"preference: {why}"}
        if verdict["allowed"]:
            for cap in policy.caps:
                if channel not in cap.channels:
                    continue
                made = sum(
                    1 for c in contacts if c.channel in cap.channels and c.at > now - cap.per
                )
                if made >= cap.max:
                    verdict = {
                        "allowed": False,
                        "why": (
                            f"frequency cap: {made} contact(s) on {', '.join(cap.channels)} "
                            f"within {cap.per / 86400:g} day(s), at most {cap.max}"
                        ),
                    }
                    break
        if verdict["allowed"] and policy.quiet_hours is not None:
            quiet = policy.quiet_hours
            if channel in quiet.channels:
                later = _after_quiet(quiet.minutes(), quiet.zone(dict(features)), now)
                if later is not None:
                    verdict = {"allowed": True, "send_at": later, "why": "quiet hours"}
        verdicts[channel] = verdict
    return {"channels": verdicts, "suppressed": suppressed}


def _after_quiet(span: tuple[int, int], zone: dt.tzinfo, now: float) -> float | None:
    """The end of the quiet hours ``now`` falls in, or None when it falls outside them."""
    start, end = span
    local = dt.datetime.fromtimestamp(now, zone)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else minute >= start or minute < end
    if not inside:
        return None
    ends = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if ends <= local:
        ends += dt.timedelta(days=1)
    return ends.timestamp()


def _channel(offer: Offer, verdicts: Mapping[str, Mapping[str, Any]]) -> tuple[str, float] | None:
    """The offer's most preferred channel open now, else its most preferred open later."""
    later: tuple[str, float] | None = None
    for channel in offer.channels:
        verdict = verdicts.get(channel)
        if verdict is None or not verdict["allowed"]:
            continue
        if "why" not in verdict:
            return channel, float(verdict["send_at"])
        if later is None:
            later = (channel, float(verdict["send_at"]))
    return later
