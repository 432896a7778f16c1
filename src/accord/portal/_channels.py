"""Confirmations by e-mail and SMS: the notices that carry a proposal to the customer, and the
signed links that answer it.

A ``confirm`` block whose ``channels`` hold ``email`` or ``sms`` takes its answer on that
channel too. :class:`ConfirmationNotices` finds each such proposal still waiting, reads the
customer's address from the CRM and sends them the proposal with a link. Both calls go through
the gateway on behalf of the run's journey, under the purpose of its messages, so consent, the
policies and the kill switches decide a notice as they decide any other message of the journey,
and the ledger records it. Each notice's outcome is kept in ``portal_notices``, one row per
confirmation and channel: a notice is sent once, a refused one is never tried again, a failed
one is.

A link names the confirmation and the channel and carries an HMAC of both, under a key derived
from the instance's master key: it answers that one confirmation, on that one channel. The
confirmation token stays on the server; the link's page finds it in the run's
``confirmation.requested`` event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, TypeVar, assert_never
from urllib.parse import urlencode

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accord.audit import entries
from accord.connectors import CallContext
from accord.core import TenantId
from accord.errors import (
    AccordError,
    ConfirmationInvalid,
    ExecutionError,
    JourneyNotFound,
    RunNotFound,
)
from accord.gateway import (
    ApprovalRequired,
    Executed,
    GatewaySession,
    Held,
    Invocation,
    Refused,
)
from accord.journeys import CompiledJourney, TaskBlock
from accord.portal._app import PREFIX, Portal, _when
from accord.portal._catalogue import Catalogue, find_catalogue_folder, load_catalogue
from accord.service import Accord
from accord.storage import NewEvent, runs
from accord.storage import decisions as stored_decisions
from accord.storage import reviews as stored_reviews
from accord.storage._schema import confirmations, portal_notices

log = logging.getLogger(__name__)

LINK_INFO = b"accord/portal-link/v1"
LINK_VERSION = "l1"
ANSWER_PATH = f"{PREFIX}/answer"
ADDRESS_CAPABILITY = "crm.get_customer"
CLAIM_SECONDS = 300.0
"""A notice claimed this long ago and never recorded (its process died) is tried again."""
NOTICE_INTERVAL = 5.0
MAX_PARAM = 200

NoticeStatus = Literal["sent", "refused", "failed"]
CallStatus = Literal["executed", "refused", "failed"]


@dataclass(frozen=True, slots=True)
class Way:
    """How a channel reaches the customer: the capability that sends on it and the CRM field
    (with its data category) that holds the address."""

    capability: str
    address_field: str
    category: str


WAYS: dict[str, Way] = {
    "email": Way("notifications.send_email", "email", "pd:EmailAddress"),
    "sms": Way("notifications.send_sms", "phone", "pd:TelephoneNumber"),
}

ANSWERED_WHERE = {
    "portal": "in your account",
    "email": "by e-mail",
    "sms": "by text message",
}


class LinkSigner:
    """Signs and checks answer links with a key derived from the instance's master key."""

    def __init__(self, master: bytes) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LINK_INFO).derive(
            master
        )

    def mac(self, tenant: str, confirmation_id: str, channel: str) -> str:
        message = "\0".join((LINK_VERSION, tenant, confirmation_id, channel)).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, tenant: str, confirmation_id: str, channel: str, mac: str) -> bool:
        """Whether ``mac`` is this instance's for that confirmation on that channel."""
        expected = self.mac(tenant, confirmation_id, channel)
        return bool(mac) and hmac.compare_digest(expected.encode(), mac.encode())

    def query(self, tenant: str, confirmation_id: str, channel: str) -> str:
        """The query string of the link (``confirmation``, ``channel``, ``mac``)."""
        return urlencode(
            {
                "confirmation": confirmation_id,
                "channel": channel,
                "mac": self.mac(tenant, confirmation_id, channel),
            }
        )


