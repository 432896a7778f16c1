"""A realistic mix of synthetic customers and employees for the sample enterprise.

People are real records of the sandbox (CRM customers with their orders, directory employees);
what they ask for, how they behave and the details they type (new e-mail addresses, document
numbers, messages) are drawn from a seeded generator, with Faker for the personal details, so
one seed gives one mix. Cases come in two waves: the second repeats some refunds of the first
(approved ones, to the original payment or a gift card), which the policy must refuse as
duplicates. Customers who want to leave weigh the retention offer they get with the response
model of :mod:`accord.simulation._response`; :func:`retention_wave` gives the demo's experiment
its own crowd of them.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from faker import Faker

from accord.simulation._driver import Case, OtpBehaviour, Persona
from accord.simulation._enterprise import Enterprise

MARKETING = "dpv:DirectMarketing"
AUTOMATIC_REFUND_LIMIT = 100.0
SUPERVISOR_REFUND_LIMIT = 1000.0
"""The refund policy's thresholds, which the mix's labels follow."""
REPEATABLE_METHODS = ("original_payment", "gift_card")

SUPPORT_MESSAGES: dict[str, Sequence[str]] = {
    "order_status": (
        "where is my order {order}? it has been a week",
        "has order {order} shipped yet",
        "can you tell me the status of {order}",
    ),
    "cancel_order": (
        "please cancel order {order}, I don't need it any more",
        "I want to cancel my order {order}",
        "cancel {order} before it ships please",
    ),
    "damaged_item": (
        "the item in order {order} arrived broken",
        "my parcel {order} came damaged, the box was crushed",
    ),
    "refund_request": (
        "I would like my money back for order {order}",
        "refund order {order} please, it is not what I expected",
    ),
    "talk_to_human": ("I want to speak to a real person about {order}",),
    "unclear": (
        "hmm so about that thing from before, you know",
        "it's the blue one, the other one was fine I guess",
    ),
}

CUSTOMER_NUMBERS = range(1, 201)
"""The sandbox CRM's customers: ``cus_00001`` to ``cus_00200``."""

OFFER_REASONS: Sequence[str] = (
    "honestly it has become too expensive for what I get",
    "I found the same thing cheaper at another shop",
    "your app kept crashing last month and support never called back",
    "the price went up twice this year",
    "another provider gave me a better deal for a year",
)
"""Why customers leave whom the retention model answers with an offer within the 30% ceiling
(10, 20 or 30 percent)."""
RETENTION_REASONS: Sequence[str] = (
    *OFFER_REASONS[:3],
    "a competitor offers half the price, match it or I go",
    "I am moving abroad, I won't need it",
    *OFFER_REASONS[3:],
)


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    retail_user_id: str
    email: str
    orders: tuple[dict[str, Any], ...]


def _customers(enterprise: Enterprise, ids: Sequence[str]) -> list[Customer]:
    found = []
    with httpx.Client(timeout=10.0) as http:
        for customer_id in ids:
            record = http.get(f"{enterprise.url('crm')}/customers/{customer_id}").json()
            user = http.get(f"{enterprise.url('orders')}/users/{record['retail_user_id']}").json()
            orders = tuple(
                http.get(f"{enterprise.url('orders')}/orders/{order.lstrip('#')}").json()
                for order in user.get("orders", [])[:4]
            )
            found.append(Customer(customer_id, record["retail_user_id"], record["email"], orders))
    return found


def _employees(enterprise: Enterprise) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with httpx.Client(timeout=10.0) as http:
        base = enterprise.url("directory")
        entitlements = http.get(f"{base}/entitlements").json()["entitlements"]
        employees = []
        for number in range(1, 41):
            response = http.get(f"{base}/employees/emp_{number:04d}")
            if response.status_code == 200:
                employees.append(response.json())
    return employees, entitlements


