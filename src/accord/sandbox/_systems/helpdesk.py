"""The helpdesk: support tickets, their notes and their life cycle.

A ticket is ``open`` or ``pending`` while someone works on it, ``resolved`` when answered (it can be
reopened, which is how a resolution is compensated) and ``closed`` for good.
"""

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
from accord.sandbox._fields import CustomerId, CustomerIdQuery, not_found
from accord.sandbox._problems import ProblemError, problems
from accord.sandbox._seed import people, seeded_moment
from accord.sandbox._service import SandboxService, Strict, StrictInput, Write, iso, next_id

TicketStatus = Literal["open", "pending", "resolved", "closed"]
TicketChannel = Literal["email", "sms", "phone", "chat", "web"]
TicketIdPath = Annotated[str, PathParam(pattern=r"^tkt_[0-9]{6}$", description="e.g. tkt_000001")]
Text = Annotated[str, Field(min_length=1, max_length=5000)]

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    channel TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    resolution TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_customer ON tickets (customer_id, ticket_id);
CREATE TABLE IF NOT EXISTS notes (
    note_id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (ticket_id),
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


class NewTicket(StrictInput):
    """A ticket to open for a customer."""

    customer_id: CustomerId
    channel: TicketChannel
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    body: Text


class Note(Strict):
    """A note on a ticket."""

    note_id: str
    author: str
    body: str
    at: dt.datetime


class Ticket(Strict):
    """A support ticket and its notes, oldest first."""

    ticket_id: str
    customer_id: str
    channel: TicketChannel
    subject: str
    body: str
    status: TicketStatus
    resolution: str | None
    notes: list[Note]
    created_at: dt.datetime
    updated_at: dt.datetime


class TicketList(Strict):
    """A customer's tickets, oldest first."""

    customer_id: str
    tickets: list[Ticket]


class NewNote(StrictInput):
    """A note to add."""

    author: Annotated[str, Field(min_length=1, max_length=100)]
    body: Text


class Resolution(StrictInput):
    """How the ticket was resolved."""

    resolution: Annotated[str, Field(min_length=1, max_length=2000)]


class Reopening(StrictInput):
    """Why a resolved ticket is reopened."""

    reason: Annotated[str, Field(min_length=1, max_length=2000)]


def create_service(database: Path, *, clock: Clock) -> SandboxService:
    """The helpdesk service on ``database``."""
    service = SandboxService(
        "helpdesk",
        database,
        title="Sandbox helpdesk",
        description="Support tickets: open, add notes, resolve and reopen.",
        schema=SCHEMA,
        seed=_seed,
        clock=clock,
    )
    app = service.app
    store = service.store

    @app.post(
        "/tickets",
        operation_id="open_ticket",
        summary="Open a ticket for a customer",
        status_code=201,
        response_model=Ticket,
        responses=problems(404, 422),
    )
    def open_ticket(request: NewTicket, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Ticket:
            known = tx.execute(
                "SELECT 1 FROM customers WHERE customer_id = ?", (request.customer_id,)
            ).fetchone()
            if known is None:
                raise not_found("customer", request.customer_id)
            ticket_id = next_id(tx, "tickets", "tkt")
            now = service.timestamp()
            tx.execute(
                "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, 'open', NULL, ?, ?)",
                (
                    ticket_id,
                    request.customer_id,
                    request.channel,
                    request.subject,
                    request.body,
                    now,
                    now,
                ),
            )
            return _ticket(tx, ticket_id)

        return mutation.apply(effect)

    @app.get(
        "/tickets",
        operation_id="list_tickets",
        summary="List a customer's tickets",
        response_model=TicketList,
        responses=problems(422),
    )
    def list_tickets(
        customer_id: CustomerIdQuery,
        status: Annotated[TicketStatus | None, Query()] = None,
    ) -> TicketList:
        query = "SELECT ticket_id FROM tickets WHERE customer_id = ?"
        arguments: tuple[str, ...] = (customer_id,)
        if status is not None:
            query += " AND status = ?"
            arguments = (customer_id, status)
        with store.transaction() as tx:
            rows = tx.execute(query + " ORDER BY ticket_id", arguments).fetchall()
            tickets = [_ticket(tx, row["ticket_id"]) for row in rows]
        return TicketList(customer_id=customer_id, tickets=tickets)

    @app.get(
        "/tickets/{ticket_id}",
        operation_id="get_ticket",
        summary="Get a ticket and its notes",
        response_model=Ticket,
        responses=problems(404, 422),
    )
    def get_ticket(ticket_id: TicketIdPath) -> Ticket:
        with store.transaction() as tx:
            return _ticket(tx, ticket_id)

    @app.post(
        "/tickets/{ticket_id}/notes",
        operation_id="add_note",
        summary="Add a note to a ticket that is not closed",
        status_code=201,
        response_model=Ticket,
        responses=problems(404, 409, 422),
    )
    def add_note(ticket_id: TicketIdPath, note: NewNote, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Ticket:
            current = _ticket(tx, ticket_id)
            if current.status == "closed":
                raise ProblemError(409, "ticket_closed", f"ticket {ticket_id} is closed")
            now = service.timestamp()
            tx.execute(
                "INSERT INTO notes VALUES (?, ?, ?, ?, ?)",
                (next_id(tx, "notes", "not"), ticket_id, note.author, note.body, now),
            )
            tx.execute("UPDATE tickets SET updated_at = ? WHERE ticket_id = ?", (now, ticket_id))
            return _ticket(tx, ticket_id)

        return mutation.apply(effect)

    @app.post(
        "/tickets/{ticket_id}/resolve",
        operation_id="resolve_ticket",
        summary="Resolve an open or pending ticket (compensate with reopen_ticket)",
        response_model=Ticket,
        responses=problems(404, 409, 422),
    )
    def resolve_ticket(
        ticket_id: TicketIdPath, resolution: Resolution, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Ticket:
            current = _ticket(tx, ticket_id)
            if current.status not in ("open", "pending"):
                raise ProblemError(
                    409,
                    "ticket_not_open",
                    f"ticket {ticket_id} is {current.status}; only an open or pending ticket "
                    "can be resolved",
                )
            tx.execute(
                "UPDATE tickets SET status = 'resolved', resolution = ?, updated_at = ? "
                "WHERE ticket_id = ?",
                (resolution.resolution, service.timestamp(), ticket_id),
            )
            return _ticket(tx, ticket_id)

        return mutation.apply(effect)

    @app.post(
        "/tickets/{ticket_id}/reopen",
        operation_id="reopen_ticket",
        summary="Reopen a resolved ticket",
        response_model=Ticket,
        responses=problems(404, 409, 422),
    )
    def reopen_ticket(ticket_id: TicketIdPath, reopening: Reopening, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Ticket:
            current = _ticket(tx, ticket_id)
            if current.status != "resolved":
                raise ProblemError(
                    409,
                    "ticket_not_resolved",
                    f"ticket {ticket_id} is {current.status}; only a resolved ticket can be "
                    "reopened",
                )
            now = service.timestamp()
            tx.execute(
                "UPDATE tickets SET status = 'open', resolution = NULL, updated_at = ? "
                "WHERE ticket_id = ?",
                (now, ticket_id),
            )
            tx.execute(
                "INSERT INTO notes VALUES (?, ?, 'helpdesk', ?, ?)",
                (next_id(tx, "notes", "not"), ticket_id, f"reopened: {reopening.reason}", now),
            )
            return _ticket(tx, ticket_id)

        return mutation.apply(effect)

    return service


def _ticket(tx: sqlite3.Connection, ticket_id: str) -> Ticket:
    row = tx.execute("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
    if row is None:
        raise not_found("ticket", ticket_id)
    notes = tx.execute(
        "SELECT note_id, author, body, at FROM notes WHERE ticket_id = ? ORDER BY note_id",
        (ticket_id,),
    ).fetchall()
    return Ticket.model_validate(
        {**dict(row), "notes": [Note.model_validate(dict(note)) for note in notes]}
    )


def _seed(tx: sqlite3.Connection) -> None:
    tickets = 0
    for person in people():
        tx.execute("INSERT INTO customers VALUES (?)", (person.customer_id,))
        if person.index % 4 != 1 or not person.order_ids:
            continue
        tickets += 1
        order_id = person.order_ids[0]
        opened = seeded_moment("ticket", person.customer_id)
        resolved = tickets % 2 == 0
        tx.execute(
            "INSERT INTO tickets VALUES (?, ?, 'email', ?, ?, ?, ?, ?, ?)",
            (
                f"tkt_{tickets:06d}",
                person.customer_id,
                f"Question about order {order_id}",
                f"Hello, could you tell me where order {order_id} is? Thanks, {person.first_name}",
                "resolved" if resolved else "open",
                f"shared the tracking status of {order_id}" if resolved else None,
                iso(opened),
                iso(opened + dt.timedelta(hours=4 if resolved else 0)),
            ),
        )
