"""Policy bundles for tests: a Cedar schema for the registered capabilities, and permit-all."""

from __future__ import annotations

from accord.connectors import CapabilityRegistry
from accord.policy import PolicyBundle
from accord.service import Accord

PERMIT_ALL = '@id("permit-all")\npermit(principal, action, resource);\n'


def schema_for(capabilities: CapabilityRegistry) -> str:
    """A Cedar schema declaring every registered capability as an action."""
    actions = ", ".join(f'"{c.name}"' for c in capabilities)
    return f"""namespace Accord {{
  entity Service = {{ "role": String, "tier": String, "journey"?: String }};
  entity Agent = {{ "role": String, "tier": String, "model"?: String }};
  entity Person = {{ "role": String, "tier": String }};
  entity Subject = {{ "region"?: String, "tier"?: String }};
  entity Record = {{ "region"?: String }};
  action {actions} appliesTo {{
    principal: [Service, Agent, Person],
    resource: [Subject, Record],
    context: {{
      "purpose"?: String, "journey"?: String, "channel"?: String,
      "time"?: Long, "side_effect"?: String, "region"?: String,
      "amount"?: decimal, "risk_tier"?: String, "confidence"?: decimal
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
