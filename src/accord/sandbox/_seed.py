"""The sandbox enterprise's people, shared by every service so their records line up.

The retail records are the tau-bench subset in ``data/tau_retail.json.gz`` (see NOTICE). The
``n``-th retail user by sorted user id is CRM customer ``cus_0000n``; the CRM, billing, helpdesk
and KYC services seed from this one list, and the orders service from the same file, so a
customer has a billing account, orders, tickets and a fraud score. Everything the retail data does
not hold (phone number, tier, language, marketing choices) is derived from the customer id, never
drawn at random.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, TypedDict, cast

from accord.errors import ConfigurationError

CURRENCY = "USD"
SEED_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
"""Seeded records are dated within the year from this moment."""

Tier = Literal["standard", "silver", "gold"]
Region = Literal["us-northeast", "us-midwest", "us-south", "us-west"]


class TauName(TypedDict):
    first_name: str
    last_name: str


class TauAddress(TypedDict):
    address1: str
    address2: str
    city: str
    country: str
    state: str
    zip: str


class TauPaymentMethod(TypedDict, total=False):
    id: str
    source: str
    brand: str
    last_four: str
    balance: float


class TauUser(TypedDict):
    name: TauName
    address: TauAddress
    email: str
    payment_methods: dict[str, TauPaymentMethod]
    orders: list[str]


class TauItem(TypedDict):
    name: str
    product_id: str
    item_id: str
    price: float
    options: dict[str, str]


class TauFulfillment(TypedDict):
    tracking_id: list[str]
    item_ids: list[str]


class TauTransaction(TypedDict):
    transaction_type: str
    amount: float
    payment_method_id: str


class TauOrder(TypedDict):
    order_id: str
    user_id: str
    address: TauAddress
    items: list[TauItem]
    fulfillments: list[TauFulfillment]
    status: str
    payment_history: list[TauTransaction]


class TauVariant(TypedDict):
    item_id: str
    options: dict[str, str]
    available: bool
    price: float


class TauProduct(TypedDict):
    name: str
    product_id: str
    variants: dict[str, TauVariant]


class RetailData(TypedDict):
    users: dict[str, TauUser]
    orders: dict[str, TauOrder]
    products: dict[str, TauProduct]


@cache
def retail_data() -> RetailData:
    """The packaged tau-bench subset (read once per process; callers must not modify it)."""
    raw = resources.files("accord.sandbox").joinpath("data", "tau_retail.json.gz").read_bytes()
    data: RetailData = json.loads(gzip.decompress(raw))
    return data


RETAIL_DATA_FILES = ("users", "orders", "products")
"""The files of a tau-bench retail data directory, each ``<name>.json``."""


def read_retail_data(directory: Path) -> RetailData:
    """The tau-bench retail data in ``directory`` (``users.json``, ``orders.json``,
    ``products.json``), read as they are.

    Raises:
        ConfigurationError: a file is missing or is not a JSON object.
    """
    found: dict[str, object] = {}
    for name in RETAIL_DATA_FILES:
        path = Path(directory) / f"{name}.json"
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"the retail data directory {directory} has no {name}.json",
                hint="give the tau-bench retail data directory (users.json, orders.json, "
                "products.json)",
            ) from exc
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from exc
        if not isinstance(value, dict):
            raise ConfigurationError(f"{path} must hold a JSON object keyed by id")
        found[name] = value
    return cast(RetailData, found)


@dataclass(frozen=True, slots=True)
class Person:
    """One customer of the sandbox enterprise, as every service knows them."""

    index: int
    customer_id: str
    retail_user_id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    region: Region
    tier: Tier
    language: str
    marketing_email: bool
    marketing_sms: bool
    marketing_phone: bool
    order_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def account_id(self) -> str:
        """The billing account of this customer."""
        return f"acc_{self.index:05d}"


def customer_id_of(index: int) -> str:
    """The CRM id of the ``index``-th (from 1) retail user."""
    return f"cus_{index:05d}"


@cache
def people() -> tuple[Person, ...]:
    """Every customer, in customer-id order."""
    data = retail_data()
    return tuple(
        _person(index, user_id, data["users"][user_id], data["orders"])
        for index, user_id in enumerate(sorted(data["users"]), start=1)
    )


@cache
def customer_ids_by_user() -> dict[str, str]:
    """Retail user id to CRM customer id."""
    return {person.retail_user_id: person.customer_id for person in people()}


def stable_number(*parts: str) -> int:
    """A number derived from ``parts`` alone: the same on every machine and every run."""
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "big")


def seeded_moment(*parts: str) -> dt.datetime:
    """A moment within the seeded year, derived from ``parts``."""
    return SEED_START + dt.timedelta(seconds=stable_number(*parts) % (365 * 24 * 3600))


def spent(order: TauOrder) -> float:
    """What the customer paid for ``order``, net of refunds."""
    total = 0.0
    for transaction in order["payment_history"]:
        sign = -1 if transaction["transaction_type"] == "refund" else 1
        total += sign * transaction["amount"]
    return round(total, 2)


def _person(index: int, user_id: str, user: TauUser, orders: dict[str, TauOrder]) -> Person:
    customer_id = customer_id_of(index)
    number = stable_number("person", customer_id)
    lifetime = sum(spent(orders[order_id]) for order_id in user["orders"])
    tier: Tier = "gold" if lifetime >= 3000 else "silver" if lifetime >= 1000 else "standard"
    return Person(
        index=index,
        customer_id=customer_id,
        retail_user_id=user_id,
        first_name=user["name"]["first_name"],
        last_name=user["name"]["last_name"],
        email=user["email"],
        phone=f"+1{_AREA_CODES[number % len(_AREA_CODES)]}555{index:04d}",
        region=_REGIONS.get(user["address"]["state"], "us-south"),
        tier=tier,
        language="es" if number % 7 == 0 else "en",
        marketing_email=number % 3 != 0,
        marketing_sms=(number >> 8) % 4 == 0,
        marketing_phone=(number >> 16) % 10 == 0,
        order_ids=tuple(user["orders"]),
    )


_AREA_CODES = ("212", "303", "312", "415", "512", "602", "614", "704", "305", "206")

_STATES: dict[Region, tuple[str, ...]] = {
    "us-northeast": ("CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA"),
    "us-midwest": ("IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"),
    "us-south": (
        *("DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV", "AL", "KY", "MS", "TN"),
        *("AR", "LA", "OK", "TX"),
    ),
    "us-west": (*("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"),),
}
_REGIONS: dict[str, Region] = {
    state: region for region, states in _STATES.items() for state in states
}