def requested(
    accord: Accord, tenant: str, run_id: str, confirmation_id: str
) -> dict[str, Any] | None:
    """The data of the ``confirmation.requested`` event that asked for ``confirmation_id``:
    its proposal, token, channels and expiry."""
    events = accord.events(
        tenant, types=["confirmation.requested"], run_id=run_id, newest=True, limit=100
    )
    for event in events:
        data = event.cloudevent.get("data") or {}
        if data.get("confirmation") == confirmation_id:
            return dict(data)
    return None


def notice_purpose(journey: CompiledJourney, block: str, capability: str) -> str | None:
    """The purpose a notice on ``capability`` goes under: the confirm block's own ``purpose``;
    else the one purpose under which the journey's tasks call ``capability`` (its own messages
    on that channel); else the journey's purpose."""
    spec = journey.spec
    node = journey.nodes.get(block)
    if node is not None and node.block.purpose:
        return node.block.purpose
    used = {
        task.purpose or spec.purpose
        for task in (n.block for n in journey.nodes.values())
        if isinstance(task, TaskBlock) and task.capability == capability
    }
    return used.pop() if len(used) == 1 else spec.purpose


def proposal_lines(proposal: Mapping[str, Any]) -> list[str]:
    """The proposal in plain words, one ``what: value`` line per field."""
    return [f"{key.replace('_', ' ')}: {_words(value)}" for key, value in proposal.items()]


def _words(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_words(v) for v in value)
    return str(value)


@dataclass(frozen=True, slots=True)
class _Due:
    confirmation_id: str
    run_id: str
    block: str
    subject_id: str | None
    channel: str
    status: str | None
    """The notice's status before this pass: none yet, failed, or claimed and abandoned."""


@dataclass(frozen=True, slots=True)
class _Result:
    status: CallStatus
    reason: str | None = None
    decision_id: str | None = None
    output: dict[str, Any] = field(default_factory=dict)