def demo_mix(
    enterprise: Enterprise, *, people: int = 60, seed: int = 7
) -> tuple[list[Case], list[Case]]:
    """``people`` cases across the six journeys, and a second wave of repeated refunds."""
    rng = random.Random(seed)
    fake = Faker()
    fake.seed_instance(seed)
    customer_ids = [
        f"cus_{n:05d}" for n in rng.sample(CUSTOMER_NUMBERS, k=min(people, len(CUSTOMER_NUMBERS)))
    ]
    customers = _customers(enterprise, customer_ids)
    employees, entitlements = _employees(enterprise)
    weights = {
        "refund_request": 30,
        "support_resolution": 20,
        "customer_onboarding": 15,
        "retention_offer": 15,
        "access_provisioning": 10,
        "account_recovery": 10,
    }
    journeys = rng.choices(list(weights), weights=list(weights.values()), k=people)
    first: list[Case] = []
    repeats: list[Case] = []
    for index, journey in enumerate(journeys):
        customer = customers[index % len(customers)]
        name = f"{journey}-{index:03d}"
        if journey == "refund_request":
            case = _refund(name, customer, rng)
            if case is None:
                continue
            first.append(case)
            repeat = rng.random() < 0.12
            if repeat and case.staff == "approve" and case.input["method"] in REPEATABLE_METHODS:
                repeats.append(
                    Case(
                        f"{name}-again",
                        case.journey,
                        case.input,
                        case.subject,
                        kind="refund:duplicate",
                    )
                )
        elif journey == "support_resolution":
            first.append(_support(name, customer, rng))
        elif journey == "customer_onboarding":
            first.append(_onboarding(name, customer, rng, fake))
        elif journey == "retention_offer":
            first.append(_retention(name, customer, rng))
        elif journey == "access_provisioning":
            first.append(_access(name, employees, entitlements, rng, fake))
        else:
            first.append(_recovery(name, customer, rng, fake))
    return first, repeats


def _document(rng: random.Random, fake: Faker, *, readable: bool) -> str:
    digits = fake.bothify("??#######", letters="ABCDEFGHJKLMNPRSTUVWXYZ").upper()
    last = rng.choice("123456789") if readable else "0"
    return digits[:-1] + last


def _refund(name: str, customer: Customer, rng: random.Random) -> Case | None:
    delivered = [o for o in customer.orders if o.get("status") == "delivered" and o.get("items")]
    if not delivered:
        return None
    order = rng.choice(delivered)
    items = sorted(order["items"], key=lambda item: item["price"])
    roll = rng.random()
    if roll < 0.5:
        amount = min(items[0]["price"], round(rng.uniform(15, 95), 2))
    elif roll < 0.85:
        amount = min(sum(i["price"] for i in items), round(rng.uniform(120, 900), 2))
    else:
        amount = round(sum(i["price"] for i in items), 2)
    kind = _refund_kind(amount)
    method = "gift_card" if rng.random() < 0.2 else "original_payment"
    if rng.random() < 0.04:
        method, kind = "bank_transfer", "refund:wrong_method"
    return Case(
        name,
        "refund_request",
        {
            "customer_id": customer.customer_id,
            "order_id": order["order_id"],
            "amount": float(amount),
            "method": method,
            "reason": rng.choice(["damaged", "not as described", "arrived late"]),
        },
        customer.customer_id,
        staff="reject" if rng.random() < 0.15 else "approve",
        kind=kind,
    )


def _refund_kind(amount: float) -> str:
    """Who the policy asks to approve a refund of ``amount``."""
    if amount <= AUTOMATIC_REFUND_LIMIT:
        return "refund:automatic"
    if amount <= SUPERVISOR_REFUND_LIMIT:
        return "refund:supervisor"
    return "refund:senior"


def _support(name: str, customer: Customer, rng: random.Random) -> Case:
    intent = rng.choices(list(SUPPORT_MESSAGES), weights=[30, 20, 15, 15, 10, 10])[0]
    order = rng.choice(customer.orders) if customer.orders else {"order_id": ""}
    message = rng.choice(SUPPORT_MESSAGES[intent]).format(order=order["order_id"])
    return Case(
        name,
        "support_resolution",
        {"customer_id": customer.customer_id, "message": message, "order_id": order["order_id"]},
        customer.customer_id,
        persona=Persona(confirm="confirm" if rng.random() < 0.85 else "refuse"),
        kind=f"support:{intent}",
    )


