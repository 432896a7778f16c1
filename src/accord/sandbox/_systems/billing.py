"""Billing: accounts, invoices, subscriptions, discounts and refunds.

Each customer has one account; each of their retail orders has one invoice. Refunds are checked
against what the invoice's order was paid, net of earlier refunds. Discounts record when they were
applied and in which quarter; how many a customer may get is for policy to decide, not billing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import AfterValidator, Field
from starlette.responses import Response

from accord.core import Clock
from accord.sandbox._fields import (
    Amount,
    CustomerId,
    CustomerIdQuery,
    cents,
    not_found,
    units,
)
from accord.sandbox._problems import ProblemError, problems
from accord.sandbox._seed import CURRENCY, people, retail_data, seeded_moment
from accord.sandbox._service import SandboxService, Strict, StrictInput, Write, iso, next_id

Plan = Literal["basic", "plus", "premium"]
RefundMethod = Literal["original_payment", "gift_card"]
PLAN_PRICES: dict[Plan, int] = {"basic": 999, "plus": 1999, "premium": 4999}
"""Monthly price of each plan, in cents."""

ORDER_ID_PATTERN = r"^#W[0-9]{7}$"
AccountIdPath = Annotated[
    str, PathParam(pattern=r"^acc_[0-9]{5}$", description="billing account id, e.g. acc_00001")
]
SubscriptionIdPath = Annotated[str, PathParam(pattern=r"^sub_[0-9]{6}$")]
DiscountIdPath = Annotated[str, PathParam(pattern=r"^dis_[0-9]{6}$")]
RefundIdPath = Annotated[str, PathParam(pattern=r"^ref_[0-9]{6}$")]


QuarterQuery = Annotated[
    str | None,
    Query(
        pattern=r"^(current|[0-9]{4}-Q[1-4])$",
        description="a calendar quarter such as 2026-Q4, or current (by billing's clock)",
    ),
]


def _quarter_of(moment: dt.datetime) -> str:
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def _percent(value: float) -> float:
    if abs(round(value * 100) - value * 100) > 1e-6:
        raise ValueError("a percentage has at most two decimals")
    return round(value, 2)


Percent = Annotated[float, Field(gt=0, le=100), AfterValidator(_percent)]

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invoices (
    invoice_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    order_id TEXT NOT NULL UNIQUE,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    plan TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    cancelled_at TEXT
);
CREATE TABLE IF NOT EXISTS discounts (
    discount_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    percent REAL NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    quarter TEXT NOT NULL,
    removed_at TEXT
);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    order_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TEXT NOT NULL,
    voided_at TEXT
);
"""


class Account(Strict):
    """A billing account."""

    account_id: str
    customer_id: CustomerId
    name: str
    email: str
    currency: str
    status: Literal["active", "closed"]
    created_at: dt.datetime


class Invoice(Strict):
    """The invoice of one retail order."""

    invoice_id: str
    account_id: str
    order_id: str
    amount: float
    refunded: float
    currency: str
    status: Literal["paid", "partially_refunded", "refunded"]
    issued_at: dt.datetime


class InvoiceList(Strict):
    """An account's invoices, oldest first."""

    account_id: str
    invoices: list[Invoice]


class NewSubscription(StrictInput):
    """A subscription to start."""

    account_id: Annotated[str, Field(pattern=r"^acc_[0-9]{5}$")]
    plan: Plan


class Subscription(Strict):
    """A subscription to a plan, billed monthly."""

    subscription_id: str
    account_id: str
    plan: Plan
    price: float
    currency: str
    status: Literal["active", "cancelled"]
    started_at: dt.datetime
    cancelled_at: dt.datetime | None


class NewDiscount(StrictInput):
    """A discount to apply to an account."""

    percent: Percent
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class Discount(Strict):
    """A discount on an account, with when it was applied (and removed)."""

    discount_id: str
    account_id: str
    percent: float
    reason: str
    status: Literal["active", "removed"]
    applied_at: dt.datetime
    quarter: str = Field(description="calendar quarter it was applied in, e.g. 2024-Q3")
    removed_at: dt.datetime | None


