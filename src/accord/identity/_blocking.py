"""Blocking: which pairs of records are worth comparing at all.

Each rule turns a record into at most one short key (``"dob:19300213"``); two records are
candidates when they share a key under any rule. The rules are chosen so that a true match
rarely fails all of them at once: a typo in the surname still leaves the birth date, the
national id or the address to meet on. Keys are plain strings so that an index table can store
``(key, record)`` rows and an incremental resolver can find the candidates of one new record by
looking its keys up; batch linkage uses :func:`candidate_pairs` over the same keys.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import numpy as np

from accord.identity._normalise import IDENTITY_FIELDS, IdentityRecord

__all__ = [
    "DEFAULT_BLOCKING",
    "MAX_KEY_LENGTH",
    "Blocking",
    "BlockingRule",
    "KeyEncoding",
    "KeyPart",
    "candidate_pairs",
    "sample_non_candidates",
    "soundex",
]

MAX_KEY_LENGTH: Final = 200
"""No blocking key is longer than this (so it fits an indexed text column)."""

KeyEncoding = Literal["value", "soundex", "prefix", "suffix"]
"""How a field's value enters a key: as it is, by its Soundex code, or by its first or last
characters (spaces removed)."""

_PART_LENGTH: Final = 60
_SOUNDEX_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **dict.fromkeys("bfpv", "1"),
        **dict.fromkeys("cgjkqsxz", "2"),
        **dict.fromkeys("dt", "3"),
        "l": "4",
        **dict.fromkeys("mn", "5"),
        "r": "6",
    }
)


@dataclass(frozen=True, slots=True)
class KeyPart:
    """One field's share of a blocking key.

    Attributes:
        field: The canonical field read.
        encoding: How its value is encoded.
        length: For ``prefix`` and ``suffix``: how many leading or trailing characters.
    """

    field: str
    encoding: KeyEncoding = "value"
    length: int = 1

    def __post_init__(self) -> None:
        if self.field not in IDENTITY_FIELDS:
            raise ValueError(f"unknown identity field {self.field!r}")
        if self.length < 1:
            raise ValueError("a prefix keeps at least one character")

    def encode(self, record: IdentityRecord) -> str | None:
        """This part of the key for ``record``, or ``None`` when the field is missing."""
        value = record.fields.get(self.field)
        if value is None:
            return None
        if self.encoding == "soundex":
            return soundex(value) or None
        if self.encoding == "prefix":
            return value.replace(" ", "")[: self.length] or None
        if self.encoding == "suffix":
            return value.replace(" ", "")[-self.length :] or None
        return value[:_PART_LENGTH]


@dataclass(frozen=True, slots=True)
class BlockingRule:
    """Records agreeing on every part of the rule share its key.

    Attributes:
        name: The key's prefix, unique within a :class:`Blocking`.
        parts: The fields that make the key; a record missing any of them has no key.
        unordered: Sort the parts, so a value found in either field meets (swapped names).
    """

    name: str
    parts: tuple[KeyPart, ...]
    unordered: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.parts:
            raise ValueError("a blocking rule needs an identifier name and at least one part")

    def key(self, record: IdentityRecord) -> str | None:
        """The rule's key for ``record``, or ``None`` when a part is missing."""
        encoded = [part.encode(record) for part in self.parts]
        values = [value for value in encoded if value is not None]
        if len(values) != len(encoded):
            return None
        if self.unordered:
            values.sort()
        return f"{self.name}:{'|'.join(values)}"[:MAX_KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class Blocking:
    """A set of blocking rules and how large a block may grow.

    Attributes:
        rules: The rules; a pair is a candidate when any rule gives both records the same key.
        max_block_size: A key shared by more records than this is skipped when pairing: a
            common value (a default birth date, a placeholder id) says little and would make
            the work grow with the square of its count. A resolver should do the same.
    """

    rules: tuple[BlockingRule, ...]
    max_block_size: int = 100

    def __post_init__(self) -> None:
        names = [rule.name for rule in self.rules]
        if not names or len(set(names)) != len(names):
            raise ValueError("blocking needs at least one rule, each with its own name")
        if self.max_block_size < 2:
            raise ValueError("max_block_size must allow a pair (at least 2)")

    def keys(self, record: IdentityRecord) -> frozenset[str]:
        """Every blocking key of ``record`` (one per rule whose fields it has)."""
        return frozenset(key for rule in self.rules if (key := rule.key(record)) is not None)


def candidate_pairs(
    records: Sequence[IdentityRecord],
    blocking: Blocking,
    *,
    other: Sequence[IdentityRecord] | None = None,
) -> list[tuple[int, int]]:
    """The pairs of records that share a blocking key, each once, sorted.

    Args:
        records: The records to deduplicate, or the first source of a linkage.
        blocking: The rules and block size limit.
        other: The second source of a linkage; ``None`` to deduplicate ``records``.

    Returns:
        Index pairs: ``(i, j)`` with ``i < j`` into ``records`` when deduplicating, or ``i``
        into ``records`` and ``j`` into ``other`` when linking. A key held by more than
        ``blocking.max_block_size`` records (both sources together) yields no pairs.
    """
    left: defaultdict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        for key in blocking.keys(record):
            left[key].append(index)
    right: defaultdict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(other or ()):
        for key in blocking.keys(record):
            right[key].append(index)
    pairs: set[tuple[int, int]] = set()
    limit = blocking.max_block_size
    if other is None:
        for members in left.values():
            if 1 < len(members) <= limit:
                pairs.update(
                    (i, j) for position, i in enumerate(members) for j in members[position + 1 :]
                )
    else:
        for key, members in left.items():
            partners = right.get(key)
            if partners and len(members) + len(partners) <= limit:
                pairs.update((i, j) for i in members for j in partners)
    return sorted(pairs)


def sample_non_candidates(
    count: int,
    other_count: int | None,
    candidates: Sequence[tuple[int, int]],
    *,
    size: int,
    seed: int,
) -> tuple[list[tuple[int, int]], float]:
    """Draw up to ``size`` distinct pairs that are not candidates, and how many each stands for.

    With ``other_count`` ``None`` the pairs are ``(i, j)``, ``i < j``, within ``count`` records;
    otherwise ``i`` indexes the first and ``j`` the second source. When there are no more
    non-candidate pairs than ``size``, all of them are returned, each standing for itself.
    """
    total = count * (count - 1) // 2 if other_count is None else count * other_count
    taken = set(candidates)
    remaining = total - len(taken)
    if remaining <= 0:
        return [], 1.0
    if remaining <= size:
        every = (
            ((i, j) for i in range(count) for j in range(i + 1, count))
            if other_count is None
            else ((i, j) for i in range(count) for j in range(other_count))
        )
        return [pair for pair in every if pair not in taken], 1.0
    generator = np.random.default_rng(seed)
    width = count if other_count is None else other_count
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < size:
        draws = generator.integers(0, [count, width], size=(2 * size, 2))
        for i, j in draws.tolist():
            pair = (i, j) if other_count is not None else (min(i, j), max(i, j))
            if (other_count is None and i == j) or pair in taken or pair in chosen:
                continue
            chosen.add(pair)
            if len(chosen) == size:
                break
    return sorted(chosen), remaining / size


def soundex(text: str) -> str:
    """The American Soundex code of the letters in ``text`` (``"robert"`` → ``"r163"``).

    Returns ``""`` when ``text`` has no ASCII letter.
    """
    letters = [c for c in text.casefold() if "a" <= c <= "z"]
    if not letters:
        return ""
    code = letters[0]
    previous = _SOUNDEX_CODES.get(letters[0], "")
    for letter in letters[1:]:
        digit = _SOUNDEX_CODES.get(letter, "")
        if digit and digit != previous:
            code += digit
            if len(code) == 4:
                break
        if letter not in "hw":
            previous = digit
    return code.ljust(4, "0")


DEFAULT_BLOCKING: Final = Blocking(
    rules=(
        BlockingRule("dob", (KeyPart("birth_date"),)),
        BlockingRule("nid", (KeyPart("national_id"),)),
        BlockingRule("nid_head", (KeyPart("national_id", "prefix", length=4),)),
        BlockingRule("nid_tail", (KeyPart("national_id", "suffix", length=4),)),
        BlockingRule("email", (KeyPart("email"),)),
        BlockingRule("phone", (KeyPart("phone"),)),
        BlockingRule(
            "names",
            (KeyPart("given_name", "soundex"), KeyPart("surname", "soundex")),
            unordered=True,
        ),
        BlockingRule("house", (KeyPart("postcode"), KeyPart("street_number"))),
        BlockingRule("street", (KeyPart("address"), KeyPart("surname", "prefix"))),
        BlockingRule("postcode_surname", (KeyPart("postcode"), KeyPart("surname", "soundex"))),
    )
)
"""The default rules: equal birth date, national id, e-mail or phone; the first or last four
characters of the national id (one typo leaves one of them intact); both names by sound (in
either order); postcode with house number; street with the surname's initial; postcode with
the surname's sound."""
