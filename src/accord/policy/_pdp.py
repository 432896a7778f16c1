"""The policy decision point: Cedar's answer to a request, failing closed."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy

from accord.policy._bundle import CompiledPolicy, Effect, PolicyBundle
from accord.policy._decision import Obligation, PolicyDecision
from accord.policy._entities import CedarValueError, PolicyRequest, to_cedar

_NO_BUNDLE = PolicyDecision(
    allowed=False,
    bundle_version=None,
    determining=(),
    obligations=(),
    errors=("no policy bundle is deployed for this tenant; every request is denied",),
    reason="no_bundle",
)


@dataclass(frozen=True, slots=True)
class PolicyTrace:
    """One policy's part in a decision, for ``accord policy explain``.

    Attributes:
        id: the policy's ``@id``, else Cedar's positional id.
        cedar_id: Cedar's positional id.
        effect: ``permit`` or ``forbid``.
        matched: whether its scope and conditions hold for the request (None when the request
            could not be evaluated at all).
        determining: whether it decided the outcome.
        error: why evaluating it failed, if it did.
        annotations: every annotation of the policy.
        obligations: what it obliges when it determines an Allow.
        source: its text as deployed.
        line: the line of the bundle it starts on, when known.
    """

    id: str
    cedar_id: str
    effect: Effect
    matched: bool | None
    determining: bool
    error: str | None
    annotations: Mapping[str, str]
    obligations: tuple[Obligation, ...]
    source: str
    line: int | None


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision and what every policy of the bundle made of the request."""

    decision: PolicyDecision
    policies: tuple[PolicyTrace, ...]


class PolicyDecisionPoint:
    """Decides requests against a compiled bundle with Cedar, and fails closed.

    Anything but a clean Allow is a deny: no bundle (``no_bundle``), a request or entity
    Cedar cannot take, an evaluation error in any policy even if a permit matched, or any
    failure inside Cedar (all ``error``).

    Parsing the principal and resource is a good part of Cedar's cost, and a run asks about
    the same ones again and again, so parsed entities are kept (up to ``entity_cache_size``
    distinct principal/resource pairs, keyed by their exact JSON, so a changed attribute is a
    new entry).

    Args:
        validate_requests: also check each request and its entities against the bundle's
            schema. Context and attributes must then match the schema exactly (no undeclared
            attributes), and a mismatch denies with reason ``error``. Off by default: the
            policies are validated at deploy, and a value of the wrong type makes the policy
            reading it fail, which denies as well.
        entity_cache_size: how many parsed entity pairs to keep; 0 keeps none.
    """

    def __init__(self, *, validate_requests: bool = False, entity_cache_size: int = 512) -> None:
        self._validate_requests = validate_requests
        self._cache_size = 0 if validate_requests else entity_cache_size
        self._entities: dict[str, cedarpy.Entities] = {}
        self._lock = threading.Lock()

    def decide(self, bundle: PolicyBundle | None, request: PolicyRequest) -> PolicyDecision:
        """Allow or deny ``request`` under ``bundle``; never raises for a bad request."""
        if bundle is None:
            return _NO_BUNDLE
        try:
            cedar_request, entities = to_cedar(request)
            if self._cache_size:
                result = cedarpy.is_authorized(
                    cedar_request, bundle.policy_set, self._parsed(entities)
                )
            else:
                schema = bundle.cedar_schema if self._validate_requests else None
                result = cedarpy.is_authorized(cedar_request, bundle.policy_set, entities, schema)
            return _interpret(bundle, result)
        except CedarValueError as exc:
            return _error(bundle, (f"the request cannot be given to Cedar: {exc}",))
        except _EntitiesRefused as exc:
            return _error(bundle, (f"Cedar refused the principal or resource: {exc}",))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            # Failing closed is the point: whatever broke, the answer is deny, and why is kept.
            # BaseException, because a panic inside Cedar's Rust code arrives as one.
            return _error(bundle, (f"Cedar failed: {type(exc).__name__}: {exc}",))

    def _parsed(self, entities: list[dict[str, Any]]) -> cedarpy.Entities:
        key = json.dumps(entities)
        parsed = self._entities.get(key)
        if parsed is None:
            try:
                parsed = cedarpy.Entities.from_json_str(key)
            except ValueError as exc:
                raise _EntitiesRefused(str(exc)) from exc
            with self._lock:
                if len(self._entities) >= self._cache_size:
                    del self._entities[next(iter(self._entities))]
                self._entities[key] = parsed
        return parsed

    def explain(self, bundle: PolicyBundle | None, request: PolicyRequest) -> Explanation:
        """The decision, and for every policy whether it matched and whether it decided.

        Each policy is evaluated on its own to learn whether it matches, so this costs one
        Cedar evaluation per policy: use it to answer "why?", not on the request path.
        """
        decision = self.decide(bundle, request)
        if bundle is None:
            return Explanation(decision, ())
        determining = set(decision.determining)
        try:
            cedar_request, entities = to_cedar(request)
        except CedarValueError:
            cedar_request = None
        traces = []
        for policy in bundle.compiled_policies:
            matched: bool | None = None
            error: str | None = None
            if cedar_request is not None:
                matched, error = _probe(bundle, policy, cedar_request, entities)
            traces.append(
                PolicyTrace(
                    id=policy.id,
                    cedar_id=policy.cedar_id,
                    effect=policy.effect,
                    matched=matched,
                    determining=policy.id in determining,
                    error=error,
                    annotations=policy.annotations,
                    obligations=policy.obligations,
                    source=policy.source,
                    line=policy.line,
                )
            )
        return Explanation(decision, tuple(traces))


