"""Merkle proofs built from stored perfect subtree hashes, and the append frontier.

The ledger stores the hash of every perfect subtree once it is complete: node ``(level, index)``
is the hash of leaves ``[index * 2**level, (index + 1) * 2**level)``, and level 0 holds the leaf
hashes. Perfect nodes never change as the log grows, so they can be written once at append time.

A node of the RFC 9162 tree that is not perfect lies on the right edge; its hash is folded from
the perfect nodes that cover its leaves, largest first. The planning functions here say which
perfect nodes a root or proof needs, so each costs one storage read of ``O(log n)`` nodes, and
the proofs equal RFC 9162 ``PATH`` (§2.1.3.1) and ``PROOF`` (§2.1.4.1).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from accord.audit.verifier import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "Cover",
    "Frontier",
    "MissingNodeError",
    "NodeId",
    "NodeReader",
    "consistency_plan",
    "consistency_proof",
    "inclusion_plan",
    "inclusion_proof",
    "root",
    "root_plan",
]

NodeId = tuple[int, int]
"""A perfect node: ``(level, index)`` covers leaves ``[index << level, (index + 1) << level)``."""

Cover = tuple[NodeId, ...]
"""The perfect nodes that cover one range of leaves, left to right; folded, they give its hash."""


class MissingNodeError(LookupError):
    """The node store lacks a perfect node that a root or proof needs."""


class NodeReader(Protocol):
    """Where the ledger keeps its perfect nodes."""

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        """Read the hashes of ``ids`` in one storage read.

        Raises:
            LookupError: A node is not stored (:class:`MissingNodeError` or ``KeyError``).
        """
        ...


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _split(size: int) -> int:
    """The largest power of two below ``size`` (``size > 1``): where RFC 9162 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


def _cover(start: int, end: int) -> Cover:
    """The largest aligned perfect blocks of ``[start, end)``, left to right.

    For a node of the tree (the only ranges proofs use) their right-to-left fold is the node's
    hash, since RFC 9162 splits every right-edge node after its largest power of two.
    """
    blocks: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start & ((1 << level) - 1):
            level -= 1
        blocks.append((level, start >> level))
        start += 1 << level
    return tuple(blocks)


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Hash a cover's blocks into one node, innermost (rightmost) pair first."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def root_plan(size: int) -> Cover:
    """The perfect nodes whose fold is the root of the tree of ``size`` leaves.

    Raises:
        ValueError: ``size`` is negative.
    """
    _check_count("size", size)
    return _cover(0, size)


def inclusion_plan(index: int, size: int) -> tuple[Cover, ...]:
    """What the inclusion proof of leaf ``index`` in a tree of ``size`` leaves is made of.

    Returns:
        One cover per proof node, lowest sibling first, as RFC 9162 ``PATH(index, D[size])``.

    Raises:
        ValueError: ``index`` is not a leaf of the tree.
    """
    _check_count("index", index)
    _check_count("size", size)
    if index >= size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    siblings: list[Cover] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            siblings.append(_cover(middle, end))
            end = middle
        else:
            siblings.append(_cover(start, middle))
            start = middle
    siblings.reverse()
    return tuple(siblings)


def consistency_plan(size1: int, size2: int) -> tuple[Cover, ...]:
    """What the consistency proof from ``size1`` to ``size2`` leaves is made of.

    The proof is empty when ``size1`` is 0 or equals ``size2``, as the verifier expects.

    Returns:
        One cover per proof node, in the order of RFC 9162 ``PROOF(size1, D[size2])``.

    Raises:
        ValueError: ``size1`` is negative or larger than ``size2``.
    """
    _check_count("size1", size1)
    _check_count("size2", size2)
    if size1 > size2:
        raise ValueError(f"size1 {size1} is larger than size2 {size2}")
    if size1 in (0, size2):
        return ()
    items: list[Cover] = []
    start, end = 0, size2
    old_root_known = True
    while end != size1:
        middle = start + _split(end - start)
        if size1 <= middle:
            items.append(_cover(middle, end))
            end = middle
        else:
            items.append(_cover(start, middle))
            start = middle
            old_root_known = False
    if not old_root_known:
        items.append(_cover(start, end))
    items.reverse()
    return tuple(items)


