"""The expected state after a task: the actions' documented semantics applied to the raw data.

This is deliberately a second implementation, in plain Python over the tau-bench JSON records,
independent of the sandbox service: the suite compares what the service holds after a task with
what this says, field by field.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from accord.suites.retail._tasks import Action, Task

ORDER_FIELDS = (
    "status",
    "address",
    "items",
    "payment_history",
    "cancellation_reason",
    "return_items",
    "return_payment_method_id",
    "exchange_items",
    "exchange_new_items",
    "exchange_payment_method_id",
    "exchange_price_difference",
)
"""The fields of an order the final-state check compares."""

ITEM_FIELDS = ("item_id", "product_id", "price", "options")


@dataclass(frozen=True, slots=True)
class ExpectedState:
    """The orders a task touches and the payment balances of their users, as they should be.

    ``orders`` maps an order id to its :data:`ORDER_FIELDS`; ``balances`` maps a user id to each
    payment method's balance (``None`` for a method without one). ``broken`` gives, for each
    action of the task in order, the rule it breaks in the state it meets (``None`` when it is
    allowed): a ground-truth action that breaks a rule changes nothing.
    """

    orders: dict[str, dict[str, Any]]
    balances: dict[str, dict[str, float | None]]
    broken: tuple[str | None, ...] = ()


class Shop:
    """The raw records of the shop, copied so that applying actions leaves the source alone."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.users: dict[str, Any] = data["users"]
        self.orders: dict[str, Any] = data["orders"]
        self.products: dict[str, Any] = data["products"]
        self._changed_orders: dict[str, Any] = {}
        self._changed_users: dict[str, Any] = {}

    def order(self, order_id: str) -> dict[str, Any]:
        if order_id not in self._changed_orders:
            self._changed_orders[order_id] = copy.deepcopy(self.orders[order_id])
        found: dict[str, Any] = self._changed_orders[order_id]
        return found

    def user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self._changed_users:
            self._changed_users[user_id] = copy.deepcopy(self.users[user_id])
        found: dict[str, Any] = self._changed_users[user_id]
        return found

    def variant(self, product_id: str, item_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.products[product_id]["variants"][item_id]
        return found


def expected_state(data: Mapping[str, Any], task: Task) -> ExpectedState:
    """What the shop should hold once every action of ``task`` has been applied, in order."""
    shop = Shop(data)
    broken = []
    for action in task.actions:
        rule = rule_broken(shop, task.user_id, action)
        broken.append(rule)
        if rule is None:
            apply(shop, action)
    touched = sorted({action.order_id for action in task.actions})
    orders = {order_id: order_view(shop.order(order_id)) for order_id in touched}
    users = sorted({shop.order(order_id)["user_id"] for order_id in touched})
    return ExpectedState(
        orders, {u: balances(shop.user(u)["payment_methods"]) for u in users}, tuple(broken)
    )


def rule_broken(shop: Shop, user_id: str, action: Action) -> str | None:
    """The first rule of the shop that ``action``, asked for by ``user_id``, breaks; or None."""
    kwargs = action.kwargs
    order = shop.order(action.order_id)
    status = order["status"]
    methods = shop.user(order["user_id"])["payment_methods"]
    method = methods.get(kwargs.get("payment_method_id"))
    if order["user_id"] != user_id:
        return "own-orders-only"
    if action.name == "cancel_pending_order":
        if status == "pending (item modified)":
            return "item-modification-is-final"
        if status != "pending":
            return "cancel-only-pending"
        if kwargs["reason"] not in ("no longer needed", "ordered by mistake"):
            return "cancel-reason-listed"
        return None
    if action.name.startswith("modify_pending_order"):
        if status == "pending (item modified)":
            return "item-modification-is-final"
        if status != "pending":
            return "modify-only-pending"
    elif action.name == "return_delivered_order_items" and status != "delivered":
        return "return-only-delivered"
    elif action.name == "exchange_delivered_order_items" and status != "delivered":
        return "exchange-only-delivered"
    if "item_ids" in kwargs:
        held = [item["item_id"] for item in order["items"]]
        for item_id in kwargs["item_ids"]:
            if item_id not in held:
                return "items-from-the-order"
            held.remove(item_id)
    if "new_item_ids" in kwargs:
        if len(kwargs["new_item_ids"]) != len(kwargs["item_ids"]):
            return "one-new-item-per-item"
        products = {item["item_id"]: item["product_id"] for item in order["items"]}
        for old, new in zip(kwargs["item_ids"], kwargs["new_item_ids"], strict=True):
            variant = shop.products[products[old]]["variants"].get(new)
            if variant is None:
                return "same-product-only"
            if not variant["available"]:
                return "new-item-available"
    if "payment_method_id" in kwargs and method is None:
        return "pay-with-own-method"
    if action.name == "modify_pending_order_payment":
        history = order["payment_history"]
        if len(history) != 1 or not _is_payment(history[0]):
            return "payment-change-single-payment"
        if history[0]["payment_method_id"] == kwargs["payment_method_id"]:
            return "payment-change-to-another-method"
        if _short(method, history[0]["amount"]):
            return "gift-card-covers-amount"
    if action.name in (
        "modify_pending_order_items",
        "exchange_delivered_order_items",
    ) and _short(method, _price_difference(shop, order, kwargs)):
        return "gift-card-covers-amount"
    if action.name == "return_delivered_order_items":
        used = {t["payment_method_id"] for t in order["payment_history"]}
        if kwargs["payment_method_id"] not in used and (method or {}).get("source") != "gift_card":
            return "refund-to-original-or-gift-card"
    return None


def _short(method: Mapping[str, Any] | None, amount: float) -> bool:
    return (
        method is not None
        and method.get("source") == "gift_card"
        and float(method.get("balance", 0.0)) < amount
    )


def _price_difference(shop: Shop, order: Mapping[str, Any], kwargs: Mapping[str, Any]) -> float:
    prices = {item["item_id"]: (item["product_id"], item["price"]) for item in order["items"]}
    total = 0.0
    for old, new in zip(kwargs["item_ids"], kwargs["new_item_ids"], strict=True):
        product, price = prices[old]
        total += shop.variant(product, new)["price"] - price
    return round(total, 2)


def apply(shop: Shop, action: Action) -> None:
    """Apply one action as the shop's rules describe it (the caller checked it is allowed)."""
    kwargs = action.kwargs
    order = shop.order(action.order_id)
    methods = shop.user(order["user_id"])["payment_methods"]
    match action.name:
        case "cancel_pending_order":
            for payment in [t for t in order["payment_history"] if _is_payment(t)]:
                order["payment_history"].append(_transaction("refund", payment))
                _credit(methods.get(payment["payment_method_id"]), payment["amount"])
            order["status"] = "cancelled"
            order["cancellation_reason"] = kwargs["reason"]
        case "modify_pending_order_address":
            order["address"] = {
                key: kwargs[key]
                for key in ("address1", "address2", "city", "country", "state", "zip")
            }
        case "modify_pending_order_payment":
            [paid] = order["payment_history"]
            new = kwargs["payment_method_id"]
            order["payment_history"].append(
                {"transaction_type": "payment", "amount": paid["amount"], "payment_method_id": new}
            )
            order["payment_history"].append(_transaction("refund", paid))
            _credit(methods.get(new), -paid["amount"])
            _credit(methods.get(paid["payment_method_id"]), paid["amount"])
        case "modify_pending_order_items":
            difference = _swap(shop, order, kwargs["item_ids"], kwargs["new_item_ids"])
            order["payment_history"].append(
                {
                    "transaction_type": "payment" if difference > 0 else "refund",
                    "amount": abs(difference),
                    "payment_method_id": kwargs["payment_method_id"],
                }
            )
            _credit(methods.get(kwargs["payment_method_id"]), -difference)
            order["status"] = "pending (item modified)"
        case "return_delivered_order_items":
            order["status"] = "return requested"
            order["return_items"] = sorted(kwargs["item_ids"])
            order["return_payment_method_id"] = kwargs["payment_method_id"]
        case "exchange_delivered_order_items":
            before = copy.deepcopy(order["items"])
            difference = _swap(shop, order, kwargs["item_ids"], kwargs["new_item_ids"])
            # an exchange is only requested: the order keeps the items it was delivered with
            order["items"] = before
            order["status"] = "exchange requested"
            order["exchange_items"] = sorted(kwargs["item_ids"])
            order["exchange_new_items"] = sorted(kwargs["new_item_ids"])
            order["exchange_payment_method_id"] = kwargs["payment_method_id"]
            order["exchange_price_difference"] = difference


def order_view(order: Mapping[str, Any]) -> dict[str, Any]:
    """An order's compared fields, normalised: amounts to cents, absent optional fields None."""
    view: dict[str, Any] = {name: copy.deepcopy(order.get(name)) for name in ORDER_FIELDS}
    view["items"] = [
        {**{key: item[key] for key in ITEM_FIELDS}, "price": round(float(item["price"]), 2)}
        for item in order["items"]
    ]
    view["payment_history"] = [
        {
            "transaction_type": t["transaction_type"],
            "amount": round(float(t["amount"]), 2),
            "payment_method_id": t["payment_method_id"],
        }
        for t in order["payment_history"]
    ]
    if view["exchange_price_difference"] is not None:
        view["exchange_price_difference"] = round(float(view["exchange_price_difference"]), 2)
    return view


def balances(methods: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    """Each payment method's balance (rounded to cents), by id; None for methods without one."""
    listed = methods.values() if isinstance(methods, Mapping) else methods
    return {
        str(method["id"]): None
        if method.get("balance") is None
        else round(float(method["balance"]), 2)
        for method in listed
    }


def _swap(shop: Shop, order: dict[str, Any], old: list[str], new: list[str]) -> float:
    difference = 0.0
    done: set[int] = set()
    for item_id, new_id in zip(old, new, strict=True):
        position = next(
            i
            for i, item in enumerate(order["items"])
            if item["item_id"] == item_id and i not in done
        )
        done.add(position)
        item = order["items"][position]
        variant = shop.variant(item["product_id"], new_id)
        difference += variant["price"] - item["price"]
        item.update(item_id=new_id, price=variant["price"], options=dict(variant["options"]))
    return round(difference, 2)


def _is_payment(transaction: Mapping[str, Any]) -> bool:
    return bool(transaction["transaction_type"] == "payment")


def _transaction(kind: str, of: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "transaction_type": kind,
        "amount": of["amount"],
        "payment_method_id": of["payment_method_id"],
    }


def _credit(method: dict[str, Any] | None, amount: float) -> None:
    if method is not None and method.get("source") == "gift_card":
        method["balance"] = round(method.get("balance", 0.0) + amount, 2)