class _EntitiesRefused(Exception):
    """Cedar could not parse the principal and resource."""


def _interpret(bundle: PolicyBundle, result: cedarpy.AuthzResult) -> PolicyDecision:
    diagnostics = result.diagnostics
    errors = diagnostics.errors
    if errors:
        # Cedar skips a policy that fails and may still allow; a policy that cannot be
        # evaluated might have been the forbid that mattered, so the answer is deny.
        return _error(bundle, bundle.describe_errors(errors))
    decision = result.decision
    reasons = diagnostics.reasons
    if decision is cedarpy.Decision.Allow:
        return PolicyDecision(
            allowed=True,
            bundle_version=bundle.version,
            determining=bundle.policy_ids(reasons),
            obligations=bundle.obligations(reasons),
            errors=(),
            reason="permit",
        )
    if decision is cedarpy.Decision.Deny:
        return PolicyDecision(
            allowed=False,
            bundle_version=bundle.version,
            determining=bundle.policy_ids(reasons),
            obligations=(),
            errors=(),
            reason="forbid" if reasons else "no_permit",
        )
    return _error(bundle, (f"Cedar reached no decision ({decision.value})",))


def _error(bundle: PolicyBundle, errors: tuple[str, ...]) -> PolicyDecision:
    return PolicyDecision(
        allowed=False,
        bundle_version=bundle.version,
        determining=(),
        obligations=(),
        errors=errors,
        reason="error",
    )


def _probe(
    bundle: PolicyBundle,
    policy: CompiledPolicy,
    cedar_request: dict[str, Any],
    entities: list[dict[str, Any]],
) -> tuple[bool | None, str | None]:
    """Whether ``policy`` alone matches: evaluated as a permit, it allows exactly then."""
    body = dict(policy.cedar_json, effect="permit")
    text = json.dumps(
        {"staticPolicies": {policy.cedar_id: body}, "templates": {}, "templateLinks": []}
    )
    try:
        result = cedarpy.is_authorized(
            cedar_request, cedarpy.PolicySet.from_json_str(text), entities
        )
    except ValueError as exc:
        return None, str(exc)
    if result.diagnostics.errors:
        return None, "; ".join(bundle.describe_errors(result.diagnostics.errors))
    return result.allowed, None
