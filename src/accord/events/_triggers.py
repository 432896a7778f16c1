"""Triggers: inbound CloudEvents that start runs or signal waiting ones.

:meth:`TriggerIngest.ingest` takes one checked event through four steps:

1. *de-duplicate* by (tenant, source, id): an event already recorded returns its first outcome
   and does nothing (a refused one may be sent again);
2. *match* the triggers of the tenant's deployed journeys (latest versions) by ``type``, then
   ``source``, then the ``when`` filter;
3. *evaluate* every matching trigger's expressions before anything happens, so that a bad event
   is refused whole;
4. *act*: start a run (its idempotency key defaults to the event's source and id) or signal by
   correlation key (parked when no run waits yet). The ``inbound_events`` row commits in the same
   transaction as the first action, so a duplicate racing it fails there and is told apart.

An event no trigger matches is recorded as ``ignored``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from accord.core import TenantId, digest
from accord.errors import AccordError, ConcurrencyError, EventInvalid, InputError
from accord.events._inbound import InboundEvent
from accord.journeys import (
    CompiledJourney,
    CompiledMapping,
    Expression,
    Trigger,
    compile_expression,
    compile_mapping,
)
from accord.runtime import Runtime, SignalResult, StartResult
from accord.storage import inbound, journeys
from accord.storage._inbound import InboundRecord, InboundStatus

OutcomeStatus = Literal["started", "signalled", "parked", "duplicate", "ignored", "refused"]
Channel = Literal["http", "nats", "cli"]

_MAX_KEY = 256
_STORED: dict[OutcomeStatus, InboundStatus] = {
    "started": "started",
    "signalled": "signalled",
    "parked": "parked",
    "ignored": "ignored",
    "refused": "refused",
}


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What an inbound event did.

    ``status`` is ``started`` (``run_ids`` holds the run), ``signalled`` (the runs it reached),
    ``parked`` (no run waits yet), ``ignored`` (no trigger matched), ``refused`` (``error``
    says why) or ``duplicate`` (``first`` is the first delivery's status; nothing was done).
    ``actions`` lists each matching trigger's effect.
    """

    status: OutcomeStatus
    source: str
    event_id: str
    type: str
    run_ids: tuple[str, ...] = ()
    actions: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    first: InboundStatus | None = None

    @property
    def run_id(self) -> str | None:
        """The run the event started or signalled first, if any."""
        return self.run_ids[0] if self.run_ids else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "source": self.source,
            "id": self.event_id,
            "type": self.type,
        }
        if self.run_ids:
            out["run_id"] = self.run_ids[0]
            out["run_ids"] = list(self.run_ids)
        if self.actions:
            out["actions"] = list(self.actions)
        if self.error is not None:
            out["error"] = self.error
        if self.first is not None:
            out["first"] = self.first
        return out


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    """One trigger of one deployed journey version, its expressions compiled."""

    journey: str
    version: int
    index: int
    spec: Trigger
    when: Expression | None
    subject: Expression | None = None
    input: CompiledMapping | None = None
    idempotency: Expression | None = None
    correlation: Expression | None = None
    reads_data: bool = False


def compile_triggers(journey: CompiledJourney) -> list[CompiledTrigger]:
    """The journey's triggers, compiled (lint has checked that they compile)."""
    out = []
    for index, trigger in enumerate(journey.spec.triggers):
        sources = [trigger.when]
        when = None if trigger.when is None else compile_expression(trigger.when)
        compiled = CompiledTrigger(journey.name, journey.version, index, trigger, when)
        if trigger.start is not None:
            start = trigger.start
            sources += [start.subject, start.idempotency, *_leaves(start.input)]
            compiled = CompiledTrigger(
                journey.name,
                journey.version,
                index,
                trigger,
                when,
                subject=None if start.subject is None else compile_expression(start.subject),
                input=compile_mapping(start.input),
                idempotency=(
                    None if start.idempotency is None else compile_expression(start.idempotency)
                ),
            )
        elif trigger.signal is not None:
            sources.append(trigger.signal.correlation)
            compiled = CompiledTrigger(
                journey.name,
                journey.version,
                index,
                trigger,
                when,
                correlation=compile_expression(trigger.signal.correlation),
            )
        reads_data = any("data" in compile_expression(s).names for s in sources if s)
        out.append(_with_reads(compiled, reads_data))
    return out


