"""The runtime: start runs, signal and cancel them, read them back, and make workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from accord.audit import Ledger, entries
from accord.core import Clock, IdGenerator, TenantId, digest
from accord.errors import (
    DeadLetterConflict,
    DeadLetterNotFound,
    IdempotencyConflict,
    InputError,
    ResidencyRefused,
    RunFinished,
    RunNotFound,
    SubjectErased,
)
from accord.gateway import Gateway, decide_residency
from accord.journeys import CompiledJourney
from accord.reviews import ConfirmationSigner, ReviewInbox
from accord.runtime._advance import AdvanceDeps, initial_state
from accord.runtime._agents import AgentServices
from accord.runtime._catalog import JourneyCatalog
from accord.runtime._offers import OfferServices
from accord.runtime._state import RunState
from accord.runtime._worker import FaultHook, Worker
from accord.storage import (
    TERMINAL,
    Database,
    DeadLetterRecord,
    DecisionRecord,
    HistoryEntry,
    HistoryEvent,
    NewDecision,
    NewEvent,
    NewRun,
    NewTimer,
    RunRecord,
    SignalRecord,
    TransitionWrite,
    ledger,
    runs,
    signals,
)
from accord.storage import dead_letters as stored_letters
from accord.storage import decisions as stored_decisions
from accord.storage import reviews as stored_reviews
from accord.telemetry import Telemetry, new_traceparent, span, traceparent_of


@dataclass(frozen=True, slots=True)
class StartResult:
    """The run a start request refers to; ``created`` is False when an idempotent replay."""

    run_id: str
    created: bool
    journey: str
    version: int


@dataclass(frozen=True, slots=True)
class SignalResult:
    """Where a signal went: a run's inbox, several runs, or parked for a later wait."""

    signal_ids: tuple[str, ...]
    run_ids: tuple[str, ...]
    parked: bool = False


