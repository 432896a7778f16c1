from __future__ import annotations

import hashlib
import threading
from typing import Literal

from pydantic import BaseModel, Field

from accord.connectors import CallContext, CapabilityRegistry
from accord.errors import CapabilityFailed


class OrderQuery(BaseModel):
    order_id: str = Field(min_length=1)


class LineItem(BaseModel):
    sku: str
    quantity: int
    unit_price: float


class Order(BaseModel):
    order_id: str
    customer_id: str
    total: float
    currency: str
    status: Literal["delivered", "shipped", "cancelled"]
    items: list[LineItem]


class RefundRequest(BaseModel):
    order_id: str
    amount: float = Field(gt=0)
    method: Literal["original_payment", "gift_card"] = "original_payment"


class Refund(BaseModel):
    refund_id: str
    order_id: str
    amount: float
    method: str


class RestockRequest(BaseModel):
    sku: str
    quantity: int = Field(ge=1)


class Restock(BaseModel):
    sku: str
    on_hand: int


class Notification(BaseModel):
    to: str
    template: str
    detail: str = ""


class Delivery(BaseModel):
    message_id: str
    channel: Literal["email", "sms"]


class TicketUpdate(BaseModel):
    order_id: str
    note: str


class Ticket(BaseModel):
    ticket_id: str
    status: Literal["open", "resolved"]


class RetailSystems:
    """Orders, payments, inventory, notifications and a helpdesk, with idempotent writes."""

    def __init__(self, *, flaky_first_attempts: bool = True) -> None:
        self._lock = threading.Lock()
        self._refunds: dict[str, Refund] = {}
        self._stock: dict[str, int] = {}
        self._messages: dict[str, Delivery] = {}
        self._flaky = flaky_first_attempts
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def lookup_order(self, request: OrderQuery, ctx: CallContext) -> Order:
        """Look an order up in the order management system."""
        self._count("orders.lookup")
        seed = int(hashlib.sha256(request.order_id.encode()).hexdigest(), 16)
        digits = "".join(ch for ch in request.order_id if ch.isdigit())
        total = float(digits[-4:]) if digits else float(seed % 900 + 20)
        items = [
            LineItem(
                sku=f"SKU-{(seed >> (8 * i)) % 1000:03d}",
                quantity=1 + i,
                unit_price=round(total / 3 / (1 + i), 2),
            )
            for i in range(3)
        ]
        return Order(
            order_id=request.order_id,
            customer_id=f"cus_{seed % 100000:05d}",
            total=total,
            currency="EUR",
            status="delivered",
            items=items,
        )

    def refund(self, request: RefundRequest, ctx: CallContext) -> Refund:
        """Refund money to the original payment method or as a gift card."""
        self._count("payments.refund")
        if self._flaky and ctx.attempt == 1 and request.amount > 500:
            raise CapabilityFailed(
                "payment provider timed out (simulated on first attempt)",
                error_type="ProviderTimeout",
            )
        with self._lock:
            existing = self._refunds.get(ctx.idempotency_key)
            if existing is None:
                existing = Refund(
                    refund_id="re_" + hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:12],
                    order_id=request.order_id,
                    amount=request.amount,
                    method=request.method,
                )
                self._refunds[ctx.idempotency_key] = existing
        return existing

    def restock(self, request: RestockRequest, ctx: CallContext) -> Restock:
        """Return items to inventory."""
        self._count("inventory.restock")
        with self._lock:
            key = ctx.idempotency_key
            if key not in self._messages:
                self._stock[request.sku] = self._stock.get(request.sku, 0) + request.quantity
                self._messages[key] = Delivery(message_id=key, channel="email")
            return Restock(sku=request.sku, on_hand=self._stock[request.sku])

    def notify(self, request: Notification, ctx: CallContext) -> Delivery:
        """Send the customer a message."""
        self._count("notify.send")
        with self._lock:
            delivery = self._messages.get(ctx.idempotency_key)
            if delivery is None:
                digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:12]
                delivery = Delivery(message_id=f"msg_{digest}", channel="email")
                self._messages[ctx.idempotency_key] = delivery
        return delivery

    def update_ticket(self, request: TicketUpdate, ctx: CallContext) -> Ticket:
        """Note the outcome on the helpdesk ticket and resolve it."""
        self._count("helpdesk.resolve")
        return Ticket(ticket_id=f"tk_{request.order_id}", status="resolved")


def register(registry: CapabilityRegistry, systems: RetailSystems | None = None) -> RetailSystems:
    """Register the demo enterprise's capabilities; returns the systems behind them."""
    systems = systems or RetailSystems()
    registry.capability("orders.lookup", reads=("pd:Purchase",), fields={"items": "pd:Purchase"})(
        systems.lookup_order
    )
    registry.capability(
        "payments.refund",
        side_effect="irreversible",
        idempotent=True,
        compensation=None,
        writes=("pd:PaymentCard",),
    )(systems.refund)
    registry.capability("inventory.restock", side_effect="write")(systems.restock)
    registry.capability("notify.send", side_effect="write", writes=("pd:EmailAddress",))(
        systems.notify
    )
    registry.capability("helpdesk.resolve", side_effect="write")(systems.update_ticket)
    return systems
