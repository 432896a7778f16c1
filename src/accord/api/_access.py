"""Access to the API, decided by Cedar through the same decision point as the gateway, with a
bundle of its own, and recorded decision by decision.

Each API operation is a Cedar action in two groups: its kind (``read`` or ``write``) and its
area (``area:runs``). The built-in policies (``policies/access.cedar``) give each role its
areas; ``ACCORD_API_POLICIES`` replaces them. The schema is generated from :data:`OPERATIONS`,
so a policy naming an operation that does not exist fails to deploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from accord.api._auth import ROLES, Principal
from accord.errors import ConfigurationError
from accord.policy import (
    Entity,
    PolicyBundle,
    PolicyDecision,
    PolicyDecisionPoint,
    PolicyInvalid,
    PolicyRequest,
)
from accord.service import Accord
from accord.storage import api as stored_api

Kind = Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One API operation: the Cedar action a request to it is decided as."""

    name: str
    kind: Kind

    @property
    def area(self) -> str:
        return self.name.partition(".")[0]


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("journeys.list", "read"),
        Operation("journeys.get", "read"),
        Operation("journeys.lint", "read"),
        Operation("journeys.deploy", "write"),
        Operation("journeys.attribution", "read"),
        Operation("runs.list", "read"),
        Operation("runs.get", "read"),
        Operation("runs.history", "read"),
        Operation("runs.explain", "read"),
        Operation("runs.start", "write"),
        Operation("runs.signal", "write"),
        Operation("runs.cancel", "write"),
        Operation("reviews.list", "read"),
        Operation("reviews.get", "read"),
        Operation("reviews.claim", "write"),
        Operation("reviews.release", "write"),
        Operation("reviews.decide", "write"),
        Operation("reviews.reassign", "write"),
        Operation("consents.list", "read"),
        Operation("consents.receipt", "read"),
        Operation("consents.grant", "write"),
        Operation("consents.withdraw", "write"),
        Operation("subjects.get", "read"),
        Operation("subjects.context", "read"),
        Operation("subjects.erase", "write"),
        Operation("subjects.hold", "write"),
        Operation("subjects.release", "write"),
        Operation("audit.entries", "read"),
        Operation("audit.head", "read"),
        Operation("audit.inclusion", "read"),
        Operation("audit.consistency", "read"),
        Operation("audit.verify", "read"),
        Operation("audit.export", "read"),
        Operation("policies.list", "read"),
        Operation("policies.get", "read"),
        Operation("policies.explain", "read"),
        Operation("policies.deploy", "write"),
        Operation("flags.list", "read"),
        Operation("flags.set", "write"),
        Operation("agents.list", "read"),
        Operation("agents.get", "read"),
        Operation("agents.rollout", "write"),
        Operation("experiments.list", "read"),
        Operation("experiments.get", "read"),
        Operation("experiments.create", "write"),
        Operation("experiments.ship", "write"),
        Operation("experiments.stop", "write"),
        Operation("dlq.list", "read"),
        Operation("dlq.retry", "write"),
        Operation("dlq.discard", "write"),
        Operation("events.list", "read"),
        Operation("events.inbound", "read"),
        Operation("events.redeliver", "write"),
        Operation("access.decisions", "read"),
    )
}