class ConfirmationNotices:
    """Sends each proposal waiting for an answer by e-mail or SMS to the customer, once per
    confirmation and channel, with a link that answers it.

    Args:
        accord: the instance whose confirmations are delivered.
        base_url: where customers reach the portal, e.g. ``https://accord.example``; links go
            to ``{base_url}/portal/answer``.
        catalogue: the portal's words (case titles); by default the sample enterprise's.
    """

    def __init__(
        self, accord: Accord, *, base_url: str, catalogue: Catalogue | None = None
    ) -> None:
        self.accord = accord
        self.links = LinkSigner(accord.ledger.keyring.master)
        self.link_base = base_url.rstrip("/") + ANSWER_PATH
        self.catalogue = catalogue or load_catalogue(find_catalogue_folder())

    def deliver(self, tenant: str | None = None, *, limit: int = 100) -> int:
        """Send what is due now: the notices of pending, unexpired confirmations that have none
        yet or whose last attempt failed. Returns how many messages were sent.

        Each outcome is recorded in ``portal_notices`` with the gateway decision that settled
        it: ``sent``; ``refused`` with the reason (``consent_withdrawn``, ``policy_denied``,
        ``address_missing``...), never tried again; ``failed`` with the error type, tried again
        by the next call. A notice goes out with an idempotency key of its confirmation and
        channel, so a retry after a lost answer does not send a second message.
        """
        tenant_id = TenantId(tenant or self.accord.settings.tenant)
        now = self.accord.runtime.clock.now()
        sent = 0
        for due in self._due(tenant_id, now, limit):
            if not self._claim(tenant_id, due, now):
                continue
            session = self.accord.gateway.session(tenant_id, due.subject_id)
            result = self._notify(session, tenant_id, due, now)
            status: NoticeStatus = "sent" if result.status == "executed" else result.status
            self._record(session, tenant_id, due, status, result, now)
            sent += status == "sent"
        return sent

    def run(self, stop: threading.Event, *, interval: float = NOTICE_INTERVAL) -> None:
        """Deliver every ``interval`` seconds until ``stop`` is set (what ``accord serve``
        runs in a thread)."""
        while not stop.is_set():
            try:
                self.deliver()
            except sa.exc.DBAPIError as exc:
                log.warning("confirmation notices: database error, trying again: %s", exc.orig)
            except AccordError as exc:
                # what was claimed and not recorded is taken again after CLAIM_SECONDS
                log.warning("confirmation notices: %s; trying again", exc.message)
            stop.wait(interval)

    def _due(self, tenant: TenantId, now: float, limit: int) -> list[_Due]:
        c, n = confirmations, portal_notices
        found: list[_Due] = []
        # a channel whose capability this instance does not have waits: nothing can send on it
        find = self.accord.capabilities.find
        available = [channel for channel, way in WAYS.items() if find(way.capability)]
        with self.accord.db.read() as connection:
            for channel in available:
                notice = sa.and_(
                    n.c.tenant_id == c.c.tenant_id,
                    n.c.confirmation_id == c.c.confirmation_id,
                    n.c.channel == channel,
                )
                query = (
                    sa.select(
                        c.c.confirmation_id,
                        c.c.run_id,
                        c.c.block,
                        c.c.subject_id,
                        c.c.channels,
                        n.c.status,
                    )
                    .select_from(c.outerjoin(n, notice))
                    .where(
                        c.c.tenant_id == tenant,
                        c.c.status == "pending",
                        c.c.expires_at > now,
                        c.c.channels.contains(f'"{channel}"', autoescape=True),
                        sa.or_(
                            n.c.status.is_(None),
                            n.c.status == "failed",
                            sa.and_(n.c.status == "sending", n.c.at < now - CLAIM_SECONDS),
                        ),
                    )
                    .order_by(c.c.created_at, c.c.confirmation_id)
                    .limit(limit)
                )
                for row in connection.execute(query).mappings():
                    if channel in json.loads(row["channels"]):
                        found.append(
                            _Due(
                                row["confirmation_id"],
                                row["run_id"],
                                row["block"],
                                row["subject_id"],
                                channel,
                                row["status"],
                            )
                        )
        return found

    def _claim(self, tenant: TenantId, due: _Due, now: float) -> bool:
        """Take the notice for this process; False when another one has it."""
        n = portal_notices
        key = (
            n.c.tenant_id == tenant,
            n.c.confirmation_id == due.confirmation_id,
            n.c.channel == due.channel,
        )
        if due.status is None:
            try:
                with self.accord.db.transaction() as connection:
                    connection.execute(
                        sa.insert(n).values(
                            tenant_id=tenant,
                            confirmation_id=due.confirmation_id,
                            channel=due.channel,
                            run_id=due.run_id,
                            status="sending",
                            at=now,
                        )
                    )
            except sa.exc.IntegrityError:
                return False
            return True
        with self.accord.db.transaction() as connection:
            taken = connection.execute(
                sa.update(n)
                .where(*key, n.c.status == due.status)
                .where(n.c.at < now - CLAIM_SECONDS if due.status == "sending" else sa.true())
                .values(status="sending", reason=None, at=now)
            )
        return bool(taken.rowcount)

    def _notify(self, session: GatewaySession, tenant: TenantId, due: _Due, now: float) -> _Result:
        if due.subject_id is None:
            return _Result("refused", "subject_missing")
        asked = requested(self.accord, tenant, due.run_id, due.confirmation_id)
        if asked is None:
            return _Result("refused", "request_missing")
        try:
            view = self.accord.runtime.get(tenant, due.run_id)
            journey = self.accord.runtime.catalog.get(tenant, view.journey, view.version)
        except (RunNotFound, JourneyNotFound):
            return _Result("refused", "run_missing")
        way = WAYS[due.channel]
        purpose = notice_purpose(journey, due.block, way.capability)

        def call(
            capability: str, payload: dict[str, Any], key: str, reads: tuple[str, ...]
        ) -> _Result:
            context = CallContext(
                tenant_id=tenant,
                run_id=f"notice/{due.confirmation_id}",
                block=f"notice_{due.channel}",
                visit=1,
                attempt=1,
                idempotency_key=key,
                subject_id=due.subject_id,
                purpose=purpose,
            )
            invocation = Invocation(
                capability=capability,
                payload=payload,
                call=context,
                journey=journey.name,
                channel=due.channel,
                reads=reads,
            )
            return _governed(session, invocation, now)

        notice_key = f"portal-notice/{due.confirmation_id}/{due.channel}"
        found = call(
            ADDRESS_CAPABILITY,
            {"customer_id": due.subject_id},
            f"{notice_key}/address",
            (way.category,),
        )
        if found.status != "executed":
            return found
        address = found.output.get(way.address_field)
        if not isinstance(address, str) or not address:
            return _Result("refused", "address_missing", found.decision_id)
        message = self._message(
            tenant,
            due,
            asked,
            title=self.catalogue.case_title(view.journey),
            portal="portal" in (asked.get("channels") or []),
        )
        return call(
            way.capability,
            {"to": address, "customer_id": due.subject_id, **message},
            notice_key,
            (),
        )

    def _message(
        self, tenant: str, due: _Due, asked: Mapping[str, Any], *, title: str, portal: bool
    ) -> dict[str, str]:
        query = self.links.query(tenant, due.confirmation_id, due.channel)
        link = f"{self.link_base}?{query}"
        proposal = asked.get("proposal") or {}
        lines = proposal_lines(proposal if isinstance(proposal, Mapping) else {})
        expires = asked.get("expires_at")
        until = _when(float(expires)) if isinstance(expires, int | float) else ""
        if due.channel == "sms":
            return {
                "body": f"{title}: if you confirm, we will do this: {'; '.join(lines)}. "
                + (f"Answer by {until}: " if until else "Answer here: ")
                + link
            }
        body = [
            f"We would like your answer about: {title}.",
            "",
            "If you confirm, we will do this:",
            *(f"  {line}" for line in lines),
            "",
            (f"You can answer until {until}. " if until else "")
            + "To confirm or decline, open this link:",
            link,
            "",
            "Opening the link does not answer for you: you choose on the page.",
        ]
        if portal:
            body.append('You can also answer in your account, under "Waiting for your answer".')
        body.append("If you did not expect this message, you can ignore it.")
        return {"subject": f"Please confirm or decline: {title}", "body": "\n".join(body)}

    def _record(
        self,
        session: GatewaySession,
        tenant: TenantId,
        due: _Due,
        status: NoticeStatus,
        result: _Result,
        now: float,
    ) -> None:
        """The notice's outcome, with the decisions of its gateway calls, in one commit."""
        # the calls belong to no run: the connector saw the notice's own synthetic run id
        records = [replace(record, run_id=None) for record in session.records]
        recorded = [e for record in records for e in entries.gateway_decision(record)]
        ids = self.accord.runtime.ids
        notices = [NewEvent(ids.new_id("evt"), "gateway.notify", n) for n in session.notifications]
        n = portal_notices
        with self.accord.db.transaction() as connection:
            if records:
                stored_decisions.insert_decisions(connection, tenant, records)
                self.accord.ledger.append(connection, tenant, recorded)
                runs.insert_outbox(connection, tenant, None, None, notices, now)
            connection.execute(
                sa.update(n)
                .where(
                    n.c.tenant_id == tenant,
                    n.c.confirmation_id == due.confirmation_id,
                    n.c.channel == due.channel,
                )
                .values(
                    status=status,
                    reason=result.reason,
                    decision_id=result.decision_id,
                    at=now,
                )
            )


