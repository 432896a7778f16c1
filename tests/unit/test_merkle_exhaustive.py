"""Every proof of every tree up to 256 leaves, against a reference written from the definitions.

The reference below is RFC 9162 §2.1 read literally (``MTH``, ``PATH``, ``SUBPROOF``) and the
subtree proof of the Merkle Tree Certificates draft (``SUBTREE_SUBPROOF``), memoised so that the
whole sweep takes seconds. It hashes with :mod:`hashlib` directly, not with the code under test.
Proofs come from ``_merkle`` reading nodes that :class:`Frontier` produced; each is compared with
the reference and then checked by the standalone verifier. Hypothesis extends the check to trees
of up to 100,000 leaves whose nodes are computed lazily.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Collection, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.audit import _merkle
from accord.audit._merkle import Frontier, NodeId
from accord.audit.verifier import (
    ProofError,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

N = 256
SUBTREE_N = 64
LEAVES = [b"accord leaf %d" % i for i in range(N)]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1), found the slow, obvious way."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def mth(start: int, end: int) -> bytes:
    """MTH(D[start:end])."""
    n = end - start
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + LEAVES[start])
    k = split(n)
    return sha256(b"\x01" + mth(start, start + k) + mth(start + k, end))


def path(m: int, start: int, end: int) -> list[bytes]:
    """PATH(m, D[start:end]), with m counted from start."""
    n = end - start
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*path(m, start, start + k), mth(start + k, end)]
    return [*path(m - k, start + k, end), mth(start, start + k)]


def subproof(m: int, start: int, end: int, known: bool) -> list[bytes]:
    """SUBPROOF(m, D[start:end], known), with m counted from start."""
    n = end - start
    if m == n:
        return [] if known else [mth(start, end)]
    k = split(n)
    if m <= k:
        return [*subproof(m, start, start + k, known), mth(start + k, end)]
    return [*subproof(m - k, start + k, end, False), mth(start, start + k)]


def subtree_subproof(start: int, end: int, lo: int, hi: int, known: bool) -> list[bytes]:
    """SUBTREE_SUBPROOF for leaves [start, end) inside the node over [lo, hi)."""
    if (start, end) == (lo, hi):
        return [] if known else [mth(lo, hi)]
    middle = lo + split(hi - lo)
    if end <= middle:
        return [*subtree_subproof(start, end, lo, middle, known), mth(middle, hi)]
    if start >= middle:
        return [*subtree_subproof(start, end, middle, hi, known), mth(lo, middle)]
    assert start == lo, "a valid subtree that straddles the split starts the node"
    return [*subtree_subproof(middle, end, middle, hi, False), mth(lo, middle)]


def is_subtree(start: int, end: int) -> bool:
    """[start, end) fits inside the largest power of two dividing start (any start 0 range)."""
    return start == 0 or end - start <= (start & -start)


def node_bound(size: int) -> int:
    return 2 * math.ceil(math.log2(size)) + 2 if size > 1 else 2


class StoreReader:
    """Nodes from a dict, for a tree of ``size`` leaves: records each read, refuses later nodes."""

    def __init__(self, store: Mapping[NodeId, bytes], size: int) -> None:
        self.store = store
        self.size = size
        self.reads: list[tuple[NodeId, ...]] = []

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        self.reads.append(tuple(ids))
        for level, index in ids:
            assert (index + 1) << level <= self.size, f"read ({level}, {index}) past {self.size}"
        return {node: self.store[node] for node in ids}


@functools.cache
def built() -> tuple[dict[NodeId, bytes], list[Frontier]]:
    """The node store of the 256-leaf log, and a saved copy of the frontier at every size."""
    frontier = Frontier()
    store: dict[NodeId, bytes] = {}
    frontiers = [Frontier.from_json(0, frontier.to_json())]
    for data in LEAVES:
        completed = frontier.append(sha256(b"\x00" + data))
        assert completed[0] == ((0, frontier.size - 1), sha256(b"\x00" + data))
        for node, digest in completed:
            assert node not in store, f"{node} completed twice"
            store[node] = digest
        frontiers.append(Frontier.from_json(frontier.size, frontier.to_json()))
    return store, frontiers


def test_frontier_stores_every_perfect_subtree_once() -> None:
    store, _ = built()
    assert len(store) == 2 * N - 1
    for (level, index), digest in store.items():
        assert digest == mth(index << level, (index + 1) << level)


def test_roots_and_saved_frontiers_for_every_size() -> None:
    store, frontiers = built()
    for size in range(N + 1):
        reader = StoreReader(store, size)
        assert _merkle.root(size, reader) == frontiers[size].root() == mth(0, size)
        assert len(reader.reads) == 1
        assert len(reader.reads[0]) == size.bit_count()
        assert frontiers[size].node_ids == tuple(_merkle.root_plan(size))
        if size < N:
            resumed = Frontier.from_json(size, frontiers[size].to_json())
            completed = resumed.append(sha256(b"\x00" + LEAVES[size]))
            assert all(store[node] == digest for node, digest in completed)


def test_every_inclusion_proof() -> None:
    store, _ = built()
    checked = 0
    for size in range(1, N + 1):
        root = mth(0, size)
        for index in range(size):
            reader = StoreReader(store, size)
            proof = _merkle.inclusion_proof(index, size, reader)
            assert len(reader.reads) == 1
            assert len(set(reader.reads[0])) <= node_bound(size)
            assert proof == path(index, 0, size), (index, size)
            verify_inclusion(index, size, mth(index, index + 1), proof, root)
            checked += 1
    assert checked == N * (N + 1) // 2 == 32_896


def test_every_consistency_proof() -> None:
    store, _ = built()
    checked = 0
    for size2 in range(1, N + 1):
        root2 = mth(0, size2)
        for size1 in range(size2 + 1):
            reader = StoreReader(store, size2)
            proof = _merkle.consistency_proof(size1, size2, reader)
            assert len(reader.reads) == 1
            assert len(set(reader.reads[0])) <= node_bound(size2)
            expected = [] if size1 in (0, size2) else subproof(size1, 0, size2, True)
            assert proof == expected, (size1, size2)
            verify_consistency(size1, size2, mth(0, size1), root2, proof)
            checked += size1 > 0
    assert checked == N * (N + 1) // 2 == 32_896


def test_every_subtree_proof() -> None:
    subtrees = [(s, e) for e in range(1, SUBTREE_N + 1) for s in range(e) if is_subtree(s, e)]
    inclusions = consistencies = 0
    for start, end in subtrees:
        for index in range(start, end):
            proof = path(index - start, start, end)
            verify_subtree_inclusion(
                index, start, end, mth(index, index + 1), proof, mth(start, end)
            )
            inclusions += 1
        for size in range(end, SUBTREE_N + 1):
            proof = subtree_subproof(start, end, 0, size, True)
            verify_subtree_consistency(start, end, size, mth(start, end), mth(0, size), proof)
            consistencies += 1
    # 64 ranges start at 0; a start s > 0 admits lowbit(s) lengths, 32 * 6 = 192 in all.
    assert len(subtrees) == 256
    assert inclusions == 3_184
    assert consistencies == 7_312


def test_every_range_that_is_not_a_subtree_is_refused() -> None:
    refused = 0
    for end in range(1, SUBTREE_N + 1):
        for start in range(1, end):
            if is_subtree(start, end):
                continue
            with pytest.raises(ProofError, match="is not a subtree"):
                verify_subtree_inclusion(start, start, end, mth(start, start + 1), [], mth(0, 1))
            with pytest.raises(ProofError, match="is not a subtree"):
                verify_subtree_consistency(start, end, end, mth(start, end), mth(0, end), [])
            refused += 1
    assert refused == SUBTREE_N * (SUBTREE_N + 1) // 2 - 256 == 1_824


@functools.cache
def big_node(level: int, index: int) -> bytes:
    """The perfect node (level, index) of a log whose leaf i is b"big leaf i"."""
    if level == 0:
        return sha256(b"\x00" + b"big leaf %d" % index)
    return sha256(b"\x01" + big_node(level - 1, 2 * index) + big_node(level - 1, 2 * index + 1))


def big_mth(start: int, end: int) -> bytes:
    """MTH over that log, taking perfect ranges from big_node."""
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        return big_node(n.bit_length() - 1, start // n)
    k = split(n)
    return sha256(b"\x01" + big_mth(start, start + k) + big_mth(start + k, end))


class LazyReader:
    """Computes requested nodes on demand, so trees of any size cost only what proofs touch."""

    def __init__(self) -> None:
        self.reads: list[tuple[NodeId, ...]] = []

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        self.reads.append(tuple(ids))
        return {node: big_node(*node) for node in ids}


def flip(digest: bytes, bit: int) -> bytes:
    changed = bytearray(digest)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def rejected(check: Callable[[], None]) -> bool:
    try:
        check()
    except ProofError:
        return True
    return False


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_large_trees(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 100_000), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    size1 = data.draw(st.integers(1, size), label="size1")
    root = big_mth(0, size)

    reader = LazyReader()
    proof = _merkle.inclusion_proof(index, size, reader)
    assert len(reader.reads) == 1
    assert len(set(reader.reads[0])) <= node_bound(size)
    leaf = big_node(0, index)
    verify_inclusion(index, size, leaf, proof, root)

    target = data.draw(st.integers(0, len(proof) + 1), label="inclusion target")
    bit = data.draw(st.integers(0, 255), label="inclusion bit")
    nodes, bad_leaf, bad_root = list(proof), leaf, root
    if target < len(proof):
        nodes[target] = flip(nodes[target], bit)
    elif target == len(proof):
        bad_leaf = flip(leaf, bit)
    else:
        bad_root = flip(root, bit)
    assert rejected(lambda: verify_inclusion(index, size, bad_leaf, nodes, bad_root))

    reader = LazyReader()
    proof = _merkle.consistency_proof(size1, size, reader)
    assert len(reader.reads) == 1
    assert len(set(reader.reads[0])) <= node_bound(size)
    root1 = big_mth(0, size1)
    verify_consistency(size1, size, root1, root, proof)

    target = data.draw(st.integers(0, len(proof) + 1), label="consistency target")
    bit = data.draw(st.integers(0, 255), label="consistency bit")
    nodes, bad_root1, bad_root2 = list(proof), root1, root
    if target < len(proof):
        nodes[target] = flip(nodes[target], bit)
    elif target == len(proof):
        bad_root1 = flip(root1, bit)
    else:
        bad_root2 = flip(root, bit)
    assert rejected(lambda: verify_consistency(size1, size, bad_root1, bad_root2, nodes))


def test_frontier_refuses_a_damaged_saved_state() -> None:
    _, frontiers = built()
    saved = frontiers[11].to_json()
    assert len(saved) == 3
    with pytest.raises(ValueError, match="has 3 hash"):
        Frontier.from_json(11, saved[:2])
    with pytest.raises(ValueError, match="size 12 has 2 hash"):
        Frontier.from_json(12, saved)
    with pytest.raises(ValueError, match="frontier hash 1 must be 64 lowercase hex"):
        Frontier.from_json(11, [saved[0], saved[1].upper(), saved[2]])
    with pytest.raises(ValueError, match="frontier hash 2 is not hex"):
        Frontier.from_json(11, [saved[0], saved[1], "zz" * 32])
    with pytest.raises(ValueError, match="must be 64 lowercase hex"):
        Frontier.from_json(11, [saved[0], saved[1], saved[2][:62]])
    with pytest.raises(ValueError, match="non-negative"):
        Frontier.from_json(-1, [])
    with pytest.raises(ValueError, match="list of hex hashes"):
        Frontier.from_json(0, "[]")
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier().append(b"\x00" * 31)


class ForgetfulReader:
    """A store that silently lost one node."""

    def __init__(self, store: Mapping[NodeId, bytes], forgets: NodeId) -> None:
        self.store = store
        self.forgets = forgets

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        return {node: self.store[node] for node in ids if node != self.forgets}


def test_proofs_refuse_bad_requests_and_a_damaged_store() -> None:
    store, _ = built()
    with pytest.raises(ValueError, match="outside a tree of size 4"):
        _merkle.inclusion_plan(4, 4)
    with pytest.raises(ValueError, match="larger than size2"):
        _merkle.consistency_plan(5, 4)
    with pytest.raises(ValueError, match="non-negative"):
        _merkle.root_plan(-1)
    with pytest.raises(_merkle.MissingNodeError, match=r"\(2, 1\)"):
        _merkle.inclusion_proof(0, 8, ForgetfulReader(store, forgets=(2, 1)))
    corrupt = {**store, (0, 2): b"short"}
    with pytest.raises(ValueError, match=r"stored node \(0, 2\) is 5 bytes"):
        _merkle.root(3, StoreReader(corrupt, 3))