@dataclass(frozen=True, slots=True)
class Position:
    """Where one path of a run stands."""

    block: str
    status: str
    waiting_for: str | None
    until: float | None


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as people and APIs see it."""

    run_id: str
    tenant_id: str
    journey: str
    version: int
    subject_id: str | None
    status: str
    outcome: str | None
    error: dict[str, Any] | None
    input: dict[str, Any]
    steps: dict[str, Any]
    output: Any
    positions: tuple[Position, ...]
    transitions: int
    created_at: float
    updated_at: float
    ended_at: float | None
    parent_run_id: str | None

    @classmethod
    def from_record(cls, record: RunRecord) -> RunView:
        state = RunState.loads(record.state)
        positions = []
        for token in state.tokens.values():
            waiting_for: str | None = None
            until = None
            if token.wait is not None:
                waiting_for = token.wait.kind
                if token.wait.name:
                    waiting_for += f":{token.wait.name}"
                until = token.wait.at
            positions.append(Position(token.block, token.status, waiting_for, until))
        return cls(
            run_id=record.run_id,
            tenant_id=record.tenant_id,
            journey=record.journey_name,
            version=record.journey_version,
            subject_id=record.subject_id,
            status=record.status,
            outcome=record.outcome,
            error=record.error,
            input=record.input,
            steps=state.steps,
            output=state.output,
            positions=tuple(positions),
            transitions=record.seq,
            created_at=record.created_at,
            updated_at=record.updated_at,
            ended_at=record.ended_at,
            parent_run_id=record.parent_run_id,
        )


def _decision_visit(record: RunRecord, block: str) -> int:
    """The visit a decision for ``block`` answers, so a late duplicate cannot decide a later one.

    Raises:
        InputError: the run is not waiting for a decision there, or several map items are.
    """
    state = RunState.loads(record.state)
    waiting = [
        token
        for token in state.tokens.values()
        if token.wait is not None
        and token.wait.kind == "human"
        and block in (token.block, f"{token.scope}/{token.block}")
    ]
    if not waiting:
        humans = [
            f"{t.scope}/{t.block}" if t.scope else t.block
            for t in state.tokens.values()
            if t.wait is not None and t.wait.kind == "human"
        ]
        raise InputError(
            f"run {record.run_id} is not waiting for a decision at {block!r}; nothing was stored",
            hint="it waits for decisions at: " + ", ".join(humans)
            if humans
            else "it waits for no decision now; 'accord run show' tells where it is",
        )
    if len(waiting) > 1:
        raise InputError(
            f"{len(waiting)} items of run {record.run_id} wait for a decision at {block!r}",
            hint="address one of them: " + ", ".join(f"{t.scope}/{t.block}" for t in waiting),
        )
    return waiting[0].visit


MAX_NAME = 128
MAX_CORRELATION = 256
MAX_SUBJECT = 128


def _refuse_erased(connection: Connection, tenant: TenantId, subject: str) -> None:
    key = ledger.subject_key_rows(connection, tenant, [subject]).get(subject)
    if key is not None and key.wrapped_key is None:
        raise SubjectErased(
            f"subject {subject!r} was erased; no new run may hold their data",
            hint="a returning customer gets a new subject id",
        )


def _replay(found: RunRecord, key: str, request: str) -> StartResult:
    """The answer to a start whose idempotency key is already taken."""
    if found.request_digest != request:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for run {found.run_id} with a "
            "different request",
            hint="use a new key for a new request, or resend the original request",
        )
    return StartResult(found.run_id, False, found.journey_name, found.journey_version)


class Runtime:
    """Durable execution of journeys on one database.

    Args:
        db: the database (SQLite embedded, or PostgreSQL shared by many workers).
        gateway: the one path to capabilities.
        clock, ids: time and identity sources; tests inject deterministic ones.
        lease_seconds: how long a claimed run stays a worker's without a commit.
        commit_window: consecutive idempotent tasks of a run share one commit while they
            finish within this many seconds; 0 commits after every task.
        fencing: reject commits from workers whose lease is gone. Only tests that demonstrate
            what fencing prevents turn it off.
        reviews: the review inbox whose SLAs workers keep (escalating overdue items).
        confirmations: what signs the tokens ``confirm`` blocks send to subjects.
    """

    def __init__(
        self,
        db: Database,
        gateway: Gateway,
        *,
        clock: Clock,
        ids: IdGenerator,
        ledger: Ledger,
        lease_seconds: float = 30.0,
        commit_window: float = 0.005,
        fencing: bool = True,
        reviews: ReviewInbox | None = None,
        confirmations: ConfirmationSigner | None = None,
        agents: AgentServices | None = None,
        offers: OfferServices | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.db = db
        self.telemetry = telemetry or Telemetry()
        self.agents = agents
        self.reviews = reviews
        self.gateway = gateway
        self.clock = clock
        self.ids = ids
        self.ledger = ledger
        self.lease_seconds = lease_seconds
        self.fencing = fencing
        self.catalog = JourneyCatalog(
            db,
            gateway.capabilities,
            clock,
            ledger,
            agent_contract=agents.catalog.contract if agents is not None else None,
        )
        self.deps = AdvanceDeps(
            gateway=gateway,
            new_id=ids.new_id,
            random=ids.random,
            pending_signals=self._pending_signals,
            parked_signals=self._parked_signals,
            resolve_journey=self.catalog.get,
            run_decisions=self._run_decisions,
            queue_sla=self._queue_sla,
            sign_confirmation=confirmations.sign if confirmations is not None else None,
            intent_exists=self._intent_exists,
            record_intent=self._record_intent,
            agents=agents,
            offers=offers,
            commit_window=commit_window,
            telemetry=self.telemetry,
        )

    def _intent_exists(self, tenant: str, key: str) -> bool:
        with self.db.read() as connection:
            return stored_letters.has_intent(connection, tenant, key)

    def _record_intent(self, tenant: str, key: str, run_id: str, capability: str) -> None:
        with self.db.transaction() as connection:
            stored_letters.put_intent(
                connection, tenant, key, run_id=run_id, capability=capability, at=self.clock.now()
            )

    def _pending_signals(self, tenant: str, run_id: str) -> list[SignalRecord]:
        with self.db.read() as connection:
            return signals.pending_signals(connection, tenant, run_id)

    def _run_decisions(self, tenant: str, run_id: str) -> list[DecisionRecord]:
        with self.db.read() as connection:
            return stored_decisions.for_run(connection, tenant, run_id)

    def _queue_sla(self, tenant: str, queue: str) -> float | None:
        with self.db.read() as connection:
            found = stored_reviews.get_queue(connection, tenant, queue)
        return None if found is None else found.sla_seconds

    def _parked_signals(self, tenant: str, name: str, key: str) -> list[SignalRecord]:
        with self.db.read() as connection:
            return signals.parked_signals(connection, tenant, name, key)

    def start(
        self,
        tenant: TenantId,
        journey: str,
        *,
        input: dict[str, Any] | None = None,
        subject: str | None = None,
        version: int | None = None,
        idempotency_key: str | None = None,
        within: Callable[[Connection, StartResult], None] | None = None,
    ) -> StartResult:
        """Start a run of a deployed journey (its latest version unless ``version`` is given).

        With an ``idempotency_key``, repeating the same request returns the first run
        (``created=False``); the same key with a different request is refused.

        ``within`` is called with the result inside the start's transaction, before it commits,
        so what it writes commits or rolls back with the run; when it fails, nothing is stored
        and its error (an ``IntegrityError`` too) reaches the caller.

        Raises:
            JourneyNotFound, ContractViolation, IdempotencyConflict: nothing was started.
        """
        with span(
            self.telemetry.tracer,
            f"run {journey}",
            attributes={"accord.journey": journey, "accord.tenant": tenant},
        ) as current:
            result = self._start(
                tenant,
                journey,
                input=input,
                subject=subject,
                version=version,
                idempotency_key=idempotency_key,
                within=within,
                traceparent=traceparent_of() or new_traceparent(),
            )
            current.set_attribute("accord.run_id", result.run_id)
            current.set_attribute("accord.journey_version", result.version)
        if result.created:
            self.telemetry.metrics.runs_started.labels(journey=result.journey).inc()
        return result

    def _start(
        self,
        tenant: TenantId,
        journey: str,
        *,
        input: dict[str, Any] | None,
        subject: str | None,
        version: int | None,
        idempotency_key: str | None,
        within: Callable[[Connection, StartResult], None] | None,
        traceparent: str | None,
    ) -> StartResult:
        if subject is not None and not 0 < len(subject) <= MAX_SUBJECT:
            raise InputError(
                f"a subject id has 1 to {MAX_SUBJECT} characters, got {len(subject)}",
                hint="use the subject's identifier, not its data",
            )
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_CORRELATION:
            raise InputError(
                f"an idempotency key has 1 to {MAX_CORRELATION} characters, "
                f"got {len(idempotency_key)}",
                hint="use a request id or a hash of the request",
            )
        request: str | None = None
        residency = self._residency(tenant, journey, version, subject)
        try:
            with self.db.transaction() as connection:
                compiled = self.catalog.get(tenant, journey, version, connection=connection)
                if subject is not None:
                    _refuse_erased(connection, tenant, subject)
                data = compiled.validate_input(input or {})
                request = digest([journey, version, data, subject])
                if idempotency_key is not None:
                    found = runs.find_run_by_key(connection, tenant, idempotency_key)
                    if found is not None:
                        replayed = _replay(found, idempotency_key, request)
                        if within is not None:
                            within(connection, replayed)
                        return replayed
                run_id = self.ids.new_id("run")
                new_run = self._new_run(
                    tenant, compiled, run_id, data, subject, idempotency_key, request, traceparent
                )
                runs.insert_run(
                    connection,
                    new_run,
                    [
                        NewEvent(
                            self.ids.new_id("evt"),
                            "run.started",
                            {
                                "run_id": run_id,
                                "journey": compiled.name,
                                "version": compiled.version,
                            },
                        )
                    ],
                )
                recorded = [
                    entries.run_transition(
                        run_id=run_id,
                        subject_id=subject,
                        seq=1,
                        event=new_run.started,
                        at=new_run.at,
                        worker=None,
                        run_input=data,
                    )
                ]
                if residency is not None:
                    allowed = replace(residency, run_id=run_id)
                    stored_decisions.insert_decisions(connection, tenant, [allowed])
                    recorded.extend(entries.gateway_decision(allowed))
                self.ledger.append(connection, tenant, recorded)
                if within is not None:
                    within(connection, StartResult(run_id, True, compiled.name, compiled.version))
                self.db.notify_ready(connection)
        except IntegrityError:
            if idempotency_key is None or request is None or within is not None:
                raise
            with self.db.read() as connection:
                found = runs.find_run_by_key(connection, tenant, idempotency_key)
            if found is None:
                raise
            return _replay(found, idempotency_key, request)
        return StartResult(run_id, True, compiled.name, compiled.version)

    def _residency(
        self, tenant: TenantId, journey: str, version: int | None, subject: str | None
    ) -> NewDecision | None:
        """Ask the policy whether this deployment may run ``journey`` for ``subject``; the
        decision to record with the run, or None when residency does not apply.

        Raises:
            ResidencyRefused: the policy keeps the subject's data elsewhere; the refusal is
                recorded.
        """
        governance = self.gateway.governance
        if subject is None or governance is None or governance.region is None:
            return None
        compiled = self.catalog.get(tenant, journey, version)
        decision = decide_residency(
            governance,
            tenant,
            subject_id=subject,
            journey=compiled.name,
            purpose=compiled.spec.purpose,
            now=self.clock.now(),
        )
        if decision.record is None or decision.allowed:
            return decision.record
        with self.db.transaction() as connection:
            stored_decisions.insert_decisions(connection, tenant, [decision.record])
            self.ledger.append(connection, tenant, entries.gateway_decision(decision.record))
        raise ResidencyRefused(
            f"journey {compiled.name!r} was not started for subject {subject!r}: "
            f"{decision.message} (decision {decision.record.decision_id})",
            hint="start it on a deployment in the subject's region, or change the policy",
        )

    def _new_run(
        self,
        tenant: TenantId,
        compiled: CompiledJourney,
        run_id: str,
        data: dict[str, Any],
        subject: str | None,
        idempotency_key: str | None,
        request: str,
        traceparent: str | None = None,
    ) -> NewRun:
        return NewRun(
            run_id=run_id,
            tenant_id=tenant,
            journey_name=compiled.name,
            journey_version=compiled.version,
            subject_id=subject,
            input=data,
            state=initial_state(compiled).dumps(),
            idempotency_key=idempotency_key,
            request_digest=request,
            parent_run_id=None,
            parent_token=None,
            at=self.clock.now(),
            started=HistoryEvent(
                "run.started",
                detail={"journey": compiled.name, "version": compiled.version, "subject": subject},
            ),
            traceparent=traceparent,
        )

    def signal(
        self,
        tenant: TenantId,
        name: str,
        *,
        run_id: str | None = None,
        correlation_key: str | None = None,
        payload: dict[str, Any] | None = None,
        kind: Literal["event", "decision"] = "event",
        within: Callable[[Connection, SignalResult], None] | None = None,
    ) -> SignalResult:
        """Deliver an external event or a human decision.

        Address it to one run by ``run_id``, or to whichever runs wait for ``name`` with
        ``correlation_key``; an event for a key nobody waits for yet is parked and consumed by
        the first run that starts waiting for it. ``within`` is called with the result inside
        the signal's transaction, before it commits (as for :meth:`start`).

        Raises:
            RunNotFound: ``run_id`` names no run of this tenant.
            RunFinished: the run has already ended; nothing was stored.
        """
        if (run_id is None) == (correlation_key is None):
            raise InputError(
                "address a signal with exactly one of run_id or correlation_key",
                hint="e.g. --run run_01h... or --correlation order-42",
            )
        payload = payload or {}
        if kind == "decision" and correlation_key is not None:
            raise InputError(
                "a decision is addressed to a run id, not a correlation key",
                hint="pass run_id (CLI: accord run signal RUN BLOCK --decision ...)",
            )
        if len(name) > MAX_NAME or (correlation_key and len(correlation_key) > MAX_CORRELATION):
            raise InputError(
                f"signal names are at most {MAX_NAME} characters and correlation keys at most "
                f"{MAX_CORRELATION}",
                hint="correlate on an identifier such as an order id",
            )
        if kind == "decision" and not isinstance(payload.get("decision"), str):
            raise InputError(
                "a decision needs a 'decision' value, e.g. approve or reject",
                hint='--data \'{"decision": "approve", "by": "ann", "reason": "..."}\'',
            )
        now = self.clock.now()
        with self.db.transaction() as connection:
            subjects: dict[str, str | None] = {}
            if run_id is not None:
                record = self._require_active(connection, tenant, run_id, what="the signal")
                if kind == "decision":
                    payload = {**payload, "visit": _decision_visit(record, name)}
                targets = [run_id]
                subjects[run_id] = record.subject_id
            else:
                assert correlation_key is not None
                signals.lock_correlation(
                    connection, signals.correlation_lock_key(tenant, name, correlation_key)
                )
                targets = sorted(
                    set(signals.waiting_runs(connection, tenant, name, correlation_key))
                )
            ids = []
            recorded = []
            addressed: list[str | None] = list(targets) or [None]
            for target in addressed:
                signal_id = self.ids.new_id("sig")
                signals.insert_signal(
                    connection,
                    signal_id=signal_id,
                    tenant=tenant,
                    run_id=target,
                    kind=kind,
                    name=name,
                    payload=payload,
                    correlation_key=correlation_key,
                    at=now,
                )
                ids.append(signal_id)
                subject = None
                if target is not None:
                    if target not in subjects:
                        found = runs.get_run(connection, tenant, target)
                        subjects[target] = None if found is None else found.subject_id
                    subject = subjects[target]
                if kind == "decision" and target is not None:
                    recorded.append(
                        entries.human_decision(
                            signal_id=signal_id,
                            run_id=target,
                            subject_id=subject,
                            block=name,
                            payload=payload,
                            at=now,
                        )
                    )
                else:
                    recorded.append(
                        entries.signal(
                            signal_id=signal_id,
                            run_id=target,
                            subject_id=subject,
                            kind=kind,
                            name=name,
                            correlation_key=correlation_key,
                            payload=payload,
                            at=now,
                        )
                    )
            self.ledger.append(connection, tenant, recorded)
            result = SignalResult(tuple(ids), tuple(targets), parked=not targets)
            if within is not None:
                within(connection, result)
            self.db.notify_ready(connection)
        return result

    @staticmethod
    def _require_active(
        connection: Connection, tenant: TenantId, run_id: str, *, what: str
    ) -> RunRecord:
        record = runs.get_run(connection, tenant, run_id)
        if record is None:
            raise RunNotFound(
                f"no run {run_id!r} in tenant {tenant!r}", hint="'accord run list' shows runs"
            )
        if record.status in TERMINAL:
            raise RunFinished(
                f"run {run_id} already ended ({record.status}); {what} was not stored",
                hint="start a new run if the work must be done again",
            )
        return record

    def decide(
        self,
        tenant: TenantId,
        run_id: str,
        block: str,
        decision: str,
        *,
        by: str,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> SignalResult:
        """Record a human decision for an ``approve`` or ``escalate`` block."""
        payload = {"decision": decision, "by": by, "reason": reason, "data": data}
        return self.signal(tenant, block, run_id=run_id, payload=payload, kind="decision")

    def dead_letters(
        self,
        tenant: TenantId,
        *,
        status: str | None = "pending",
        run_id: str | None = None,
        capability: str | None = None,
        limit: int = 100,
    ) -> list[DeadLetterRecord]:
        """Dead letters, oldest first; ``status=None`` for every status."""
        with self.db.read() as connection:
            return stored_letters.list_letters(
                connection, tenant, status=status, run_id=run_id, capability=capability, limit=limit
            )

    def dead_letter(self, tenant: TenantId, letter_id: str) -> DeadLetterRecord:
        """Raises: DeadLetterNotFound."""
        with self.db.read() as connection:
            return _letter(connection, tenant, letter_id)

    def resolve_dead_letter(
        self,
        tenant: TenantId,
        letter_id: str,
        *,
        action: Literal["retry", "discard"],
        by: str,
        note: str | None = None,
    ) -> SignalResult:
        """Retry a dead letter's call from its first attempt, or discard it (the block fails).

        The letter changes state and the run is told in one transaction, so a letter is
        resolved once however many operators act on it at the same time.

        Raises:
            DeadLetterNotFound, DeadLetterConflict (no longer pending), RunFinished.
        """
        with self.db.transaction() as connection:
            letter = _letter(connection, tenant, letter_id)
            record = self._require_active(
                connection, tenant, letter.run_id, what=f"the {action} of {letter_id}"
            )
            now = self.clock.now()
            status = "retried" if action == "retry" else "discarded"
            if not stored_letters.resolve_letter(
                connection, tenant, letter_id, status=status, by=by, note=note, at=now
            ):
                raise DeadLetterConflict(
                    f"dead letter {letter_id} is already {letter.status}",
                    hint="'accord dlq list --status all' shows who resolved it",
                )
            signal_id = self.ids.new_id("sig")
            payload = {"action": action, "by": by, "note": note, "reason": letter.reason}
            signals.insert_signal(
                connection,
                signal_id=signal_id,
                tenant=tenant,
                run_id=letter.run_id,
                kind="dead_letter",
                name=letter_id,
                payload=payload,
                correlation_key=None,
                at=now,
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.signal(
                        signal_id=signal_id,
                        run_id=letter.run_id,
                        subject_id=record.subject_id,
                        kind="dead_letter",
                        name=letter_id,
                        correlation_key=None,
                        payload=payload,
                        at=now,
                    )
                ],
            )
            self.db.notify_ready(connection)
        return SignalResult((signal_id,), (letter.run_id,))

    def cancel(self, tenant: TenantId, run_id: str, *, reason: str, by: str) -> SignalResult:
        """Ask for a run to be cancelled; a worker ends it in its next transition.

        Raises:
            RunNotFound, RunFinished: nothing was stored.
        """
        with self.db.transaction() as connection:
            record = self._require_active(connection, tenant, run_id, what="the cancel request")
            signal_id = self.ids.new_id("sig")
            now = self.clock.now()
            payload = {"reason": reason, "by": by}
            signals.insert_signal(
                connection,
                signal_id=signal_id,
                tenant=tenant,
                run_id=run_id,
                kind="cancel",
                name="cancel",
                payload=payload,
                correlation_key=None,
                at=now,
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.signal(
                        signal_id=signal_id,
                        run_id=run_id,
                        subject_id=record.subject_id,
                        kind="cancel",
                        name="cancel",
                        correlation_key=None,
                        payload=payload,
                        at=now,
                    )
                ],
            )
            self.db.notify_ready(connection)
        return SignalResult((signal_id,), (run_id,))

    def get(self, tenant: TenantId, run_id: str) -> RunView:
        with self.db.read() as connection:
            record = runs.get_run(connection, tenant, run_id)
        if record is None:
            raise RunNotFound(
                f"no run {run_id!r} in tenant {tenant!r}", hint="'accord run list' shows runs"
            )
        return RunView.from_record(record)

    def list_runs(
        self,
        tenant: TenantId,
        *,
        journey: str | None = None,
        status: str | None = None,
        subject: str | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[RunView]:
        with self.db.read() as connection:
            records = runs.list_runs(
                connection,
                tenant,
                journey=journey,
                status=status,
                subject=subject,
                limit=limit,
                before=before,
            )
        return [RunView.from_record(r) for r in records]

    def history(self, tenant: TenantId, run_id: str) -> list[HistoryEntry]:
        with self.db.read() as connection:
            if runs.get_run(connection, tenant, run_id) is None:
                raise RunNotFound(f"no run {run_id!r} in tenant {tenant!r}")
            return runs.history(connection, tenant, run_id)

    def next_wake_at(self, tenant: TenantId) -> float | None:
        """When the next run of ``tenant`` is due: now, a timer's time, or never (None)."""
        with self.db.read() as connection:
            return runs.next_wake_at(connection, tenant)

    def timers(self, tenant: TenantId, run_id: str) -> list[NewTimer]:
        with self.db.read() as connection:
            return runs.timers_of(connection, tenant, run_id)

    def wake_held(self, tenant: TenantId) -> int:
        """Make runs held by a kill switch ask the gateway again now. Returns how many."""
        with self.db.transaction() as connection:
            count = runs.wake_held(connection, tenant, self.clock.now())
            if count:
                self.db.notify_ready(connection)
        return count

    def decisions(self, tenant: TenantId, run_id: str) -> list[DecisionRecord]:
        """The gateway decisions taken for a run, in order."""
        with self.db.read() as connection:
            if runs.get_run(connection, tenant, run_id) is None:
                raise RunNotFound(f"no run {run_id!r} in tenant {tenant!r}")
            return stored_decisions.for_run(connection, tenant, run_id)

    def worker(self, **options: Any) -> Worker:
        """A worker bound to this runtime; see :class:`Worker` for options."""
        return Worker(self, **options)

    def drive(self, *, max_seconds: float | None = None, fault: FaultHook | None = None) -> int:
        """Embedded mode: run an in-process worker until nothing is due. Returns transitions."""
        return self.worker(fault=fault).run_until_idle(max_seconds=max_seconds).transitions

    def internal_failure(self, record: RunRecord, exc: Exception, *, now: float) -> TransitionWrite:
        """Fail a run that the runtime itself could not advance, rather than retry it forever."""
        error = {"type": "InternalError", "message": f"{type(exc).__name__}: {exc}"}
        return TransitionWrite(
            run_id=record.run_id,
            tenant_id=record.tenant_id,
            expected_seq=record.seq,
            lease_token=record.lease_token,
            inbox_seen=record.inbox_version,
            status="failed",
            state=record.state,
            wake_at=None,
            at=now,
            release=True,
            events=[HistoryEvent("run.failed", detail={"error": error})],
            error=error,
            subject_id=record.subject_id,
            outbox=[
                NewEvent(
                    self.ids.new_id("evt"),
                    "run.failed",
                    {
                        "run_id": record.run_id,
                        "journey": record.journey_name,
                        "outcome": None,
                        "error": error,
                    },
                )
            ],
            traceparent=record.traceparent,
        )


def _letter(connection: Connection, tenant: TenantId, letter_id: str) -> DeadLetterRecord:
    found = stored_letters.get_letter(connection, tenant, letter_id)
    if found is None:
        raise DeadLetterNotFound(
            f"no dead letter {letter_id!r} in tenant {tenant!r}",
            hint="'accord dlq list' shows the pending ones",
        )
    return found
