"""Field comparisons: how closely two records agree on one field, as a small agreement level.

A comparison turns two values into a level: ``0`` means they disagree, the highest level
(:attr:`Comparison.exact_level`) means they are equal, and the levels between are partial
agreements ordered from weakest to strongest. ``None`` means a value is missing on either side,
which is no evidence at all (not disagreement). The model learns how likely each level is for
matches and non-matches, so levels only need to be ordered, not calibrated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler

from accord.identity._normalise import IDENTITY_FIELDS, IdentityRecord

__all__ = [
    "DEFAULT_COMPARISONS",
    "Comparison",
    "ComparisonKind",
    "compare",
    "compare_all",
    "comparison_vectors",
]

ComparisonKind = Literal["exact", "name", "string", "date", "id"]
"""How two values are compared.

- ``exact``: equal or not (levels 0 and 1).
- ``name``: Jaro-Winkler similarity, tolerant of typos and split words; with ``swap_with``,
  a given name and surname that swapped places count as the strongest partial agreement.
- ``string``: token-order-insensitive similarity for longer text (addresses, localities).
- ``date``: ``YYYYMMDD`` dates by edit distance, where day and month swapped count as one edit.
- ``id``: identifiers and numbers by edit distance (a transposition of neighbours is one edit).
"""

_SIMILARITY_KINDS: Final = frozenset({"name", "string"})
_EDIT_KINDS: Final = frozenset({"date", "id"})


@dataclass(frozen=True, slots=True)
class Comparison:
    """How to compare one identity field.

    Attributes:
        field: The canonical field compared (one of ``IDENTITY_FIELDS``).
        kind: The way values are compared (see :data:`ComparisonKind`).
        similarity: For ``name`` and ``string``: the least similarity (0-1) of each partial
            level, ascending, so level ``k`` means similarity ≥ ``similarity[k - 1]``.
        max_edits: For ``date`` and ``id``: the most edits allowed for each partial level,
            descending, so level ``k`` means at most ``max_edits[k - 1]`` edits.
        swap_with: For ``name``: the field whose value counts as a swapped match.
    """

    field: str
    kind: ComparisonKind
    similarity: tuple[float, ...] = ()
    max_edits: tuple[int, ...] = ()
    swap_with: str | None = None

    def __post_init__(self) -> None:
        if self.field not in IDENTITY_FIELDS:
            raise ValueError(f"unknown identity field {self.field!r}")
        if self.kind in _SIMILARITY_KINDS:
            if not self.similarity or self.max_edits:
                raise ValueError(f"a {self.kind} comparison needs similarity levels only")
            if list(self.similarity) != sorted(set(self.similarity)) or not all(
                0.0 < s < 1.0 for s in self.similarity
            ):
                raise ValueError("similarity levels must ascend strictly within (0, 1)")
        elif self.kind in _EDIT_KINDS:
            if self.similarity:
                raise ValueError(f"a {self.kind} comparison takes max_edits, not similarity")
            if list(self.max_edits) != sorted(set(self.max_edits), reverse=True) or not all(
                e > 0 for e in self.max_edits
            ):
                raise ValueError("max_edits must descend strictly and be positive")
        elif self.similarity or self.max_edits:
            raise ValueError("an exact comparison has no partial levels")
        if self.swap_with is not None and (
            self.kind != "name" or self.swap_with not in IDENTITY_FIELDS
        ):
            raise ValueError("swap_with needs a name comparison and an identity field")

    @property
    def exact_level(self) -> int:
        """The level of equal values, the highest one."""
        return len(self.similarity) + len(self.max_edits) + 1

    @property
    def levels(self) -> int:
        """How many levels there are (``0`` to :attr:`exact_level`)."""
        return self.exact_level + 1


def compare(comparison: Comparison, a: IdentityRecord, b: IdentityRecord) -> int | None:
    """The agreement level of ``a`` and ``b`` on ``comparison.field``.

    Returns:
        ``None`` when either value is missing; otherwise ``0`` (disagree) up to
        ``comparison.exact_level`` (equal).
    """
    left = a.fields.get(comparison.field)
    right = b.fields.get(comparison.field)
    if left is None or right is None:
        return None
    if left == right:
        return comparison.exact_level
    kind = comparison.kind
    if kind == "exact":
        return 0
    if kind == "name":
        return _name_level(comparison, left, right, a, b)
    if kind == "string":
        similarity = max(
            fuzz.token_sort_ratio(left, right) / 100.0,
            fuzz.ratio(left.replace(" ", ""), right.replace(" ", "")) / 100.0,
        )
        return _similarity_level(comparison.similarity, similarity)
    edits = _date_edits(left, right) if kind == "date" else OSA.distance(left, right)
    return _edit_level(comparison.max_edits, edits)


def compare_all(
    comparisons: Sequence[Comparison], a: IdentityRecord, b: IdentityRecord
) -> tuple[int | None, ...]:
    """The level of every comparison, in order (the pair's comparison vector)."""
    return tuple(compare(comparison, a, b) for comparison in comparisons)


def comparison_vectors(
    comparisons: Sequence[Comparison],
    left: Sequence[IdentityRecord],
    right: Sequence[IdentityRecord],
    pairs: Sequence[tuple[int, int]],
) -> npt.NDArray[np.int8]:
    """The level of every comparison for each pair ``(i, j)`` of ``left[i]`` and ``right[j]``.

    Returns:
        An array of shape ``(len(pairs), len(comparisons))``; ``-1`` marks a missing value.
    """
    vectors = np.full((len(pairs), len(comparisons)), -1, dtype=np.int8)
    for row, (i, j) in enumerate(pairs):
        a, b = left[i], right[j]
        for column, comparison in enumerate(comparisons):
            level = compare(comparison, a, b)
            if level is not None:
                vectors[row, column] = level
    return vectors


def _name_level(
    comparison: Comparison, left: str, right: str, a: IdentityRecord, b: IdentityRecord
) -> int:
    strongest_partial = comparison.exact_level - 1
    if left.replace(" ", "") == right.replace(" ", ""):
        return strongest_partial
    similarity = JaroWinkler.similarity(left, right)
    if comparison.swap_with is not None:
        other_a = a.fields.get(comparison.swap_with)
        other_b = b.fields.get(comparison.swap_with)
        if other_a is not None and other_b is not None:
            if left == other_b and right == other_a:
                return strongest_partial
            swapped = min(
                JaroWinkler.similarity(left, other_b), JaroWinkler.similarity(right, other_a)
            )
            similarity = max(similarity, swapped)
    return _similarity_level(comparison.similarity, similarity)


def _similarity_level(thresholds: tuple[float, ...], similarity: float) -> int:
    return sum(1 for threshold in thresholds if similarity >= threshold)


def _edit_level(max_edits: tuple[int, ...], edits: int) -> int:
    return sum(1 for allowed in max_edits if edits <= allowed)


def _date_edits(left: str, right: str) -> int:
    edits = int(OSA.distance(left, right))
    swapped = left[:4] + left[6:8] + left[4:6]
    if len(left) == 8 and swapped == right:
        return min(edits, 1)
    return edits


DEFAULT_COMPARISONS: Final = (
    Comparison("given_name", "name", similarity=(0.80, 0.88, 0.94), swap_with="surname"),
    Comparison("surname", "name", similarity=(0.80, 0.88, 0.94), swap_with="given_name"),
    Comparison("birth_date", "date", max_edits=(2, 1)),
    Comparison("national_id", "id", max_edits=(2, 1)),
    Comparison("email", "id", max_edits=(1,)),
    Comparison("phone", "id", max_edits=(1,)),
    Comparison("street_number", "id", max_edits=(1,)),
    Comparison("address", "string", similarity=(0.75, 0.90)),
    Comparison("address_2", "string", similarity=(0.75, 0.90)),
    Comparison("locality", "string", similarity=(0.75, 0.90)),
    Comparison("postcode", "id", max_edits=(1,)),
    Comparison("state", "exact"),
    Comparison("country", "exact"),
)
"""The comparisons the model uses unless told otherwise: every identity field, once."""
