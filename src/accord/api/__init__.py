"""The HTTP surface: health, readiness, metrics and inbound events (the full API builds on
it)."""

from accord.api._app import create_app

__all__ = ["create_app"]
