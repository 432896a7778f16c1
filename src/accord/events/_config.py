"""Where events go and come from, as operators configure it (validated at the boundary)."""

from __future__ import annotations

import base64
import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

SINK_NAME = r"^[a-z][a-z0-9_-]{0,47}$"


def check_webhook_secret(secret: SecretStr) -> SecretStr:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 random bytes."""
    raw = secret.get_secret_value()
    body = raw.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise ValueError(
            "a webhook secret is 'whsec_' followed by base64; make one with `accord events secret`"
        ) from exc
    if not 24 <= len(key) <= 64:
        raise ValueError(
            f"a webhook secret holds 24 to 64 bytes, this one {len(key)}; "
            "make one with `accord events secret`"
        )
    return secret


class WebhookEndpoint(BaseModel):
    """One webhook subscription: where to POST, how to sign, which events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://", description="the receiver's URL")
    secret: SecretStr = Field(description="Standard Webhooks secret (whsec_…)")
    types: tuple[str, ...] = Field(
        ("*",), description="event types to send; 'run.*' matches a family, '*' all"
    )
    tenants: tuple[str, ...] = Field((), description="only these tenants' events (all if empty)")
    timeout_seconds: float = Field(10.0, gt=0, le=120)

    _secret = field_validator("secret")(check_webhook_secret)

    @field_validator("types")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not re.fullmatch(r"\*|[a-z_]+(\.[a-z_]+)*(\.\*)?", pattern):
                raise ValueError(
                    f"{pattern!r} is not an event type pattern; use e.g. 'run.completed', "
                    "'run.*' or '*'"
                )
        return value
