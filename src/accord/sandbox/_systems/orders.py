"""Orders: the retail shop's users, products and orders, seeded from tau-bench (see NOTICE).

The rules follow the shop's, and the service refuses a change its state does not allow (409) even
though the policy in front of it decides first:

* only a ``pending`` order can be cancelled, which refunds every payment to the method it came
  from (a gift card gets its balance back at once);
* a ``pending`` order's address, payment method or items can be changed; changing its items
  swaps each for another available variant of the same product, settles the price difference
  with one payment method and makes the order ``pending (item modified)``, after which it cannot
  be changed or cancelled any more;
* a ``delivered`` order's items can be returned (``return requested``), with the refund going to
  the original payment method or a gift card of the user's, or exchanged for other variants of
  the same products (``exchange requested``), once.

The service is seeded from the packaged subset unless it is given a tau-bench retail data
directory (``users.json``, ``orders.json``, ``products.json``); ``POST /_sandbox/reset`` puts the
database back to its seeded state.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import Field
from starlette.responses import Response

from accord.core import Clock
from accord.sandbox._fields import EMAIL_PATTERN, CustomerId, not_found
from accord.sandbox._problems import ProblemError, problems
from accord.sandbox._seed import (
    CURRENCY,
    RetailData,
    TauOrder,
    TauPaymentMethod,
    TauUser,
    customer_id_of,
    read_retail_data,
    retail_data,
)
from accord.sandbox._service import SandboxService, Strict, StrictInput, Write

OrderStatus = Literal[
    "pending",
    "pending (item modified)",
    "processed",
    "delivered",
    "cancelled",
    "return requested",
    "exchange requested",
]
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
    exchange_items: list[str] | None = None
    exchange_new_items: list[str] | None = None
    exchange_payment_method_id: str | None = None
    exchange_price_difference: float | None = None


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


class ItemChange(StrictInput):
    """Items of an order to swap, position by position, for other variants of their products."""

    item_ids: Annotated[list[ItemId], Field(min_length=1, max_length=50)]
    new_item_ids: Annotated[
        list[ItemId],
        Field(
            min_length=1,
            max_length=50,
            description="the variant each item becomes, in the same order as item_ids",
        ),
    ]
    payment_method_id: Annotated[
        str,
        Field(
            min_length=1,
            description="the user's payment method that pays, or is refunded, the difference",
        ),
    ]


class AddressChange(StrictInput):
    """The new shipping address of a pending order."""

    address1: Annotated[str, Field(min_length=1, max_length=200)]
    address2: Annotated[str, Field(max_length=200)]
    city: Annotated[str, Field(min_length=1, max_length=100)]
    state: Annotated[str, Field(min_length=1, max_length=100)]
    country: Annotated[str, Field(min_length=1, max_length=100)]
    zip: Annotated[str, Field(min_length=1, max_length=20)]


class PaymentChange(StrictInput):
    """The payment method that pays a pending order instead of the current one."""

    payment_method_id: Annotated[str, Field(min_length=1)]


def create_service(database: Path, *, clock: Clock, data: Path | None = None) -> SandboxService:
    """The orders service on ``database``.

    Args:
        database: its SQLite file.
        clock: the time effects are stamped with.
        data: a tau-bench retail data directory to seed a new database from, instead of the
            packaged subset.

    Raises:
        ConfigurationError: ``data`` is not a readable tau-bench retail data directory.
    """
    seed_data = retail_data() if data is None else read_retail_data(data)
    customers = {
        user_id: customer_id_of(index)
        for index, user_id in enumerate(sorted(seed_data["users"]), start=1)
    }
    seeded = _SeedRows.of(seed_data)
    service = SandboxService(
        "orders",
        database,
        title="Sandbox orders",
        description="The retail shop's users, products and orders (data from tau-bench, MIT).",
        schema=SCHEMA,
        seed=seeded.insert,
        clock=clock,
    )
    app = service.app
    store = service.store

    def _user(user_id: str, data: TauUser) -> User:
        return User(
            user_id=user_id,
            customer_id=customers[user_id],
            name=PersonName.model_validate(data["name"]),
            address=Address.model_validate(data["address"]),
            email=data["email"],
            payment_methods=[
                PaymentMethod.model_validate(method)
                for _, method in sorted(data["payment_methods"].items())
            ],
            orders=data["orders"],
        )

    @app.post("/_sandbox/reset", include_in_schema=False, status_code=204)
    def reset() -> Response:
        with store.transaction() as tx:
            for table in ("orders", "users", "products", "idempotency", "effects"):
                tx.execute(f"DELETE FROM {table}")
            seeded.insert(tx)
        return Response(status_code=204)

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
        "/users/search-by-name",
        operation_id="find_user_by_name_zip",
        response_model_exclude_none=True,
        summary="Find the shop user with a first name, last name and zip code",
        response_model=User,
        responses=problems(404, 422),
    )
    def find_user_by_name_zip(
        first_name: Annotated[str, Query(min_length=1, max_length=100)],
        last_name: Annotated[str, Query(min_length=1, max_length=100)],
        zip: Annotated[str, Query(min_length=1, max_length=20)],
    ) -> User:
        with store.transaction() as tx:
            rows = tx.execute("SELECT user_id, data FROM users ORDER BY user_id").fetchall()
        for row in rows:
            data: TauUser = json.loads(row["data"])
            name = data["name"]
            if (
                name["first_name"].casefold() == first_name.casefold()
                and name["last_name"].casefold() == last_name.casefold()
                and data["address"]["zip"] == zip
            ):
                return _user(row["user_id"], data)
        raise ProblemError(
            404,
            "user_not_found",
            f"no shop user is named {first_name} {last_name} with zip code {zip}",
        )

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
            _require_delivered(order, "returned")
            _require_items(order, request.item_ids)
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

    @app.post(
        "/orders/{order_id}/items",
        operation_id="modify_pending_order_items",
        summary="Swap items of a pending order for other variants and settle the difference",
        response_model=Order,
        responses=problems(404, 409, 422),
    )
    def modify_pending_order_items(
        order_id: OrderIdPath, change: ItemChange, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Order:
            order = Order.model_validate(_order_data(tx, _normalised(order_id)))
            _require_pending(order, "its items changed")
            user = _user_data(tx, order.user_id)
            variants = _new_variants(tx, order, change)
            method = _own_method(user, change.payment_method_id)
            difference = _difference(order, change, variants)
            _require_balance(method, difference)
            if method.get("source") == "gift_card":
                method["balance"] = round(method.get("balance", 0.0) - difference, 2)
            settlement = Transaction(
                transaction_type="payment" if difference > 0 else "refund",
                amount=abs(difference),
                payment_method_id=change.payment_method_id,
            )
            modified = order.model_copy(
                update={
                    "items": _swapped(order, change, variants),
                    "status": "pending (item modified)",
                    "payment_history": [*order.payment_history, settlement],
                }
            )
            _save_order(tx, modified)
            _save_user(tx, order.user_id, user)
            return modified

        return mutation.apply(effect)

    @app.post(
        "/orders/{order_id}/address",
        operation_id="modify_pending_order_address",
        summary="Change the shipping address of a pending order",
        response_model=Order,
        responses=problems(404, 409, 422),
    )
    def modify_pending_order_address(
        order_id: OrderIdPath, change: AddressChange, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Order:
            order = Order.model_validate(_order_data(tx, _normalised(order_id)))
            _require_pending(order, "its address changed")
            moved = order.model_copy(
                update={"address": Address.model_validate(change.model_dump())}
            )
            _save_order(tx, moved)
            return moved

        return mutation.apply(effect)

    @app.post(
        "/orders/{order_id}/payment",
        operation_id="modify_pending_order_payment",
        summary="Pay a pending order with another of the user's payment methods",
        response_model=Order,
        responses=problems(404, 409, 422),
    )
    def modify_pending_order_payment(
        order_id: OrderIdPath, change: PaymentChange, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Order:
            order = Order.model_validate(_order_data(tx, _normalised(order_id)))
            _require_pending(order, "its payment method changed")
            payments = [t for t in order.payment_history if t.transaction_type == "payment"]
            if len(order.payment_history) != 1 or len(payments) != 1:
                raise ProblemError(
                    409,
                    "payment_not_single",
                    f"order {order.order_id} was not paid with exactly one payment; its "
                    "payment method cannot be changed",
                )
            [current] = payments
            if change.payment_method_id == current.payment_method_id:
                raise ProblemError(
                    422,
                    "payment_method_unchanged",
                    f"order {order.order_id} is already paid with {current.payment_method_id}; "
                    "choose a different payment method",
                )
            user = _user_data(tx, order.user_id)
            method = _own_method(user, change.payment_method_id)
            _require_balance(method, current.amount)
            if method.get("source") == "gift_card":
                method["balance"] = round(method.get("balance", 0.0) - current.amount, 2)
            previous = user["payment_methods"].get(current.payment_method_id)
            if previous is not None and previous.get("source") == "gift_card":
                previous["balance"] = round(previous.get("balance", 0.0) + current.amount, 2)
            repaid = order.model_copy(
                update={
                    "payment_history": [
                        *order.payment_history,
                        Transaction(
                            transaction_type="payment",
                            amount=current.amount,
                            payment_method_id=change.payment_method_id,
                        ),
                        Transaction(
                            transaction_type="refund",
                            amount=current.amount,
                            payment_method_id=current.payment_method_id,
                        ),
                    ]
                }
            )
            _save_order(tx, repaid)
            _save_user(tx, order.user_id, user)
            return repaid

        return mutation.apply(effect)

    @app.post(
        "/orders/{order_id}/exchanges",
        operation_id="exchange_delivered_order_items",
        summary="Request the exchange of items of a delivered order for other variants",
        response_model=Order,
        responses=problems(404, 409, 422),
    )
    def exchange_delivered_order_items(
        order_id: OrderIdPath, change: ItemChange, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Order:
            order = Order.model_validate(_order_data(tx, _normalised(order_id)))
            _require_delivered(order, "exchanged")
            user = _user_data(tx, order.user_id)
            variants = _new_variants(tx, order, change)
            method = _own_method(user, change.payment_method_id)
            difference = _difference(order, change, variants)
            _require_balance(method, difference)
            exchanged = order.model_copy(
                update={
                    "status": "exchange requested",
                    "exchange_items": sorted(change.item_ids),
                    "exchange_new_items": sorted(change.new_item_ids),
                    "exchange_payment_method_id": change.payment_method_id,
                    "exchange_price_difference": difference,
                }
            )
            _save_order(tx, exchanged)
            return exchanged

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


def _save_order(tx: sqlite3.Connection, order: Order) -> None:
    tx.execute(
        "UPDATE orders SET status = ?, data = ? WHERE order_id = ?",
        (order.status, order.model_dump_json(exclude_none=True), order.order_id),
    )


def _save_user(tx: sqlite3.Connection, user_id: str, data: TauUser) -> None:
    tx.execute("UPDATE users SET data = ? WHERE user_id = ?", (json.dumps(data), user_id))


def _require_pending(order: Order, change: str) -> None:
    if order.status == "pending (item modified)":
        raise ProblemError(
            409,
            "order_items_modified",
            f"order {order.order_id}'s items were already modified; it cannot have {change} "
            "or be cancelled any more",
        )
    if order.status != "pending":
        raise ProblemError(
            409,
            "order_not_pending",
            f"order {order.order_id} is {order.status}; only a pending order can have {change}",
        )


def _require_delivered(order: Order, doing: str) -> None:
    if order.status != "delivered":
        raise ProblemError(
            409,
            "order_not_delivered",
            f"order {order.order_id} is {order.status}; only a delivered order's items can be "
            f"{doing}",
        )


def _require_items(order: Order, item_ids: Sequence[str]) -> None:
    """Each item is in the order, as many times as it is named."""
    missing = Counter(item_ids) - Counter(item.item_id for item in order.items)
    if missing:
        raise ProblemError(
            422,
            "item_not_in_order",
            f"order {order.order_id} does not hold item(s) {', '.join(sorted(missing))} "
            "(as many times as asked)",
        )


def _new_variants(tx: sqlite3.Connection, order: Order, change: ItemChange) -> list[Variant]:
    """The variant each item becomes, after checking the change is one the shop allows."""
    if len(change.item_ids) != len(change.new_item_ids):
        raise ProblemError(
            422,
            "item_count_mismatch",
            f"{len(change.item_ids)} item(s) but {len(change.new_item_ids)} new item(s): give "
            "one new item per item, in the same order",
        )
    _require_items(order, change.item_ids)
    products = {item.item_id: item.product_id for item in order.items}
    variants = []
    for old, new in zip(change.item_ids, change.new_item_ids, strict=True):
        row = tx.execute(
            "SELECT data FROM products WHERE product_id = ?", (products[old],)
        ).fetchone()
        product = None if row is None else Product.model_validate_json(row["data"])
        variant = None if product is None else _variant(product, new)
        if variant is None:
            raise ProblemError(
                422,
                "item_not_same_product",
                f"item {new} is not a variant of the product of item {old}; an item can only "
                "become another variant of the same product",
            )
        if not variant.available:
            raise ProblemError(409, "item_unavailable", f"item {new} is not available now")
        variants.append(variant)
    return variants


def _variant(product: Product, item_id: str) -> Variant | None:
    return next((variant for variant in product.variants if variant.item_id == item_id), None)


def _difference(order: Order, change: ItemChange, variants: list[Variant]) -> float:
    prices = {item.item_id: item.price for item in order.items}
    old = sum(prices[item_id] for item_id in change.item_ids)
    return round(sum(variant.price for variant in variants) - old, 2)


def _swapped(order: Order, change: ItemChange, variants: list[Variant]) -> list[OrderItem]:
    items = list(order.items)
    swapped: set[int] = set()
    for old, variant in zip(change.item_ids, variants, strict=True):
        position = next(
            i for i, item in enumerate(items) if item.item_id == old and i not in swapped
        )
        swapped.add(position)
        items[position] = items[position].model_copy(
            update={
                "item_id": variant.item_id,
                "price": variant.price,
                "options": dict(variant.options),
            }
        )
    return items


def _own_method(user: TauUser, payment_method_id: str) -> TauPaymentMethod:
    method = user["payment_methods"].get(payment_method_id)
    if method is None:
        raise ProblemError(
            422,
            "payment_method_not_found",
            f"the order's user has no payment method {payment_method_id!r}",
        )
    return method


def _require_balance(method: TauPaymentMethod, amount: float) -> None:
    balance = method.get("balance", 0.0)
    if method.get("source") == "gift_card" and balance < amount:
        raise ProblemError(
            409,
            "insufficient_balance",
            f"gift card {method.get('id')} holds {balance:.2f}, less than the {amount:.2f} to pay",
        )


@dataclass(frozen=True, slots=True)
class _SeedRows:
    """The rows a new (or reset) database is filled with, serialised once."""

    products: list[tuple[str, str]]
    users: list[tuple[str, str, str]]
    orders: list[tuple[str, str, str, str]]

    @classmethod
    def of(cls, data: RetailData) -> _SeedRows:
        products = []
        for product_id, product in sorted(data["products"].items()):
            variants = [variant for _, variant in sorted(product["variants"].items())]
            record = {"product_id": product_id, "name": product["name"], "variants": variants}
            products.append((product_id, json.dumps(record)))
        return cls(
            products=products,
            users=[
                (user_id, user["email"], json.dumps(user))
                for user_id, user in sorted(data["users"].items())
            ],
            orders=[
                (order_id, order["user_id"], order["status"], json.dumps(order))
                for order_id, order in sorted(data["orders"].items())
            ],
        )

    def insert(self, tx: sqlite3.Connection) -> None:
        tx.executemany("INSERT INTO products VALUES (?, ?)", self.products)
        tx.executemany("INSERT INTO users VALUES (?, ?, ?)", self.users)
        tx.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", self.orders)