def _governed(session: GatewaySession, invocation: Invocation, now: float) -> _Result:
    try:
        outcome = session.invoke(invocation, now=now)
    except ExecutionError as exc:
        decision = session.records[-1].decision_id if session.records else None
        return _Result("failed" if exc.retryable else "refused", exc.error_type, decision)
    match outcome:
        case Executed():
            return _Result("executed", None, outcome.decision_id, dict(outcome.output or {}))
        case Refused():
            return _Result("refused", outcome.reason, outcome.decision_id)
        case Held():
            return _Result("failed", "kill_switch", outcome.decision_id)
        case ApprovalRequired():
            return _Result("refused", "approval_required", outcome.decision_id)
        case _:
            assert_never(outcome)


# -- the link's page -------------------------------------------------------------------------

FormField = Annotated[str, Form()]
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True, slots=True)
class _Link:
    confirmation_id: str
    channel: str
    row: dict[str, Any]


def add_channel_routes(router: APIRouter, portal: Portal) -> None:
    """``/portal/answer``: the page an e-mail or SMS link opens, and its answer.

    No session is needed: the link is the credential, and it answers only the confirmation
    and the channel it was signed for. A GET never acts (mail scanners open links); the page's
    form posts the answer.
    """
    accord = portal.accord
    links = LinkSigner(accord.ledger.keyring.master)

    def opened(confirmation: str, channel: str, mac: str) -> _Link | None:
        if channel not in WAYS or max(len(confirmation), len(mac)) > MAX_PARAM:
            return None
        if not links.verify(portal.tenant, confirmation, channel, mac):
            return None
        with accord.db.read() as connection:
            row = stored_reviews.get_confirmation(connection, portal.tenant, confirmation)
        if row is None or channel not in json.loads(row["channels"]):
            return None
        return _Link(confirmation, channel, row)

    def refused() -> HTMLResponse:
        return _headed(
            portal.render(
                "error.html",
                None,
                None,
                status=400,
                title="This link does not work",
                message=(
                    "It may have been changed or cut short. Open the link exactly as we sent "
                    "it, or sign in and answer in your account. Nothing was changed."
                ),
            )
        )

    def page(link: _Link, *, status: int = 200, why: str | None = None) -> HTMLResponse:
        row = link.row
        asked = requested(accord, portal.tenant, row["run_id"], link.confirmation_id) or {}
        try:
            journey = accord.runtime.get(portal.tenant, row["run_id"]).journey
        except RunNotFound:
            journey = ""
        title = portal.catalogue.case_title(journey)
        state = str(row["status"])
        ended = row["answered_at"] if state == "closed" else portal.now()
        if state in ("pending", "closed") and (ended or 0) >= row["expires_at"]:
            state = "expired"
        on = row["channel"]
        return _headed(
            portal.render(
                "answer.html",
                None,
                None,
                status=status,
                title=title,
                state=state,
                proposal=asked.get("proposal") or {},
                expires_at=row["expires_at"],
                answered_at=row["answered_at"],
                where=ANSWERED_WHERE.get(on, f"on the {on} channel") if on else "",
                why=why,
                confirmation=link.confirmation_id,
                channel=link.channel,
                mac=links.mac(portal.tenant, link.confirmation_id, link.channel),
            )
        )

    @router.get("/answer")
    def answer_page(confirmation: str = "", channel: str = "", mac: str = "") -> Response:
        link = opened(confirmation, channel, mac)
        return refused() if link is None else page(link)

    @router.post("/answer")
    def answer_by_link(
        confirmation: FormField = "",
        channel: FormField = "",
        mac: FormField = "",
        answer: FormField = "",
    ) -> Response:
        link = opened(confirmation, channel, mac)
        if link is None:
            return refused()
        if answer not in ("confirm", "refuse"):
            return page(link, status=422, why="Choose Confirm or Decline.")
        if link.row["status"] == "pending":
            asked = requested(accord, portal.tenant, link.row["run_id"], confirmation) or {}
            token = str(asked.get("token") or "")
            if not token:
                return page(
                    link,
                    status=409,
                    why="This request can no longer be answered from the link.",
                )
            try:
                accord.confirm(token, answer, channel=channel)
            except ConfirmationInvalid as exc:
                again = opened(confirmation, channel, mac) or link
                return page(again, status=409, why=exc.message)
        query = links.query(portal.tenant, confirmation, channel)
        return _headed(RedirectResponse(f"{ANSWER_PATH}?{query}", status_code=303))


R = TypeVar("R", bound=Response)


def _headed(response: R) -> R:
    # the page's address is a credential: keep it out of caches and of Referer headers
    response.headers.update(NO_STORE)
    return response
