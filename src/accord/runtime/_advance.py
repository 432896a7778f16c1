"""Computing one transition of one run: consume signals, fire timers, execute blocks.

:class:`Advance` is built for a claimed run, runs in memory, and produces a
:class:`~accord.storage.TransitionWrite` that the worker commits under the run's lease. A
transition executes the ready blocks of the run: pure blocks (``choice``, ``decide``, waits being
registered, fan-out and joins, ``end``) freely, and tasks while they are idempotent and fit in
the commit window; a non-idempotent task always ends its transition.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from accord.connectors import CallContext
from accord.core import digest
from accord.errors import (
    BlockTimeout,
    CapabilityFailed,
    ExecutionError,
    ExpressionError,
    InputError,
)
from accord.gateway import (
    Approval,
    ApprovalRequired,
    Executed,
    Gateway,
    GatewaySession,
    Held,
    Invocation,
    Refused,
    SnapshotBatch,
)
from accord.journeys import (
    AgentBlock,
    ApproveBlock,
    CallBlock,
    ChoiceBlock,
    CompiledJourney,
    ConfirmBlock,
    DecideBlock,
    EndBlock,
    EscalateBlock,
    MapBlock,
    OfferBlock,
    ParallelBlock,
    RetryPolicy,
    TaskBlock,
    WaitBlock,
    branch_flow_id,
    branch_name,
    map_flow_id,
)
from accord.runtime import _dead_letters as letters
from accord.runtime._agents import AgentServices, agent_decided, run_agent
from accord.runtime._compensation import (
    compensate_next,
    compensates_instead,
    compensation_decided,
    is_compensation,
)
from accord.runtime._humans import (
    await_approval,
    confirm_answered,
    human_decided,
    start_confirm,
    start_human_wait,
)
from accord.runtime._offers import OfferServices, run_offer
from accord.runtime._state import Join, RunState, Scope, Token, Wait, derived_id
from accord.storage import (
    DecisionRecord,
    HistoryEvent,
    NewAgentOutcome,
    NewConfirmation,
    NewDeadLetter,
    NewEvent,
    NewReviewItem,
    NewRun,
    NewSignal,
    NewTimer,
    NewWait,
    RunRecord,
    RunStatus,
    SignalRecord,
    TransitionWrite,
)
from accord.telemetry import Telemetry, bound_run, record_span, span, traceparent_of

DEFAULT_RETRY = RetryPolicy()
MAX_PURE_STEPS = 1000
MAX_STEPS = 10_000
MAX_CORRELATION_KEY = 256
HOLD_RECHECK_MAX = 60.0


@dataclass(frozen=True)
class AdvanceDeps:
    """What computing a transition needs from the outside world."""

    gateway: Gateway
    new_id: Callable[[str], str]
    random: Callable[[], float]
    pending_signals: Callable[[str, str], list[SignalRecord]]
    parked_signals: Callable[[str, str, str], list[SignalRecord]]
    resolve_journey: Callable[[str, str, int | None], CompiledJourney]
    run_decisions: Callable[[str, str], list[DecisionRecord]] = lambda tenant, run: []
    queue_sla: Callable[[str, str], float | None] = lambda tenant, queue: None
    sign_confirmation: Callable[[dict[str, Any]], str] | None = None
    intent_exists: Callable[[str, str], bool] = lambda tenant, key: False
    record_intent: Callable[[str, str, str, str], None] = lambda tenant, key, run, cap: None
    agents: AgentServices | None = None
    offers: OfferServices | None = None
    commit_window: float = 0.005
    max_tasks: int = 16
    telemetry: Telemetry = field(default_factory=Telemetry)


def initial_state(journey: CompiledJourney) -> RunState:
    state = RunState()
    token = Token(id=state.new_token_id(), flow="", block=journey.flows[""].start)
    state.tokens[token.id] = token
    return state


def decision_prefix(run_id: str, seq: int) -> str:
    """The prefix of a transition's decision ids, zero-padded so ids sort in decision order."""
    return f"dec_{run_id.removeprefix('run_')}_{seq:06d}"


def child_run_id(parent_run_id: str, block: str, visit: int, scope: str | None) -> str:
    key = f"{parent_run_id}/{scope or ''}{block}/{visit}"
    return derived_id("run", key)


