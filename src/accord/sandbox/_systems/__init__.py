"""The seven systems of the sandbox enterprise, each a FastAPI app on its own SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from accord.core import Clock, SystemClock
from accord.errors import ConfigurationError
from accord.sandbox._service import SandboxService
from accord.sandbox._systems import billing, crm, directory, helpdesk, kyc, notifications, orders

SERVICES: tuple[str, ...] = (
    "crm",
    "billing",
    "orders",
    "helpdesk",
    "kyc",
    "notifications",
    "directory",
)
"""The services' names, in the order they are listed and given ports."""

_FACTORIES: dict[str, Callable[..., SandboxService]] = {
    "crm": crm.create_service,
    "billing": billing.create_service,
    "orders": orders.create_service,
    "helpdesk": helpdesk.create_service,
    "kyc": kyc.create_service,
    "notifications": notifications.create_service,
    "directory": directory.create_service,
}


def create_service(name: str, database_path: Path, *, clock: Clock | None = None) -> SandboxService:
    """Build service ``name`` on ``database_path`` (created and seeded if new)."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigurationError(
            f"there is no sandbox service {name!r}",
            hint=f"choose from {', '.join(SERVICES)}",
        )
    return factory(database_path, clock=clock or SystemClock())


def create_app(name: str, database_path: Path, *, clock: Clock | None = None) -> FastAPI:
    """The ASGI app of service ``name`` on ``database_path`` (created and seeded if new).

    Serve it with any ASGI server; :class:`~accord.sandbox.SandboxEnterprise` runs all of them
    with uvicorn and also supports dropped-connection faults.
    """
    app: FastAPI = create_service(name, database_path, clock=clock).app
    return app
