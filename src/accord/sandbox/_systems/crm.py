"""The CRM: customers, their contact points and their marketing preferences."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Query
from pydantic import Field
from starlette.responses import Response

from accord.core import Clock
from accord.sandbox._fields import EMAIL_PATTERN, CustomerIdPath, Email, Phone, not_found
from accord.sandbox._problems import ProblemError, problems
from accord.sandbox._seed import Person, Region, Tier, people, seeded_moment
from accord.sandbox._service import SandboxService, Strict, StrictInput, Write, iso

Channel = Literal["email", "sms", "phone"]
Language = Annotated[
    str, Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$", description="BCP 47 language, e.g. en or es-MX")
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY,
    retail_user_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL COLLATE NOCASE UNIQUE,
    phone TEXT NOT NULL,
    region TEXT NOT NULL,
    tier TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    contact_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    channel TEXT NOT NULL,
    value TEXT NOT NULL,
    is_primary INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS preferences (
    customer_id TEXT PRIMARY KEY REFERENCES customers (customer_id),
    marketing_email INTEGER NOT NULL,
    marketing_sms INTEGER NOT NULL,
    marketing_phone INTEGER NOT NULL,
    language TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS portal_access (
    customer_id TEXT PRIMARY KEY REFERENCES customers (customer_id),
    login TEXT NOT NULL,
    status TEXT NOT NULL,
    enabled_at TEXT NOT NULL,
    disabled_at TEXT,
    disabled_reason TEXT
);
"""


class Customer(Strict):
    """A customer record."""

    customer_id: str
    retail_user_id: str = Field(description="the customer's user id in the orders service")
    name: str
    email: Email
    phone: Phone
    region: Region
    tier: Tier
    updated_at: dt.datetime


class EmailUpdate(StrictInput):
    """A new e-mail address."""

    email: Email


class EmailChange(Strict):
    """The result of an e-mail change; ``previous_email`` is what to put back to revert it."""

    customer_id: str
    email: Email
    previous_email: Email
    changed_at: dt.datetime


class Contact(Strict):
    """One way to reach a customer."""

    contact_id: str
    channel: Channel
    value: str
    primary: bool


class ContactList(Strict):
    """A customer's contact points."""

    customer_id: str
    contacts: list[Contact]


class MarketingOptIns(StrictInput):
    """Whether the customer agreed to marketing, per channel."""

    email: bool
    sms: bool
    phone: bool


class PreferenceSettings(StrictInput):
    """A customer's marketing opt-ins and language."""

    marketing: MarketingOptIns
    language: Language


class Preferences(Strict):
    """A customer's current preferences."""

    customer_id: str
    marketing: MarketingOptIns
    language: Language
    updated_at: dt.datetime


class PortalAccess(Strict):
    """A customer's sign-in to the self-service portal."""

    customer_id: str
    login: Email = Field(description="the address the customer signs in with")
    status: Literal["active", "disabled"]
    enabled_at: dt.datetime
    disabled_at: dt.datetime | None
    disabled_reason: str | None


class Disabling(StrictInput):
    """Why portal access is taken away."""

    reason: Annotated[str, Field(min_length=1, max_length=500)]


class PreferencesChange(Strict):
    """The result of setting preferences; ``previous`` is what to set to revert it."""

    customer_id: str
    preferences: PreferenceSettings
    previous: PreferenceSettings
    changed_at: dt.datetime


