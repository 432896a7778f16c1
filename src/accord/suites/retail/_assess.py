"""``retail.assess_request``: the facts the retail policy decides a change to an order on.

Some of the shop's rules are arithmetic over lists (does each new item belong to its item's
product, does a gift card cover the price difference) that Cedar cannot express. The journey
looks the order, its owner and its products up through the gateway and hands them to this
capability, which works the facts out and changes nothing; the journey then puts them in the
context of the change, where the Cedar policies decide.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from accord.connectors import CallContext, CapabilityRegistry

ASSESS = "retail.assess_request"


class Request(BaseModel):
    """What the customer asks for, and what the journey looked up."""

    action: str
    authenticated_user: str = Field(description="the user id the customer proved, or empty")
    order: dict[str, Any]
    owner: dict[str, Any]
    products: list[dict[str, Any]] = Field(default_factory=list)
    item_ids: list[str] = Field(default_factory=list)
    new_item_ids: list[str] = Field(default_factory=list)
    payment_method_id: str = ""


class Assessment(BaseModel):
    """The facts of the request, as the policy context names them."""

    authenticated: bool
    own_order: bool
    order_status: str
    items_in_order: bool
    one_new_item_per_item: bool
    same_product: bool
    new_items_available: bool
    payment_method_owned: bool
    payment_source: str
    payment_balance: float | None
    order_total: float
    price_difference: float
    same_payment_method: bool
    single_payment: bool
    refund_method_used: bool


def assess(request: Request, ctx: CallContext) -> Assessment:
    """Work out the facts the retail policy decides a change to an order on."""
    order = request.order
    items: list[dict[str, Any]] = list(order.get("items") or [])
    history: list[dict[str, Any]] = list(order.get("payment_history") or [])
    methods = {str(m.get("id")): m for m in request.owner.get("payment_methods") or []}
    method = methods.get(request.payment_method_id)
    variants = {
        str(v.get("item_id")): (str(p.get("product_id")), v)
        for p in request.products
        for v in p.get("variants") or []
    }
    product_of = {str(i.get("item_id")): str(i.get("product_id")) for i in items}
    price_of = {str(i.get("item_id")): float(i.get("price") or 0.0) for i in items}
    pairs = list(zip(request.item_ids, request.new_item_ids, strict=False))
    in_order = bool(request.item_ids) and not (
        Counter(request.item_ids) - Counter(str(i.get("item_id")) for i in items)
    )
    paired = bool(request.item_ids) and len(request.item_ids) == len(request.new_item_ids)
    same_product = paired and all(
        old in product_of and variants.get(new, ("", {}))[0] == product_of[old]
        for old, new in pairs
    )
    difference = 0.0
    if in_order and same_product:
        new_prices = sum(float(variants[new][1].get("price") or 0.0) for _, new in pairs)
        difference = round(new_prices - sum(price_of[old] for old, _ in pairs), 2)
    paid = [t for t in history if t.get("transaction_type") == "payment"]
    refunded = [t for t in history if t.get("transaction_type") == "refund"]
    total = sum(float(t.get("amount") or 0.0) for t in paid) - sum(
        float(t.get("amount") or 0.0) for t in refunded
    )
    source = str(method.get("source") or "") if method is not None else ""
    balance = method.get("balance") if method is not None else None
    return Assessment(
        authenticated=bool(request.authenticated_user),
        own_order=bool(request.authenticated_user)
        and order.get("user_id") == request.authenticated_user,
        order_status=str(order.get("status") or ""),
        items_in_order=in_order,
        one_new_item_per_item=paired,
        same_product=same_product,
        new_items_available=paired
        and all(bool(variants.get(new, ("", {}))[1].get("available")) for _, new in pairs),
        payment_method_owned=method is not None,
        payment_source=source,
        payment_balance=(float(balance or 0.0) if source == "gift_card" else None),
        order_total=round(total, 2),
        price_difference=difference,
        same_payment_method=request.payment_method_id
        in {str(t.get("payment_method_id")) for t in paid},
        single_payment=len(history) == 1 and len(paid) == 1,
        refund_method_used=request.payment_method_id
        in {str(t.get("payment_method_id")) for t in history},
    )


def register(registry: CapabilityRegistry) -> None:
    """Add ``retail.assess_request`` to ``registry``."""
    registry.capability(ASSESS)(assess)