class DiscountList(Strict):
    """An account's discounts, active and removed, oldest first."""

    account_id: str
    quarter: str | None = Field(
        default=None, description="the quarter asked for (current resolved), or null for all"
    )
    discounts: list[Discount]


class NewRefund(StrictInput):
    """A refund to issue for a retail order."""

    order_id: Annotated[str, Field(pattern=ORDER_ID_PATTERN, description="e.g. #W4316152")]
    amount: Amount
    method: RefundMethod


class Refund(Strict):
    """A refund, and whether it still stands."""

    refund_id: str
    account_id: str
    order_id: str
    amount: float
    currency: str
    method: RefundMethod
    status: Literal["issued", "voided"]
    created_at: dt.datetime
    voided_at: dt.datetime | None


class RefundList(Strict):
    """An account's refunds, voided ones included, oldest first."""

    account_id: str
    quarter: str | None = Field(
        description="the quarter asked for (current resolved), or null for all"
    )
    refunds: list[Refund]


def create_service(database: Path, *, clock: Clock) -> SandboxService:
    """The billing service on ``database``."""
    service = SandboxService(
        "billing",
        database,
        title="Sandbox billing",
        description="Accounts, invoices, subscriptions, discounts and refunds. Amounts are in "
        "the account's currency with two decimals.",
        schema=SCHEMA,
        seed=_seed,
        clock=clock,
    )
    app = service.app
    store = service.store

    @app.get(
        "/accounts/search",
        operation_id="find_account",
        summary="Find a customer's billing account",
        response_model=Account,
        responses=problems(404, 422),
    )
    def find_account(customer_id: CustomerIdQuery) -> Account:
        with store.transaction() as tx:
            row = tx.execute(
                "SELECT * FROM accounts WHERE customer_id = ?", (customer_id,)
            ).fetchone()
        if row is None:
            raise ProblemError(
                404, "account_not_found", f"customer {customer_id!r} has no billing account"
            )
        return Account.model_validate(dict(row))

    @app.get(
        "/accounts/{account_id}",
        operation_id="get_account",
        summary="Get a billing account",
        response_model=Account,
        responses=problems(404, 422),
    )
    def get_account(account_id: AccountIdPath) -> Account:
        with store.transaction() as tx:
            return Account.model_validate(dict(_account_row(tx, account_id)))

    @app.get(
        "/accounts/{account_id}/invoices",
        operation_id="list_invoices",
        summary="List an account's invoices",
        response_model=InvoiceList,
        responses=problems(404, 422),
    )
    def list_invoices(account_id: AccountIdPath) -> InvoiceList:
        with store.transaction() as tx:
            _account_row(tx, account_id)
            rows = tx.execute(
                "SELECT * FROM invoices WHERE account_id = ? ORDER BY issued_at, invoice_id",
                (account_id,),
            ).fetchall()
            invoices = [_invoice(tx, row) for row in rows]
        return InvoiceList(account_id=account_id, invoices=invoices)

    @app.post(
        "/subscriptions",
        operation_id="create_subscription",
        summary="Start a subscription (compensate with cancel_subscription)",
        status_code=201,
        response_model=Subscription,
        responses=problems(404, 409, 422),
    )
    def create_subscription(request: NewSubscription, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Subscription:
            _account_row(tx, request.account_id)
            active = tx.execute(
                "SELECT subscription_id FROM subscriptions "
                "WHERE account_id = ? AND plan = ? AND status = 'active'",
                (request.account_id, request.plan),
            ).fetchone()
            if active is not None:
                raise ProblemError(
                    409,
                    "subscription_exists",
                    f"account {request.account_id} already has an active {request.plan} "
                    f"subscription ({active['subscription_id']})",
                )
            subscription_id = next_id(tx, "subscriptions", "sub")
            tx.execute(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, 'active', ?, NULL)",
                (
                    subscription_id,
                    request.account_id,
                    request.plan,
                    PLAN_PRICES[request.plan],
                    CURRENCY,
                    service.timestamp(),
                ),
            )
            return _subscription(_subscription_row(tx, subscription_id))

        return mutation.apply(effect)

    @app.get(
        "/subscriptions/{subscription_id}",
        operation_id="get_subscription",
        summary="Get a subscription",
        response_model=Subscription,
        responses=problems(404, 422),
    )
    def get_subscription(subscription_id: SubscriptionIdPath) -> Subscription:
        with store.transaction() as tx:
            return _subscription(_subscription_row(tx, subscription_id))

    @app.post(
        "/subscriptions/{subscription_id}/cancel",
        operation_id="cancel_subscription",
        summary="Cancel a subscription",
        response_model=Subscription,
        responses=problems(404, 409, 422),
    )
    def cancel_subscription(subscription_id: SubscriptionIdPath, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Subscription:
            row = _subscription_row(tx, subscription_id)
            if row["status"] != "active":
                raise ProblemError(
                    409,
                    "subscription_not_active",
                    f"subscription {subscription_id} is already {row['status']}",
                )
            tx.execute(
                "UPDATE subscriptions SET status = 'cancelled', cancelled_at = ? "
                "WHERE subscription_id = ?",
                (service.timestamp(), subscription_id),
            )
            return _subscription(_subscription_row(tx, subscription_id))

        return mutation.apply(effect)

    @app.post(
        "/accounts/{account_id}/discounts",
        operation_id="apply_discount",
        summary="Apply a percentage discount to an account (compensate with remove_discount)",
        status_code=201,
        response_model=Discount,
        responses=problems(404, 422),
    )
    def apply_discount(
        account_id: AccountIdPath, request: NewDiscount, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Discount:
            _account_row(tx, account_id)
            now = service.now()
            discount_id = next_id(tx, "discounts", "dis")
            tx.execute(
                "INSERT INTO discounts VALUES (?, ?, ?, ?, 'active', ?, ?, NULL)",
                (
                    discount_id,
                    account_id,
                    request.percent,
                    request.reason,
                    iso(now),
                    _quarter_of(now),
                ),
            )
            return _discount(_discount_row(tx, discount_id))

        return mutation.apply(effect)

    @app.get(
        "/accounts/{account_id}/discounts",
        operation_id="list_discounts",
        summary="List an account's discounts, including removed ones",
        response_model=DiscountList,
        responses=problems(404, 422),
    )
    def list_discounts(account_id: AccountIdPath, quarter: QuarterQuery = None) -> DiscountList:
        wanted = _quarter_of(service.now()) if quarter == "current" else quarter
        with store.transaction() as tx:
            _account_row(tx, account_id)
            rows = tx.execute(
                "SELECT * FROM discounts WHERE account_id = ? AND (? IS NULL OR quarter = ?) "
                "ORDER BY discount_id",
                (account_id, wanted, wanted),
            ).fetchall()
        return DiscountList(
            account_id=account_id, quarter=wanted, discounts=[_discount(row) for row in rows]
        )

    @app.get(
        "/accounts/{account_id}/refunds",
        operation_id="list_refunds",
        summary="List an account's refunds, voided ones included, optionally of one quarter",
        response_model=RefundList,
        responses=problems(404, 422),
    )
    def list_refunds(
        account_id: AccountIdPath,
        quarter: QuarterQuery = None,
        order_id: Annotated[
            str | None, Query(pattern=ORDER_ID_PATTERN, description="only this order's refunds")
        ] = None,
    ) -> RefundList:
        wanted = _quarter_of(service.now()) if quarter == "current" else quarter
        with store.transaction() as tx:
            _account_row(tx, account_id)
            rows = tx.execute(
                "SELECT * FROM refunds WHERE account_id = ? AND (? IS NULL OR order_id = ?) "
                "ORDER BY refund_id",
                (account_id, order_id, order_id),
            ).fetchall()
        refunds = [_refund(row) for row in rows]
        if wanted is not None:
            refunds = [r for r in refunds if _quarter_of(r.created_at) == wanted]
        return RefundList(account_id=account_id, quarter=wanted, refunds=refunds)

    @app.delete(
        "/discounts/{discount_id}",
        operation_id="remove_discount",
        summary="Remove a discount",
        response_model=Discount,
        responses=problems(404, 409, 422),
    )
    def remove_discount(discount_id: DiscountIdPath, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Discount:
            row = _discount_row(tx, discount_id)
            if row["status"] != "active":
                raise ProblemError(
                    409, "discount_not_active", f"discount {discount_id} was already removed"
                )
            tx.execute(
                "UPDATE discounts SET status = 'removed', removed_at = ? WHERE discount_id = ?",
                (service.timestamp(), discount_id),
            )
            return _discount(_discount_row(tx, discount_id))

        return mutation.apply(effect)

    @app.post(
        "/refunds",
        operation_id="issue_refund",
        summary="Refund part or all of what a retail order was paid (compensate with void_refund)",
        status_code=201,
        response_model=Refund,
        responses=problems(404, 409, 422),
    )
    def issue_refund(request: NewRefund, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Refund:
            invoice = tx.execute(
                "SELECT * FROM invoices WHERE order_id = ?", (request.order_id,)
            ).fetchone()
            if invoice is None:
                raise ProblemError(
                    404, "order_not_found", f"billing has no invoice for order {request.order_id}"
                )
            left = invoice["amount_cents"] - _refunded_cents(tx, request.order_id)
            if cents(request.amount) > left:
                raise ProblemError(
                    409,
                    "refund_exceeds_payment",
                    f"order {request.order_id} has {units(left):.2f} {invoice['currency']} left "
                    f"to refund; {request.amount:.2f} asked",
                )
            refund_id = next_id(tx, "refunds", "ref")
            tx.execute(
                "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?, 'issued', ?, ?, NULL)",
                (
                    refund_id,
                    invoice["account_id"],
                    request.order_id,
                    cents(request.amount),
                    invoice["currency"],
                    request.method,
                    mutation.key,
                    service.timestamp(),
                ),
            )
            return _refund(_refund_row(tx, refund_id))

        return mutation.apply(effect)

    @app.get(
        "/refunds/search",
        operation_id="find_refund_by_key",
        summary="Find the refund an Idempotency-Key created (to reconcile after a lost answer)",
        response_model=Refund,
        responses=problems(404, 422),
    )
    def find_refund_by_key(
        idempotency_key: Annotated[str, Query(min_length=1, max_length=255)],
    ) -> Refund:
        with store.transaction() as tx:
            row = tx.execute(
                "SELECT * FROM refunds WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        if row is None:
            raise ProblemError(
                404,
                "refund_not_found",
                f"no refund was created with Idempotency-Key {idempotency_key!r}",
            )
        return _refund(row)

    @app.get(
        "/refunds/{refund_id}",
        operation_id="get_refund",
        summary="Get a refund",
        response_model=Refund,
        responses=problems(404, 422),
    )
    def get_refund(refund_id: RefundIdPath) -> Refund:
        with store.transaction() as tx:
            return _refund(_refund_row(tx, refund_id))

    @app.post(
        "/refunds/{refund_id}/void",
        operation_id="void_refund",
        summary="Void a refund",
        response_model=Refund,
        responses=problems(404, 409, 422),
    )
    def void_refund(refund_id: RefundIdPath, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Refund:
            row = _refund_row(tx, refund_id)
            if row["status"] != "issued":
                raise ProblemError(
                    409, "refund_not_issued", f"refund {refund_id} is already voided"
                )
            tx.execute(
                "UPDATE refunds SET status = 'voided', voided_at = ? WHERE refund_id = ?",
                (service.timestamp(), refund_id),
            )
            return _refund(_refund_row(tx, refund_id))

        return mutation.apply(effect)

    return service


def _row(tx: sqlite3.Connection, table: str, key: str, value: str, kind: str) -> sqlite3.Row:
    row: sqlite3.Row | None = tx.execute(
        f"SELECT * FROM {table} WHERE {key} = ?", (value,)
    ).fetchone()
    if row is None:
        raise not_found(kind, value)
    return row


def _account_row(tx: sqlite3.Connection, account_id: str) -> sqlite3.Row:
    return _row(tx, "accounts", "account_id", account_id, "account")


def _subscription_row(tx: sqlite3.Connection, subscription_id: str) -> sqlite3.Row:
    return _row(tx, "subscriptions", "subscription_id", subscription_id, "subscription")


def _discount_row(tx: sqlite3.Connection, discount_id: str) -> sqlite3.Row:
    return _row(tx, "discounts", "discount_id", discount_id, "discount")


def _refund_row(tx: sqlite3.Connection, refund_id: str) -> sqlite3.Row:
    return _row(tx, "refunds", "refund_id", refund_id, "refund")


def _refunded_cents(tx: sqlite3.Connection, order_id: str) -> int:
    (total,) = tx.execute(
        "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds "
        "WHERE order_id = ? AND status = 'issued'",
        (order_id,),
    ).fetchone()
    return int(total)


def _invoice(tx: sqlite3.Connection, row: sqlite3.Row) -> Invoice:
    refunded = _refunded_cents(tx, row["order_id"])
    amount = row["amount_cents"]
    status: Literal["paid", "partially_refunded", "refunded"] = (
        "paid" if refunded == 0 else "refunded" if refunded >= amount else "partially_refunded"
    )
    return Invoice(
        invoice_id=row["invoice_id"],
        account_id=row["account_id"],
        order_id=row["order_id"],
        amount=units(amount),
        refunded=units(refunded),
        currency=row["currency"],
        status=status,
        issued_at=row["issued_at"],
    )


def _subscription(row: sqlite3.Row) -> Subscription:
    fields = dict(row)
    fields["price"] = units(fields.pop("price_cents"))
    return Subscription.model_validate(fields)


def _discount(row: sqlite3.Row) -> Discount:
    return Discount.model_validate(dict(row))


def _refund(row: sqlite3.Row) -> Refund:
    fields = dict(row)
    fields["amount"] = units(fields.pop("amount_cents"))
    fields.pop("idempotency_key")
    return Refund.model_validate(fields)


_SEEDED_PLANS: dict[str, Plan] = {"gold": "premium", "silver": "plus"}


def _seed(tx: sqlite3.Connection) -> None:
    orders = retail_data()["orders"]
    refunds = subscriptions = 0
    for person in people():
        account_id = person.account_id
        opened = seeded_moment("account", person.customer_id) - dt.timedelta(days=365)
        tx.execute(
            "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, 'active', ?)",
            (account_id, person.customer_id, person.name, person.email, CURRENCY, iso(opened)),
        )
        for order_id in person.order_ids:
            order = orders[order_id]
            paid = sum(
                cents(t["amount"])
                for t in order["payment_history"]
                if t["transaction_type"] == "payment"
            )
            issued = seeded_moment("invoice", order_id)
            tx.execute(
                "INSERT INTO invoices VALUES (?, ?, ?, ?, ?, ?)",
                (f"inv_{order_id[2:]}", account_id, order_id, paid, CURRENCY, iso(issued)),
            )
            for transaction in order["payment_history"]:
                if transaction["transaction_type"] != "refund":
                    continue
                refunds += 1
                tx.execute(
                    "INSERT INTO refunds VALUES "
                    "(?, ?, ?, ?, ?, 'original_payment', 'issued', NULL, ?, NULL)",
                    (
                        f"ref_{refunds:06d}",
                        account_id,
                        order_id,
                        cents(transaction["amount"]),
                        CURRENCY,
                        iso(issued + dt.timedelta(days=3)),
                    ),
                )
        plan = _SEEDED_PLANS.get(person.tier)
        if plan is None and person.index % 5 == 0:
            plan = "basic"
        if plan is not None:
            subscriptions += 1
            tx.execute(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, 'active', ?, NULL)",
                (
                    f"sub_{subscriptions:06d}",
                    account_id,
                    plan,
                    PLAN_PRICES[plan],
                    CURRENCY,
                    iso(opened + dt.timedelta(days=30)),
                ),
            )
