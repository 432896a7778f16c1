"""Notifications: an outbox for e-mail and SMS. Nothing leaves the machine; messages are stored."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import Field
from starlette.responses import Response

from accord.core import Clock
from accord.sandbox._fields import CustomerId, Email, Phone, not_found
from accord.sandbox._problems import problems
from accord.sandbox._service import SandboxService, Strict, StrictInput, Write, next_id

MessageIdPath = Annotated[str, PathParam(pattern=r"^msg_[0-9]{6}$", description="msg_000001")]

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL COLLATE NOCASE,
    subject TEXT,
    body TEXT NOT NULL,
    customer_id TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_recipient ON messages (recipient, message_id);
"""


class NewEmail(StrictInput):
    """An e-mail to send."""

    to: Email
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=20_000)]
    customer_id: CustomerId | None = None


class NewSms(StrictInput):
    """A text message to send."""

    to: Phone
    body: Annotated[str, Field(min_length=1, max_length=1600)]
    customer_id: CustomerId | None = None


class Message(Strict):
    """A message in the outbox."""

    message_id: str
    channel: Literal["email", "sms"]
    to: str
    subject: str | None
    body: str
    customer_id: str | None
    status: Literal["delivered"] = Field(description="the sandbox delivers to its own outbox")
    created_at: dt.datetime


class MessageList(Strict):
    """Messages to one recipient, oldest first."""

    recipient: str
    messages: list[Message]


def create_service(database: Path, *, clock: Clock) -> SandboxService:
    """The notifications service on ``database``."""
    service = SandboxService(
        "notifications",
        database,
        title="Sandbox notifications",
        description="Sends e-mail and SMS into a local outbox; nothing leaves the machine.",
        schema=SCHEMA,
        seed=lambda tx: None,
        clock=clock,
    )
    app = service.app
    store = service.store

    def _store_message(
        tx: sqlite3.Connection,
        channel: Literal["email", "sms"],
        to: str,
        subject: str | None,
        body: str,
        customer_id: str | None,
    ) -> Message:
        message_id = next_id(tx, "messages", "msg")
        tx.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, 'delivered', ?)",
            (message_id, channel, to, subject, body, customer_id, service.timestamp()),
        )
        return _message(tx, message_id)

    @app.post(
        "/emails",
        operation_id="send_email",
        summary="Send an e-mail",
        status_code=201,
        response_model=Message,
        responses=problems(422),
    )
    def send_email(email: NewEmail, mutation: Write) -> Response:
        return mutation.apply(
            lambda tx: _store_message(
                tx, "email", email.to, email.subject, email.body, email.customer_id
            )
        )

    @app.post(
        "/sms",
        operation_id="send_sms",
        summary="Send a text message to an E.164 phone number",
        status_code=201,
        response_model=Message,
        responses=problems(422),
    )
    def send_sms(sms: NewSms, mutation: Write) -> Response:
        return mutation.apply(
            lambda tx: _store_message(tx, "sms", sms.to, None, sms.body, sms.customer_id)
        )

    @app.get(
        "/messages",
        operation_id="list_messages",
        summary="List the messages sent to a recipient (e-mail address or phone number)",
        response_model=MessageList,
        responses=problems(422),
    )
    def list_messages(
        recipient: Annotated[str, Query(min_length=3, max_length=254)],
    ) -> MessageList:
        with store.transaction() as tx:
            rows = tx.execute(
                "SELECT message_id FROM messages WHERE recipient = ? ORDER BY message_id",
                (recipient,),
            ).fetchall()
            messages = [_message(tx, row["message_id"]) for row in rows]
        return MessageList(recipient=recipient, messages=messages)

    @app.get(
        "/messages/{message_id}",
        operation_id="get_message",
        summary="Get a message",
        response_model=Message,
        responses=problems(404, 422),
    )
    def get_message(message_id: MessageIdPath) -> Message:
        with store.transaction() as tx:
            return _message(tx, message_id)

    return service


def _message(tx: sqlite3.Connection, message_id: str) -> Message:
    row = tx.execute("SELECT * FROM messages WHERE message_id = ?", (message_id,)).fetchone()
    if row is None:
        raise not_found("message", message_id)
    fields = dict(row)
    fields["to"] = fields.pop("recipient")
    return Message.model_validate(fields)
