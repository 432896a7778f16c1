"""The review inbox: staff, queues, claiming, deciding, SLAs and feedback.

Items are opened by the runtime in the transition that pauses a run for a person. Everything a
person does to an item goes through :class:`ReviewInbox`: it checks the queue (roles, skills,
one owner at a time), asks the policy decision point whether this person may take this action
on this item (maker-checker is a policy: see ``examples/policies/retail.cedar``), and writes
the change, its ledger entry and, for a decision, the signal that resumes the run, in one
transaction.

Decisions are single-use and idempotent: the item keeps the digest of the decision it took, so
the same decision submitted again returns the first result and a different one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from accord.audit import Ledger, ReviewEventKind, entries
from accord.core import Clock, IdGenerator, digest
from accord.errors import (
    InputError,
    ReviewConflict,
    ReviewForbidden,
    ReviewNotFound,
    SubjectErased,
)
from accord.policy import Entity, PolicyDecisionPoint, PolicyRequest, PolicyStore
from accord.reviews._decisions import (
    OUTCOMES,
    DecisionResult,
    Feedback,
    decision_request,
    require_reason,
    result_of,
)
from accord.reviews._packet import HandoffPacket, InfoExchange
from accord.reviews._people import (
    Person,
    Queue,
    eligible,
    person_of,
    queue_of,
    require_name,
    stored_queue,
)
from accord.reviews._sla import sweep_overdue
from accord.storage import OPEN_REVIEW, Database, NewEvent, ReviewItemRecord, signals
from accord.storage import reviews as stored
from accord.storage import runs as stored_runs


def item_packet(item: ReviewItemRecord) -> HandoffPacket:
    """The item's handoff packet.

    Raises:
        SubjectErased: the item's subject was erased, and its packet with them.
    """
    if item.packet.get("erased"):
        raise SubjectErased(
            f"review item {item.item_id} was about subject {item.subject_id}, who was erased; "
            "its packet is gone",
            hint="the ledger still proves the decision: accord explain " + item.run_id,
        )
    return HandoffPacket.model_validate(item.packet)


class ReviewInbox:
    """Every operation a person (or the SLA clock) performs on review items."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        ids: IdGenerator,
        ledger: Ledger,
        policies: PolicyStore,
        pdp: PolicyDecisionPoint,
    ) -> None:
        self.db = db
        self.clock = clock
        self.ids = ids
        self.ledger = ledger
        self.policies = policies
        self.pdp = pdp

    # -- staff and queues ------------------------------------------------------------------

    def put_person(
        self,
        tenant: str,
        person_id: str,
        *,
        roles: Sequence[str],
        skills: Sequence[str] = (),
        name: str = "",
        active: bool = True,
        actor: str,
    ) -> Person:
        """Add a member of staff, or change their roles and skills."""
        require_name(person_id, "a person id")
        for role in roles:
            require_name(role, "a role")
        record = stored.StaffRecord(
            person_id=person_id,
            name=name or person_id,
            roles=tuple(sorted(set(roles))),
            skills=tuple(sorted(set(skills))),
            active=active,
            updated_at=self.clock.now(),
            updated_by=actor,
        )
        with self.db.transaction() as connection:
            stored.put_staff(connection, tenant, record)
        return person_of(record)

    def staff(self, tenant: str) -> list[Person]:
        with self.db.read() as connection:
            return [person_of(r) for r in stored.list_staff(connection, tenant)]

    def person(
        self, tenant: str, person_id: str, *, connection: Connection | None = None
    ) -> Person:
        """A member of staff who may act now.

        Raises:
            ReviewForbidden: no such person in the tenant, or they are inactive.
        """
        if connection is None:
            with self.db.read() as read:
                return self.person(tenant, person_id, connection=read)
        record = stored.get_staff(connection, tenant, person_id)
        if record is None or not record.active:
            raise ReviewForbidden(
                f"{person_id!r} is not {'active ' if record else ''}staff of tenant {tenant!r}",
                hint="add them with 'accord review staff add PERSON --role ROLE'",
            )
        return person_of(record)

    def put_queue(self, tenant: str, queue: Queue, *, actor: str) -> Queue:
        """Define a queue, or change one; items already in it keep their due times."""
        require_name(queue.name, "a queue name")
        if queue.sla is not None and queue.sla <= 0:
            raise InputError(
                f"queue {queue.name!r}: the SLA must be positive, not {queue.sla}",
                hint="give seconds or text such as '4h'; leave it out for no SLA",
            )
        if queue.escalate_to == queue.name:
            raise InputError(
                f"queue {queue.name!r} cannot escalate to itself",
                hint="name a supervisor queue, e.g. --escalate-to supervisors",
            )
        record = stored.QueueRecord(
            name=queue.name,
            roles=tuple(sorted(set(queue.roles))),
            skills=tuple(sorted(set(queue.skills))),
            sla_seconds=queue.sla,
            escalate_to=queue.escalate_to,
            description=queue.description,
            updated_at=self.clock.now(),
            updated_by=actor,
        )
        with self.db.transaction() as connection:
            stored.put_queue(connection, tenant, record)
        return queue_of(record)

    def queues(self, tenant: str) -> list[Queue]:
        with self.db.read() as connection:
            return [queue_of(r) for r in stored.list_queues(connection, tenant)]

    # -- reading ---------------------------------------------------------------------------

    def items(
        self,
        tenant: str,
        *,
        person: str | None = None,
        queue: str | None = None,
        statuses: Iterable[str] | None = OPEN_REVIEW,
        mine: bool = False,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[ReviewItemRecord]:
        """Items, most urgent first; with ``person``, only those they may work (or own)."""
        with self.db.read() as connection:
            found = stored.list_items(
                connection,
                tenant,
                statuses=statuses,
                queues=[queue] if queue else None,
                owner=person if mine else None,
                run_id=run_id,
                limit=limit if person is None else max(limit * 4, limit),
            )
            if person is None:
                return found
            who = self.person(tenant, person, connection=connection)
            queues = {q.name: queue_of(q) for q in stored.list_queues(connection, tenant)}
        return [i for i in found if eligible(who, i, queues.get(i.queue)) is None][:limit]

    def get(self, tenant: str, item_id: str) -> ReviewItemRecord:
        with self.db.read() as connection:
            return _require_item(connection, tenant, item_id)

    # -- assignment ------------------------------------------------------------------------

    def claim(self, tenant: str, item_id: str, person_id: str) -> ReviewItemRecord:
        """Take an item: one owner at a time. Claiming your own item again changes nothing.

        Raises:
            ReviewForbidden: the person may not work this queue, or a policy forbids it.
            ReviewConflict: someone else owns it, or it is closed.
        """
        now = self.clock.now()
        with self.db.transaction() as connection:
            item = _require_item(connection, tenant, item_id, for_update=True)
            who = self.person(tenant, person_id, connection=connection)
            _require_open(item)
            if item.owner == person_id:
                return item
            if item.owner is not None:
                raise ReviewConflict(
                    f"item {item_id} is claimed by {item.owner}",
                    hint="ask them or a supervisor to release or reassign it",
                )
            problem = eligible(who, item, stored_queue(connection, tenant, item.queue))
            if problem is not None:
                refusal: ReviewForbidden | None = ReviewForbidden(
                    f"{person_id} may not claim item {item_id}: {problem}"
                )
                self._record_refusal(connection, tenant, item, who, "claim", str(refusal))
            else:
                refusal = self._refusal(connection, tenant, who, "claim", item)
            if refusal is None:
                updated = stored.update_item(
                    connection,
                    tenant,
                    item_id,
                    expect_status=("open", "info_requested"),
                    expect={"owner": None},
                    values={
                        "owner": person_id,
                        "claimed_at": now,
                        "updated_at": now,
                        "status": "claimed" if item.status == "open" else item.status,
                    },
                )
                if not updated:
                    raise ReviewConflict(f"item {item_id} was claimed by someone else just now")
                self._assigned(connection, tenant, item, owner=person_id, by=person_id, now=now)
        if refusal is not None:
            raise refusal
        return self.get(tenant, item_id)

    def release(self, tenant: str, item_id: str, person_id: str) -> ReviewItemRecord:
        """Give an item back to its queue.

        Raises:
            ReviewConflict: the person does not own it.
        """
        now = self.clock.now()
        with self.db.transaction() as connection:
            item = _require_item(connection, tenant, item_id, for_update=True)
            who = self.person(tenant, person_id, connection=connection)
            _require_open(item)
            if item.owner != person_id:
                raise ReviewConflict(
                    f"item {item_id} is {'claimed by ' + item.owner if item.owner else 'unclaimed'}"
                    f"; only its owner releases it",
                    hint="a supervisor can reassign it: accord review reassign",
                )
            refusal = self._refusal(connection, tenant, who, "release", item)
            if refusal is None:
                stored.update_item(
                    connection,
                    tenant,
                    item_id,
                    expect_status=OPEN_REVIEW,
                    expect={"owner": person_id},
                    values={
                        "owner": None,
                        "claimed_at": None,
                        "updated_at": now,
                        "status": "open" if item.status == "claimed" else item.status,
                    },
                )
                self._assigned(connection, tenant, item, owner=None, by=person_id, now=now)
        if refusal is not None:
            raise refusal
        return self.get(tenant, item_id)

    def reassign(
        self, tenant: str, item_id: str, *, by: str, to: str, reason: str
    ) -> ReviewItemRecord:
        """A supervisor gives an item to someone else (policy action ``review.reassign``).

        Raises:
            ReviewForbidden: policy forbids ``by`` to reassign, or ``to`` may not work the item.
        """
        require_reason(reason, "a reassignment")
        now = self.clock.now()
        with self.db.transaction() as connection:
            item = _require_item(connection, tenant, item_id, for_update=True)
            _require_open(item)
            supervisor = self.person(tenant, by, connection=connection)
            target = self.person(tenant, to, connection=connection)
            refusal = self._refusal(connection, tenant, supervisor, "reassign", item)
            if refusal is None:
                queue = stored_queue(connection, tenant, item.queue)
                problem = eligible(target, item, queue)
                if problem is not None:
                    refusal = ReviewForbidden(f"cannot reassign item {item_id} to {to}: {problem}")
                    self._record_refusal(
                        connection, tenant, item, supervisor, "reassign", str(refusal)
                    )
            if refusal is None:
                stored.update_item(
                    connection,
                    tenant,
                    item_id,
                    expect_status=OPEN_REVIEW,
                    expect={"owner": item.owner},
                    values={
                        "owner": to,
                        "claimed_at": now,
                        "updated_at": now,
                        "status": "claimed" if item.status == "open" else item.status,
                    },
                )
                self._assigned(connection, tenant, item, owner=to, by=by, now=now, reason=reason)
        if refusal is not None:
            raise refusal
        return self.get(tenant, item_id)

    # -- deciding --------------------------------------------------------------------------

    def decide(
        self,
        tenant: str,
        item_id: str,
        person_id: str,
        decision: str,
        *,
        reason: str | None = None,
        value: Any = None,
        outcome: str | None = None,
        question: str | None = None,
    ) -> DecisionResult:
        """Decide an item: approve, edit, reject, override or request more information.

        ``value`` is the edited value (``edit``, and optionally ``override``); ``outcome`` is
        what an override decides instead (``approve``, ``reject``, or a route the journey
        declares); ``question`` is what ``request_info`` asks. A person who has not claimed
        the item claims it by deciding.

        Raises:
            InputError: the decision is malformed or the edited value breaks the contract;
                nothing was stored.
            ReviewForbidden: policy forbids this person this decision (self-approval, say);
                the refusal is recorded in the ledger.
            ReviewConflict: the item was decided differently, is someone else's, or closed.
        """
        now = self.clock.now()
        refusal: ReviewForbidden | None = None
        with self.db.transaction() as connection:
            item = _require_item(connection, tenant, item_id, for_update=True)
            packet = item_packet(item)
            # a malformed decision raises here and rolls back: nothing is stored
            request = decision_request(packet, decision, reason, value, outcome, question)
            request_digest = digest({"by": person_id, **request})
            who = self.person(tenant, person_id, connection=connection)
            if item.status == "decided":
                if item.decision_digest == request_digest:
                    return result_of(item, replayed=True)
                first = item.decision or {}
                raise ReviewConflict(
                    f"item {item_id} was already decided: {first.get('decision')!r} by "
                    f"{item.decided_by}; a decision is taken once",
                    hint="'accord review show ITEM' shows the decision and why",
                )
            _require_open(item)
            if item.owner is not None and item.owner != person_id:
                raise ReviewConflict(
                    f"item {item_id} is claimed by {item.owner}; only its owner decides",
                    hint="ask a supervisor to reassign it",
                )
            if decision == "request_info" and item.status == "info_requested":
                asked = packet.info[-1] if packet.info else None
                if asked is not None and asked.question == question and asked.asked_by == person_id:
                    return result_of(item, replayed=True)
            queue = stored_queue(connection, tenant, item.queue)
            problem = eligible(who, item, queue)
            if problem is not None:
                refusal = ReviewForbidden(f"{person_id} may not decide item {item_id}: {problem}")
                self._record_refusal(connection, tenant, item, who, decision, str(refusal))
            else:
                refusal = self._refusal(connection, tenant, who, decision, item, packet=packet)
            if refusal is None:
                if decision == "request_info" and "request_info" not in packet.routes:
                    return self._ask(connection, tenant, item, packet, who, question or "", now)
                result = self._decided(
                    connection, tenant, item, packet, who, request, request_digest, now
                )
                return result
        assert refusal is not None
        raise refusal

    def _decided(
        self,
        connection: Connection,
        tenant: str,
        item: ReviewItemRecord,
        packet: HandoffPacket,
        who: Person,
        request: dict[str, Any],
        request_digest: str,
        now: float,
    ) -> DecisionResult:
        decision = request["decision"]
        outcome = OUTCOMES.get(decision)
        signal_id = self.ids.new_id("sig")
        recorded = {
            **request,
            "by": who.person_id,
            "at": now,
            "packet_version": packet.version,
            "signal_id": signal_id,
        }
        updated = stored.update_item(
            connection,
            tenant,
            item.item_id,
            expect_status=OPEN_REVIEW,
            expect={"owner": item.owner},
            values={
                "status": "decided",
                "owner": who.person_id,
                "decision": recorded,
                "decision_digest": request_digest,
                "outcome": outcome,
                "decided_by": who.person_id,
                "decided_at": now,
                "updated_at": now,
            },
        )
        if not updated:
            raise ReviewConflict(f"item {item.item_id} changed while it was being decided")
        payload = {
            "decision": decision,
            "by": who.person_id,
            "reason": request.get("reason"),
            "value": request.get("value"),
            "override_outcome": request.get("outcome"),
            "item": item.item_id,
            "visit": item.visit,
            "packet_version": packet.version,
            "outcome": outcome,
            "source": packet.recommendation.source.key,
            "recommendation": packet.recommendation.model_dump(mode="json"),
            "approved_digest": packet.proposed.digest if packet.proposed else None,
            # an approval stands for the roles its giver holds; one whom only the queue (say,
            # a supervisor queue after an SLA escalation) admits stands for all it asked for
            "roles": sorted(set(who.roles) & set(item.roles)) or list(item.roles),
            "question": request.get("question"),
        }
        signals.insert_signal(
            connection,
            signal_id=signal_id,
            tenant=tenant,
            run_id=item.run_id,
            kind="decision",
            name=item.block,
            payload=payload,
            correlation_key=None,
            at=now,
        )
        self.ledger.append(
            connection,
            tenant,
            [
                entries.human_decision(
                    signal_id=signal_id,
                    run_id=item.run_id,
                    subject_id=item.subject_id,
                    block=item.block,
                    payload=payload,
                    at=now,
                )
            ],
        )
        stored_runs.insert_outbox(
            connection,
            tenant,
            item.run_id,
            None,
            [
                NewEvent(
                    self.ids.new_id("evt"),
                    "review.decided",
                    {
                        "item": item.item_id,
                        "run_id": item.run_id,
                        "queue": item.queue,
                        "block": item.block,
                        "decision": decision,
                        "outcome": outcome,
                        "decided_by": who.person_id,
                        "reason": request.get("reason"),
                    },
                    subject_id=item.subject_id,
                )
            ],
            now,
        )
        self.db.notify_ready(connection)
        return DecisionResult(
            item.item_id, item.run_id, decision, outcome, "decided", who.person_id, now, signal_id
        )

    def _ask(
        self,
        connection: Connection,
        tenant: str,
        item: ReviewItemRecord,
        packet: HandoffPacket,
        who: Person,
        question: str,
        now: float,
    ) -> DecisionResult:
        """Ask for more information; the run keeps waiting and the item waits for the answer."""
        exchange = InfoExchange(asked_by=who.person_id, question=question, asked_at=now)
        revised = packet.model_copy(
            update={"version": packet.version + 1, "info": [*packet.info, exchange]}
        )
        stored.update_item(
            connection,
            tenant,
            item.item_id,
            expect_status=OPEN_REVIEW,
            expect={"owner": item.owner},
            values={
                "status": "info_requested",
                "owner": who.person_id,
                "packet": revised.to_json(),
                "packet_version": revised.version,
                "updated_at": now,
            },
        )
        stored_runs.insert_outbox(
            connection,
            tenant,
            item.run_id,
            None,
            [
                NewEvent(
                    self.ids.new_id("evt"),
                    "review.info_requested",
                    {
                        "item": item.item_id,
                        "run_id": item.run_id,
                        "subject_id": item.subject_id,
                        "question": question,
                        "asked_by": who.person_id,
                    },
                )
            ],
            now,
        )
        self._log(
            connection,
            tenant,
            "review.info",
            item,
            at=now,
            body={"asked_by": who.person_id, "packet_version": revised.version},
            personal={"question": question},
        )
        return DecisionResult(
            item.item_id,
            item.run_id,
            "request_info",
            None,
            "info_requested",
            who.person_id,
            now,
            None,
        )

    def provide_info(self, tenant: str, item_id: str, *, by: str, answer: Any) -> ReviewItemRecord:
        """The subject or another system answers a reviewer's question; the item reopens
        with a new packet version that carries the answer.

        Raises:
            ReviewConflict: the item is not waiting for information.
        """
        now = self.clock.now()
        with self.db.transaction() as connection:
            item = _require_item(connection, tenant, item_id, for_update=True)
            if item.status != "info_requested":
                raise ReviewConflict(
                    f"item {item_id} is {item.status}, not waiting for information",
                    hint="a reviewer asks first: accord review decide ITEM request_info",
                )
            packet = item_packet(item)
            asked = packet.info[-1]
            answered = asked.model_copy(
                update={"answered_by": by, "answer": answer, "answered_at": now}
            )
            revised = packet.model_copy(
                update={"version": packet.version + 1, "info": [*packet.info[:-1], answered]}
            )
            stored.update_item(
                connection,
                tenant,
                item_id,
                expect_status=("info_requested",),
                values={
                    "status": "claimed" if item.owner else "open",
                    "packet": revised.to_json(),
                    "packet_version": revised.version,
                    "updated_at": now,
                },
            )
            self._log(
                connection,
                tenant,
                "review.info",
                item,
                at=now,
                body={"answered_by": by, "packet_version": revised.version},
                personal={"answer": answer},
            )
        return self.get(tenant, item_id)

    # -- SLAs ------------------------------------------------------------------------------

    def sweep(self, *, limit: int = 200) -> int:
        """Escalate every overdue item to its queue's supervisor queue and announce it.

        An item whose queue names no ``escalate_to`` stays put but is announced once. Returns
        how many items were escalated.
        """
        return sweep_overdue(self.db, self.ledger, self.ids, now=self.clock.now(), limit=limit)

    # -- feedback --------------------------------------------------------------------------

    def feedback(self, tenant: str) -> list[Feedback]:
        """Acceptance, edit, rejection and override counts per recommender version."""
        with self.db.read() as connection:
            counts = stored.outcome_counts(connection, tenant)
        by_source: dict[str, dict[str, int]] = {}
        for source, outcome, n in counts:
            by_source.setdefault(source, {})[outcome] = n
        return [
            Feedback(
                source,
                sum(c.values()),
                c.get("accepted", 0),
                c.get("edited", 0),
                c.get("rejected", 0),
                c.get("overridden", 0),
            )
            for source, c in sorted(by_source.items())
        ]

    # -- policy ----------------------------------------------------------------------------

    def _refusal(
        self,
        connection: Connection,
        tenant: str,
        who: Person,
        action: str,
        item: ReviewItemRecord,
        *,
        packet: HandoffPacket | None = None,
    ) -> ReviewForbidden | None:
        """Ask the PDP whether ``who`` may ``review.<action>`` ``item``; record a refusal."""
        packet = packet or item_packet(item)
        bundle = self.policies.active(tenant, connection=connection)
        context: dict[str, Any] = {
            "journey": packet.run.journey,
            "time": int(self.clock.now()),
        }
        if packet.subject.purpose:
            context["purpose"] = packet.subject.purpose
        if packet.proposed is not None:
            for key in ("amount", "risk_tier", "channel"):
                if packet.proposed.context.get(key) is not None:
                    context[key] = packet.proposed.context[key]
        request = PolicyRequest(
            principal=Entity(
                "Person",
                who.person_id,
                {
                    "role": who.roles[0] if who.roles else "",
                    "roles": list(who.roles),
                    "skills": list(who.skills),
                    "person_id": who.person_id,
                },
            ),
            action=f"review.{action}",
            resource=Entity(
                "ReviewItem",
                item.item_id,
                {
                    "queue": item.queue,
                    "kind": item.kind,
                    "roles": list(item.roles),
                    "makers": list(item.makers),
                    "journey": packet.run.journey,
                    "capability": packet.proposed.capability if packet.proposed else "",
                },
            ),
            context=context,
        )
        decided = self.pdp.decide(bundle, request)
        if decided.allowed:
            return None
        if decided.reason == "forbid":
            why = f"forbidden by policy {', '.join(decided.determining)}"
        elif decided.reason == "no_permit":
            why = f"no policy permits review.{action}"
        else:
            why = "; ".join(decided.errors[:2]) or str(decided.reason)
        message = f"{who.person_id} may not {action.replace('_', ' ')} item {item.item_id}: {why}"
        self._record_refusal(
            connection,
            tenant,
            item,
            who,
            action,
            message,
            policy={
                "bundle_version": decided.bundle_version,
                "reason": decided.reason,
                "determining": list(decided.determining),
            },
        )
        return ReviewForbidden(
            message,
            hint=(
                "maker-checker: whoever initiated or edited an action cannot approve it; "
                "another person in the role must"
                if "maker" in why
                else "'accord policy explain' shows which policy decided"
            ),
        )

    def _record_refusal(
        self,
        connection: Connection,
        tenant: str,
        item: ReviewItemRecord,
        who: Person,
        action: str,
        message: str,
        *,
        policy: dict[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {"by": who.person_id, "action": action}
        if policy is not None:
            body["policy"] = policy
        self._log(
            connection,
            tenant,
            "review.refused",
            item,
            at=self.clock.now(),
            body=body,
            personal={"message": message},
        )

    def _log(
        self,
        connection: Connection,
        tenant: str,
        kind: ReviewEventKind,
        item: ReviewItemRecord,
        *,
        at: float,
        body: dict[str, Any],
        personal: Any = None,
    ) -> None:
        """Append one entry of the item's life to the ledger, in the caller's transaction."""
        self.ledger.append(
            connection,
            tenant,
            [
                entries.review_event(
                    kind,
                    item_id=item.item_id,
                    run_id=item.run_id,
                    subject_id=item.subject_id,
                    at=at,
                    body=body,
                    personal=personal,
                )
            ],
        )

    def _assigned(
        self,
        connection: Connection,
        tenant: str,
        item: ReviewItemRecord,
        *,
        owner: str | None,
        by: str,
        now: float,
        reason: str | None = None,
    ) -> None:
        self._log(
            connection,
            tenant,
            "review.assigned",
            item,
            at=now,
            body={"owner": owner, "previous": item.owner, "by": by},
            personal={"reason": reason} if reason else None,
        )


def _require_item(
    connection: Connection, tenant: str, item_id: str, *, for_update: bool = False
) -> ReviewItemRecord:
    item = stored.get_item(connection, tenant, item_id, for_update=for_update)
    if item is None:
        raise ReviewNotFound(
            f"no review item {item_id!r} in tenant {tenant!r}",
            hint="'accord review list' shows open items",
        )
    return item


def _require_open(item: ReviewItemRecord) -> None:
    if item.status not in OPEN_REVIEW:
        raise ReviewConflict(
            f"item {item.item_id} is {item.status}"
            + (f" ({item.decided_by})" if item.decided_by else ""),
            hint="nothing more can be done on it",
        )


__all__ = ["ReviewInbox", "item_packet"]
