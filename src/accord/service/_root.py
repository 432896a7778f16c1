"""The composition root: settings in, a wired :class:`Accord` out. No import-time globals."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.connectors import CapabilityRegistry
from accord.core import Clock, IdGenerator, RandomIds, SystemClock
from accord.errors import ConfigurationError
from accord.gateway import Gateway
from accord.runtime import Runtime
from accord.service._settings import Settings
from accord.storage import Database


@dataclass
class Accord:
    """One wired instance: settings, database, capabilities, gateway and runtime."""

    settings: Settings
    db: Database
    capabilities: CapabilityRegistry
    gateway: Gateway
    runtime: Runtime

    def close(self) -> None:
        self.gateway.close()
        self.db.dispose()

    def __enter__(self) -> Accord:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def load_capabilities(modules: list[str], registry: CapabilityRegistry) -> None:
    """Import each module and call its ``register(registry)``."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot import capability module {name!r}: {exc}",
                hint="check ACCORD_CAPABILITY_MODULES and that the module is installed",
            ) from exc
        register = getattr(module, "register", None)
        if not callable(register):
            raise ConfigurationError(
                f"capability module {name!r} has no register(registry) function"
            )
        register(registry)


def build(
    settings: Settings | None = None,
    *,
    capabilities: CapabilityRegistry | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    fencing: bool = True,
    migrate: bool = True,
) -> Accord:
    """Wire Accord from settings. Pass ``capabilities`` to skip loading capability modules."""
    settings = settings or Settings()
    if settings.database_url.startswith("sqlite:///"):
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    if migrate:
        db.migrate()
    if capabilities is None:
        capabilities = CapabilityRegistry()
        load_capabilities(settings.capability_modules, capabilities)
    gateway = Gateway(capabilities)
    runtime = Runtime(
        db,
        gateway,
        clock=clock or SystemClock(),
        ids=ids or RandomIds(),
        lease_seconds=settings.lease_seconds,
        commit_window=settings.commit_window_ms / 1000,
        fencing=fencing,
    )
    return Accord(settings, db, capabilities, gateway, runtime)
