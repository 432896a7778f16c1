"""Policy bundles for tests: a Cedar schema for the registered capabilities, and permit-all."""

from __future__ import annotations

from accord.connectors import CapabilityRegistry
from accord.policy import PolicyBundle
from accord.service import Accord

PERMIT_ALL = '@id("permit-all")\npermit(principal, action, resource);\n'

REVIEW_ACTIONS = ", ".join(
    f'"review.{a}"'
    for a in (
        "claim",
        "release",
        "reassign",
        "approve",
        "edit",
        "reject",
        "override",
        "request_info",
    )
)

MAKER_CHECKER = """
@id("staff-work-reviews")
permit (principal is Accord::Person, action, resource is Accord::ReviewItem);

@id("supervisors-reassign")
permit (principal is Accord::Person, action == Accord::Action::"review.reassign", resource)
when { principal has roles && principal.roles.contains("supervisor") };

@id("only-supervisors-reassign")
forbid (principal is Accord::Person, action == Accord::Action::"review.reassign", resource)
unless { principal has roles && principal.roles.contains("supervisor") };

@id("maker-checker")
forbid (
  principal is Accord::Person,
  action in [Accord::Action::"review.approve", Accord::Action::"review.override"],
  resource is Accord::ReviewItem
)
when { principal has person_id && resource.makers.contains(principal.person_id) };
"""


def schema_for(capabilities: CapabilityRegistry) -> str:
    """A Cedar schema declaring every registered capability as an action."""
    actions = ", ".join([f'"{c.name}"' for c in capabilities] + ['"journey.start"'])
    return f"""namespace Accord {{
  entity Service = {{ "role": String, "tier": String, "journey"?: String }};
  entity Agent = {{ "role": String, "tier": String, "model"?: String }};
  entity Person = {{
    "role": String, "tier"?: String, "person_id"?: String,
    "roles"?: Set<String>, "skills"?: Set<String>
  }};
  entity ReviewItem = {{
    "queue": String, "kind": String, "journey": String, "capability": String,
    "roles": Set<String>, "makers": Set<String>
  }};
  entity Subject = {{ "region"?: String, "tier"?: String }};
  entity Record = {{ "region"?: String }};
  action {actions} appliesTo {{
    principal: [Service, Agent, Person],
    resource: [Subject, Record],
    context: {{
      "purpose"?: String, "journey"?: String, "channel"?: String,
      "time"?: Long, "side_effect"?: String, "region"?: String,
      "processing_region"?: String,
      "amount"?: decimal, "risk_tier"?: String, "confidence"?: decimal
    }}
  }};
  action {REVIEW_ACTIONS} appliesTo {{
    principal: [Person],
    resource: [ReviewItem],
    context: {{
      "purpose"?: String, "journey"?: String, "channel"?: String, "time"?: Long,
      "amount"?: decimal, "risk_tier"?: String
    }}
  }};
}}
"""


def deploy_policies(accord: Accord, policies: str, *, tenant: str = "default") -> PolicyBundle:
    """Deploy ``policies`` with a schema for ``accord``'s capabilities."""
    return accord.policies.deploy(
        tenant,
        policies,
        schema_for(accord.capabilities),
        source_name="tests",
        actor="tests",
    )