class Advance:
    """One transition of one run, computed in memory."""

    def __init__(
        self,
        run: RunRecord,
        journey: CompiledJourney,
        state: RunState,
        *,
        now: float,
        deps: AdvanceDeps,
        snapshots: SnapshotBatch | None = None,
    ) -> None:
        self.run = run
        self.snapshots = snapshots
        self.journey = journey
        self.state = state
        self.now = now
        self.deps = deps
        self.events: list[HistoryEvent] = []
        self.timers_add: list[NewTimer] = []
        self.timers_delete: list[str] = []
        self.waits_add: list[NewWait] = []
        self.waits_delete: list[str] = []
        self.consumed: list[str] = []
        self.outbox: list[NewEvent] = []
        self.new_runs: list[NewRun] = []
        self.new_signals: list[NewSignal] = []
        self.reviews_add: list[NewReviewItem] = []
        self.reviews_close: list[str] = []
        self.confirmations_add: list[NewConfirmation] = []
        self.confirmations_close: list[str] = []
        self.dead_letters_add: list[NewDeadLetter] = []
        self.intents_close: list[str] = []
        self.intents_forgotten: set[str] = set()
        self.agent_outcomes_add: list[NewAgentOutcome] = []
        self.agent_reviews: list[tuple[str, str]] = []
        self.ended: RunStatus | None = None
        self.outcome: str | None = None
        self.error: dict[str, Any] | None = None
        self._pending: list[SignalRecord] | None = None
        self._session: GatewaySession | None = None
        self._batchable = True
        self._traceparent: str | None = None
        self._run_vars = {
            "id": run.run_id,
            "journey": run.journey_name,
            "version": run.journey_version,
            "subject": run.subject_id,
            "tenant": run.tenant_id,
        }

    def compute(self) -> TransitionWrite | None:
        """The transition to commit, or ``None`` when the run has nothing due.

        A run woken by signals that match nothing yet still gets a write (without history
        events) that records the inbox as seen and puts the run back to waiting.
        """
        inbox_changed = self.run.inbox_version != self.state.inbox_seen
        if inbox_changed:
            self.state.inbox_seen = self.run.inbox_version
            self._consume_signals()
        if self.ended is None:
            self._fire_timers()
        if self.ended is None:
            self._execute_ready()
        quiet = not (self.events or self.consumed or inbox_changed)
        if quiet and self.run.status == "waiting":
            return None
        return self._write()

    def fail_internal(self, exc: Exception) -> TransitionWrite:
        """End the run as failed because the runtime itself could not advance it.

        Timers and waits are removed, sub-journeys cancelled and a parent run told, as for any
        other failure.
        """
        error = {"type": "InternalError", "message": f"{type(exc).__name__}: {exc}"}
        self._end_run("failed", outcome=None, error=error)
        return self._write()

    def _write(self) -> TransitionWrite:
        decisions = []
        if self._session is not None:
            decisions = self._session.records
            for notification in self._session.notifications:
                self._publish("gateway.notify", **notification)
            self._session.notifications = []
        if self.ended is not None:
            status: RunStatus = self.ended
            wake_at = None
        elif any(t.status == "ready" for t in self.state.tokens.values()):
            status = "ready"
            wake_at = self.now
        else:
            status = "waiting"
            times = [t.wait.at for t in self.state.tokens.values() if t.wait and t.wait.at]
            wake_at = min(times) if times else None
        return TransitionWrite(
            run_id=self.run.run_id,
            tenant_id=self.run.tenant_id,
            expected_seq=self.run.seq,
            lease_token=self.run.lease_token,
            inbox_seen=self.state.inbox_seen,
            status=status,
            state=self.state.dumps(),
            wake_at=wake_at,
            at=self.now,
            release=status != "ready",
            events=self.events,
            outcome=self.outcome,
            error=self.error,
            timers_add=self.timers_add,
            timers_delete=self.timers_delete,
            waits_add=self.waits_add,
            waits_delete=self.waits_delete,
            signals_consumed=self.consumed,
            outbox=self.outbox,
            new_runs=self.new_runs,
            new_signals=self.new_signals,
            decisions=decisions,
            subject_id=self.run.subject_id,
            traceparent=self._traceparent or self.run.traceparent,
            reviews_add=self.reviews_add,
            reviews_close=self.reviews_close,
            confirmations_add=self.confirmations_add,
            confirmations_close=self.confirmations_close,
            dead_letters_add=self.dead_letters_add,
            intents_close=self.intents_close,
            agent_outcomes_add=self.agent_outcomes_add,
            agent_reviews=self.agent_reviews,
        )

    def _event(self, kind: str, token: Token | None = None, /, **detail: Any) -> None:
        self.events.append(
            HistoryEvent(
                kind=kind,
                block=self._path(token) if token else None,
                visit=token.visit if token else None,
                attempt=token.attempt if token else None,
                detail=detail,
            )
        )

    def _publish(self, event_type: str, **payload: Any) -> None:
        payload.setdefault("run_id", self.run.run_id)
        payload.setdefault("journey", self.run.journey_name)
        self.outbox.append(NewEvent(self.deps.new_id("evt"), event_type, payload))
        if event_type == "run.escalated":
            self.deps.telemetry.metrics.escalations.labels(
                journey=self.run.journey_name, queue=str(payload.get("queue") or "")
            ).inc()

    @staticmethod
    def _path(token: Token) -> str:
        return f"{token.scope}/{token.block}" if token.scope else token.block

    def _signals(self) -> list[SignalRecord]:
        if self._pending is None:
            self._pending = self.deps.pending_signals(self.run.tenant_id, self.run.run_id)
        return self._pending

    def _consume(self, signal: SignalRecord) -> None:
        self.consumed.append(signal.signal_id)
        if self._pending is not None and signal in self._pending:
            self._pending.remove(signal)

    def _consume_signals(self) -> None:
        for signal in list(self._signals()):
            if self.ended is not None:
                return
            if signal.kind == "cancel":
                self._consume(signal)
                self._event(
                    "signal.received",
                    None,
                    signal="cancel",
                    reason=signal.payload.get("reason"),
                    by=signal.payload.get("by"),
                )
                self._end_run("cancelled", outcome="cancelled", error=None)
                return
            if signal.kind == "child" and signal.name not in self.state.tokens:
                self._consume(signal)
                continue
            for token in list(self.state.tokens.values()):
                if token.status == "waiting" and self._matches(token, signal):
                    self._consume(signal)
                    self._resume_guarded(token, signal)
                    break

    @staticmethod
    def _matches(token: Token, signal: SignalRecord) -> bool:
        wait = token.wait
        if wait is None:
            return False
        if signal.kind == "event":
            return (
                wait.kind == "event"
                and wait.name == signal.name
                and (signal.correlation_key is None or signal.correlation_key == wait.correlation)
            )
        if signal.kind == "decision" and signal.payload.get("confirmation") is not None:
            return wait.kind == "confirm" and wait.item == signal.payload["confirmation"]
        if signal.kind == "decision":
            path = f"{token.scope}/{token.block}" if token.scope else token.block
            visit = signal.payload.get("visit")
            item = signal.payload.get("item")
            return (
                wait.kind == "human"
                and signal.name in (token.block, path, wait.name)
                and (visit is None or visit == token.visit)
                and (item is None or item == wait.item)
            )
        if signal.kind == "child":
            return wait.kind == "child" and token.id == signal.name
        if signal.kind == "dead_letter":
            return wait.kind == "dead_letter" and wait.item == signal.name
        return False

    def _resume_guarded(self, token: Token, signal: SignalRecord) -> None:
        try:
            self._resume(token, signal)
        except ExecutionError as exc:
            self._fail_block(token, exc)

    def _resume(self, token: Token, signal: SignalRecord) -> None:
        wait = token.wait
        assert wait is not None
        if is_compensation(token):
            compensation_decided(self, token, signal)
            return
        block = self.journey.nodes[token.block].block
        self._clear_wait(token)
        if signal.kind == "decision" and wait.kind in ("human", "confirm"):
            self._trace_wait(token, wait, signal)
        if signal.kind == "event":
            self._event("signal.consumed", token, name=signal.name, signal_id=signal.signal_id)
            self._set_output(token, signal.payload)
            self._goto(token, block.next)
        elif signal.kind == "decision" and wait.kind == "confirm":
            payload = signal.payload
            confirm_answered(self, token, block, str(payload["answer"]), payload.get("channel"))
        elif signal.kind == "decision" and isinstance(block, AgentBlock):
            agent_decided(self, token, block, signal, wait)
        elif signal.kind == "decision":
            human_decided(self, token, block, signal, wait)
        elif signal.kind == "child":
            self._child_ended(token, block, signal.payload)
        elif signal.kind == "dead_letter":
            letters.letter_resolved(self, token, signal)

    def _trace_wait(self, token: Token, wait: Wait, signal: SignalRecord) -> None:
        """A span for the time a person took, from the ask to the answer, in the run's trace.

        It is recorded when the answer arrives (the wait may outlive every process that saw
        it begin), with the ask's time as its start.
        """
        if wait.since is None:
            return
        kind = "confirm" if wait.kind == "confirm" else "review"
        answer = signal.payload.get("answer" if kind == "confirm" else "decision")
        record_span(
            self.deps.telemetry.tracer,
            f"{kind}.wait {token.block}",
            parent=self.run.traceparent,
            start=wait.since,
            end=self.now,
            attributes={
                "accord.run_id": self.run.run_id,
                "accord.block": token.block,
                "accord.item": wait.item or "",
                "accord.decision": str(answer),
                "accord.waited_seconds": max(0.0, self.now - wait.since),
            },
        )

    def _child_ended(self, token: Token, block: Any, payload: dict[str, Any]) -> None:
        status = payload.get("status")
        self._event("call.ended", token, child=payload.get("run_id"), status=status)
        if status == "completed":
            self._set_output(
                token,
                {
                    "run_id": payload.get("run_id"),
                    "outcome": payload.get("outcome"),
                    "output": payload.get("output"),
                },
            )
            self._goto(token, block.next)
        else:
            error = payload.get("error") or {}
            self._fail_block(
                token,
                CapabilityFailed(
                    f"sub-journey run {payload.get('run_id')} ended {status}: "
                    f"{error.get('message', '')}".rstrip(": "),
                    error_type={
                        "failed": "ChildRunFailed",
                        "compensated": "ChildRunCompensated",
                    }.get(str(status), "ChildRunCancelled"),
                    retryable=False,
                ),
            )

    def _fire_timers(self) -> None:
        for token in list(self.state.tokens.values()):
            if self.ended is not None:
                return
            wait = token.wait
            if token.status != "waiting" or wait is None or wait.at is None:
                continue
            # a held call is asked again whenever its run is woken (a flag switched back on)
            if (wait.at > self.now and wait.kind != "hold") or token.id not in self.state.tokens:
                continue
            try:
                self._fire(token, wait)
            except ExecutionError as exc:
                self._fail_block(token, exc)

    def _fire(self, token: Token, wait: Wait) -> None:
        block = self.journey.nodes[token.block].block
        self._clear_wait(token)
        if wait.kind == "retry":
            token.status = "ready"
            token.attempt += 1
            self._event("timer.fired", token, purpose="retry")
        elif wait.kind == "hold":
            token.status = "ready"
            self._event("timer.fired", token, purpose="hold")
        elif wait.kind == "confirm":
            self._event("timer.fired", token, purpose="expiry")
            confirm_answered(self, token, block, "expired", None)
        elif wait.kind == "timer":
            self._event("timer.fired", token, purpose="wait")
            self._set_output(token, {"fired_at": self.now})
            self._goto(token, block.next)
        else:
            self._event("timer.fired", token, purpose="timeout")
            target = getattr(block, "on_timeout", None)
            if target:
                self._set_output(token, {"timed_out": True})
                self._goto(token, target)
            else:
                self._fail_block(
                    token, BlockTimeout(f"block {block.id!r} timed out", retryable=False)
                )

    def _may_add_task(self, block: TaskBlock, tasks: int, started: float) -> bool:
        """Whether one more task may join this transition (see ``AdvanceDeps.commit_window``).

        Consecutive tasks share a commit only while each capability is idempotent (a crash
        replays them under the same keys) and they fit in the commit window.
        """
        if tasks == 0:
            return True
        if not self._batchable or tasks >= self.deps.max_tasks:
            return False
        if time.monotonic() - started >= self.deps.commit_window:
            return False
        capability = self.deps.gateway.capabilities.find(block.capability)
        return capability is not None and capability.idempotent

    def _execute_ready(self) -> None:
        """Run ready tokens until each waits, or a task may not join this transition.

        A token that runs ``MAX_PURE_STEPS`` blocks in one transition is looping without a
        wait and fails; when the whole transition reaches ``MAX_STEPS`` the run stays ready and
        continues in the next one.
        """
        tasks = 0
        started = time.monotonic()
        steps: dict[str, int] = {}
        for _ in range(MAX_STEPS):
            if self.ended is not None:
                return
            token = next((t for t in self.state.tokens.values() if t.status == "ready"), None)
            if token is None:
                return
            if is_compensation(token):
                # one compensating call per transition, none after a task's in the same one
                if tasks == 0:
                    compensate_next(self, token, default_retry=DEFAULT_RETRY)
                return
            block = self.journey.nodes[token.block].block
            if isinstance(block, TaskBlock):
                if not self._may_add_task(block, tasks, started):
                    return
                tasks += 1
                capability = self.deps.gateway.capabilities.find(block.capability)
                self._batchable = self._batchable and bool(capability and capability.idempotent)
            elif isinstance(block, AgentBlock):
                # a model's answer is paid for: it is committed before anything else runs
                if tasks > 0:
                    return
                tasks += 1
                self._batchable = False
            elif isinstance(block, OfferBlock):
                # its reads and its choice commit together, before anything else runs, and
                # before what follows: offer.record checks a choice against committed history
                if tasks > 0:
                    return
                tasks += 1
                self._batchable = False
            steps[token.id] = steps.get(token.id, 0) + 1
            if steps[token.id] > MAX_PURE_STEPS:
                self._fail_block(
                    token,
                    ExpressionError(
                        f"more than {MAX_PURE_STEPS} blocks ran without a wait, at {token.block!r}",
                        hint="a loop in the journey needs a wait block",
                    ),
                )
                continue
            if token.visit == 0:
                key = self._path(token)
                token.visit = self.state.visits.get(key, 0) + 1
                self.state.visits[key] = token.visit
            self._traced(token, block)

    def _traced(self, token: Token, block: Any) -> None:
        """Visit one block inside its span (child of the run's trace context)."""
        telemetry = self.deps.telemetry
        attributes = {
            "accord.run_id": self.run.run_id,
            "accord.journey": self.run.journey_name,
            "accord.block": token.block,
            "accord.block_kind": block.kind,
            "accord.visit": token.visit,
            "accord.attempt": token.attempt,
        }
        started = time.perf_counter()
        with (
            bound_run(self.run.run_id, self.run.subject_id),
            span(
                telemetry.tracer,
                f"block {token.block}",
                parent=self.run.traceparent,
                attributes=attributes,
            ) as current,
        ):
            self._traceparent = traceparent_of() or self._traceparent
            try:
                self._execute(token, block)
            except ExecutionError as exc:
                current.set_attribute("accord.error", exc.error_type)
                self._fail_block(token, exc)
        telemetry.metrics.block_seconds.labels(
            journey=self.run.journey_name, kind=block.kind
        ).observe(time.perf_counter() - started)

    def variables(self, token: Token) -> dict[str, Any]:
        steps = self.state.steps
        item = index = None
        if token.scope is not None:
            chain = []
            scope_id: str | None = token.scope
            while scope_id is not None:
                scope = self.state.scopes[scope_id]
                chain.append(scope)
                scope_id = scope.parent
            steps = dict(steps)
            for scope in reversed(chain):
                steps.update(scope.steps)
            item, index = chain[0].item, chain[0].index
        return {
            "input": self.run.input,
            "steps": steps,
            "run": self._run_vars,
            "now": self.now,
            "errors": self.state.errors,
            "item": item,
            "index": index,
        }

    def _set_output(self, token: Token, output: Any) -> None:
        if token.scope is not None:
            self.state.scopes[token.scope].steps[token.block] = output
        else:
            self.state.steps[token.block] = output

    def _execute(self, token: Token, block: Any) -> None:
        node = self.journey.nodes[token.block]
        if isinstance(block, TaskBlock):
            self._run_task(token, block, node)
        elif isinstance(block, ChoiceBlock):
            variables = self.variables(token)
            for i, (condition, target) in enumerate(node.choices):
                result = condition.evaluate(variables)
                if not isinstance(result, bool):
                    raise ExpressionError(
                        f"choice {block.id!r}: condition `{condition.source}` gave "
                        f"{type(result).__name__}, not a boolean"
                    )
                if result:
                    self._event("choice.taken", token, choice=i, next=target)
                    self._goto(token, target)
                    return
            self._event("choice.taken", token, choice=None, next=block.default)
            self._goto(token, block.default)
        elif isinstance(block, DecideBlock):
            assert node.table is not None
            result, matched = node.table.evaluate(self.variables(token))
            self._set_output(token, result)
            self._event("decision.made", token, rules=[i + 1 for i in matched], output=result)
            self._goto(token, block.next)
        elif isinstance(block, WaitBlock):
            self._start_wait(token, block, node)
        elif isinstance(block, ApproveBlock | EscalateBlock):
            start_human_wait(self, token, block, node)
        elif isinstance(block, ConfirmBlock):
            start_confirm(self, token, block, node)
        elif isinstance(block, AgentBlock):
            run_agent(self, token, block, node)
        elif isinstance(block, OfferBlock):
            run_offer(self, token, block, node)
        elif isinstance(block, ParallelBlock):
            self._fan_out(token, block)
        elif isinstance(block, MapBlock):
            self._start_map(token, block, node)
        elif isinstance(block, CallBlock):
            self._start_call(token, block, node)
        elif isinstance(block, EndBlock):
            assert node.mapping is not None
            output = node.mapping.evaluate(self.variables(token)) if block.output else None
            self.state.output = output
            self._event("end.reached", token, outcome=block.outcome)
            self._end_run("completed", outcome=block.outcome, error=None)

    def _gateway_session(self) -> GatewaySession:
        if self._session is None:
            self._session = self.deps.gateway.session(
                self.run.tenant_id,
                self.run.subject_id,
                decision_prefix=decision_prefix(self.run.run_id, self.run.seq + 1),
                batch=self.snapshots,
            )
        return self._session

    def _invocation(self, token: Token, block: TaskBlock) -> Invocation:
        node = self.journey.nodes[token.block]
        assert node.mapping is not None
        variables = self.variables(token)
        payload = token.edited if token.edited is not None else node.mapping.evaluate(variables)
        if node.context is not None or node.resource is not None:
            variables = {**variables, "args": payload}
        context = node.context.evaluate(variables) if node.context is not None else {}
        resource = node.resource.evaluate(variables) if node.resource is not None else {}
        path = self._path(token)
        call = CallContext(
            tenant_id=self.run.tenant_id,
            run_id=self.run.run_id,
            block=path,
            visit=token.visit,
            attempt=token.attempt,
            idempotency_key=f"{self.run.run_id}/{path}/{token.visit}",
            subject_id=self.run.subject_id,
            purpose=block.purpose or self.journey.spec.purpose,
            deadline=time.time() + block.timeout if block.timeout else None,
        )
        channel = context.get("channel")
        return Invocation(
            capability=block.capability,
            payload=payload,
            call=call,
            journey=self.run.journey_name,
            channel=str(channel) if channel is not None else None,
            context=context,
            resource=resource,
            reads=block.reads,
            approvals=tuple(Approval.from_json(a) for a in token.approvals),
        )

    def _run_task(self, token: Token, block: TaskBlock, node: Any) -> None:
        invocation = self._invocation(token, block)
        capability = self.deps.gateway.capabilities.find(block.capability)
        if capability is not None and letters.guarded(capability):
            outcome = self._run_guarded(token, capability, invocation)
        else:
            outcome = self._gateway_session().invoke(invocation, now=self.now)
        if isinstance(outcome, Held):
            self._hold(token, block, outcome)
            return
        if isinstance(outcome, ApprovalRequired):
            await_approval(self, token, block, outcome)
            return
        if isinstance(outcome, Refused):
            self._refuse(token, block, outcome)
            return
        output = outcome.output
        token.holds = 0
        self._set_output(token, output)
        detail: dict[str, Any] = {"capability": block.capability, "output": output}
        if outcome.decision_id is not None:
            detail["decision"] = outcome.decision_id
        if outcome.withheld:
            detail["withheld"] = list(outcome.withheld)
        self._event("block.completed", token, **detail)
        if node.compensation is not None and block.compensate is not None:
            entry: dict[str, Any] = {
                "block": self._path(token),
                "visit": token.visit,
                "capability": block.compensate.capability,
            }
            try:
                entry["input"] = node.compensation.evaluate(self.variables(token))
            except ExpressionError as exc:
                entry["error"] = exc.message
            self.state.compensations.append(entry)
        self._goto(token, block.next)

    def _run_guarded(self, token: Token, capability: Any, invocation: Invocation) -> Any:
        """Call a capability a repeat could duplicate: reconcile an earlier attempt first, and
        record the intent just before the call."""
        key = invocation.call.idempotency_key
        reconciled = letters.reconcile(self, token, capability, invocation)
        if reconciled is not None:
            if isinstance(reconciled, Executed):
                self.intents_close.append(key)
            return reconciled
        tenant, run_id = self.run.tenant_id, self.run.run_id

        def record() -> None:
            self.deps.record_intent(tenant, key, run_id, capability.name)

        try:
            outcome = self._gateway_session().invoke(
                replace(invocation, before_call=record), now=self.now
            )
        except ExecutionError as exc:
            if letters.unknown_outcome(exc):
                # this call's intent stays: the next attempt must reconcile it
                while key in self.intents_close:
                    self.intents_close.remove(key)
            else:
                self.intents_close.append(key)
            raise
        self.intents_close.append(key)
        return outcome

    def _hold(self, token: Token, block: TaskBlock | AgentBlock, held: Held) -> None:
        """Wait safely while a kill switch is off; ask again on a backoff, or when woken."""
        token.holds += 1
        delay = min(HOLD_RECHECK_MAX, 2.0 ** (token.holds - 1))
        self._event(
            "gateway.held", token, flag=held.flag, decision=held.decision_id, recheck_in=delay
        )
        if token.holds == 1:
            self._publish("run.held", block=block.id, flag=held.flag)
        self._wait(token, Wait(kind="hold", name=held.flag, at=self.now + delay))

    def _refuse(self, token: Token, block: TaskBlock, refused: Refused) -> None:
        """Take the block's declared fallback for this refusal, or fail the run saying why."""
        error = {
            "type": "Refused",
            "reason": refused.reason,
            "message": refused.message,
            "code": "refused",
        }
        if refused.decision_id is not None:
            error["decision"] = refused.decision_id
        self._event("gateway.refused", token, **{k: v for k, v in error.items() if k != "type"})
        target = block.on_refusal.get(refused.reason) or block.on_refusal.get("*") or block.on_error
        if target:
            self.state.errors[block.id] = error
            self._goto(token, target)
            return
        self._end_run("failed", outcome=None, error={**error, "block": self._path(token)})

    def _fail_block(self, token: Token, exc: ExecutionError) -> None:
        block = self.journey.nodes[token.block].block
        if token.join is not None:
            for child in list(token.join.pending):
                if child in self.state.tokens:
                    self._drop_token(self.state.tokens[child])
            token.join = None
        policy = block.retry or (
            DEFAULT_RETRY if isinstance(block, TaskBlock | AgentBlock | OfferBlock) else None
        )
        error = {"type": exc.error_type, "message": exc.message, "code": str(exc.code)}
        retryable = (
            policy is not None and exc.retryable and exc.error_type not in policy.non_retryable
        )
        if isinstance(block, TaskBlock) and letters.unknown_outcome(exc):
            capability = self.deps.gateway.capabilities.find(block.capability)
            if letters.guarded(capability) and (capability is None or not capability.reconcile):
                # nobody can tell whether it acted: a person must look before anything else
                letters.dead_letter(self, token, block, exc, reason="outcome_unknown")
                return
        if policy is not None and retryable and token.attempt < policy.max_attempts:
            delay = policy.delay(token.attempt, self.deps.random())
            if isinstance(exc, CapabilityFailed) and exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, policy.max_interval))
            self._event("block.retry_scheduled", token, error=error, delay=round(delay, 6))
            self._wait(token, Wait(kind="retry", at=self.now + delay))
            return
        if isinstance(block, TaskBlock) and retryable and not block.on_error:
            letters.dead_letter(self, token, block, exc, reason="retries_exhausted")
            return
        self._event("block.failed", token, error=error)
        if block.on_error:
            self.state.errors[block.id] = error
            self._goto(token, block.on_error)
            return
        self._end_run("failed", outcome=None, error={**error, "block": self._path(token)})

    def _wait(self, token: Token, wait: Wait) -> None:
        token.status = "waiting"
        if wait.kind in ("human", "confirm") and wait.since is None:
            wait.since = self.now
        if wait.at is not None:
            wait.timer_id = f"{self.run.run_id}/tm{self.state.new_serial()}"
            self.timers_add.append(NewTimer(wait.timer_id, token.id, wait.kind, wait.at))
        token.wait = wait

    def _clear_wait(self, token: Token) -> None:
        wait = token.wait
        if wait is None:
            return
        if wait.timer_id is not None:
            self._delete_timer(wait.timer_id)
        if wait.kind == "event":
            self.waits_delete.append(token.id)
        if wait.kind == "human" and wait.item is not None:
            self.reviews_close.append(wait.item)
        if wait.kind == "confirm" and wait.item is not None:
            self.confirmations_close.append(wait.item)
        token.wait = None

    def _delete_timer(self, timer_id: str) -> None:
        added = [t for t in self.timers_add if t.timer_id == timer_id]
        if added:
            self.timers_add.remove(added[0])
        else:
            self.timers_delete.append(timer_id)

    def _start_wait(self, token: Token, block: WaitBlock, node: Any) -> None:
        if block.event is None:
            if block.timer is not None:
                at = self.now + block.timer
            else:
                assert node.expression is not None
                at = _as_epoch(node.expression.evaluate(self.variables(token)), block.id)
            self._event("wait.started", token, until=at)
            self._wait(token, Wait(kind="timer", at=at))
            return
        correlation = None
        if node.expression is not None:
            correlation = str(node.expression.evaluate(self.variables(token)))
            if len(correlation) > MAX_CORRELATION_KEY:
                raise ExpressionError(
                    f"wait {block.id!r}: the correlation key is {len(correlation)} characters "
                    f"long; at most {MAX_CORRELATION_KEY} are allowed",
                    hint="correlate on an identifier, e.g. input.order_id",
                )
        name = block.event.name
        deadline = self.now + block.timeout if block.timeout is not None else None
        self._event("wait.started", token, event=name, correlation=correlation)
        self._wait(token, Wait(kind="event", name=name, correlation=correlation, at=deadline))
        if self._take_pending(token):
            return
        if correlation is not None:
            parked = [
                p
                for p in self.deps.parked_signals(self.run.tenant_id, name, correlation)
                if p.signal_id not in self.consumed
            ]
            if parked:
                self._consume(parked[0])
                self._resume(token, parked[0])
                return
        self.waits_add.append(NewWait(token.id, name, correlation))
        self._publish("run.waiting", block=block.id, waiting_for=name, correlation=correlation)

    def _take_pending(self, token: Token) -> bool:
        """Resume a token that starts waiting with a signal already in the run's inbox."""
        for signal in self._signals():
            if self._matches(token, signal):
                self._consume(signal)
                self._resume(token, signal)
                return True
        return False

    def _fan_out(self, token: Token, block: ParallelBlock) -> None:
        join = Join(mode=block.join)
        for i, branch in enumerate(block.branches):
            flow_id = branch_flow_id(block.id, i)
            child = Token(
                id=self.state.new_token_id(),
                flow=flow_id,
                block=self.journey.flows[flow_id].start,
                parent=token.id,
                scope=token.scope,
                branch=branch_name(branch, i),
            )
            self.state.tokens[child.id] = child
            join.pending.append(child.id)
            join.branches[child.branch or ""] = "running"
        token.status = "joining"
        token.join = join
        self._event("parallel.started", token, branches=list(join.branches))

    def _start_map(self, token: Token, block: MapBlock, node: Any) -> None:
        assert node.expression is not None
        items = node.expression.evaluate(self.variables(token))
        if not isinstance(items, list):
            raise ExpressionError(
                f"map {block.id!r}: items `{block.items}` gave {type(items).__name__}, not a list"
            )
        self._event("map.started", token, items=len(items))
        if not items:
            self._set_output(token, [])
            self._goto(token, block.next)
            return
        token.status = "joining"
        token.join = Join(mode="map", items=items, results=[None] * len(items))
        for _ in range(min(block.max_concurrency, len(items))):
            self._spawn_item(token, block)

    def _spawn_item(self, token: Token, block: MapBlock) -> None:
        join = token.join
        assert join is not None
        index = join.next_index
        join.next_index += 1
        scope_id = f"{token.scope or ''}{block.id}[{index}]"
        self.state.scopes[scope_id] = Scope(item=join.items[index], index=index, parent=token.scope)
        flow_id = map_flow_id(block.id)
        child = Token(
            id=self.state.new_token_id(),
            flow=flow_id,
            block=self.journey.flows[flow_id].start,
            parent=token.id,
            scope=scope_id,
        )
        self.state.tokens[child.id] = child
        join.pending.append(child.id)

    def _start_call(self, token: Token, block: CallBlock, node: Any) -> None:
        assert node.mapping is not None
        try:
            child_journey = self.deps.resolve_journey(
                self.run.tenant_id, block.journey, block.version
            )
            child_input = child_journey.validate_input(node.mapping.evaluate(self.variables(token)))
        except InputError as exc:
            raise CapabilityFailed(
                f"call {block.id!r} cannot start {block.journey!r}: {exc.message}",
                error_type=type(exc).__name__,
                retryable=False,
                hint=exc.hint,
            ) from exc
        run_id = child_run_id(self.run.run_id, block.id, token.visit, token.scope)
        started = HistoryEvent(
            kind="run.started",
            detail={
                "journey": child_journey.name,
                "version": child_journey.version,
                "parent_run_id": self.run.run_id,
            },
        )
        self.new_runs.append(
            NewRun(
                run_id=run_id,
                tenant_id=self.run.tenant_id,
                journey_name=child_journey.name,
                journey_version=child_journey.version,
                subject_id=self.run.subject_id,
                input=child_input,
                state=initial_state(child_journey).dumps(),
                idempotency_key=None,
                request_digest=digest([child_journey.name, child_input]),
                parent_run_id=self.run.run_id,
                parent_token=token.id,
                at=self.now,
                started=started,
                traceparent=self._traceparent or self.run.traceparent,
            )
        )
        self._event(
            "call.started",
            token,
            child=run_id,
            journey=child_journey.name,
            version=child_journey.version,
        )
        self._wait(token, Wait(kind="child", run_id=run_id))

    def _goto(self, token: Token, target: str | None) -> None:
        if target is None:
            self._finish_token(token)
            return
        token.block = target
        token.visit = 0
        token.attempt = 1
        token.status = "ready"
        token.wait = None
        token.approvals = []
        token.holds = 0
        token.makers = []
        token.edited = None

    def _finish_token(self, token: Token) -> None:
        if token.parent is None:
            del self.state.tokens[token.id]
            self._end_run("completed", outcome="completed", error=None)
            return
        parent = self.state.tokens[token.parent]
        join = parent.join
        assert join is not None
        block = self.journey.nodes[parent.block].block
        if join.mode == "map":
            assert isinstance(block, MapBlock) and token.scope is not None
            node = self.journey.nodes[parent.block]
            scope = self.state.scopes[token.scope]
            try:
                result = (
                    node.mapping.evaluate(self.variables(token)) if node.mapping else scope.steps
                )
            except ExecutionError as exc:
                self._fail_block(parent, exc)
                return
            del self.state.tokens[token.id]
            join.pending.remove(token.id)
            join.results[scope.index] = result
            del self.state.scopes[token.scope]
            if join.next_index < len(join.items):
                self._spawn_item(parent, block)
            if not join.pending:
                self._event("map.completed", parent, items=len(join.items))
                self._set_output(parent, join.results)
                parent.join = None
                self._goto(parent, block.next)
            return
        del self.state.tokens[token.id]
        join.pending.remove(token.id)
        join.branches[token.branch or ""] = "completed"
        if join.mode == "any":
            for other in list(join.pending):
                sibling = self.state.tokens[other]
                join.branches[sibling.branch or ""] = "cancelled"
                self._drop_token(sibling)
            join.pending.clear()
        if not join.pending:
            self._event("parallel.completed", parent, branches=dict(join.branches))
            self._set_output(parent, {"branches": dict(join.branches)})
            parent.join = None
            self._goto(parent, block.next)

    def _drop_token(self, token: Token) -> None:
        """Remove a token and everything below it: timers, waits, child runs, scopes."""
        self._clear_wait_for_drop(token)
        if token.join is not None:
            for child in list(token.join.pending):
                if child in self.state.tokens:
                    self._drop_token(self.state.tokens[child])
        if token.scope is not None and token.parent is not None:
            parent = self.state.tokens.get(token.parent)
            if parent is not None and parent.join is not None and parent.join.mode == "map":
                self.state.scopes.pop(token.scope, None)
        self.state.tokens.pop(token.id, None)

    def _clear_wait_for_drop(self, token: Token) -> None:
        wait = token.wait
        if wait is not None and wait.kind == "child" and wait.run_id is not None:
            self.new_signals.append(
                NewSignal(
                    signal_id=self.deps.new_id("sig"),
                    tenant_id=self.run.tenant_id,
                    run_id=wait.run_id,
                    kind="cancel",
                    name="cancel",
                    payload={"reason": "parent run no longer needs it", "by": self.run.run_id},
                )
            )
        self._clear_wait(token)

    def _end_run(self, status: RunStatus, *, outcome: str | None, error: Any) -> None:
        if status == "failed" and compensates_instead(self, error):
            return
        for token in list(self.state.tokens.values()):
            if token.parent is None:
                self._drop_token(token)
        self.state.tokens.clear()
        self.state.scopes.clear()
        self.ended = status
        self.outcome = outcome
        self.error = error
        self._event(f"run.{status}", None, outcome=outcome, error=error)
        self._publish(f"run.{status}", outcome=outcome, error=error)
        self.deps.telemetry.metrics.runs_finished.labels(
            journey=self.run.journey_name, status=status, outcome=outcome or ""
        ).inc()
        if self.run.parent_run_id and self.run.parent_token:
            self.new_signals.append(
                NewSignal(
                    signal_id=self.deps.new_id("sig"),
                    tenant_id=self.run.tenant_id,
                    run_id=self.run.parent_run_id,
                    kind="child",
                    name=self.run.parent_token,
                    payload={
                        "run_id": self.run.run_id,
                        "status": status,
                        "outcome": outcome,
                        "output": self.state.output,
                        "error": error,
                    },
                )
            )


def _as_epoch(value: Any, block_id: str) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise ExpressionError(
                f"wait {block_id!r}: until gave {value!r}, not a time",
                hint="give epoch seconds, an RFC 3339 string or a CEL timestamp()",
            ) from exc
    raise ExpressionError(
        f"wait {block_id!r}: until gave {type(value).__name__}, not a time",
        hint="give epoch seconds, an RFC 3339 string or a CEL timestamp()",
    )


__all__ = ["Advance", "AdvanceDeps", "child_run_id", "initial_state"]
