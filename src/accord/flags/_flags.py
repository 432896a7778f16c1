"""The flags facade: set and read flags, and ask kill switches through OpenFeature."""

from __future__ import annotations

import builtins
import uuid

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.no_op_provider import NoOpProvider

from accord.errors import ConfigurationError, InputError
from accord.flags._keys import FlagKey, parse_flag_key
from accord.flags._provider import AccordFlagProvider
from accord.flags._store import FlagStore
from accord.storage._flags import FlagChange, FlagRecord, FlagValue


class Flags:
    """Kill switches, rollouts and shadow mode of every tenant, evaluated through OpenFeature.

    Each instance registers its own :class:`AccordFlagProvider` under a domain of its own, so
    two Accord instances in one process never see each other's flags. Changes made through
    :meth:`set` are seen at once by this instance; changes made elsewhere (another process, the
    CLI) are seen after :meth:`observe` reports the new version, or within ``refresh_seconds``.

    Args:
        store: where the flags are stored.
        refresh_seconds: how stale flags may get when nobody calls :meth:`observe`
            (0: check the version at every evaluation).
    """

    def __init__(self, store: FlagStore, *, refresh_seconds: float = 1.0) -> None:
        self.store = store
        self.provider = AccordFlagProvider(store, refresh_seconds=refresh_seconds)
        self.domain = f"accord.flags.{uuid.uuid4().hex}"
        api.set_provider_and_wait(self.provider, domain=self.domain)
        self.client: OpenFeatureClient = api.get_client(self.domain)
        self._closed = False

    def set(
        self, tenant: str, key: str, value: FlagValue, *, actor: str, reason: str = ""
    ) -> FlagRecord:
        """Set a flag (see :meth:`FlagStore.set`); this instance sees the change at once."""
        record = self.store.set(tenant, key, value, actor=actor, reason=reason)
        self.provider.observe(tenant, record.version)
        return record

    def get(self, tenant: str, key: str) -> FlagRecord | None:
        """The stored flag, or None when it was never set."""
        return self.store.get(tenant, key)

    def history(self, tenant: str, key: str | None = None) -> builtins.list[FlagChange]:
        """Every change of the tenant's flags (or of one key), oldest first."""
        return self.store.history(tenant, key)

    def observe(self, tenant: str, version: int) -> None:
        """Report the tenant's flag version, read by the caller in its own transaction."""
        self.provider.observe(tenant, version)

    def is_enabled(self, tenant: str, key: str) -> bool:
        """Whether a boolean flag is on for the tenant, evaluated through the OpenFeature client.

        A kill switch never set is on; shadow mode never set is off.

        Raises:
            InputError: the key is malformed or names a rollout (not a boolean).
            ConfigurationError: this instance was closed.
        """
        parsed = parse_flag_key(key)
        if not parsed.is_boolean:
            raise InputError(
                f"flag {key} is a rollout percentage, not on or off",
                hint="read rollouts with flags.client.get_integer_value(key, default, context)",
            )
        self._check_open()
        # Loading the table here lets a database failure surface as an error instead of the
        # SDK's fallback to the default (which would read as "enabled").
        self.provider.table(tenant)
        return self._evaluate(tenant, parsed)

    def kill_switch(
        self,
        tenant: str,
        *,
        capability: str | None,
        journey: str | None = None,
        channel: str | None = None,
        agent: str | None = None,
    ) -> str | None:
        """The first switched-off kill switch among the given ones, or None if all are on.

        Checked in the order capability, journey, channel, agent. The tenant's loaded table
        says in one lookup whether any kill switch is off; only switched-off candidates are
        then evaluated through the OpenFeature client, which keeps the usual all-clear call to
        about a microsecond (an evaluation through the SDK costs about ten).

        Raises:
            ConfigurationError: this instance was closed.
        """
        self._check_open()
        off = self.provider.table(tenant).switched_off
        if not off:
            return None
        for kind, name in (
            ("capability", capability),
            ("journey", journey),
            ("channel", channel),
            ("agent", agent),
        ):
            if name is None:
                continue
            key = f"{kind}:{name}"
            if key in off and not self._evaluate(tenant, parse_flag_key(key)):
                return key
        return None

    def list(self, tenant: str) -> builtins.list[FlagRecord]:
        """All flags of the tenant, by key."""
        return self.store.list(tenant)

    def close(self) -> None:
        """Unbind this instance's OpenFeature domain and drop its provider's tables.

        The SDK cannot forget a domain, so the domain is bound to a no-op provider (which
        answers every flag with its default) and this instance refuses further evaluations.
        """
        if self._closed:
            return
        self._closed = True
        api.set_provider_and_wait(NoOpProvider(), domain=self.domain)
        self.provider.shutdown()

    def _evaluate(self, tenant: str, key: FlagKey) -> bool:
        return self.client.get_boolean_value(
            str(key), key.default is True, EvaluationContext(targeting_key=tenant)
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(
                "these flags were closed with their Accord instance",
                hint="evaluate flags through a running Accord instance",
            )
