"""The demo enterprise's CRM and identity service, bound to capabilities by a catalogue.

``examples/capabilities/retail.yaml`` declares the contracts; these functions are what its
``python:`` bindings name. Each takes the validated request as a dict and the call context, and
answers deterministically from the customer id, so demos and tests repeat exactly. Writes derive
their change id from the idempotency key: a replayed call returns the first answer.
"""

from __future__ import annotations

import hashlib
from typing import Any

from accord.connectors import CallContext
from accord.errors import CapabilityFailed

_FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Niklaus")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Wirth")
_UNKNOWN_CUSTOMER = "cus_00000"


def lookup_customer(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Look a customer up in the CRM: name, e-mail address and phone number.

    ``cus_00000`` does not exist, so a journey can show what happens when a lookup finds nobody.
    """
    customer_id = str(payload["customer_id"])
    if customer_id == _UNKNOWN_CUSTOMER:
        raise CapabilityFailed(
            f"the CRM has no customer {customer_id!r}",
            error_type="CustomerNotFound",
            retryable=False,
            hint="check the customer id",
        )
    seed = _seed(customer_id)
    first = _FIRST_NAMES[seed % len(_FIRST_NAMES)]
    last = _LAST_NAMES[(seed >> 8) % len(_LAST_NAMES)]
    return {
        "customer_id": customer_id,
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}@example.com",
        "phone": f"+4420794600{seed % 100:02d}",
        "tier": ("standard", "silver", "gold")[(seed >> 16) % 3],
    }


def update_email(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Change the e-mail address the CRM holds for a customer."""
    return {
        "customer_id": str(payload["customer_id"]),
        "change_id": _change_id(ctx),
        "status": "updated",
    }


def revert_email(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Put back the e-mail address a change replaced."""
    return {
        "customer_id": str(payload["customer_id"]),
        "change_id": str(payload["change_id"]),
        "status": "reverted",
    }


def verify_identity(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Check the official identity document on file for a customer.

    Customer ids ending in 7 fail verification, so demos can show both outcomes.
    """
    customer_id = str(payload["customer_id"])
    verified = not customer_id.endswith("7")
    return {
        "customer_id": customer_id,
        "verified": verified,
        "method": "document",
        "confidence": 0.97 if verified else 0.18,
    }


def _seed(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def _change_id(ctx: CallContext) -> str:
    return "chg_" + hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:12]
