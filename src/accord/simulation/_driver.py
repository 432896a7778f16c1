"""Synthetic people acting on runs: customers answer codes and confirmations, staff decide.

A :class:`Case` is one journey started for one person, with how that person behaves
(:class:`Persona`) and what staff do with its review items. The :class:`Driver` starts cases,
drives the runtime and answers every wait the way the case says: it reads a one-time code from
the sandbox's stand-in for the customer's phone, uploads a document, answers a confirmation
through its token (weighing a retention offer with the customers' response model,
:class:`~accord.simulation.RetentionResponse`, when the person does), withdraws a consent while
the run waits, and decides review items as the member of staff the item's queue allows (the
employee's own manager for access requests, or that manager's manager when the manager asked
for the access). A sandbox system that fails while a person answers ends that person's part:
the case records the error and its run is left alone.
Timers fire on their own in real time; a simulation may move the shared clock forward to them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import httpx

from accord.errors import AccordError
from accord.portal import Purpose, load_purposes
from accord.runtime import RunView
from accord.service import Accord
from accord.simulation._enterprise import TENANT, Enterprise
from accord.simulation._response import RetentionResponse
from accord.storage import TERMINAL, ReviewItemRecord

OtpBehaviour = Literal["right", "wrong_once", "wrong", "silent"]
Answer = Literal["confirm", "refuse", "ignore", "weigh"]
StaffAction = Literal["approve", "reject", "leave"]


@dataclass(frozen=True, slots=True)
class Persona:
    """How the person a case is about behaves."""

    otp: OtpBehaviour = "right"
    document_number: str = "X12345678"
    document_type: str = "passport"
    confirm: Answer = "confirm"
    """How the person answers a proposal: ``weigh`` accepts a discount of ``p`` percent when
    :attr:`draw` is below the driver's response model's acceptance of ``p``."""
    draw: float | None = None
    """The person's own draw in [0, 1) for ``confirm: weigh``, from a seeded generator."""
    consents: tuple[str, ...] = ()
    """Purposes the person consents to before the run starts (e-mail contact)."""
    withdraw_at: str | None = None
    """A block: when the run waits there, the person withdraws every consent above."""
    chat: tuple[str, ...] = ()
    """What the person writes in a support conversation, a message each time it listens; a
    case with messages opens a conversation (``Accord.conversations``) instead of a bare run."""
    chat_consent: Literal["agree", "refuse"] = "agree"
    """The answer to a consent question the conversation asks."""


@dataclass(frozen=True, slots=True)
class Case:
    """One journey for one person, and what is expected of it."""

    name: str
    journey: str
    input: dict[str, Any]
    subject: str | None
    persona: Persona = field(default_factory=Persona)
    staff: StaffAction = "approve"
    kind: str = ""
    """The mix's label for the case (e.g. ``refund:supervisor``), for reports."""


@dataclass
class Tracked:
    case: Case
    run_id: str
    answered: dict[str, int] = field(default_factory=dict)
    otp_answers: int = 0
    withdrawn: bool = False
    conversation: str | None = None
    said: int = 0
    error: str | None = None
    """Why the case stopped: a refused start, or a sandbox system failing a person's answer."""
    weighed: float | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """Where a case ended up."""

    case: Case
    run_id: str
    status: str
    outcome: str | None
    seconds: float | None
    """Wall-clock time from start to end, without the time the simulation's clock skipped."""
    waiting: tuple[str, ...]
    error: str | None
    """The case's own error (a refused start, a person's answer that failed), else the run's."""
    weighed: float | None = None
    """The discount, in percent, the person last weighed (``confirm: weigh``)."""