def create_service(database: Path, *, clock: Clock) -> SandboxService:
    """The CRM service on ``database``."""
    service = SandboxService(
        "crm",
        database,
        title="Sandbox CRM",
        description="Customers, their contact points and marketing preferences.",
        schema=SCHEMA,
        seed=_seed,
        clock=clock,
    )
    app = service.app
    store = service.store

    @app.get(
        "/customers/search",
        operation_id="find_customer",
        summary="Find the customer with an e-mail address",
        response_model=Customer,
        responses=problems(404, 422),
    )
    def find_customer(
        email: Annotated[str, Query(pattern=EMAIL_PATTERN, max_length=254)],
    ) -> Customer:
        with store.transaction() as tx:
            row = tx.execute("SELECT * FROM customers WHERE email = ?", (email,)).fetchone()
        if row is None:
            raise ProblemError(404, "customer_not_found", f"no customer has e-mail {email!r}")
        return _customer(row)

    @app.get(
        "/customers/{customer_id}",
        operation_id="get_customer",
        summary="Get a customer",
        response_model=Customer,
        responses=problems(404, 422),
    )
    def get_customer(customer_id: CustomerIdPath) -> Customer:
        with store.transaction() as tx:
            return _customer(_customer_row(tx, customer_id))

    @app.put(
        "/customers/{customer_id}/email",
        operation_id="update_customer_email",
        summary="Change a customer's e-mail address (returns the previous one, to revert)",
        response_model=EmailChange,
        responses=problems(404, 409, 422),
    )
    def update_customer_email(
        customer_id: CustomerIdPath, update: EmailUpdate, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> EmailChange:
            row = _customer_row(tx, customer_id)
            taken = tx.execute(
                "SELECT customer_id FROM customers WHERE email = ? AND customer_id != ?",
                (update.email, customer_id),
            ).fetchone()
            if taken is not None:
                raise ProblemError(
                    409, "email_in_use", f"{update.email!r} belongs to another customer"
                )
            now = service.now()
            tx.execute(
                "UPDATE customers SET email = ?, updated_at = ? WHERE customer_id = ?",
                (update.email, iso(now), customer_id),
            )
            tx.execute(
                "UPDATE contacts SET value = ? WHERE customer_id = ? AND channel = 'email' "
                "AND is_primary = 1",
                (update.email, customer_id),
            )
            return EmailChange(
                customer_id=customer_id,
                email=update.email,
                previous_email=row["email"],
                changed_at=now,
            )

        return mutation.apply(effect)

    @app.get(
        "/customers/{customer_id}/contacts",
        operation_id="list_contacts",
        summary="List a customer's contact points",
        response_model=ContactList,
        responses=problems(404, 422),
    )
    def list_contacts(customer_id: CustomerIdPath) -> ContactList:
        with store.transaction() as tx:
            _customer_row(tx, customer_id)
            rows = tx.execute(
                "SELECT * FROM contacts WHERE customer_id = ? ORDER BY contact_id", (customer_id,)
            ).fetchall()
        contacts = [
            Contact(
                contact_id=row["contact_id"],
                channel=row["channel"],
                value=row["value"],
                primary=bool(row["is_primary"]),
            )
            for row in rows
        ]
        return ContactList(customer_id=customer_id, contacts=contacts)

    @app.get(
        "/customers/{customer_id}/preferences",
        operation_id="get_preferences",
        summary="Get a customer's marketing opt-ins and language",
        response_model=Preferences,
        responses=problems(404, 422),
    )
    def get_preferences(customer_id: CustomerIdPath) -> Preferences:
        with store.transaction() as tx:
            row = _preferences_row(tx, customer_id)
        settings = _settings(row)
        return Preferences(
            customer_id=customer_id,
            marketing=settings.marketing,
            language=settings.language,
            updated_at=row["updated_at"],
        )

    @app.put(
        "/customers/{customer_id}/preferences",
        operation_id="set_preferences",
        summary="Set a customer's marketing opt-ins and language (returns the previous ones)",
        response_model=PreferencesChange,
        responses=problems(404, 422),
    )
    def set_preferences(
        customer_id: CustomerIdPath, settings: PreferenceSettings, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> PreferencesChange:
            previous = _settings(_preferences_row(tx, customer_id))
            now = service.now()
            tx.execute(
                "UPDATE preferences SET marketing_email = ?, marketing_sms = ?, "
                "marketing_phone = ?, language = ?, updated_at = ? WHERE customer_id = ?",
                (
                    settings.marketing.email,
                    settings.marketing.sms,
                    settings.marketing.phone,
                    settings.language,
                    iso(now),
                    customer_id,
                ),
            )
            return PreferencesChange(
                customer_id=customer_id,
                preferences=settings,
                previous=previous,
                changed_at=now,
            )

        return mutation.apply(effect)

    @app.post(
        "/customers/{customer_id}/portal-access",
        operation_id="enable_portal_access",
        summary="Let a customer sign in to the portal with their e-mail address "
        "(compensate with disable_portal_access)",
        response_model=PortalAccess,
        responses=problems(404, 422),
    )
    def enable_portal_access(customer_id: CustomerIdPath, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> PortalAccess:
            customer = _customer_row(tx, customer_id)
            current = _portal_row(tx, customer_id)
            if current is None or current["status"] != "active":
                tx.execute(
                    "INSERT INTO portal_access VALUES (?, ?, 'active', ?, NULL, NULL) "
                    "ON CONFLICT (customer_id) DO UPDATE SET login = excluded.login, "
                    "status = 'active', enabled_at = excluded.enabled_at, disabled_at = NULL, "
                    "disabled_reason = NULL",
                    (customer_id, customer["email"], service.timestamp()),
                )
            return _portal(_portal_row(tx, customer_id))

        return mutation.apply(effect)

    @app.get(
        "/customers/{customer_id}/portal-access",
        operation_id="get_portal_access",
        summary="Whether a customer may sign in to the portal",
        response_model=PortalAccess,
        responses=problems(404, 422),
    )
    def get_portal_access(customer_id: CustomerIdPath) -> PortalAccess:
        with store.transaction() as tx:
            _customer_row(tx, customer_id)
            row = _portal_row(tx, customer_id)
        if row is None:
            raise ProblemError(
                404, "portal_access_not_found", f"customer {customer_id} has no portal access"
            )
        return _portal(row)

    @app.post(
        "/customers/{customer_id}/portal-access/disable",
        operation_id="disable_portal_access",
        summary="Take a customer's portal access away (already disabled: unchanged)",
        response_model=PortalAccess,
        responses=problems(404, 422),
    )
    def disable_portal_access(
        customer_id: CustomerIdPath, request: Disabling, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> PortalAccess:
            _customer_row(tx, customer_id)
            row = _portal_row(tx, customer_id)
            if row is None:
                raise ProblemError(
                    404, "portal_access_not_found", f"customer {customer_id} has no portal access"
                )
            if row["status"] == "active":
                tx.execute(
                    "UPDATE portal_access SET status = 'disabled', disabled_at = ?, "
                    "disabled_reason = ? WHERE customer_id = ?",
                    (service.timestamp(), request.reason, customer_id),
                )
            return _portal(_portal_row(tx, customer_id))

        return mutation.apply(effect)

    return service


def _portal_row(tx: sqlite3.Connection, customer_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = tx.execute(
        "SELECT * FROM portal_access WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    return row


def _portal(row: sqlite3.Row | None) -> PortalAccess:
    assert row is not None, "portal access is read back in the transaction that wrote it"
    return PortalAccess.model_validate(dict(row))


def _customer_row(tx: sqlite3.Connection, customer_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = tx.execute(
        "SELECT * FROM customers WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    if row is None:
        raise not_found("customer", customer_id)
    return row


def _preferences_row(tx: sqlite3.Connection, customer_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = tx.execute(
        "SELECT * FROM preferences WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    if row is None:
        raise not_found("customer", customer_id)
    return row


def _customer(row: sqlite3.Row) -> Customer:
    return Customer.model_validate(dict(row))


def _settings(row: sqlite3.Row) -> PreferenceSettings:
    return PreferenceSettings(
        marketing=MarketingOptIns(
            email=bool(row["marketing_email"]),
            sms=bool(row["marketing_sms"]),
            phone=bool(row["marketing_phone"]),
        ),
        language=row["language"],
    )


def _seed(tx: sqlite3.Connection) -> None:
    for person in people():
        _seed_person(tx, person)


def _seed_person(tx: sqlite3.Connection, person: Person) -> None:
    at = iso(seeded_moment("crm", person.customer_id))
    tx.execute(
        "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            person.customer_id,
            person.retail_user_id,
            person.name,
            person.email,
            person.phone,
            person.region,
            person.tier,
            at,
        ),
    )
    contacts = (("email", person.email), ("sms", person.phone), ("phone", person.phone))
    for channel, value in contacts:
        tx.execute(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, 1)",
            (f"con_{person.index:05d}_{channel}", person.customer_id, channel, value),
        )
    tx.execute(
        "INSERT INTO preferences VALUES (?, ?, ?, ?, ?, ?)",
        (
            person.customer_id,
            person.marketing_email,
            person.marketing_sms,
            person.marketing_phone,
            person.language,
            at,
        ),
    )
