"""Identifiers, clocks, canonical JSON and durations: pure helpers without I/O."""

from accord.core._clock import Clock, SystemClock
from accord.core._durations import format_duration, parse_duration
from accord.core._ids import IdGenerator, RandomIds, RunId, TenantId, new_ulid
from accord.core._json import canonical_dumps, digest, digest_any

__all__ = [
    "Clock",
    "IdGenerator",
    "RandomIds",
    "RunId",
    "SystemClock",
    "TenantId",
    "canonical_dumps",
    "digest",
    "digest_any",
    "format_duration",
    "new_ulid",
    "parse_duration",
]