def _read(reader: NodeReader, plan: Sequence[Cover]) -> list[list[bytes]]:
    wanted = sorted({node for cover in plan for node in cover})
    found = reader.nodes(wanted)
    missing = [node for node in wanted if node not in found]
    if missing:
        raise MissingNodeError(
            f"the node store lacks {len(missing)} perfect node(s), first (level, index) = "
            f"{missing[0]}; the ledger's node table is incomplete"
        )
    for node in wanted:
        if len(found[node]) != HASH_SIZE:
            raise ValueError(
                f"stored node {node} is {len(found[node])} bytes, not {HASH_SIZE}: "
                "the ledger's node table is corrupt"
            )
    return [[found[node] for node in cover] for cover in plan]


def root(size: int, reader: NodeReader) -> bytes:
    """The root hash of the tree of ``size`` leaves, read in one call to ``reader.nodes``."""
    (hashes,) = _read(reader, (root_plan(size),))
    return _fold(hashes) if hashes else EMPTY_ROOT


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index``, read in one call to ``reader.nodes``."""
    return [_fold(hashes) for hashes in _read(reader, inclusion_plan(index, size))]


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """The RFC 9162 consistency proof from ``size1`` to ``size2``, in one ``reader.nodes`` call."""
    return [_fold(hashes) for hashes in _read(reader, consistency_plan(size1, size2))]


def _hash_from_hex(position: int, text: object) -> bytes:
    if not isinstance(text, str) or len(text) != 2 * HASH_SIZE or text != text.lower():
        raise ValueError(f"frontier hash {position} must be {2 * HASH_SIZE} lowercase hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"frontier hash {position} is not hex: {text!r}") from exc


class Frontier:
    """The right edge of the tree, enough to append leaves and compute the root.

    It holds the tree size and the hashes of the perfect subtrees that cover leaves
    ``[0, size)`` left to right, one per 1 bit of ``size``, largest first.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        """Start with the empty tree."""
        self._size = 0
        self._hashes: list[bytes] = []

    def __repr__(self) -> str:
        return f"Frontier(size={self._size})"

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Hashes of the perfect subtrees covering the tree, left to right."""
        return tuple(self._hashes)

    @property
    def node_ids(self) -> Cover:
        """The ids of :attr:`hashes`, as stored in the node table."""
        return _cover(0, self._size)

    def append(self, leaf_hash: bytes) -> list[tuple[NodeId, bytes]]:
        """Add a leaf.

        Args:
            leaf_hash: The new leaf's hash.

        Returns:
            Every node the leaf completes, the leaf itself (level 0) first, for the caller to
            store.

        Raises:
            ValueError: ``leaf_hash`` is not 32 bytes.
        """
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        index = self._size
        completed: list[tuple[NodeId, bytes]] = [((0, index), leaf_hash)]
        current, level = leaf_hash, 0
        while index & 1:
            current = node_hash(self._hashes.pop(), current)
            level += 1
            index >>= 1
            completed.append(((level, index), current))
        self._hashes.append(current)
        self._size += 1
        return completed

    def root(self) -> bytes:
        """The root hash of the tree so far (:data:`EMPTY_ROOT` when empty)."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT

    def to_json(self) -> list[str]:
        """The hashes as lowercase hex, to store with :attr:`size` in one row."""
        return [digest.hex() for digest in self._hashes]

    @classmethod
    def from_json(cls, size: int, data: object) -> Frontier:
        """Rebuild a frontier saved by :meth:`to_json`.

        Args:
            size: The tree size it was saved at.
            data: The list :meth:`to_json` returned.

        Raises:
            ValueError: ``size`` is negative, or ``data`` is not a list of one 32-byte hex hash
                per 1 bit of ``size``.
        """
        _check_count("size", size)
        if not isinstance(data, list):
            raise ValueError(f"a saved frontier is a list of hex hashes, got {type(data).__name__}")
        expected = size.bit_count()
        if len(data) != expected:
            raise ValueError(
                f"a frontier of size {size} has {expected} hash(es), one per 1 bit of the size; "
                f"got {len(data)}"
            )
        frontier = cls()
        frontier._size = size
        frontier._hashes = [_hash_from_hex(position, text) for position, text in enumerate(data)]
        return frontier
