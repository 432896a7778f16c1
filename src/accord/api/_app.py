"""The HTTP application: health and readiness, Prometheus metrics, inbound CloudEvents and the
``/v1`` API.

Every route but ``/health`` and ``/ready`` needs credentials: ``/metrics`` the configured
scrape token, ``POST /v1/events`` a sender's token or Standard Webhooks signature, and every
other ``/v1`` route a bearer token whose caller the access policies allow.
"""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from accord.api import _problems, _v1, _v1_attribution, _v1_experiments, _v1_governance
from accord.api._access import AccessControl, compile_access
from accord.api._auth import TokenVerifier
from accord.api._events import events_router, problem
from accord.api._http import ApiContext
from accord.service import Accord


def api_context(accord: Accord) -> ApiContext:
    """The token verifier and access control ``accord``'s settings describe.

    Raises:
        ConfigurationError: no token signer is trusted, a key is not PEM, or the access
            policies do not validate.
    """
    settings = accord.settings
    verifier = TokenVerifier(
        issuer=settings.api_issuer,
        audience=settings.api_audience,
        jwks_url=settings.api_jwks_url,
        public_keys=settings.api_keys,
        keys_dir=settings.resolved_keys_dir() if settings.api_local_tokens else None,
        roles_claim=settings.api_roles_claim,
        tenant_claim=settings.api_tenant_claim,
    )
    return ApiContext(
        accord, verifier, AccessControl(accord, compile_access(settings.api_policies))
    )


def create_app(accord: Accord) -> FastAPI:
    """The application serving ``accord`` (no module-level app: Accord can run twice)."""
    app = FastAPI(
        title="Accord",
        version="1",
        description="Governed orchestration of customer and employee journeys.",
    )
    app.state.accord = accord
    app.state.api = api_context(accord)
    _problems.install(app)
    token = accord.settings.metrics_token

    @app.get("/health", tags=["health"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["health"],
        summary="Readiness: the database answers",
        responses={503: {"description": "the database does not answer"}},
    )
    def ready() -> JSONResponse:
        try:
            with accord.db.read() as connection:
                connection.execute(sa.text("SELECT 1"))
        except DBAPIError:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ready", "database": accord.db.backend})

    @app.get(
        "/metrics",
        tags=["metrics"],
        summary="Prometheus metrics (bearer token)",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "the Prometheus text exposition",
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            },
            **_problems.problem_responses(401, 404),
        },
    )
    async def metrics(request: Request) -> Response:
        if token is None:
            return problem(
                404,
                "Metrics are not enabled",
                "set ACCORD_METRICS_TOKEN and scrape with 'Authorization: Bearer <token>'",
            )
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected
        ):
            return problem(
                401,
                "Unauthorized",
                "send the metrics token as 'Authorization: Bearer <token>'",
            )
        body = await run_in_threadpool(accord.telemetry.metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.include_router(events_router(accord))
    for router in (
        _v1.journeys_router(),
        _v1_attribution.attribution_router(),
        _v1.runs_router(),
        _v1.reviews_router(),
        _v1.audit_router(),
        _v1_governance.evidence_router(),
        _v1.operations_router(),
        _v1_governance.consents_router(),
        _v1_governance.subjects_router(),
        _v1_governance.policies_router(),
        _v1_governance.agents_router(),
        _v1_experiments.experiments_router(),
        _v1_governance.delivery_router(),
    ):
        app.include_router(router)
    return app
