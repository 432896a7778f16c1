"""Deploying policy bundles per tenant and finding the active one, compiled and cached."""

from __future__ import annotations

import dataclasses
import threading

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from accord.audit import Ledger, entries
from accord.core import Clock
from accord.errors import ConcurrencyError, InputError
from accord.policy._bundle import PolicyBundle
from accord.policy._errors import PolicyBundleNotFound
from accord.storage import Database, NewEvent
from accord.storage import _policies as stored
from accord.storage import runs as stored_runs
from accord.storage._policies import PolicyBundleRecord, PolicyBundleVersion

# Column widths of ``policy_bundles``; checked before anything is written.
_MAX_TENANT = 64
_MAX_SOURCE_NAME = 512
_MAX_ACTOR = 128


class PolicyStore:
    """Policy bundles per tenant. The newest version of a tenant is its active bundle.

    Versions never change once stored, so compiled bundles are cached by (tenant, version)
    for the life of the store; finding which version is newest is one cheap query each time,
    so a deploy by another process takes effect at the next lookup.
    """

    def __init__(self, db: Database, *, clock: Clock, ledger: Ledger) -> None:
        self._db = db
        self._clock = clock
        self._ledger = ledger
        self._compiled: dict[tuple[str, int], PolicyBundle] = {}
        self._lock = threading.Lock()

    def deploy(
        self, tenant: str, policies: str, schema: str, *, source_name: str, actor: str
    ) -> PolicyBundle:
        """Validate and store a new version, unless the active bundle has the same content.

        Returns:
            The active bundle afterwards: the new version, or the unchanged active one when
            its digest equals the deployed content's.

        Raises:
            PolicyInvalid: the bundle does not parse or validate; nothing was stored.
            InputError: the tenant, source name or actor is too long to store.
        """
        _check_length("tenant", tenant, _MAX_TENANT)
        _check_length("source name", source_name, _MAX_SOURCE_NAME, required=False)
        _check_length("actor", actor, _MAX_ACTOR)
        compiled = PolicyBundle.compile(policies, schema, source_name=source_name)
        for _ in range(3):
            try:
                with self._db.transaction() as connection:
                    latest = stored.latest(connection, tenant)
                    if latest is not None and latest.digest == compiled.digest:
                        return self._remember(tenant, _with_record(compiled, latest))
                    bundle = dataclasses.replace(
                        compiled,
                        version=1 if latest is None else latest.version + 1,
                        deployed_at=self._clock.now(),
                        deployed_by=actor,
                    )
                    stored.insert_version(connection, _record(tenant, bundle))
                    stored_runs.insert_outbox(
                        connection,
                        tenant,
                        None,
                        None,
                        [
                            NewEvent(
                                stored_runs.derived_event_id(
                                    "policy.deployed", tenant, str(bundle.version)
                                ),
                                "policy.deployed",
                                {
                                    "version": bundle.version,
                                    "digest": bundle.digest,
                                    "source_name": bundle.source_name,
                                    "deployed_by": actor,
                                    "policies": [p.id for p in bundle.compiled_policies],
                                },
                            )
                        ],
                        bundle.deployed_at,
                    )
                    self._ledger.append(
                        connection,
                        tenant,
                        [
                            entries.policy_deploy(
                                version=bundle.version,
                                digest=bundle.digest,
                                source_name=bundle.source_name,
                                actor=actor,
                                at=bundle.deployed_at,
                                policy_ids=[p.id for p in bundle.compiled_policies],
                            )
                        ],
                    )
                return self._remember(tenant, bundle)
            except IntegrityError:
                # Another deploy took this version number first; look again.
                continue
        raise ConcurrencyError(
            f"concurrent policy deploys for tenant {tenant!r} kept colliding",
            hint="deploy again",
        )

    def active(self, tenant: str, *, connection: Connection | None = None) -> PolicyBundle | None:
        """The tenant's newest bundle, or None when it has none.

        Pass ``connection`` to look it up inside the caller's transaction (the gateway does).
        """
        if connection is None:
            with self._db.read() as own:
                return self.active(tenant, connection=own)
        version = stored.latest_version(connection, tenant)
        if not version:
            return None
        return self.get_compiled(tenant, version, connection=connection)

    def get_compiled(
        self, tenant: str, version: int, *, connection: Connection | None = None
    ) -> PolicyBundle:
        """A stored version, compiled; compiled once per store and then served from memory.

        Raises:
            PolicyBundleNotFound: the tenant has no such version.
            PolicyInvalid: the stored bundle no longer compiles (Cedar changed under it).
        """
        cached = self._compiled.get((tenant, version))
        if cached is not None:
            return cached
        if connection is None:
            with self._db.read() as own:
                record = stored.get_version(own, tenant, version)
        else:
            record = stored.get_version(connection, tenant, version)
        if record is None:
            raise self._not_found(tenant, version, connection)
        with self._lock:
            cached = self._compiled.get((tenant, version))
            if cached is None:
                compiled = PolicyBundle.compile(
                    record.policies, record.schema, source_name=record.source_name
                )
                cached = self._compiled[(tenant, version)] = _with_record(compiled, record)
            return cached

    def _remember(self, tenant: str, bundle: PolicyBundle) -> PolicyBundle:
        with self._lock:
            return self._compiled.setdefault((tenant, bundle.version), bundle)

    def bundle(self, tenant: str, version: int | None = None) -> PolicyBundle:
        """A version (the active one when ``version`` is None), compiled.

        Raises:
            PolicyBundleNotFound: with the versions that do exist.
        """
        if version is None:
            active = self.active(tenant)
            if active is None:
                raise self._not_found(tenant, None, None)
            return active
        return self.get_compiled(tenant, version)

    def versions(self, tenant: str) -> list[PolicyBundleVersion]:
        """Every version of the tenant, newest first, without the policy texts."""
        with self._db.read() as connection:
            return stored.list_versions(connection, tenant)

    def _not_found(
        self, tenant: str, version: int | None, connection: Connection | None
    ) -> PolicyBundleNotFound:
        if connection is None:
            with self._db.read() as own:
                known = stored.list_versions(own, tenant)
        else:
            known = stored.list_versions(connection, tenant)
        if not known:
            return PolicyBundleNotFound(
                f"tenant {tenant!r} has no policy bundle",
                hint="deploy one with 'accord policy deploy POLICIES_FILE --schema SCHEMA_FILE'",
            )
        versions = ", ".join(str(v.version) for v in known)
        return PolicyBundleNotFound(
            f"tenant {tenant!r} has no policy bundle version {version}",
            hint=f"versions: {versions}; 'accord policy list' shows them",
        )


def _with_record(bundle: PolicyBundle, record: PolicyBundleRecord) -> PolicyBundle:
    return dataclasses.replace(
        bundle,
        version=record.version,
        source_name=record.source_name,
        deployed_at=record.deployed_at,
        deployed_by=record.deployed_by,
    )


def _record(tenant: str, bundle: PolicyBundle) -> PolicyBundleRecord:
    return PolicyBundleRecord(
        tenant_id=tenant,
        version=bundle.version,
        digest=bundle.digest,
        policies=bundle.policies,
        schema=bundle.schema,
        source_name=bundle.source_name,
        deployed_at=bundle.deployed_at,
        deployed_by=bundle.deployed_by,
    )


def _check_length(what: str, value: str, limit: int, *, required: bool = True) -> None:
    if len(value) > limit or (required and not value):
        shortest = 1 if required else 0
        raise InputError(
            f"the {what} must be {shortest} to {limit} characters, got {len(value)}",
            hint=f"give a {what} of at most {limit} characters",
        )
