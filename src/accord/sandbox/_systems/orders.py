"""Orders: the retail shop's users, products and orders, seeded from tau-bench (see NOTICE).

The rules follow the shop's: only a pending order can be cancelled, which refunds every payment to
the method it came from (a gift card gets its balance back at once); only a delivered order's
items can be returned, to the original payment method or a gift card of the user's.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import Field
from starlette.responses import Response

from accord.core import Clock
from accord.sandbox._fields import EMAIL_PATTERN, CustomerId, not_found
from accord.sandbox._problems import ProblemError, problems
from accord.sandbox._seed import CURRENCY, TauOrder, TauUser, customer_ids_by_user, retail_data
from accord.sandbox._service import SandboxService, Strict, StrictInput, Write

OrderStatus = Literal["pending", "processed", "delivered", "cancelled", "return requested"]
OrderIdPath = Annotated[
    str,
    PathParam(
        pattern=r"^#?W[0-9]{7}$",
        description="order id, e.g. #W4316152; the # may be left out (else send it as %23)",
    ),
]
UserIdPath = Annotated[str, PathParam(pattern=r"^[a-z]+_[a-z]+_[0-9]{4}$")]
ProductIdPath = Annotated[str, PathParam(pattern=r"^[0-9]{10}$")]
ItemId = Annotated[str, Field(pattern=r"^[0-9]{10}$")]

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL COLLATE NOCASE UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    status TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, order_id);
"""


class Address(Strict):
    """A postal address."""

    address1: str
    address2: str
    city: str
    country: str
    state: str
    zip: str


class PersonName(Strict):
    """A user's name."""

    first_name: str
    last_name: str


class PaymentMethod(Strict):
    """A saved payment method; gift cards carry a balance, cards a brand and last digits."""

    id: str
    source: Literal["credit_card", "paypal", "gift_card"]
    brand: str | None = None
    last_four: str | None = None
    balance: float | None = None


class User(Strict):
    """A shop user."""

    user_id: str
    customer_id: CustomerId = Field(description="the same person's id in the CRM")
    name: PersonName
    address: Address
    email: str
    payment_methods: list[PaymentMethod]
    orders: list[str]


class OrderItem(Strict):
    """One unit of a product variant in an order."""

    name: str
    product_id: str
    item_id: str
    price: float
    options: dict[str, str]


class Fulfillment(Strict):
    """A shipment: its tracking ids and the items in it."""

    tracking_id: list[str]
    item_ids: list[str]


class Transaction(Strict):
    """A payment or refund on an order."""

    transaction_type: Literal["payment", "refund"]
    amount: float
    payment_method_id: str


class Order(Strict):
    """An order, its items, shipments and payments. Amounts are in ``currency``."""

    order_id: str
    user_id: str
    address: Address
    items: list[OrderItem]
    fulfillments: list[Fulfillment]
    status: OrderStatus
    payment_history: list[Transaction]
    currency: str = CURRENCY
    cancellation_reason: str | None = None
    return_items: list[str] | None = None
    return_payment_method_id: str | None = None


class OrderList(Strict):
    """A user's orders."""

    user_id: str
    orders: list[Order]


class Variant(Strict):
    """One variant of a product: its options, price and availability."""

    item_id: str
    options: dict[str, str]
    available: bool
    price: float


class Product(Strict):
    """A product type and its variants."""

    product_id: str
    name: str
    currency: str = CURRENCY
    variants: list[Variant]


class ProductSummary(Strict):
    """A product type, without its variants."""

    product_id: str
    name: str
    variant_count: int


class ProductList(Strict):
    """Every product type, by name."""

    products: list[ProductSummary]


class Cancellation(StrictInput):
    """Why the customer cancels."""

    reason: Literal["no longer needed", "ordered by mistake"]


class ReturnRequest(StrictInput):
    """Items of a delivered order to return, and where the refund goes."""

    item_ids: Annotated[list[ItemId], Field(min_length=1, max_length=50)]
    payment_method_id: Annotated[
        str,
        Field(
            min_length=1,
            description="the order's original payment method, or a gift card of the user's",
        ),
    ]