def schema_text() -> str:
    """The Cedar schema of the API's access policies, one action per operation."""
    areas = sorted({op.area for op in OPERATIONS.values()})
    lines = [
        "namespace Accord {",
        "  entity Role;",
        "  entity Staff in [Role] = { tenant: String };",
        "  entity Tenant = { tenant: String };",
        '  action "read", "write";',
        *[f'  action "area:{area}";' for area in areas],
    ]
    for op in OPERATIONS.values():
        lines.append(
            f'  action "{op.name}" in ["{op.kind}", "area:{op.area}"] '
            "appliesTo { principal: [Staff], resource: [Tenant] };"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def builtin_policies() -> str:
    return resources.files("accord.api").joinpath("policies", "access.cedar").read_text()


def compile_access(policies_file: Path | None) -> PolicyBundle:
    """The access bundle: the built-in policies, or ``policies_file`` in their place.

    Raises:
        ConfigurationError: the file cannot be read, or its policies do not validate.
    """
    if policies_file is None:
        text, name = builtin_policies(), "accord/api/policies/access.cedar"
    else:
        try:
            text, name = policies_file.read_text(), str(policies_file)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the API access policies {policies_file}: {exc}",
                hint="fix ACCORD_API_POLICIES, or unset it for the built-in policies",
            ) from exc
    try:
        return PolicyBundle.compile(text, schema_text(), source_name=name)
    except PolicyInvalid as exc:
        raise ConfigurationError(
            f"the API access policies do not validate: {exc}",
            hint="actions are the operation names in /openapi.json (x-accord-operation)",
        ) from exc


def access_request(principal: Principal, operation: Operation) -> PolicyRequest:
    """The Cedar request for ``principal`` performing ``operation``."""
    return PolicyRequest(
        principal=Entity(
            "Staff",
            principal.subject,
            {"tenant": principal.tenant},
            parents=tuple(("Role", role) for role in sorted(principal.roles)),
        ),
        action=operation.name,
        # every query is scoped to the caller's tenant: that is the tenant reached
        resource=Entity("Tenant", principal.tenant, {"tenant": principal.tenant}),
    )


def role_matrix(bundle: PolicyBundle) -> dict[str, list[str]]:
    """Each role's operations under ``bundle``, for the documentation and the console."""
    pdp = PolicyDecisionPoint(validate_requests=True)
    matrix = {}
    for role in ROLES:
        who = Principal(subject="someone", tenant="t", roles=frozenset({role}))
        matrix[role] = [
            op.name
            for op in OPERATIONS.values()
            if pdp.decide(bundle, access_request(who, op)).allowed
        ]
    return matrix


class AccessControl:
    """Decides and records whether a principal may perform an operation.

    Its decision point checks each request against the bundle's schema: that is where Cedar
    learns which groups (``read``, ``area:runs``) an operation belongs to.
    """

    def __init__(self, accord: Accord, bundle: PolicyBundle) -> None:
        self.accord = accord
        self.bundle = bundle
        self.pdp = PolicyDecisionPoint(validate_requests=True)

    def decide(
        self, principal: Principal, operation: Operation, *, method: str, path: str
    ) -> PolicyDecision:
        decision = self.pdp.decide(self.bundle, access_request(principal, operation))
        record = stored_api.AccessDecisionRecord(
            decision_id=self.accord.runtime.ids.new_id("acc"),
            tenant_id=principal.tenant,
            principal=principal.subject,
            roles=tuple(sorted(principal.roles)),
            action=operation.name,
            method=method,
            path=path[:1024],
            allowed=decision.allowed,
            reason=decision.reason,
            policies=decision.determining,
            bundle_digest=self.bundle.digest,
            at=self.accord.runtime.clock.now(),
        )
        with self.accord.db.transaction() as connection:
            stored_api.insert_access_decision(connection, record)
        return decision

    def allowed(self, principal: Principal) -> set[str]:
        """The operations ``principal`` may perform (decided, not recorded): for the console."""
        return {
            op.name
            for op in OPERATIONS.values()
            if self.pdp.decide(self.bundle, access_request(principal, op)).allowed
        }


def role_table(bundle: PolicyBundle) -> str:
    """The role matrix as a Markdown table (``docs/api.md`` carries it; a test keeps it true)."""
    matrix = role_matrix(bundle)
    lines = [
        "| operation | kind | " + " | ".join(ROLES) + " |",
        "|---|---|" + "---|" * len(ROLES),
    ]
    for name, op in OPERATIONS.items():
        marks = " | ".join("✔" if name in matrix[role] else "" for role in ROLES)
        lines.append(f"| `{name}` | {op.kind} | {marks} |")
    return "\n".join(lines) + "\n"