def _with_reads(trigger: CompiledTrigger, reads_data: bool) -> CompiledTrigger:
    return CompiledTrigger(
        trigger.journey,
        trigger.version,
        trigger.index,
        trigger.spec,
        trigger.when,
        trigger.subject,
        trigger.input,
        trigger.idempotency,
        trigger.correlation,
        reads_data,
    )


def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _leaves(v)]
    return []


@dataclass(frozen=True, slots=True)
class _Start:
    trigger: CompiledTrigger
    subject: str | None
    input: dict[str, Any]
    key: str


@dataclass(frozen=True, slots=True)
class _Signal:
    trigger: CompiledTrigger
    name: str
    correlation: str
    payload: dict[str, Any]


_Action = _Start | _Signal
_Write = Callable[[Connection, dict[str, Any], OutcomeStatus], None]


@dataclass
class _Index:
    versions: dict[str, int]
    by_type: dict[str, list[CompiledTrigger]] = field(default_factory=dict)


class TriggerIngest:
    """Takes inbound events to the triggers of deployed journeys (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.Lock()

    def ingest(self, tenant: str, event: InboundEvent, *, channel: Channel) -> IngestOutcome:
        """Act on one event and record what it did (idempotent by source and id).

        An event a trigger cannot act on (data of the wrong shape, an expression that fails,
        an input the journey refuses) is recorded and answered as ``refused``.
        """
        outcome = self._ingest_once(tenant, event, channel)
        self._count(channel, outcome)
        return outcome

    def _count(self, channel: Channel, outcome: IngestOutcome) -> None:
        received = self._runtime.telemetry.metrics.events_received
        received.labels(channel=channel, result=outcome.status).inc()

    def _ingest_once(self, tenant: str, event: InboundEvent, channel: Channel) -> IngestOutcome:
        for _ in range(4):
            try:
                return self._ingest(TenantId(tenant), event, channel)
            except IntegrityError:
                # a concurrent delivery of this event, or of one sharing a run's idempotency
                # key, committed first; look again
                continue
        found = self._recorded(tenant, event)
        if found is None:
            raise ConcurrencyError(
                f"event {event.id!r} from {event.source!r} kept colliding with concurrent "
                "deliveries and was not recorded",
                hint="send it again",
            )
        return _duplicate(event, found)

    def refuse(
        self,
        tenant: str,
        *,
        source: str,
        event_id: str,
        type: str,
        channel: Channel,
        error: str,
    ) -> IngestOutcome:
        """Record a message that could not be read as an event (``refused``), once."""
        outcome = IngestOutcome("refused", source, event_id, type, error=error)
        try:
            with self._runtime.db.transaction() as connection:
                self._record(connection, tenant, outcome, channel, {"error": error})
        except IntegrityError:
            found = self._recorded(tenant, InboundEvent(event_id, source, type))
            if found is None:
                raise
            outcome = IngestOutcome(
                "duplicate", source, event_id, type, error=error, first=found.status
            )
        self._count(channel, outcome)
        return outcome

    def received(
        self, tenant: str, *, status: InboundStatus | None = None, limit: int = 50
    ) -> list[InboundRecord]:
        """Recorded inbound events, newest first."""
        with self._runtime.db.read() as connection:
            return inbound.list_inbound(connection, tenant, status=status, limit=limit)

    def _recorded(self, tenant: str, event: InboundEvent) -> InboundRecord | None:
        with self._runtime.db.read() as connection:
            return inbound.get_inbound(connection, tenant, event.source, event.id)

    def _ingest(self, tenant: TenantId, event: InboundEvent, channel: Channel) -> IngestOutcome:
        found = self._recorded(tenant, event)
        if found is not None and found.status != "refused":
            return _duplicate(event, found)
        try:
            planned = [self._plan(t, event) for t in self._matching(tenant, event)]
        except AccordError as exc:
            return self._refused(tenant, event, channel, exc, done=())
        actions = [a for a in planned if a is not None]
        if not actions:
            outcome = IngestOutcome("ignored", event.source, event.id, event.type)
            with self._runtime.db.transaction() as connection:
                self._record(connection, tenant, outcome, channel, {"reason": "no trigger matched"})
            return outcome
        done: list[dict[str, Any]] = []
        run_ids: list[str] = []
        first: OutcomeStatus | None = None
        seen_signals: set[tuple[str, str]] = set()
        for action in actions:
            if isinstance(action, _Signal):
                if (action.name, action.correlation) in seen_signals:
                    continue
                seen_signals.add((action.name, action.correlation))

            def write(connection: Connection, entry: dict[str, Any], status: OutcomeStatus) -> None:
                detail = {"actions": [*done, entry]}
                if not done:
                    outcome = IngestOutcome(status, event.source, event.id, event.type)
                    self._record(connection, tenant, outcome, channel, detail)
                else:
                    inbound.update_detail(connection, tenant, event.source, event.id, detail)

            try:
                entry, status, reached = self._act(tenant, action, write)
            except InputError as exc:
                if not done:
                    return self._refused(tenant, event, channel, exc, done=())
                done.append({**_describe(action), "error": exc.message})
                with self._runtime.db.transaction() as connection:
                    detail = {"actions": done}
                    inbound.update_detail(connection, tenant, event.source, event.id, detail)
                continue
            done.append(entry)
            run_ids.extend(r for r in reached if r not in run_ids)
            first = first or status
        assert first is not None
        return IngestOutcome(first, event.source, event.id, event.type, tuple(run_ids), tuple(done))

    def _act(
        self, tenant: TenantId, action: _Action, write: _Write
    ) -> tuple[dict[str, Any], OutcomeStatus, tuple[str, ...]]:
        described = _describe(action)
        if isinstance(action, _Start):
            started: list[StartResult] = []

            def record_start(connection: Connection, result: StartResult) -> None:
                started.append(result)
                entry = {**described, "run_id": result.run_id, "created": result.created}
                write(connection, entry, "started")

            result = self._runtime.start(
                tenant,
                action.trigger.journey,
                input=action.input,
                subject=action.subject,
                idempotency_key=action.key,
                within=record_start,
            )
            return (
                {**described, "run_id": result.run_id, "created": result.created},
                "started",
                (result.run_id,),
            )

        def record_signal(connection: Connection, result: SignalResult) -> None:
            write(connection, _signal_entry(described, result), _signal_status(result))

        signalled = self._runtime.signal(
            tenant,
            action.name,
            correlation_key=action.correlation,
            payload=action.payload,
            within=record_signal,
        )
        return (
            _signal_entry(described, signalled),
            _signal_status(signalled),
            signalled.run_ids,
        )

    def _refused(
        self,
        tenant: TenantId,
        event: InboundEvent,
        channel: Channel,
        exc: AccordError,
        *,
        done: tuple[dict[str, Any], ...],
    ) -> IngestOutcome:
        message = exc.message if exc.hint is None else f"{exc.message} ({exc.hint})"
        outcome = IngestOutcome("refused", event.source, event.id, event.type, error=message)
        with self._runtime.db.transaction() as connection:
            detail = {"error": message, "code": str(exc.code), "actions": list(done)}
            self._record(connection, tenant, outcome, channel, detail)
        return outcome

    def _record(
        self,
        connection: Connection,
        tenant: str,
        outcome: IngestOutcome,
        channel: Channel,
        detail: dict[str, Any],
    ) -> None:
        status = _STORED[outcome.status]
        inbound.discard_refused(connection, tenant, outcome.source, outcome.event_id)
        inbound.insert_inbound(
            connection,
            InboundRecord(
                tenant_id=tenant,
                source=outcome.source,
                event_id=outcome.event_id,
                type=outcome.type,
                channel=channel,
                status=status,
                detail=detail,
                received_at=self._runtime.clock.now(),
            ),
        )

    def _matching(self, tenant: TenantId, event: InboundEvent) -> list[CompiledTrigger]:
        index = self._index(tenant)
        return [
            t
            for t in index.by_type.get(event.type, [])
            if t.spec.source is None or t.spec.source == event.source
        ]

    def _index(self, tenant: TenantId) -> _Index:
        with self._runtime.db.read() as connection:
            versions = journeys.latest_versions(connection, tenant)
        with self._lock:
            cached = self._indexes.get(tenant)
            if cached is not None and cached.versions == versions:
                return cached
        index = _Index(versions)
        for name in sorted(versions):
            compiled = self._runtime.catalog.get(tenant, name, versions[name])
            for trigger in compile_triggers(compiled):
                index.by_type.setdefault(trigger.spec.event, []).append(trigger)
        with self._lock:
            self._indexes[tenant] = index
        return index

    def _plan(self, trigger: CompiledTrigger, event: InboundEvent) -> _Action | None:
        where = f"trigger {trigger.index} of journey {trigger.journey!r}"
        if trigger.reads_data and not isinstance(event.data, dict):
            kind = "no data" if event.data is None else f"data of type {type(event.data).__name__}"
            raise EventInvalid(
                f"event {event.id!r} has {kind}, but {where} reads fields of data",
                hint="send the data as a JSON object (datacontenttype application/json)",
                attribute="data",
            )
        scope = {"event": event.attributes(), "data": event.data}
        try:
            if trigger.when is not None:
                matched = trigger.when.evaluate(scope)
                if not isinstance(matched, bool):
                    raise EventInvalid(
                        f"the when filter of {where} gave {matched!r}, not true or false",
                        hint="make the filter a comparison",
                    )
                if not matched:
                    return None
            if trigger.input is not None:
                return self._plan_start(trigger, event, scope, where)
            assert trigger.correlation is not None and trigger.spec.signal is not None
            correlation = trigger.correlation.evaluate(scope)
        except AccordError as exc:
            if isinstance(exc, EventInvalid):
                raise
            raise EventInvalid(
                f"{where} cannot read event {event.id!r}: {exc.message}", hint=exc.hint
            ) from exc
        if not isinstance(correlation, str | int) or isinstance(correlation, bool):
            raise EventInvalid(
                f"the correlation of {where} gave {correlation!r}; a correlation key is a "
                "string or an integer",
                hint="correlate on an identifier, e.g. data.order_id",
            )
        payload = event.data if isinstance(event.data, dict) else {}
        return _Signal(trigger, trigger.spec.signal.name, str(correlation), payload)

    def _plan_start(
        self, trigger: CompiledTrigger, event: InboundEvent, scope: dict[str, Any], where: str
    ) -> _Start:
        assert trigger.input is not None
        data = trigger.input.evaluate(scope)
        subject = None if trigger.subject is None else trigger.subject.evaluate(scope)
        if subject is not None and not isinstance(subject, str):
            raise EventInvalid(
                f"the subject of {where} gave {subject!r}, not a string",
                hint="map the subject to an identifier, e.g. data.customer_id",
            )
        if trigger.idempotency is not None:
            custom = trigger.idempotency.evaluate(scope)
            key = f"trigger:{trigger.journey}:{custom}"
        else:
            key = f"trigger:{trigger.journey}:{event.source}:{event.id}"
        if len(key) > _MAX_KEY:
            key = f"trigger:{trigger.journey}:{digest([event.source, event.id, key])}"
        return _Start(trigger, subject, data, key)


def _describe(action: _Action) -> dict[str, Any]:
    base = {
        "journey": action.trigger.journey,
        "version": action.trigger.version,
        "trigger": action.trigger.index,
    }
    if isinstance(action, _Start):
        return {**base, "action": "start"}
    return {**base, "action": "signal", "name": action.name, "correlation": action.correlation}


def _signal_entry(described: dict[str, Any], result: SignalResult) -> dict[str, Any]:
    return {
        **described,
        "signal_ids": list(result.signal_ids),
        "run_ids": list(result.run_ids),
        "parked": result.parked,
    }


def _signal_status(result: SignalResult) -> OutcomeStatus:
    return "parked" if result.parked else "signalled"


def _duplicate(event: InboundEvent, found: InboundRecord) -> IngestOutcome:
    actions = tuple(found.detail.get("actions", ()))
    run_ids: list[str] = []
    for action in actions:
        for run_id in [action.get("run_id"), *action.get("run_ids", [])]:
            if run_id and run_id not in run_ids:
                run_ids.append(run_id)
    return IngestOutcome(
        "duplicate",
        event.source,
        event.id,
        event.type,
        tuple(run_ids),
        actions,
        error=found.detail.get("error"),
        first=found.status,
    )
