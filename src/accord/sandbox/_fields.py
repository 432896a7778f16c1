"""Field types the sandbox services share, so e-mail, phone and money mean the same everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field

from accord.sandbox._problems import ProblemError

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
CUSTOMER_ID_PATTERN = r"^cus_[0-9]{5}$"


def _two_decimals(amount: float) -> float:
    if abs(round(amount * 100) - amount * 100) > 1e-6:
        raise ValueError("an amount has at most two decimals")
    return round(amount, 2)


Email = Annotated[
    str, Field(pattern=EMAIL_PATTERN, max_length=254, description="an e-mail address")
]
Phone = Annotated[
    str,
    Field(pattern=E164_PATTERN, description="a phone number in E.164 form, e.g. +14155550123"),
]
Amount = Annotated[
    float,
    Field(gt=0, le=1_000_000, description="an amount with at most two decimals"),
    AfterValidator(_two_decimals),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code")]
CustomerId = Annotated[
    str, Field(pattern=CUSTOMER_ID_PATTERN, description="CRM customer id, e.g. cus_00001")
]
CustomerIdPath = Annotated[
    str, Path(pattern=CUSTOMER_ID_PATTERN, description="CRM customer id, e.g. cus_00001")
]
CustomerIdQuery = Annotated[
    str, Query(pattern=CUSTOMER_ID_PATTERN, description="CRM customer id, e.g. cus_00001")
]


def cents(amount: float) -> int:
    """``amount`` in hundredths, as money is stored."""
    return round(amount * 100)


def units(stored: int) -> float:
    """Stored hundredths back as an amount."""
    return round(stored / 100, 2)


def not_found(kind: str, identifier: str) -> ProblemError:
    """The 404 for an unknown ``kind`` (``customer``, ``order``, ...)."""
    return ProblemError(404, f"{kind}_not_found", f"there is no {kind} {identifier!r}")
