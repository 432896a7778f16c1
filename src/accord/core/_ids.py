from __future__ import annotations

import os
import random
import time
from typing import NewType, Protocol

RunId = NewType("RunId", str)
TenantId = NewType("TenantId", str)

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_ulid(*, now: float | None = None, rand: bytes | None = None) -> str:
    """A lexically sortable 26-character identifier (ULID layout, lower-case Crockford base32)."""
    millis = int((time.time() if now is None else now) * 1000)
    entropy = int.from_bytes(os.urandom(10) if rand is None else rand[:10], "big")
    value = (millis << 80) | entropy
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class IdGenerator(Protocol):
    """Source of new identifiers and of randomness (jitter). Replaced in tests for determinism."""

    def new_id(self, prefix: str) -> str: ...

    def random(self) -> float: ...


class RandomIds:
    """Production ids: ULIDs with a readable prefix, and system randomness."""

    def __init__(self) -> None:
        self._random = random.SystemRandom()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{new_ulid()}"

    def random(self) -> float:
        return self._random.random()
