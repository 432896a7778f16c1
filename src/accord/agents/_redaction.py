"""Keeping personal data out of prompts: withhold fields, redact what free text gives away.

Before an agent sees its input (and before a model reads a tool's answer), every value whose
data category the purpose may not use is withheld, and personal details found in free text
(e-mail addresses, phone numbers, card numbers, IBANs) are replaced by a typed placeholder
unless the purpose may use their category. What was withheld or redacted is reported, never
its value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("email", "pd:EmailAddress", re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")),
    (
        "iban",
        "pd:BankAccount",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
    ),
    ("card", "pd:PaymentCard", re.compile(r"\b(?:\d[ -]?){13,19}\b")),
    ("phone", "pd:TelephoneNumber", re.compile(r"(?<![\w])\+?\d[\d ().-]{7,}\d(?![\w])")),
)
"""(kind, data category, pattern); the order matters: an IBAN is not also a phone number."""


@dataclass(frozen=True, slots=True)
class Redacted:
    """A value as a model may see it, and what was taken out."""

    value: Any
    withheld: tuple[str, ...] = ()
    redacted: tuple[str, ...] = ()


def redact_text(text: str, allowed: Collection[str] | None) -> tuple[str, list[str]]:
    """``text`` with personal details the purpose may not use replaced by ``[kind]``."""
    found: list[str] = []
    for kind, category, pattern in PATTERNS:
        if allowed is not None and category in allowed:
            continue

        def replace(match: re.Match[str], kind: str = kind) -> str:
            found.append(kind)
            return f"[{kind}]"

        text = pattern.sub(replace, text)
    return text, found


def redact_value(value: Any, allowed: Collection[str] | None) -> tuple[Any, list[str]]:
    """Redact every string inside ``value`` (maps and lists are walked)."""
    if isinstance(value, str):
        return redact_text(value, allowed)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        found: list[str] = []
        for key, item in value.items():
            out[key], more = redact_value(item, allowed)
            found.extend(more)
        return out, found
    if isinstance(value, list | tuple):
        items = []
        found = []
        for item in value:
            redacted, more = redact_value(item, allowed)
            items.append(redacted)
            found.extend(more)
        return items, found
    return value, []


def redact_input(
    data: Mapping[str, Any],
    categories: Mapping[str, str | None],
    allowed: Collection[str] | None,
) -> Redacted:
    """The agent's input as its model may see it.

    Args:
        data: the input, as the journey mapped it.
        categories: each field's declared data category (None: not personal).
        allowed: the categories the purpose may use for this subject; None means the caller
            knows of no restriction, and only free-text details are redacted.
    """
    withheld = []
    redacted: list[str] = []
    out: dict[str, Any] = {}
    for name, value in data.items():
        category = categories.get(name)
        if category is not None and allowed is not None and category not in allowed:
            withheld.append(name)
            out[name] = f"[withheld: {category}]"
            continue
        out[name], found = redact_value(value, allowed)
        redacted.extend(found)
    return Redacted(out, tuple(sorted(withheld)), tuple(sorted(set(redacted))))
