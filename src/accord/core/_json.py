from __future__ import annotations

import hashlib
import json
from typing import Any

# One encoder, built once: json.dumps with options builds a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_dumps(value: Any) -> str:
    """Deterministic compact JSON: sorted keys, no whitespace, UTF-8 kept as is."""
    return _CANONICAL.encode(value)


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value``, as ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(canonical_dumps(value).encode()).hexdigest()


def digest_any(value: Any) -> str:
    """:func:`digest` of ``value``, or of its ``repr`` when it is not JSON (a model's or a
    caller's arbitrary value must still get a digest for the record)."""
    try:
        return digest(value)
    except (TypeError, ValueError):
        return digest(repr(value))
