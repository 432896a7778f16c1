"""The HTTP application: health and readiness, Prometheus metrics, and inbound CloudEvents.

Every route but ``/health`` and ``/ready`` needs credentials: ``/metrics`` the configured
scrape token, ``/v1/events`` a sender's token or Standard Webhooks signature.
"""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from accord.api._events import events_router, problem
from accord.service import Accord


def create_app(accord: Accord) -> FastAPI:
    """The application serving ``accord`` (no module-level app: Accord can run twice)."""
    app = FastAPI(
        title="Accord",
        version="1",
        description="Governed orchestration of customer and employee journeys.",
    )
    app.state.accord = accord
    token = accord.settings.metrics_token

    @app.get("/health", tags=["health"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["health"], summary="Readiness: the database answers")
    def ready() -> JSONResponse:
        try:
            with accord.db.read() as connection:
                connection.execute(sa.text("SELECT 1"))
        except DBAPIError:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ready", "database": accord.db.backend})

    @app.get("/metrics", tags=["metrics"], summary="Prometheus metrics (bearer token)")
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
    return app