class Driver:
    """Starts cases and plays every person in them.

    Use it as a context manager (``with Driver(enterprise) as driver:``), or call :meth:`close`.

    Args:
        enterprise: the running sample enterprise.
        advance_time: move the shared clock to the next timer when nothing else can happen
            (simulations), instead of leaving runs waiting on it (the demo).
        response: how people who weigh a retention offer (``confirm: weigh``) answer it.
    """

    def __init__(
        self,
        enterprise: Enterprise,
        *,
        advance_time: bool = False,
        response: RetentionResponse | None = None,
    ) -> None:
        self.enterprise = enterprise
        self.accord = enterprise.accord
        self.advance_time = advance_time
        self.response = response or RetentionResponse()
        self.tracked: dict[str, Tracked] = {}
        self.actions: Counter[str] = Counter()
        self._http = httpx.Client(timeout=10.0)
        self._managers: set[str] = set()
        self._ended: set[str] = set()
        self._catalogue: dict[str, Purpose] | None = None
        self._jumps: list[tuple[float, float]] = []
        """Each forward move of the clock: when (simulated time) and by how much."""

    def close(self) -> None:
        """Close the driver's HTTP client (the people's view of the sandbox)."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- starting -------------------------------------------------------------------------

    def start(self, case: Case) -> str | None:
        """Start a case's run; a start the runtime refuses is recorded as the case's error."""
        for purpose in case.persona.consents:
            if case.subject is not None:
                # what the portal's notice for the purpose lists (e-mail contact otherwise)
                self.accord.consent.grant(
                    TENANT,
                    case.subject,
                    purpose=purpose,
                    categories=self._categories().get(purpose) or ["pd:EmailAddress"],
                    channel="web",
                    notice_version="2026-10",
                    actor=case.subject,
                )
        if case.journey == "access_provisioning":
            self._register_manager_of(str(case.input.get("employee_id", "")))
        try:
            if case.persona.chat and case.subject is not None:
                opened = self.accord.conversations.open(TENANT, case.subject, journey=case.journey)
                self.tracked[str(opened.run_id)] = Tracked(
                    case, str(opened.run_id), conversation=opened.conversation_id
                )
                return opened.run_id
            result = self.accord.runtime.start(
                TENANT,
                case.journey,
                input=case.input,
                subject=case.subject,
                idempotency_key=f"case/{case.name}",
            )
        except AccordError as exc:
            self.tracked[f"refused:{case.name}"] = Tracked(
                case, "", error=f"{exc.code.value}: {exc.message}"
            )
            return None
        self.tracked[result.run_id] = Tracked(case, result.run_id)
        return result.run_id

    def _register_manager_of(self, employee_id: str) -> None:
        """Managers work the ``managers`` queue as themselves (their directory id)."""
        try:
            manager = self._manager_of(employee_id)
        except httpx.HTTPError:
            return
        if manager:
            self._register_manager(manager)

    def _manager_of(self, employee_id: str) -> str | None:
        """The employee's manager in the directory (None for nobody, or no such employee)."""
        response = self._http.get(f"{self.enterprise.url('directory')}/employees/{employee_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        manager = response.json().get("manager_id")
        return str(manager) if manager else None

    def _register_manager(self, person_id: str) -> None:
        if person_id not in self._managers:
            self.accord.put_person(person_id, roles=["manager"], name=person_id, actor="directory")
            self._managers.add(person_id)

    # -- playing --------------------------------------------------------------------------

    def open_runs(self) -> list[tuple[Tracked, RunView]]:
        """The tracked runs that have not ended, each read once; ended ones are remembered."""
        found = []
        for tracked in self.tracked.values():
            if not tracked.run_id or tracked.run_id in self._ended or tracked.error:
                continue
            view = self.accord.runtime.get(TENANT, tracked.run_id)
            if view.status in TERMINAL:
                self._ended.add(tracked.run_id)
                continue
            found.append((tracked, view))
        return found

    def settle(
        self, *, seconds: float = 60.0, on_progress: Callable[[Driver], None] | None = None
    ) -> None:
        """Drive and answer until nothing more happens (or ``seconds`` pass).

        A sandbox system failing while a person answers does not stop the others: the case
        records the error (see :attr:`Finished.error`) and nobody answers its run again.
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            moved = self.accord.runtime.drive(max_seconds=5.0)
            acted = self.act()
            if on_progress is not None:
                on_progress(self)
            if moved or acted:
                continue
            wake = self.accord.runtime.next_wake_at(TENANT)
            if wake is None:
                return
            now = self.enterprise.clock.now()
            if wake - now < 5.0:
                time.sleep(min(0.05, max(0.0, wake - now)))
            elif self.advance_time:
                self._advance(wake - now + 0.001)
            else:
                return

    def _advance(self, seconds: float) -> None:
        self._jumps.append((self.enterprise.clock.now(), seconds))
        self.enterprise.clock.advance(seconds)
        self.actions["clock advanced"] += 1

    def act(self) -> int:
        """Answer every wait a person can answer now; returns how many were answered."""
        acted = self._review_children()
        for tracked, view in self.open_runs():
            for position in view.positions:
                if position.waiting_for is None:
                    continue
                if tracked.answered.get(position.block) == view.transitions:
                    continue
                try:
                    answered = self._answer(tracked, view, position.block, position.waiting_for)
                except httpx.HTTPError as exc:
                    self._give_up(tracked, position.block, exc)
                    break
                if answered:
                    tracked.answered[position.block] = view.transitions
                    acted += 1
        return acted

    def _give_up(self, tracked: Tracked, block: str, exc: httpx.HTTPError) -> None:
        """Record where a sandbox system failed a person's answer; the run is left alone."""
        try:
            where = f"{exc.request.method} {exc.request.url}"
        except RuntimeError:
            where = "a sandbox call"
        tracked.error = (
            f"run {tracked.run_id} at block {block!r}: {where} failed "
            f"({type(exc).__name__}: {exc}); the simulation stopped answering this run"
        )
        self.actions["answers failed"] += 1

    def _review_children(self) -> int:
        """Review items of sub-runs (a refund a support case started) follow the parent case."""
        acted = 0
        for item in self.accord.review_items():
            if item.run_id in self.tracked:
                continue
            child = self.accord.runtime.get(TENANT, item.run_id)
            parent = self.tracked.get(child.parent_run_id or "")
            if parent is None or parent.case.staff == "leave" or parent.error:
                continue
            try:
                acted += self._decide(item, child, parent.case.staff)
            except httpx.HTTPError as exc:
                self._give_up(parent, item.block, exc)
        return acted

    def _answer(self, tracked: Tracked, view: RunView, block: str, waiting_for: str) -> bool:
        persona = tracked.case.persona
        kind, _, name = waiting_for.partition(":")
        if persona.withdraw_at == block and not tracked.withdrawn and tracked.case.subject:
            self._withdraw(tracked)
            return True
        if kind == "event" and name == "otp_entered":
            return self._enter_code(tracked, view)
        if kind == "event" and name == "document_uploaded":
            return self._upload_document(tracked, view)
        if kind == "event" and name == "chat_message":
            return self._write(tracked)
        if kind == "event" and name == "chat_consent":
            return self._answer_consent(tracked)
        if kind == "child":
            return self._confirm_child(tracked)
        if kind == "confirm":
            return self._confirm(tracked, view)
        if kind == "human":
            return self._review(tracked, view, block)
        return False

    def _step_output(self, view: RunView, block: str) -> dict[str, Any]:
        step = view.steps.get(block)
        return dict(step) if isinstance(step, dict) else {}

    def _enter_code(self, tracked: Tracked, view: RunView) -> bool:
        persona = tracked.case.persona
        if persona.otp == "silent":
            return False
        verification = self._step_output(view, "start_otp").get("verification_id")
        if not verification:
            return False
        tracked.otp_answers += 1
        wrong = persona.otp == "wrong" or (persona.otp == "wrong_once" and tracked.otp_answers == 1)
        code = "000000"
        if not wrong:
            response = self._http.get(
                f"{self.enterprise.url('kyc')}/verifications/{verification}/otp"
            )
            response.raise_for_status()
            code = str(response.json()["code"])
        elif code == self._true_code(verification):
            code = "999999"
        self.accord.runtime.signal(
            TENANT, "otp_entered", correlation_key=verification, payload={"code": code}
        )
        self.actions["codes entered" if not wrong else "wrong codes entered"] += 1
        return True

    def _true_code(self, verification: str) -> str:
        response = self._http.get(f"{self.enterprise.url('kyc')}/verifications/{verification}/otp")
        response.raise_for_status()
        return str(response.json().get("code", ""))

    def _upload_document(self, tracked: Tracked, view: RunView) -> bool:
        verification = self._step_output(view, "start_document").get("verification_id")
        if not verification:
            return False
        persona = tracked.case.persona
        self.accord.runtime.signal(
            TENANT,
            "document_uploaded",
            correlation_key=verification,
            payload={
                "document_type": persona.document_type,
                "document_number": persona.document_number,
            },
        )
        self.actions["documents uploaded"] += 1
        return True

    def _write(self, tracked: Tracked) -> bool:
        """The next message of the person's conversation, if they have one left."""
        messages = tracked.case.persona.chat
        if tracked.conversation is None or tracked.said >= len(messages):
            return False
        subject = str(tracked.case.subject)
        self.accord.conversations.post(
            TENANT, subject, tracked.conversation, messages[tracked.said]
        )
        tracked.said += 1
        self.actions["chat messages written"] += 1
        return True

    def _answer_consent(self, tracked: Tracked) -> bool:
        """Agree or not to what the conversation asked, granting it first as the portal does
        (the categories of the purpose catalogue beside the manifest)."""
        if tracked.conversation is None:
            return False
        subject = str(tracked.case.subject)
        conversations = self.accord.conversations
        found = conversations.get(TENANT, subject, tracked.conversation)
        asked = [m for m in conversations.transcript(TENANT, found) if m.kind == "consent_request"]
        purpose = str(asked[-1].data.get("purpose") or "") if asked else ""
        categories = self._categories().get(purpose)
        agree = tracked.case.persona.chat_consent == "agree" and bool(categories)
        if agree and categories:
            self.accord.consent.grant(
                TENANT,
                subject,
                purpose=purpose,
                categories=categories,
                channel="chat",
                notice_version=self._notices().get(purpose, ""),
                actor=f"customer/{subject}",
            )
        conversations.answer_consent(
            TENANT, subject, tracked.conversation, purpose=purpose, granted=agree
        )
        self.actions["chat consents " + ("given" if agree else "refused")] += 1
        return True

    def _categories(self) -> dict[str, list[str]]:
        return {p: list(found.categories) for p, found in self._purposes().items()}

    def _notices(self) -> dict[str, str]:
        return {p: found.notice_version for p, found in self._purposes().items()}

    def _purposes(self) -> dict[str, Purpose]:
        if self._catalogue is None:
            path = self.enterprise.manifest.root / "purposes.yaml"
            self._catalogue = load_purposes(path) if path.is_file() else {}
        return self._catalogue

    def _confirm_child(self, tracked: Tracked) -> bool:
        """A proposal of a sub-run (the case a conversation started) is the person's too."""
        acted = False
        for child in self.accord.runtime.list_runs(TENANT, subject=tracked.case.subject, limit=50):
            if child.parent_run_id != tracked.run_id or child.status in TERMINAL:
                continue
            if any((p.waiting_for or "").startswith("confirm") for p in child.positions):
                acted = self._confirm(tracked, child, run_id=child.run_id) or acted
        return acted

    def _confirm(self, tracked: Tracked, view: RunView, *, run_id: str | None = None) -> bool:
        answer = tracked.case.persona.confirm
        if answer == "ignore":
            return False
        events = self.accord.events(
            types=["confirmation.requested"],
            run_id=run_id or tracked.run_id,
            newest=True,
            limit=1,
        )
        if not events:
            return False
        data = events[0].cloudevent.get("data") or {}
        token = data.get("token")
        channels = data.get("channels") or ["portal"]
        if not token:
            return False
        if answer == "weigh":
            weighed = self._weigh(tracked, data.get("proposal"), str(data.get("block", "")))
            if weighed is None:
                return False
            answer = weighed
        try:
            self.accord.confirm(str(token), answer, channel=str(channels[0]))
        except AccordError:
            return False
        self.actions["confirmations " + ("given" if answer == "confirm" else "refused")] += 1
        return True

    def _weigh(self, tracked: Tracked, proposal: Any, block: str) -> Answer | None:
        """The person's answer to a discount by the response model and their own draw; a
        proposal without a ``discount_percent``, or a person without a draw, is the case's
        error (nobody answers its run again)."""
        draw = tracked.case.persona.draw
        percent = proposal.get("discount_percent") if isinstance(proposal, dict) else None
        if draw is None or not isinstance(percent, int | float):
            tracked.error = (
                f"run {tracked.run_id} at block {block!r}: a person who weighs an offer needs "
                "their own draw and a proposal with a discount_percent"
                + ("" if draw is not None else "; this one has no draw")
                + ("" if isinstance(percent, int | float) else f"; the proposal is {proposal!r}")
            )
            return None
        tracked.weighed = float(percent)
        return "confirm" if self.response.accepts(float(percent), draw=draw) else "refuse"

    def _withdraw(self, tracked: Tracked) -> None:
        subject = tracked.case.subject
        assert subject is not None
        for purpose in tracked.case.persona.consents:
            self.accord.consent.withdraw_purpose(
                TENANT, subject, purpose, actor=subject, reason="changed my mind"
            )
        tracked.withdrawn = True
        self.actions["consents withdrawn"] += 1

    def _review(self, tracked: Tracked, view: RunView, block: str) -> bool:
        action = tracked.case.staff
        if action == "leave":
            return False
        acted = 0
        for item in self.accord.review_items(run_id=tracked.run_id):
            acted += self._decide(item, view, action)
        return acted > 0

    def _decide(self, item: ReviewItemRecord, view: RunView, decision: str) -> int:
        person = self._reviewer(item, view)
        if person is None:
            return 0
        reason = (
            "checked against the case and the policy"
            if decision == "approve"
            else "not justified by the case"
        )
        try:
            self.accord.decide_review(item.item_id, person, decision, reason=reason)
        except AccordError:
            return 0
        self.actions[f"reviews {'approved' if decision == 'approve' else 'rejected'}"] += 1
        return 1

    def _reviewer(self, item: ReviewItemRecord, view: RunView) -> str | None:
        if item.queue == "managers":
            return self._manager_reviewer(item, view)
        wanted = set(item.roles)
        queue = next((q for q in self.enterprise.manifest.queues if q.name == item.queue), None)
        if queue is not None:
            wanted |= set(queue.roles)
        for member in self.enterprise.manifest.staff:
            if member.person_id in item.makers:
                continue
            if not wanted or wanted & set(member.roles):
                return member.person_id
        return None

    def _manager_reviewer(self, item: ReviewItemRecord, view: RunView) -> str | None:
        """The employee's manager; when that manager asked for the access (a maker of the
        item), the manager's own manager, the skip-level approval the access policy accepts."""
        manager = self._step_output(view, "employee").get("manager_id")
        if not manager:
            return None
        if str(manager) not in item.makers:
            return str(manager)
        skip = self._step_output(view, "manager").get("manager_id") or self._manager_of(
            str(manager)
        )
        if not skip or str(skip) in item.makers:
            return None
        self._register_manager(str(skip))
        return str(skip)

    # -- results --------------------------------------------------------------------------

    def results(self) -> list[Finished]:
        finished = []
        for tracked in self.tracked.values():
            if not tracked.run_id:
                finished.append(
                    Finished(tracked.case, "", "refused_at_start", None, None, (), tracked.error)
                )
                continue
            view = self.accord.runtime.get(TENANT, tracked.run_id)
            seconds = None
            if view.ended_at is not None and view.status in TERMINAL:
                jumped = sum(
                    amount for at, amount in self._jumps if view.created_at <= at < view.ended_at
                )
                seconds = max(0.0, view.ended_at - view.created_at - jumped)
            waiting = tuple(f"{p.block} ({p.waiting_for})" for p in view.positions if p.waiting_for)
            error = tracked.error or (view.error or {}).get("message")
            finished.append(
                Finished(
                    tracked.case,
                    view.run_id,
                    view.status,
                    view.outcome,
                    seconds,
                    waiting,
                    error,
                    tracked.weighed,
                )
            )
        return finished


def with_sub_runs(accord: Accord, run_ids: Iterable[str]) -> set[str]:
    """The given runs and every run they started, however deep (``parent_run_id``)."""
    wanted = set(run_ids)
    runs = accord.runtime.list_runs(TENANT, limit=100_000)
    while added := {r.run_id for r in runs if r.parent_run_id in wanted} - wanted:
        wanted |= added
    return wanted


def refusals_by_reason(accord: Accord, run_ids: Iterable[str]) -> Counter[str]:
    """Gateway refusals of the given runs and their sub-runs, by reason and deciding policy
    (``no permit`` and the capability when no policy permits the call)."""
    counted: Counter[str] = Counter()
    for run_id in sorted(with_sub_runs(accord, run_ids)):
        for record in accord.runtime.decisions(TENANT, run_id):
            if record.outcome != "refused":
                continue
            policy = record.record.get("policy") or {}
            determining = ", ".join(policy.get("determining") or [])
            if not determining and policy.get("reason") == "no_permit":
                determining = f"no permit: {record.capability}"
            counted[f"{record.reason}" + (f" ({determining})" if determining else "")] += 1
    return counted