def create_service(database: Path, *, clock: Clock) -> SandboxService:
    """The orders service on ``database``."""
    service = SandboxService(
        "orders",
        database,
        title="Sandbox orders",
        description="The retail shop's users, products and orders (data from tau-bench, MIT).",
        schema=SCHEMA,
        seed=_seed,
        clock=clock,
    )
    app = service.app
    store = service.store

    @app.get(
        "/orders/{order_id}",
        operation_id="get_order",
        summary="Get an order",
        response_model=Order,
        responses=problems(404, 422),
    )
    def get_order(order_id: OrderIdPath) -> Order:
        with store.transaction() as tx:
            return Order.model_validate(_order_data(tx, _normalised(order_id)))

    @app.get(
        "/users/search",
        operation_id="find_user_by_email",
        response_model_exclude_none=True,
        summary="Find the shop user with an e-mail address",
        response_model=User,
        responses=problems(404, 422),
    )
    def find_user_by_email(
        email: Annotated[str, Query(pattern=EMAIL_PATTERN, max_length=254)],
    ) -> User:
        with store.transaction() as tx:
            row = tx.execute("SELECT user_id FROM users WHERE email = ?", (email,)).fetchone()
            if row is None:
                raise ProblemError(404, "user_not_found", f"no shop user has e-mail {email!r}")
            return _user(row["user_id"], _user_data(tx, row["user_id"]))

    @app.get(
        "/users/{user_id}",
        operation_id="get_user",
        response_model_exclude_none=True,
        summary="Get a shop user: name, address, e-mail, payment methods and order ids",
        response_model=User,
        responses=problems(404, 422),
    )
    def get_user(user_id: UserIdPath) -> User:
        with store.transaction() as tx:
            return _user(user_id, _user_data(tx, user_id))

    @app.get(
        "/users/{user_id}/orders",
        operation_id="list_orders",
        summary="List a user's orders",
        response_model=OrderList,
        responses=problems(404, 422),
    )
    def list_orders(user_id: UserIdPath) -> OrderList:
        with store.transaction() as tx:
            _user_data(tx, user_id)
            rows = tx.execute(
                "SELECT data FROM orders WHERE user_id = ? ORDER BY order_id", (user_id,)
            ).fetchall()
        return OrderList(
            user_id=user_id, orders=[Order.model_validate_json(row["data"]) for row in rows]
        )

    @app.get(
        "/products",
        operation_id="list_products",
        summary="List every product type",
        response_model=ProductList,
        responses=problems(),
    )
    def list_products() -> ProductList:
        with store.transaction() as tx:
            rows = tx.execute("SELECT data FROM products").fetchall()
        products = [Product.model_validate_json(row["data"]) for row in rows]
        return ProductList(
            products=[
                ProductSummary(product_id=p.product_id, name=p.name, variant_count=len(p.variants))
                for p in sorted(products, key=lambda p: (p.name, p.product_id))
            ]
        )

    @app.get(
        "/products/{product_id}",
        operation_id="get_product",
        summary="Get a product type and its variants",
        response_model=Product,
        responses=problems(404, 422),
    )
    def get_product(product_id: ProductIdPath) -> Product:
        with store.transaction() as tx:
            row = tx.execute(
                "SELECT data FROM products WHERE product_id = ?", (product_id,)
            ).fetchone()
        if row is None:
            raise not_found("product", product_id)
        return Product.model_validate_json(row["data"])

    @app.post(
        "/orders/{order_id}/cancel",
        operation_id="cancel_pending_order",
        summary="Cancel a pending order and refund its payments",
        response_model=Order,
        responses=problems(404, 409, 422),
    )
    def cancel_pending_order(
        order_id: OrderIdPath, cancellation: Cancellation, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Order:
            order = Order.model_validate(_order_data(tx, _normalised(order_id)))
            if order.status != "pending":
                raise ProblemError(
                    409,
                    "order_not_pending",
                    f"order {order.order_id} is {order.status}; only a pending order can be "
                    "cancelled",
                )
            user = _user_data(tx, order.user_id)
            refunds = [
                Transaction(
                    transaction_type="refund",
                    amount=t.amount,
                    payment_method_id=t.payment_method_id,
                )
                for t in order.payment_history
                if t.transaction_type == "payment"
            ]
            for refund in refunds:
                method = user["payment_methods"].get(refund.payment_method_id)
                if method is not None and method.get("source") == "gift_card":
                    method["balance"] = round(method.get("balance", 0.0) + refund.amount, 2)
            cancelled = order.model_copy(
                update={
                    "status": "cancelled",
                    "cancellation_reason": cancellation.reason,
                    "payment_history": [*order.payment_history, *refunds],
                }
            )
            _save_order(tx, cancelled)
            _save_user(tx, order.user_id, user)
            return cancelled

        return mutation.apply(effect)

    @app.post(
        "/orders/{order_id}/returns",
        operation_id="return_delivered_order_items",
        summary="Request the return of items of a delivered order",
        response_model=Order,
        responses=problems(404, 409, 422),
    )
    def return_delivered_order_items(
        order_id: OrderIdPath, request: ReturnRequest, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Order:
            order = Order.model_validate(_order_data(tx, _normalised(order_id)))
            if order.status != "delivered":
                raise ProblemError(
                    409,
                    "order_not_delivered",
                    f"order {order.order_id} is {order.status}; only a delivered order's items "
                    "can be returned",
                )
            missing = Counter(request.item_ids) - Counter(item.item_id for item in order.items)
            if missing:
                raise ProblemError(
                    422,
                    "item_not_in_order",
                    f"order {order.order_id} does not hold item(s) {', '.join(sorted(missing))} "
                    "(as many times as asked)",
                )
            user = _user_data(tx, order.user_id)
            original = {t.payment_method_id for t in order.payment_history}
            method = user["payment_methods"].get(request.payment_method_id)
            if method is None or (
                request.payment_method_id not in original and method.get("source") != "gift_card"
            ):
                raise ProblemError(
                    422,
                    "payment_method_not_allowed",
                    f"{request.payment_method_id!r} is neither the order's original payment "
                    f"method ({', '.join(sorted(original))}) nor a gift card of the user's",
                )
            returned = order.model_copy(
                update={
                    "status": "return requested",
                    "return_items": sorted(request.item_ids),
                    "return_payment_method_id": request.payment_method_id,
                }
            )
            _save_order(tx, returned)
            return returned

        return mutation.apply(effect)

    return service


def _normalised(order_id: str) -> str:
    return order_id if order_id.startswith("#") else f"#{order_id}"


def _order_data(tx: sqlite3.Connection, order_id: str) -> TauOrder:
    row = tx.execute("SELECT data FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    if row is None:
        raise not_found("order", order_id)
    data: TauOrder = json.loads(row["data"])
    return data


def _user_data(tx: sqlite3.Connection, user_id: str) -> TauUser:
    row = tx.execute("SELECT data FROM users WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        raise not_found("user", user_id)
    data: TauUser = json.loads(row["data"])
    return data


def _user(user_id: str, data: TauUser) -> User:
    return User(
        user_id=user_id,
        customer_id=customer_ids_by_user()[user_id],
        name=PersonName.model_validate(data["name"]),
        address=Address.model_validate(data["address"]),
        email=data["email"],
        payment_methods=[
            PaymentMethod.model_validate(method)
            for _, method in sorted(data["payment_methods"].items())
        ],
        orders=data["orders"],
    )


def _save_order(tx: sqlite3.Connection, order: Order) -> None:
    tx.execute(
        "UPDATE orders SET status = ?, data = ? WHERE order_id = ?",
        (order.status, order.model_dump_json(exclude_none=True), order.order_id),
    )


def _save_user(tx: sqlite3.Connection, user_id: str, data: TauUser) -> None:
    tx.execute("UPDATE users SET data = ? WHERE user_id = ?", (json.dumps(data), user_id))


def _seed(tx: sqlite3.Connection) -> None:
    data = retail_data()
    for product_id, product in sorted(data["products"].items()):
        variants = [variant for _, variant in sorted(product["variants"].items())]
        record = {"product_id": product_id, "name": product["name"], "variants": variants}
        tx.execute("INSERT INTO products VALUES (?, ?)", (product_id, json.dumps(record)))
    for user_id, user in sorted(data["users"].items()):
        tx.execute("INSERT INTO users VALUES (?, ?, ?)", (user_id, user["email"], json.dumps(user)))
    for order_id, order in sorted(data["orders"].items()):
        tx.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            (order_id, order["user_id"], order["status"], json.dumps(order)),
        )
