"""Policy-violating variants of a task, derived from its actions and the shop's data alone.

Each variant is one call the policy must refuse, with the id of the Cedar policy that must decide
it. *Before* variants are made against the task's starting state (they run before its actions);
*after* variants are made against the state its actions leave (a second change to an order whose
items were modified, a second cancellation, return or exchange). A kind that the task's data
cannot give (no delivered order to cancel, no gift card too small) is left out for that task.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from accord.suites.retail._oracle import ExpectedState
from accord.suites.retail._tasks import Action, ActionName, Task

Phase = Literal["before", "after"]
Credentials = Literal["own", "wrong", "other"]

VIOLATION_KINDS: dict[str, str] = {
    "unauthenticated": "authenticate-first",
    "other_users_order": "own-orders-only",
    "cancel_not_pending": "cancel-only-pending",
    "cancel_reason_not_allowed": "cancel-reason-listed",
    "cancel_cancelled_order": "cancel-only-pending",
    "modify_not_pending": "modify-only-pending",
    "modify_items_twice": "item-modification-is-final",
    "change_after_item_modification": "item-modification-is-final",
    "return_not_delivered": "return-only-delivered",
    "return_twice": "return-only-delivered",
    "exchange_not_delivered": "exchange-only-delivered",
    "exchange_twice": "exchange-only-delivered",
    "item_not_in_order": "items-from-the-order",
    "item_count_mismatch": "one-new-item-per-item",
    "other_product_type": "same-product-only",
    "unavailable_variant": "new-item-available",
    "payment_method_not_owned": "pay-with-own-method",
    "gift_card_balance_too_small": "gift-card-covers-amount",
    "same_payment_method": "payment-change-to-another-method",
    "refund_to_unused_method": "refund-to-original-or-gift-card",
}
"""Every violation kind the suite generates, with the id of the policy that must refuse it."""

GROUND_TRUTH = "ground_truth_not_allowed"
"""The kind of a task's own action that breaks a rule in the state it meets (the oracle says
which): it must be refused like a variant."""

ITEM_CHANGES: tuple[ActionName, ...] = (
    "modify_pending_order_items",
    "exchange_delivered_order_items",
)


@dataclass(frozen=True, slots=True)
class Variant:
    """One call the policy must refuse."""

    kind: str
    phase: Phase
    action: Action
    credentials: Credentials = "own"
    rule: str | None = None

    @property
    def policy(self) -> str:
        """The id of the policy that must decide the refusal."""
        return self.rule or VIOLATION_KINDS[self.kind]


@dataclass
class _Data:
    users: Mapping[str, Any]
    orders: Mapping[str, Any]
    products: Mapping[str, Any]
    sorted_users: list[str] = field(default_factory=list)

    def orders_of(self, user_id: str, *statuses: str) -> list[str]:
        return [
            order_id
            for order_id in self.users[user_id]["orders"]
            if order_id in self.orders and self.orders[order_id]["status"] in statuses
        ]


def variants(data: Mapping[str, Any], task: Task, after: ExpectedState) -> list[Variant]:
    """The variants of ``task``: its before variants first, then its after variants."""
    shop = _Data(data["users"], data["orders"], data["products"], sorted(data["users"]))
    if task.user_id not in shop.users or not task.actions:
        return []
    return [*_before(shop, task), *_after(task, after)]


def another_user(data: Mapping[str, Any], user_id: str) -> str:
    """A user other than ``user_id``, the same one every time."""
    ordered = sorted(data["users"])
    position = ordered.index(user_id) if user_id in ordered else -1
    return str(ordered[(position + 1) % len(ordered)])


def _before(shop: _Data, task: Task) -> Iterator[Variant]:
    first = task.actions[0]
    yield Variant("unauthenticated", "before", first, credentials="wrong")
    yield Variant("other_users_order", "before", first, credentials="other")
    user = task.user_id
    seen: set[ActionName] = set()
    for action in task.actions:
        if action.name in seen or action.order_id not in shop.orders:
            continue
        seen.add(action.name)
        yield from _of_action(shop, user, action)


def _of_action(shop: _Data, user: str, action: Action) -> Iterator[Variant]:
    order = shop.orders[action.order_id]
    match action.name:
        case "cancel_pending_order":
            for order_id in shop.orders_of(user, "delivered", "processed")[:1]:
                yield _variant("cancel_not_pending", action, order_id=order_id)
            yield _variant("cancel_reason_not_allowed", action, reason="found a better price")
        case "modify_pending_order_address" | "modify_pending_order_payment":
            for order_id in shop.orders_of(user, "delivered", "processed", "cancelled")[:1]:
                yield _variant("modify_not_pending", action, order_id=order_id)
        case "return_delivered_order_items":
            for order_id in shop.orders_of(user, "pending")[:1]:
                yield _variant("return_not_delivered", action, order_id=order_id)
            yield _variant("item_not_in_order", action, item_ids=[_foreign_item(shop, order)])
            used = {t["payment_method_id"] for t in order["payment_history"]}
            for method_id, method in sorted(shop.users[user]["payment_methods"].items()):
                if method_id not in used and method.get("source") != "gift_card":
                    yield _variant("refund_to_unused_method", action, payment_method_id=method_id)
                    break
        case "modify_pending_order_items" | "exchange_delivered_order_items":
            yield from _item_change(shop, user, action)
    if action.name in (
        "modify_pending_order_payment",
        *ITEM_CHANGES,
        "return_delivered_order_items",
    ):
        stranger = _stranger_method(shop, user)
        if stranger is not None:
            yield _variant("payment_method_not_owned", action, payment_method_id=stranger)
    if action.name == "modify_pending_order_payment":
        paid = [t for t in order["payment_history"] if t["transaction_type"] == "payment"]
        if paid:
            current = paid[0]["payment_method_id"]
            yield _variant("same_payment_method", action, payment_method_id=current)
            total = sum(t["amount"] for t in paid)
            small = _small_gift_card(shop, user, total, avoid=current)
            if small is not None:
                yield _variant("gift_card_balance_too_small", action, payment_method_id=small)


def _item_change(shop: _Data, user: str, action: Action) -> Iterator[Variant]:
    kwargs = action.kwargs
    order = shop.orders[action.order_id]
    items = {item["item_id"]: item for item in order["items"]}
    old_ids: list[str] = list(kwargs["item_ids"])
    new_ids: list[str] = list(kwargs["new_item_ids"])
    if action.name == "modify_pending_order_items":
        for order_id in shop.orders_of(user, "delivered", "processed", "cancelled")[:1]:
            yield _variant("modify_not_pending", action, order_id=order_id)
    else:
        for order_id in shop.orders_of(user, "pending")[:1]:
            yield _variant("exchange_not_delivered", action, order_id=order_id)
    yield _variant("item_not_in_order", action, item_ids=[_foreign_item(shop, order), *old_ids[1:]])
    yield _variant("item_count_mismatch", action, new_item_ids=[*new_ids, new_ids[0]])
    first = items.get(old_ids[0])
    if first is None:
        return
    product = first["product_id"]
    for other_id, other in sorted(shop.products.items()):
        if other_id == product:
            continue
        available = [v for v_id, v in sorted(other["variants"].items()) if v["available"]]
        if available:
            yield _variant(
                "other_product_type",
                action,
                new_item_ids=[available[0]["item_id"], *new_ids[1:]],
            )
            break
    for variant_id, variant in sorted(shop.products[product]["variants"].items()):
        if not variant["available"] and variant_id != old_ids[0]:
            yield _variant("unavailable_variant", action, new_item_ids=[variant_id, *new_ids[1:]])
            break
    difference = _difference(shop, order, old_ids, new_ids)
    if difference is not None and difference > 0:
        small = _small_gift_card(shop, user, difference, avoid="")
        if small is not None:
            yield _variant("gift_card_balance_too_small", action, payment_method_id=small)


def _after(task: Task, after: ExpectedState) -> Iterator[Variant]:
    changed: dict[str, Action] = {}
    for action in task.actions:
        changed[action.order_id] = action
    for order_id, last in sorted(changed.items()):
        status = after.orders[order_id]["status"]
        if status == "pending (item modified)":
            items = [a for a in task.actions if a.order_id == order_id and a.name in ITEM_CHANGES]
            if items:
                again = items[-1]
                yield _variant(
                    "modify_items_twice",
                    again,
                    phase="after",
                    item_ids=list(again.kwargs["new_item_ids"]),
                    new_item_ids=list(again.kwargs["item_ids"]),
                )
            yield Variant(
                "change_after_item_modification",
                "after",
                Action(
                    "cancel_pending_order",
                    {"order_id": order_id, "reason": "no longer needed"},
                ),
            )
        elif status == "cancelled":
            yield Variant(
                "cancel_cancelled_order",
                "after",
                Action(
                    "cancel_pending_order",
                    {"order_id": order_id, "reason": "ordered by mistake"},
                ),
            )
        elif status == "return requested" and last.name == "return_delivered_order_items":
            yield Variant("return_twice", "after", last)
        elif status == "exchange requested" and last.name == "exchange_delivered_order_items":
            yield Variant("exchange_twice", "after", last)


def _variant(kind: str, action: Action, *, phase: Phase = "before", **changes: Any) -> Variant:
    return Variant(kind, phase, Action(action.name, {**action.kwargs, **changes}))


def _foreign_item(shop: _Data, order: Mapping[str, Any]) -> str:
    """An item id of a product the order holds none of."""
    held = {item["product_id"] for item in order["items"]}
    for product_id, product in sorted(shop.products.items()):
        if product_id not in held:
            return str(min(product["variants"]))
    return "0000000000"


def _stranger_method(shop: _Data, user: str) -> str | None:
    """A payment method of another user that this user does not have."""
    own = set(shop.users[user]["payment_methods"])
    for other in shop.sorted_users:
        if other != user:
            for method_id in sorted(shop.users[other]["payment_methods"]):
                if method_id not in own:
                    return str(method_id)
    return None


def _small_gift_card(shop: _Data, user: str, amount: float, *, avoid: str) -> str | None:
    """A gift card of the user whose balance is below ``amount``."""
    for method_id, method in sorted(shop.users[user]["payment_methods"].items()):
        if (
            method_id != avoid
            and method.get("source") == "gift_card"
            and float(method.get("balance", 0.0)) < amount
        ):
            return str(method_id)
    return None


def _difference(
    shop: _Data, order: Mapping[str, Any], old_ids: list[str], new_ids: list[str]
) -> float | None:
    items = {item["item_id"]: item for item in order["items"]}
    total = 0.0
    for old, new in zip(old_ids, new_ids, strict=False):
        item = items.get(old)
        if item is None:
            return None
        variant = shop.products[item["product_id"]]["variants"].get(new)
        if variant is None:
            return None
        total += variant["price"] - item["price"]
    return round(total, 2)
