"""``POST /v1/events``: CloudEvents in over HTTP, structured, batched or binary.

A sender authenticates with a bearer token (``ACCORD_INGEST_TOKENS``) or signs the request
the Standard Webhooks way (``ACCORD_INGEST_SECRETS``: headers ``webhook-id``,
``webhook-timestamp``, ``webhook-signature``; five minutes of tolerance). Both settings map
sender names to credentials; a sender named ``TENANT/NAME`` posts into ``TENANT``, any other
into the configured tenant. Every credential is compared in constant time, and a refusal never
says which credentials exist.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from accord.errors import ConfigurationError, EventInvalid
from accord.events import InboundEvent, content_mode, decode_message
from accord.events._signing import signature_matches, webhook_key
from accord.service import Accord

PROBLEM = "application/problem+json"
TOLERANCE_SECONDS = 300.0
MAX_BODY = 1 << 20
"""The largest request body accepted (1 MiB)."""


@dataclass(frozen=True, slots=True)
class Sender:
    """Who posted: the sender's configured name and the tenant its events belong to."""

    name: str
    tenant: str


def sender_tenant(name: str, default: str) -> str:
    """The tenant of a sender named ``TENANT/NAME``, else ``default``."""
    tenant, slash, _ = name.partition("/")
    return tenant if slash and tenant else default


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem details response."""
    code = title.lower().replace(" ", "_")
    body = {
        "type": f"https://accord.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    body["detail"] = detail
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="accord"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    *,
    tokens: Mapping[str, str],
    secrets: Mapping[str, bytes],
    default_tenant: str,
    now: float,
) -> Sender | None:
    """The sender whose bearer token or Standard Webhooks signature the request carries."""
    authorization = headers.get("authorization", "")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() == "bearer" and presented:
        found = None
        for name, token in tokens.items():
            # every token is compared, so timing does not tell which one nearly matched
            if hmac.compare_digest(presented.strip().encode(), token.encode()):
                found = name
        return None if found is None else Sender(found, sender_tenant(found, default_tenant))
    message_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (message_id and timestamp and signatures):
        return None
    try:
        sent_at = int(timestamp)
    except ValueError:
        return None
    if abs(now - sent_at) > TOLERANCE_SECONDS:
        return None
    found = None
    for name, key in secrets.items():
        # every secret is tried, so timing does not tell which one nearly matched
        if signature_matches(key, message_id, timestamp, body, signatures):
            found = name
    return None if found is None else Sender(found, sender_tenant(found, default_tenant))


def secret_keys(secrets: Mapping[str, str]) -> dict[str, bytes]:
    """The HMAC keys of Standard Webhooks secrets (``whsec_`` and base64), by sender.

    Raises:
        ConfigurationError: a secret is not base64, naming the sender.
    """
    keys = {}
    for name, secret in secrets.items():
        try:
            keys[name] = webhook_key(secret)
        except ValueError as exc:
            raise ConfigurationError(
                f"the ingest secret of sender {name!r} is not 'whsec_' followed by base64",
                hint="make one with `accord events secret`",
            ) from exc
    return keys


def events_router(accord: Accord) -> APIRouter:
    """The router serving ``POST /v1/events`` for ``accord``."""
    router = APIRouter(tags=["events"])
    settings = accord.settings
    tokens = {k: v.get_secret_value() for k, v in settings.ingest_tokens.items()}
    secrets = secret_keys({k: v.get_secret_value() for k, v in settings.ingest_secrets.items()})

    @router.post(
        "/v1/events",
        status_code=202,
        summary="Deliver CloudEvents (structured, batched or binary mode)",
        responses={
            status: {
                "description": meaning,
                "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
            for status, meaning in {
                400: "the body is not JSON",
                401: "no valid bearer token or Standard Webhooks signature",
                413: "the body is larger than 1 MiB",
                415: "the request carries no CloudEvent",
                422: "an event breaks CloudEvents 1.0, or its trigger refused it",
            }.items()
        },
    )
    async def post_events(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return problem(413, "Content Too Large", f"the body exceeds {MAX_BODY} bytes")
        headers = {k.lower(): v for k, v in request.headers.items()}
        sender = authenticate(
            headers,
            body,
            tokens=tokens,
            secrets=secrets,
            default_tenant=settings.tenant,
            now=accord.runtime.clock.now(),
        )
        if sender is None:
            return problem(
                401,
                "Unauthorized",
                "send a bearer token or a Standard Webhooks signature (webhook-id, "
                "webhook-timestamp, webhook-signature) made with your sender's secret",
            )
        mode = content_mode(headers)
        if mode is None:
            return problem(
                415,
                "Unsupported Media Type",
                "send application/cloudevents+json, application/cloudevents-batch+json, "
                "or a binary-mode event with ce-* headers",
            )
        try:
            events = decode_message(headers, body)
        except EventInvalid as exc:
            malformed = isinstance(exc.__cause__, json.JSONDecodeError | UnicodeDecodeError)
            return problem(
                400 if malformed else 422,
                "Malformed Event" if malformed else "Invalid Event",
                exc.message,
                hint=exc.hint,
                attribute=exc.attribute,
            )
        outcomes = await run_in_threadpool(_ingest_all, accord, sender, events)
        if mode != "batch" and outcomes[0]["status"] == "refused":
            return problem(422, "Event Refused", str(outcomes[0].get("error")), events=outcomes)
        return JSONResponse({"events": outcomes}, status_code=202)

    return router


def _ingest_all(accord: Accord, sender: Sender, events: list[InboundEvent]) -> list[dict[str, Any]]:
    return [
        accord.ingest_event(event, channel="http", tenant=sender.tenant).to_json()
        for event in events
    ]
