"""Support conversations: a customer's chat with Accord, carried by one durable run.

A conversation is a run of a chat journey (the sample enterprise's ``support_chat``). The
customer's messages reach the run as ``chat_message`` signals correlated by the conversation
id, so they are recorded in the ledger like any other signal; Accord's replies are calls of the
built-in capability ``conversation.say``, so each passes the gateway (kill switch, lawful basis,
policy) and is recorded as a decision. Both are kept for the customer to read in
``conversation_messages``, sealed under the subject's data key: erasing the subject shreds the
transcript with the rest of their data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from accord.audit import Ledger
from accord.audit._shredding import associated_data, open_sealed, seal
from accord.connectors import CallContext, Capability, CapabilityRegistry
from accord.core import Clock, IdGenerator, TenantId
from accord.errors import CapabilityFailed, InputError, RunFinished
from accord.runtime import Runtime
from accord.storage import Database
from accord.storage._schema import conversation_messages, conversations

SAY = "conversation.say"
MESSAGE_SIGNAL = "chat_message"
CONSENT_SIGNAL = "chat_consent"
MAX_TEXT = 2000
ENTRY_KIND = "conversation.message"

Author = Literal["customer", "accord", "staff"]
Kind = Literal["text", "consent_request", "consent_answer", "handoff", "closed"]


class ConversationNotFound(InputError):
    """No conversation of this subject has that id."""


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    subject_id: str
    run_id: str | None
    opened_at: float


@dataclass(frozen=True, slots=True)
class Message:
    """One line of a transcript; ``text`` is None when the subject was erased."""

    seq: int
    author: str
    kind: str
    text: str | None
    data: dict[str, Any]
    at: float


class SayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    kind: Literal["text", "consent_request", "handoff", "closed"] = "text"
    purpose: str | None = Field(
        default=None,
        max_length=128,
        description="for a consent request: the purpose the customer is asked to agree to",
    )
    author: Literal["accord", "staff"] = "accord"
    by: str | None = Field(default=None, max_length=128, description="the member of staff")


class SayResult(BaseModel):
    conversation: str
    seq: int


class Conversations:
    """Opens conversations, takes the customer's messages to their run, keeps the transcript."""

    def __init__(self, db: Database, ledger: Ledger, clock: Clock, ids: IdGenerator) -> None:
        self.db = db
        self.ledger = ledger
        self.clock = clock
        self.ids = ids
        self._runtime: Runtime | None = None

    def bind(self, runtime: Runtime) -> None:
        """The runtime that carries conversations (built after the capabilities that write to
        them)."""
        self._runtime = runtime

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("Conversations.bind(runtime) was not called")
        return self._runtime

    # -- the customer's side ------------------------------------------------------------------

    def open(self, tenant: TenantId, subject: str, *, journey: str) -> Conversation:
        """A new conversation of ``subject`` and the run of ``journey`` that carries it.

        The journey takes ``conversation`` (this id) and ``customer_id`` (the subject).

        Raises:
            JourneyNotFound, ContractViolation: the journey is not deployed or does not take
                that input; nothing is stored.
        """
        conversation_id = self.ids.new_id("conv")
        now = self.clock.now()

        def within(connection: Connection, run: Any) -> None:
            # in the start's transaction: no worker can reach the run before its conversation
            connection.execute(
                sa.insert(conversations).values(
                    tenant_id=tenant,
                    conversation_id=conversation_id,
                    subject_id=subject,
                    run_id=run.run_id,
                    opened_at=now,
                )
            )

        run = self.runtime.start(
            tenant,
            journey,
            input={"conversation": conversation_id, "customer_id": subject},
            subject=subject,
            idempotency_key=f"conversation/{conversation_id}",
            within=within,
        )
        return Conversation(conversation_id, subject, run.run_id, now)

    def post(self, tenant: TenantId, subject: str, conversation_id: str, text: str) -> Message:
        """The customer writes: the message joins the transcript and reaches the run.

        Raises:
            InputError: the message is empty or longer than 2000 characters.
            ConversationNotFound: the subject has no such conversation.
            RunFinished: the conversation has ended; nothing was stored.
        """
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise InputError(
                f"a message has 1 to {MAX_TEXT} characters, this one has {len(text)}",
                hint="write a shorter message, or send it in parts",
            )
        found = self.get(tenant, subject, conversation_id)
        return self._to_run(
            tenant, found, MESSAGE_SIGNAL, {"text": text}, author="customer", kind="text", text=text
        )

    def answer_consent(
        self, tenant: TenantId, subject: str, conversation_id: str, *, purpose: str, granted: bool
    ) -> Message:
        """Tell the run whether the customer agreed to the purpose it asked about (the caller
        records the grant in the consent ledger first)."""
        found = self.get(tenant, subject, conversation_id)
        words = "I agree" if granted else "No, thank you"

        def unanswered(connection: Connection) -> None:
            self._lock(connection, tenant, found)
            kinds = connection.execute(
                sa.select(conversation_messages.c.kind, conversation_messages.c.data)
                .where(
                    conversation_messages.c.tenant_id == tenant,
                    conversation_messages.c.conversation_id == found.conversation_id,
                    conversation_messages.c.kind.in_(("consent_request", "consent_answer")),
                )
                .order_by(conversation_messages.c.seq.desc())
                .limit(1)
            ).first()
            if kinds is None or kinds.kind != "consent_request":
                raise InputError(
                    "this conversation is not waiting for a consent answer",
                    hint="it was answered already, or never asked",
                )
            if json.loads(kinds.data).get("purpose") != purpose:
                raise InputError(f"this conversation did not ask for consent to {purpose}")

        return self._to_run(
            tenant,
            found,
            CONSENT_SIGNAL,
            {"granted": granted, "purpose": purpose},
            author="customer",
            kind="consent_answer",
            text=words,
            data={"purpose": purpose, "granted": granted},
            guard=unanswered,
        )

    def get(self, tenant: TenantId, subject: str, conversation_id: str) -> Conversation:
        with self.db.read() as connection:
            row = (
                connection.execute(
                    sa.select(conversations).where(
                        conversations.c.tenant_id == tenant,
                        conversations.c.conversation_id == conversation_id,
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["subject_id"] != subject:
            raise ConversationNotFound(f"no conversation {conversation_id!r} of this customer")
        return Conversation(
            row["conversation_id"], row["subject_id"], row["run_id"], row["opened_at"]
        )

    def of_subject(self, tenant: TenantId, subject: str) -> list[Conversation]:
        """The subject's conversations, newest first."""
        with self.db.read() as connection:
            rows = (
                connection.execute(
                    sa.select(conversations)
                    .where(
                        conversations.c.tenant_id == tenant, conversations.c.subject_id == subject
                    )
                    .order_by(conversations.c.opened_at.desc(), conversations.c.conversation_id)
                )
                .mappings()
                .all()
            )
        return [_conversation(row) for row in rows]

    def transcript(self, tenant: TenantId, conversation: Conversation) -> list[Message]:
        """Every message of the conversation in order, opened with the subject's key."""
        with self.db.read() as connection:
            rows = (
                connection.execute(
                    sa.select(conversation_messages)
                    .where(
                        conversation_messages.c.tenant_id == tenant,
                        conversation_messages.c.conversation_id == conversation.conversation_id,
                    )
                    .order_by(conversation_messages.c.seq)
                )
                .mappings()
                .all()
            )
            keys = self.ledger.vault.keys(
                connection, tenant, [conversation.subject_id], now=0.0, create=False
            )
        key = keys.get(conversation.subject_id)
        found = []
        for row in rows:
            text: str | None = None
            if key is not None and row["sealed"]:
                aad = _aad(tenant, conversation, row["seq"], row["author"], row["kind"])
                try:
                    text = open_sealed(key, json.loads(row["sealed"]), aad).decode()
                except (InvalidTag, ValueError, KeyError):
                    text = None
            found.append(
                Message(
                    row["seq"], row["author"], row["kind"], text, json.loads(row["data"]), row["at"]
                )
            )
        return found

    # -- the run's side -----------------------------------------------------------------------

    def say(self, request: SayRequest, ctx: CallContext) -> SayResult:
        """The capability ``conversation.say``: a reply joins the transcript of the call's
        subject's conversation, once per idempotency key."""
        tenant = TenantId(ctx.tenant_id)
        if ctx.subject_id is None:
            raise CapabilityFailed(
                "conversation.say needs a subject: only a run about the customer may write to "
                "their conversation",
                error_type="InputError",
                retryable=False,
            )
        try:
            found = self.get(tenant, ctx.subject_id, request.conversation)
        except ConversationNotFound as exc:
            raise CapabilityFailed(
                f"conversation {request.conversation!r} is not the subject's",
                error_type="NotFound",
                retryable=False,
            ) from exc
        data: dict[str, Any] = {}
        if request.purpose:
            data["purpose"] = request.purpose
        if request.by:
            data["by"] = request.by
        with self.db.transaction() as connection:
            seq = self._append(
                connection,
                tenant,
                found,
                author=request.author,
                kind=request.kind,
                text=request.text,
                data=data,
                message_key=ctx.idempotency_key,
            )
        return SayResult(conversation=found.conversation_id, seq=seq)

    def _to_run(
        self,
        tenant: TenantId,
        found: Conversation,
        name: str,
        payload: dict[str, Any],
        *,
        author: Author,
        kind: Kind,
        text: str,
        data: dict[str, Any] | None = None,
        guard: Callable[[Connection], None] | None = None,
    ) -> Message:
        appended: list[int] = []

        def within(connection: Connection, _: object) -> None:
            if guard is not None:
                guard(connection)
            appended.append(
                self._append(
                    connection, tenant, found, author=author, kind=kind, text=text, data=data or {}
                )
            )

        if found.run_id is None:
            raise RunFinished(f"conversation {found.conversation_id!r} has no run")
        # addressed to the run, never by correlation: the run holds the message until it waits
        # for one, the ledger seals it under the subject's key, and an ended conversation
        # refuses it (RunFinished) before anything is stored
        self.runtime.signal(tenant, name, run_id=found.run_id, payload=payload, within=within)
        return Message(appended[0], author, kind, text, data or {}, self.clock.now())

    @staticmethod
    def _lock(connection: Connection, tenant: TenantId, found: Conversation) -> None:
        """Take the conversation's row: it orders the conversation's messages and answers."""
        connection.execute(
            sa.update(conversations)
            .where(
                conversations.c.tenant_id == tenant,
                conversations.c.conversation_id == found.conversation_id,
            )
            .values(opened_at=conversations.c.opened_at)
        )

    def _append(
        self,
        connection: Connection,
        tenant: TenantId,
        found: Conversation,
        *,
        author: str,
        kind: str,
        text: str,
        data: dict[str, Any],
        message_key: str | None = None,
    ) -> int:
        table = conversation_messages
        where = (table.c.tenant_id == tenant, table.c.conversation_id == found.conversation_id)
        self._lock(connection, tenant, found)
        if message_key is not None:
            earlier = connection.execute(
                sa.select(table.c.seq).where(*where, table.c.message_key == message_key)
            ).scalar()
            if earlier is not None:
                return int(earlier)
        last = connection.execute(sa.select(sa.func.max(table.c.seq)).where(*where)).scalar()
        seq = int(last or 0) + 1
        now = self.clock.now()
        key = self.ledger.vault.keys(
            connection, tenant, [found.subject_id], now=now, create=True
        ).get(found.subject_id)
        aad = _aad(tenant, found, seq, author, kind)
        connection.execute(
            sa.insert(table).values(
                tenant_id=tenant,
                conversation_id=found.conversation_id,
                seq=seq,
                author=author,
                kind=kind,
                sealed=None if key is None else json.dumps(seal(key, text.encode(), aad)),
                data=json.dumps(data, sort_keys=True),
                message_key=message_key,
                at=now,
            )
        )
        return seq


def _aad(tenant: str, found: Conversation, seq: int, author: str, kind: str) -> bytes:
    """What a sealed text is bound to: its conversation, place, author and kind, so a text
    cannot be moved to another row or given another author unnoticed."""
    return associated_data(
        tenant, found.subject_id, f"{ENTRY_KIND}/{seq}/{author}/{kind}", found.conversation_id
    )


def _conversation(row: Any) -> Conversation:
    return Conversation(row["conversation_id"], row["subject_id"], row["run_id"], row["opened_at"])


def conversation_capabilities(store: Conversations, over: CapabilityRegistry) -> CapabilityRegistry:
    """``conversation.say`` over ``over``; ``over`` itself when it already has one (a replay's
    shadow answers it from the recording)."""
    if over.find(SAY) is not None:
        return over
    registry = CapabilityRegistry(over=over)
    registry.add(
        Capability(
            name=SAY,
            input_model=SayRequest,
            output_model=SayResult,
            handler=store.say,
            side_effect="write",
            idempotent=True,
            description="Write to the customer in their support conversation",
            source=f"accord.service:{SAY}",
        )
    )
    return registry


__all__ = [
    "CONSENT_SIGNAL",
    "MESSAGE_SIGNAL",
    "SAY",
    "Conversation",
    "ConversationNotFound",
    "Conversations",
    "Message",
    "conversation_capabilities",
]
