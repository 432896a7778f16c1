"""Consent receipts in the shape of the Kantara Initiative Consent Receipt Specification v1.1.

A receipt is written once, when consent is granted, and kept with the grant: it is what the
customer was given, so it never changes afterwards (a withdrawal is recorded beside it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from accord.consent._vocabulary import is_sensitive, label_of

RECEIPT_VERSION = "KI-CR-v1.1.0"


@dataclass(frozen=True, slots=True)
class Controller:
    """The organisation accountable for the personal data (the PII controller on receipts).

    The defaults describe the demo enterprise.
    """

    name: str = "Accord Demo Retail"
    contact: str = "Privacy Office"
    email: str = "privacy@demo-retail.example"
    address: str = "1 Example Street, Dublin"
    jurisdiction: str = "EU"
    policy_url: str = "https://demo-retail.example/privacy"
    phone: str = "+353 1 555 0100"
    country: str = "IE"
    service: str = "Accord Demo Retail shopping and customer services"


DEMO_CONTROLLER = Controller()


def build_receipt(
    *,
    grant_id: str,
    subject_id: str,
    purpose: str,
    categories: Sequence[str],
    channel: str,
    notice_version: str,
    granted_at: float,
    expires_at: float | None,
    controller: Controller,
    language: str,
) -> dict[str, Any]:
    """The receipt for one grant: one service with one purpose, as Kantara CR v1.1 lays out."""
    sensitive = [c for c in categories if is_sensitive(c)]
    termination = "when the customer withdraws consent"
    if expires_at is not None:
        termination = f"at {iso_time(expires_at)}, or earlier " + termination
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": controller.jurisdiction,
        "consentTimestamp": int(granted_at),
        "collectionMethod": f"{channel} (privacy notice version {notice_version})",
        "consentReceiptID": grant_id,
        "language": language,
        "piiPrincipalId": subject_id,
        "piiControllers": [
            {
                "piiController": controller.name,
                "onBehalf": False,
                "contact": controller.contact,
                "address": {
                    "streetAddress": controller.address,
                    "addressCountry": controller.country,
                },
                "email": controller.email,
                "phone": controller.phone,
            }
        ],
        "policyUrl": controller.policy_url,
        "services": [
            {
                "service": controller.service,
                "purposes": [
                    {
                        "purpose": label_of(purpose),
                        "purposeCategory": [purpose],
                        "consentType": "EXPLICIT",
                        "piiCategory": list(categories),
                        "primaryPurpose": True,
                        "termination": termination,
                        "thirdPartyDisclosure": False,
                    }
                ],
            }
        ],
        "sensitive": bool(sensitive),
        "spiCat": sensitive,
    }


def iso_time(epoch: float) -> str:
    """An epoch time as ISO 8601 in UTC, e.g. ``2026-01-01T00:00:00Z``."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat().replace("+00:00", "Z")
