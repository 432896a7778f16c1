"""The staff console (server-rendered pages for reviewers, operators and auditors), served
beside the API by :func:`web_app`."""

from fastapi import FastAPI

from accord.api import create_app
from accord.console._app import COOKIE, console_router, csrf_token, static_files
from accord.portal import portal_router
from accord.portal import static_files as portal_static
from accord.service import Accord


def web_app(accord: Accord) -> FastAPI:
    """The API and the console in one application (what ``accord serve`` runs)."""
    app = create_app(accord)
    app.mount("/console/static", static_files(), name="console-static")
    app.include_router(console_router(app.state.api))
    app.mount("/portal/static", portal_static(), name="portal-static")
    app.include_router(portal_router(accord))
    return app


__all__ = ["COOKIE", "console_router", "csrf_token", "web_app"]
