"""Deploying journey versions and finding them again, compiled and cached."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from accord.audit import Ledger, entries
from accord.connectors import CapabilityRegistry
from accord.core import Clock, TenantId
from accord.errors import Diagnostic, JourneyInvalid, JourneyNotFound
from accord.journeys import (
    AgentContract,
    AgentSchemas,
    CompiledJourney,
    JourneySpec,
    LoadedJourney,
    SourceMap,
    compile_journey,
    journey_digest,
    lint,
)
from accord.storage import Database, JourneyRecord, journeys


@dataclass(frozen=True, slots=True)
class Deployment:
    """The outcome of a deploy: the version now current, and whether it is new."""

    name: str
    version: int
    digest: str
    created: bool
    warnings: tuple[Diagnostic, ...] = ()


class JourneyCatalog:
    """Deployed journeys per tenant. Versions are immutable, so compiled ones are cached forever."""

    def __init__(
        self,
        db: Database,
        capabilities: CapabilityRegistry,
        clock: Clock,
        ledger: Ledger,
        *,
        agent_contract: Callable[[str, str, int | None], AgentContract | None] | None = None,
    ) -> None:
        self._db = db
        self._agent_contract = agent_contract
        self._ledger = ledger
        self._capabilities = capabilities
        self._clock = clock
        self._compiled: dict[tuple[str, str, int], CompiledJourney] = {}
        self._lock = threading.Lock()

    def lint(self, tenant: TenantId, loaded: LoadedJourney) -> list[Diagnostic]:
        """Every problem lint finds, checking capabilities and ``call`` targets too."""
        return lint(
            loaded.spec,
            loaded.source_map,
            capabilities=self._capabilities,
            journey_exists=lambda name: self._exists(tenant, name),
            journey_schema=lambda name: self._input_schema(tenant, name),
            agent_schemas=self._agent_schemas(tenant),
        )

    def _agent_schemas(self, tenant: TenantId) -> AgentSchemas | None:
        find = self._agent_contract
        if find is None:
            return None
        return lambda name, version: find(tenant, name, version)

    def _input_schema(self, tenant: TenantId, name: str) -> dict[str, Any] | None:
        try:
            return self.get(tenant, name).input_model.model_json_schema()
        except JourneyNotFound:
            return None

    def _exists(self, tenant: TenantId, name: str) -> bool:
        with self._db.read() as connection:
            return journeys.latest_version(connection, tenant, name) is not None

    def deploy(
        self, tenant: TenantId, loaded: LoadedJourney | JourneySpec, *, deployed_by: str = "cli"
    ) -> Deployment:
        """Lint and store a new version, unless the latest version is identical.

        Raises:
            JourneyInvalid: lint found errors; nothing was stored.
        """
        if isinstance(loaded, JourneySpec):
            text = yaml.safe_dump(
                loaded.model_dump(mode="json", exclude_defaults=True), sort_keys=False
            )
            loaded = LoadedJourney(loaded, text, SourceMap(file=f"<builder {loaded.journey}>"))
        found = self.lint(tenant, loaded)
        errors = [d for d in found if d.severity == "error"]
        if errors:
            raise JourneyInvalid(errors)
        warnings = tuple(d for d in found if d.severity != "error")
        spec = loaded.spec
        digest = journey_digest(spec)
        for _ in range(3):
            try:
                with self._db.transaction() as connection:
                    latest = journeys.latest_version(connection, tenant, spec.journey)
                    if latest is not None and latest.digest == digest:
                        return Deployment(spec.journey, latest.version, digest, False, warnings)
                    version = 1 if latest is None else latest.version + 1
                    journeys.insert_version(
                        connection,
                        JourneyRecord(
                            tenant_id=tenant,
                            name=spec.journey,
                            version=version,
                            digest=digest,
                            source_name=loaded.source_map.file,
                            source=loaded.source,
                            model=spec.model_dump_json(),
                            deployed_at=self._clock.now(),
                            deployed_by=deployed_by,
                        ),
                    )
                    self._ledger.append(
                        connection,
                        tenant,
                        [
                            entries.journey_deploy(
                                name=spec.journey,
                                version=version,
                                digest=digest,
                                source_name=loaded.source_map.file,
                                actor=deployed_by,
                                at=self._clock.now(),
                            )
                        ],
                    )
                return Deployment(spec.journey, version, digest, True, warnings)
            except IntegrityError:
                continue
        raise JourneyInvalid(
            [
                Diagnostic(
                    "concurrent deploys of this journey kept colliding; try again",
                    loaded.source_map.file,
                )
            ]
        )

    def get(
        self,
        tenant: TenantId | str,
        name: str,
        version: int | None = None,
        *,
        connection: Connection | None = None,
    ) -> CompiledJourney:
        """A deployed version (the latest when ``version`` is None), compiled.

        Pass ``connection`` to look the latest version up inside the caller's transaction.

        Raises:
            JourneyNotFound: with the versions that do exist.
        """
        if connection is None:
            with self._db.read() as own:
                return self.get(tenant, name, version, connection=own)
        if version is None:
            version = journeys.latest_version_number(connection, TenantId(tenant), name)
        if version is not None:
            cached = self._compiled.get((tenant, name, version))
            if cached is not None:
                return cached
            record = journeys.get_version(connection, TenantId(tenant), name, version)
        else:
            record = None
        if record is None:
            known = journeys.list_versions(connection, TenantId(tenant), name)
            if known:
                versions = ", ".join(str(r.version) for r in known)
                raise JourneyNotFound(
                    f"journey {name!r} has no version {version}", hint=f"versions: {versions}"
                )
            raise JourneyNotFound(
                f"no journey named {name!r} is deployed",
                hint="deploy it with 'accord journey deploy FILE'; "
                "'accord journey list' shows what is deployed",
            )
        return self._compile(record)

    def _compile(self, record: JourneyRecord) -> CompiledJourney:
        key = (record.tenant_id, record.name, record.version)
        with self._lock:
            cached = self._compiled.get(key)
            if cached is None:
                spec = JourneySpec.model_validate_json(record.model)
                cached = compile_journey(spec, version=record.version)
                self._compiled[key] = cached
            return cached

    def versions(self, tenant: TenantId, name: str | None = None) -> list[JourneyRecord]:
        with self._db.read() as connection:
            return journeys.list_versions(connection, tenant, name)

    def record(self, tenant: TenantId, name: str, version: int | None) -> JourneyRecord:
        journey = self.get(tenant, name, version)
        with self._db.read() as connection:
            record = journeys.get_version(connection, tenant, name, journey.version)
        assert record is not None
        return record
