"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
``{webhook-id}.{webhook-timestamp}.{body}``, sent as ``v1,<base64>`` in ``webhook-signature``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def webhook_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret.

    Raises:
        ValueError: the secret is not ``whsec_`` followed by base64.
    """
    return base64.b64decode(secret.removeprefix(PREFIX), validate=True)


def new_secret() -> str:
    """A fresh secret: ``whsec_`` and base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_matches(
    key: bytes, message_id: str, timestamp: str, body: bytes, header: str
) -> bool:
    """Whether any ``v1`` signature in a ``webhook-signature`` header was made with ``key``
    (compared in constant time; malformed entries never match)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    matched = False
    for signature in header.split():
        version, _, encoded = signature.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        matched |= hmac.compare_digest(candidate, expected)
    return matched


def webhook_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a message."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message_id, timestamp, body),
    }
