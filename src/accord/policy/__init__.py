"""Policy: Cedar bundles per tenant, and the decision point that answers with them.

A :class:`PolicyBundle` is compiled once (parsed and validated against its Cedar schema); the
:class:`PolicyDecisionPoint` decides a :class:`PolicyRequest` under it and fails closed; a
:class:`PolicyStore` keeps deployed versions per tenant. Obligations ride on annotations of the
policies that determine an Allow: ``@approval("role")``, ``@notify("target")`` and
``@redact("pd:EmailAddress,pd:TelephoneNumber")``.
"""

from accord.policy._bundle import CompiledPolicy, PolicyBundle, bundle_digest
from accord.policy._cases import (
    CaseResult,
    PolicyCase,
    entity_from,
    load_cases,
    load_cases_file,
    parse_entity_ref,
    run_cases,
)
from accord.policy._decision import DecisionReason, Obligation, ObligationKind, PolicyDecision
from accord.policy._entities import (
    CedarValueError,
    Entity,
    PolicyRequest,
    to_cedar,
    to_cedar_value,
)
from accord.policy._errors import PolicyBundleNotFound, PolicyInvalid
from accord.policy._pdp import Explanation, PolicyDecisionPoint, PolicyTrace
from accord.policy._store import PolicyStore

__all__ = [
    "CaseResult",
    "CedarValueError",
    "CompiledPolicy",
    "DecisionReason",
    "Entity",
    "Explanation",
    "Obligation",
    "ObligationKind",
    "PolicyBundle",
    "PolicyBundleNotFound",
    "PolicyCase",
    "PolicyDecision",
    "PolicyDecisionPoint",
    "PolicyInvalid",
    "PolicyRequest",
    "PolicyStore",
    "PolicyTrace",
    "bundle_digest",
    "entity_from",
    "load_cases",
    "load_cases_file",
    "parse_entity_ref",
    "run_cases",
    "to_cedar",
    "to_cedar_value",
]
