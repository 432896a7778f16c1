"""Accord's OpenFeature provider: flags of the tenant named by the targeting key, from memory."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from accord.errors import ConfigurationError
from accord.flags._store import FlagStore, FlagTable
from accord.storage._flags import FlagRecord, FlagValue

T = TypeVar("T")


class AccordFlagProvider(AbstractProvider):
    """Resolves flags stored by a :class:`FlagStore`, one in-memory table per tenant.

    The tenant is the evaluation context's ``targeting_key`` (``default_tenant`` without one).
    A tenant's table is read from the database at its first evaluation and again only when the
    tenant's flag version changes. The version is learnt in one of two ways:

    * its owner tells it with :meth:`observe` (the gateway reads the version in the transaction
      it reads everything else in), or
    * the provider asks the database, at most once every ``refresh_seconds`` per tenant, timed
      by the store's clock; 0 asks at every evaluation. :meth:`observe` counts as an answer.

    A stored flag resolves with reason ``STATIC`` and its version in ``flag_metadata``; a flag
    never set resolves to the caller's default with reason ``DEFAULT``; a flag asked for as the
    wrong type (a kill switch as an integer, a rollout as a boolean) yields ``TYPE_MISMATCH``, and
    the SDK returns the default. Rollouts also resolve as floats.

    Args:
        store: where the flags are stored.
        refresh_seconds: how stale a table may get when nobody calls :meth:`observe`.
        default_tenant: the tenant of evaluations without a targeting key.
    """

    def __init__(
        self, store: FlagStore, *, refresh_seconds: float = 1.0, default_tenant: str = "default"
    ) -> None:
        super().__init__()
        if refresh_seconds < 0:
            raise ConfigurationError(
                f"refresh_seconds must be 0 or more, got {refresh_seconds}",
                hint="use 0 to check the flag version at every evaluation, or e.g. 1.0",
            )
        self._store = store
        self._clock = store.clock
        self._refresh_seconds = refresh_seconds
        self._default_tenant = default_tenant
        self._tables: dict[str, FlagTable] = {}
        self._checked_at: dict[str, float] = {}
        self._stale: set[str] = set()
        self._lock = threading.Lock()
        self._metadata = Metadata(name="accord")

    def get_metadata(self) -> Metadata:
        return self._metadata

    def observe(self, tenant: str, version: int) -> None:
        """Tell the provider the tenant's current flag version (read by the caller).

        A version other than the loaded one makes the next evaluation reload the table; an equal
        one spares the next periodic check.
        """
        self._checked_at[tenant] = self._clock.now()
        table = self._tables.get(tenant)
        if table is not None and table.version != version:
            self._stale.add(tenant)

    def table(self, tenant: str) -> FlagTable:
        """The tenant's flags, reloaded first if they changed (or may have)."""
        table = self._tables.get(tenant)
        if table is None or tenant in self._stale or self._due(tenant, self._clock.now()):
            return self._refresh(tenant, table)
        return table

    def shutdown(self) -> None:
        """Forget every loaded table."""
        with self._lock:
            self._tables.clear()
            self._checked_at.clear()
            self._stale.clear()

    def _due(self, tenant: str, now: float) -> bool:
        elapsed = now - self._checked_at.get(tenant, 0.0)
        return elapsed >= self._refresh_seconds or elapsed < 0

    def _refresh(self, tenant: str, seen: FlagTable | None) -> FlagTable:
        with self._lock:
            current = self._tables.get(tenant)
            if current is not None and tenant not in self._stale:
                now = self._clock.now()
                if current is not seen or not self._due(tenant, now):
                    return current
                self._checked_at[tenant] = now
                if self._store.version(tenant) == current.version:
                    return current
            self._stale.discard(tenant)
            now = self._clock.now()
            table = self._store.load(tenant)
            self._tables[tenant] = table
            self._checked_at[tenant] = now
            return table

    def _record(self, flag_key: str, context: EvaluationContext | None) -> FlagRecord | None:
        tenant = (context.targeting_key if context is not None else None) or self._default_tenant
        return self.table(tenant).records.get(flag_key)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        record = self._record(flag_key, evaluation_context)
        if record is None:
            return _default(default_value)
        if isinstance(record.value, bool):
            return _found(record, record.value)
        return _mismatch(record, "a boolean", default_value)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        record = self._record(flag_key, evaluation_context)
        if record is None:
            return _default(default_value)
        if not isinstance(record.value, bool):
            return _found(record, record.value)
        return _mismatch(record, "an integer", default_value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        record = self._record(flag_key, evaluation_context)
        if record is None:
            return _default(default_value)
        if not isinstance(record.value, bool):
            return _found(record, float(record.value))
        return _mismatch(record, "a number", default_value)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        record = self._record(flag_key, evaluation_context)
        if record is None:
            return _default(default_value)
        return _mismatch(record, "a string", default_value)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        record = self._record(flag_key, evaluation_context)
        if record is None:
            return _default(default_value)
        return _mismatch(record, "an object", default_value)


def _default(value: T) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(value=value, reason=Reason.DEFAULT)


def _found(record: FlagRecord, value: T) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=value, reason=Reason.STATIC, flag_metadata={"version": record.version}
    )


def _mismatch(record: FlagRecord, wanted: str, default: T) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default,
        reason=Reason.ERROR,
        error_code=ErrorCode.TYPE_MISMATCH,
        error_message=(
            f"flag {record.key} of tenant {record.tenant_id!r} holds {_describe(record.value)}, "
            f"not {wanted}"
        ),
    )


def _describe(value: FlagValue) -> str:
    return "a boolean" if isinstance(value, bool) else "an integer"