def _onboarding(name: str, customer: Customer, rng: random.Random, fake: Faker) -> Case:
    roll = rng.random()
    otp: OtpBehaviour = "right" if roll < 0.7 else "wrong_once" if roll < 0.85 else "wrong"
    readable = rng.random() < 0.8
    return Case(
        name,
        "customer_onboarding",
        {
            "customer_id": customer.customer_id,
            "plan": rng.choice(["basic", "basic", "plus", "premium"]),
        },
        customer.customer_id,
        persona=Persona(otp=otp, document_number=_document(rng, fake, readable=readable)),
        staff="approve" if rng.random() < 0.5 else "reject",
        kind=f"onboarding:{'code' if otp != 'wrong' else 'document'}",
    )


def _retention(name: str, customer: Customer, rng: random.Random) -> Case:
    consents = (MARKETING,) if rng.random() < 0.7 else ()
    return Case(
        name,
        "retention_offer",
        {"customer_id": customer.customer_id, "reason": rng.choice(RETENTION_REASONS)},
        customer.customer_id,
        persona=Persona(consents=consents, confirm="weigh", draw=rng.random()),
        kind="retention:" + ("consented" if consents else "no consent"),
    )


def retention_wave(
    enterprise: Enterprise, *, seed: int = 7, leave_out: Collection[str] = ()
) -> list[Case]:
    """Every sandbox customer who opted in to marketing e-mail (and is not in ``leave_out``)
    says they want to leave, for a reason the retention model answers with an offer.

    Each consents to direct marketing, so the offer reaches them, and weighs it with their own
    seeded draw (``confirm: weigh``): the crowd of the demo's experiment ``retention-offer``.
    Who may be e-mailed is read from the CRM before anyone is assigned an arm. A customer's
    reason and draw come from the seed and their id alone, whoever else is left out.
    """
    cases = []
    with httpx.Client(timeout=10.0) as http:
        for number in CUSTOMER_NUMBERS:
            customer_id = f"cus_{number:05d}"
            if customer_id in leave_out:
                continue
            response = http.get(f"{enterprise.url('crm')}/customers/{customer_id}/preferences")
            response.raise_for_status()
            if not response.json()["marketing"]["email"]:
                continue
            rng = random.Random(f"retention-wave/{seed}/{customer_id}")
            cases.append(
                Case(
                    f"retention-wave-{number:03d}",
                    "retention_offer",
                    {"customer_id": customer_id, "reason": rng.choice(OFFER_REASONS)},
                    customer_id,
                    persona=Persona(consents=(MARKETING,), confirm="weigh", draw=rng.random()),
                    kind="retention:experiment",
                )
            )
    return cases


def _access(
    name: str,
    employees: Sequence[dict[str, Any]],
    entitlements: Sequence[dict[str, Any]],
    rng: random.Random,
    fake: Faker,
) -> Case:
    staff = [e for e in employees if e.get("manager_id")]
    employee = rng.choice(staff)
    entitlement = rng.choice(entitlements)
    limit = int(entitlement["max_duration_hours"])
    too_long = rng.random() < 0.1
    hours = limit + 24 if too_long else rng.randint(1, max(1, min(limit, 72)))
    return Case(
        name,
        "access_provisioning",
        {
            "employee_id": employee["employee_id"],
            "entitlement_id": entitlement["entitlement_id"],
            "duration_hours": hours,
            "justification": fake.sentence(nb_words=8),
            "requested_by": employee["employee_id"],
        },
        employee["employee_id"],
        staff="approve" if rng.random() < 0.85 else "reject",
        kind="access:" + ("too long" if too_long else entitlement["level"]),
    )


def _recovery(name: str, customer: Customer, rng: random.Random, fake: Faker) -> Case:
    otp: OtpBehaviour = "right" if rng.random() < 0.7 else "wrong"
    return Case(
        name,
        "account_recovery",
        {"customer_id": customer.customer_id, "new_email": fake.unique.email()},
        customer.customer_id,
        persona=Persona(otp=otp, document_number=_document(rng, fake, readable=rng.random() < 0.8)),
        kind=f"recovery:{'code' if otp == 'right' else 'document'}",
    )
