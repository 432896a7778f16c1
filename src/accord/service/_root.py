"""The composition root: settings in, a wired :class:`Accord` out. No import-time globals."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.connectors import CapabilityRegistry, load_catalogue
from accord.consent import ConsentLedger, validate_categories
from accord.core import Clock, IdGenerator, RandomIds, SystemClock, TenantId
from accord.errors import ConfigurationError
from accord.flags import FlagRecord, Flags, FlagStore, FlagValue
from accord.gateway import Gateway, Governance
from accord.policy import PolicyDecisionPoint, PolicyStore
from accord.runtime import Runtime
from accord.service._settings import Settings
from accord.storage import Database


@dataclass
class Accord:
    """One wired instance: settings, database, capabilities, governance, gateway and runtime."""

    settings: Settings
    db: Database
    capabilities: CapabilityRegistry
    consent: ConsentLedger
    policies: PolicyStore
    pdp: PolicyDecisionPoint
    flags: Flags
    gateway: Gateway
    runtime: Runtime

    def set_flag(
        self, key: str, value: FlagValue, *, actor: str, reason: str, tenant: str | None = None
    ) -> FlagRecord:
        """Set a flag; switching a kill switch back on makes the runs it held ask again now."""
        tenant = tenant or self.settings.tenant
        record = self.flags.set(tenant, key, value, actor=actor, reason=reason)
        if value is True:
            self.runtime.wake_held(TenantId(tenant))
        return record

    def close(self) -> None:
        self.gateway.close()
        self.flags.close()
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
    governed: bool = True,
) -> Accord:
    """Wire Accord from settings. Pass ``capabilities`` to skip loading capability modules.

    ``governed=False`` builds a gateway without kill switches, consent, policy or decision
    records: for tests that show what governance prevents and for benchmarks that price it.
    """
    settings = settings or Settings()
    if capabilities is None:
        capabilities = CapabilityRegistry()
        load_capabilities(settings.capability_modules, capabilities)
        for catalogue in settings.capability_catalogues:
            load_catalogue(Path(catalogue), capabilities, check_categories=validate_categories)
    if settings.database_url.startswith("sqlite:///"):
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    if migrate:
        try:
            db.migrate()
        except BaseException:
            db.dispose()
            raise
    clock = clock or SystemClock()
    ids = ids or RandomIds()
    consent = ConsentLedger(db, clock=clock, ids=ids)
    policies = PolicyStore(db, clock=clock)
    pdp = PolicyDecisionPoint()
    flags = Flags(
        FlagStore(db, clock=clock, ids=ids), refresh_seconds=settings.flag_refresh_seconds
    )
    governance = Governance(db, consent, policies, pdp, flags, ids.new_id)
    gateway = Gateway(capabilities, governance=governance if governed else None)
    runtime = Runtime(
        db,
        gateway,
        clock=clock,
        ids=ids,
        lease_seconds=settings.lease_seconds,
        commit_window=settings.commit_window_ms / 1000,
        fencing=fencing,
    )
    return Accord(settings, db, capabilities, consent, policies, pdp, flags, gateway, runtime)
