"""Forged proofs and signed tree heads: more than 100,000 mutants, and the verifier accepts none.

Each mutant starts from a true statement about a 1,024-leaf log (an inclusion proof, a
consistency proof, or a signed tree head) and changes one thing. A mutant equal to the original,
or one that happens to be another true statement about the log, is dropped before verifying, so
the count covers only false statements.

A tree size is never changed on its own: it comes with the log's real root at that size, as a
signed tree head pairs them. A size with someone else's root describes a head nobody signed, and
hash-level verification cannot rule all of those out (see the last test).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from accord.audit import _merkle
from accord.audit._merkle import Frontier, NodeId
from accord.audit.verifier import (
    EMPTY_ROOT,
    ProofError,
    key_id,
    leaf_hash,
    sign_tree_head,
    tree_head_message,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)

SEED = 9162
LOG_SIZE = 1024
INCLUSION_MUTANTS = 32_000
CONSISTENCY_MUTANTS = 32_000
HEAD_MUTANTS = 42_000

Inclusion = tuple[int, int, bytes, tuple[bytes, ...], bytes]
Consistency = tuple[int, int, bytes, bytes, tuple[bytes, ...]]
Head = dict[str, Any]


class DictReader:
    def __init__(self, store: Mapping[NodeId, bytes]) -> None:
        self.store = store

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        return {node: self.store[node] for node in ids}


def build_log() -> tuple[DictReader, list[bytes], list[bytes]]:
    frontier = Frontier()
    store: dict[NodeId, bytes] = {}
    roots = [frontier.root()]
    for index in range(LOG_SIZE):
        store.update(frontier.append(leaf_hash(b"forgery leaf %d" % index)))
        roots.append(frontier.root())
    leaves = [store[(0, index)] for index in range(LOG_SIZE)]
    return DictReader(store), leaves, roots


READER, LEAVES, ROOTS = build_log()


@functools.cache
def true_inclusion(index: int, size: int) -> tuple[bytes, ...]:
    return tuple(_merkle.inclusion_proof(index, size, READER))


@functools.cache
def true_consistency(size1: int, size2: int) -> tuple[bytes, ...]:
    return tuple(_merkle.consistency_proof(size1, size2, READER))


def in_log(*sizes: int) -> bool:
    return all(0 <= size <= LOG_SIZE for size in sizes)


def inclusion_is_true(claim: Inclusion) -> bool:
    index, size, leaf, proof, root = claim
    return (
        in_log(size)
        and 0 <= index < size
        and leaf == LEAVES[index]
        and root == ROOTS[size]
        and proof == true_inclusion(index, size)
    )


def consistency_is_true(claim: Consistency) -> bool:
    size1, size2, root1, root2, proof = claim
    return (
        in_log(size1, size2)
        and 0 <= size1 <= size2
        and root1 == ROOTS[size1]
        and root2 == ROOTS[size2]
        and proof == true_consistency(size1, size2)
    )


def flip(digest: bytes, rng: random.Random) -> bytes:
    changed = bytearray(digest)
    bit = rng.randrange(8 * len(changed))
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def random_hash(rng: random.Random) -> bytes:
    return rng.randbytes(32)


def huge_size(rng: random.Random) -> int:
    return rng.randrange(2**32, 2**64)


# Mutations of a list of proof nodes; each returns a new tuple (possibly equal, then dropped).


def _flip_node(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    if nodes:
        position = rng.randrange(len(nodes))
        nodes[position] = flip(nodes[position], rng)
    return tuple(nodes)


def _drop(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    if nodes:
        del nodes[rng.randrange(len(nodes))]
    return tuple(nodes)


def _duplicate(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    if nodes:
        position = rng.randrange(len(nodes))
        nodes.insert(rng.randrange(len(nodes) + 1), nodes[position])
    return tuple(nodes)


def _append(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    return (*nodes, random_hash(rng))


def _prepend(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    return (random_hash(rng), *nodes)


def _append_real(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    return (*nodes, rng.choice(LEAVES + ROOTS[1:]))


def _swap(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    if len(nodes) > 1:
        i, j = rng.sample(range(len(nodes)), 2)
        nodes[i], nodes[j] = nodes[j], nodes[i]
    return tuple(nodes)


def _reverse(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    return tuple(reversed(nodes))


def _shuffle(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    rng.shuffle(nodes)
    return tuple(nodes)


def _truncate(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    return tuple(nodes[: rng.randrange(len(nodes))]) if nodes else ()


def _replace(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    if nodes:
        nodes[rng.randrange(len(nodes))] = rng.choice([random_hash(rng), rng.choice(LEAVES)])
    return tuple(nodes)


def _bad_length(nodes: list[bytes], rng: random.Random) -> tuple[bytes, ...]:
    if nodes:
        position = rng.randrange(len(nodes))
        node = nodes[position]
        nodes[position] = rng.choice([node[:31], node + b"\x00", b"", node[:16]])
    return tuple(nodes)


NODE_MUTATIONS: dict[str, Callable[[list[bytes], random.Random], tuple[bytes, ...]]] = {
    "flip a proof bit": _flip_node,
    "drop a node": _drop,
    "duplicate a node": _duplicate,
    "append a random node": _append,
    "prepend a random node": _prepend,
    "append a real hash": _append_real,
    "swap two nodes": _swap,
    "reverse the proof": _reverse,
    "shuffle the proof": _shuffle,
    "truncate the proof": _truncate,
    "replace a node": _replace,
    "node of wrong length": _bad_length,
}


def mutate_inclusion(kind: str, claim: Inclusion, rng: random.Random) -> Inclusion:
    index, size, leaf, proof, root = claim
    if kind in NODE_MUTATIONS:
        return (index, size, leaf, NODE_MUTATIONS[kind](list(proof), rng), root)
    match kind:
        case "flip a root bit":
            return (index, size, leaf, proof, flip(root, rng))
        case "flip a leaf bit":
            return (index, size, flip(leaf, rng), proof, root)
        case "another leaf's hash":
            return (index, size, rng.choice(LEAVES), proof, root)
        case "hash of wrong length":
            if rng.random() < 0.5:
                return (index, size, rng.choice([leaf[:31], leaf + b"\x00", b""]), proof, root)
            return (index, size, leaf, proof, rng.choice([root[:31], root + b"\x00", b""]))
        case "index plus or minus one":
            return (index + rng.choice([-1, 1]), size, leaf, proof, root)
        case "random index":
            return (rng.randrange(size), size, leaf, proof, root)
        case "random index with its own leaf":
            other = rng.randrange(size)
            return (other, size, LEAVES[other], proof, root)
        case "index out of range":
            return (rng.choice([size, size + 1, 2**64 - 1, -1]), size, leaf, proof, root)
        case "size plus or minus one":
            other = size + rng.choice([-1, 1])
            return (index, other, leaf, proof, ROOTS[other])
        case "random size":
            other = rng.randint(1, LOG_SIZE)
            return (index, other, leaf, proof, ROOTS[other])
        case "huge size":
            return (index, huge_size(rng), leaf, proof, root)
        case "another real proof":
            other_size = rng.randint(1, LOG_SIZE)
            return (index, size, leaf, true_inclusion(rng.randrange(other_size), other_size), root)
        case "interior node as a leaf":
            # Skip the leaf level: present the level-1 parent as leaf index // 2 of a tree half
            # the size, under that tree's real root.
            pair, half = index // 2, (size + 1) // 2
            return (pair, half, _level1_hash(pair, size), proof[1:], ROOTS[half])
    raise AssertionError(kind)


def _level1_hash(pair: int, size: int) -> bytes:
    if 2 * pair + 1 < size:
        return READER.store[(1, pair)]
    return LEAVES[2 * pair]


INCLUSION_KINDS = [
    *NODE_MUTATIONS,
    "flip a root bit",
    "flip a leaf bit",
    "another leaf's hash",
    "hash of wrong length",
    "index plus or minus one",
    "random index",
    "random index with its own leaf",
    "index out of range",
    "size plus or minus one",
    "random size",
    "huge size",
    "another real proof",
    "interior node as a leaf",
]


def mutate_consistency(kind: str, claim: Consistency, rng: random.Random) -> Consistency:
    size1, size2, root1, root2, proof = claim
    if kind in NODE_MUTATIONS:
        return (size1, size2, root1, root2, NODE_MUTATIONS[kind](list(proof), rng))
    match kind:
        case "flip a root1 bit":
            return (size1, size2, flip(root1, rng), root2, proof)
        case "flip a root2 bit":
            return (size1, size2, root1, flip(root2, rng), proof)
        case "hash of wrong length":
            if rng.random() < 0.5:
                return (size1, size2, root1[:31], root2, proof)
            return (size1, size2, root1, root2 + b"\x00", proof)
        case "size1 plus or minus one":
            other = size1 + rng.choice([-1, 1])
            return (other, size2, ROOTS[other], root2, proof)
        case "size2 plus or minus one":
            other = size2 + rng.choice([-1, 1])
            return (size1, other, root1, ROOTS[other], proof)
        case "random size1":
            other = rng.randint(0, LOG_SIZE)
            return (other, size2, ROOTS[other], root2, proof)
        case "random size2":
            other = rng.randint(0, LOG_SIZE)
            return (size1, other, root1, ROOTS[other], proof)
        case "swap the sizes and roots":
            return (size2, size1, root2, root1, proof)
        case "swap the sizes only":
            return (size2, size1, root1, root2, proof)
        case "swap the roots only":
            return (size1, size2, root2, root1, proof)
        case "root2 as root1":
            return (size1, size2, root2, root2, proof)
        case "from the empty tree":
            return (0, size2, EMPTY_ROOT, root2, proof)
        case "equal sizes":
            return (size2, size2, root2, root2, proof)
        case "huge size":
            if rng.random() < 0.5:
                return (size1, huge_size(rng), root1, root2, proof)
            return (huge_size(rng), size2, root1, root2, proof)
        case "negative size":
            return (-size1, size2, root1, root2, proof)
        case "another real proof":
            other2 = rng.randint(2, LOG_SIZE)
            other1 = rng.randint(1, other2 - 1)
            return (size1, size2, root1, root2, true_consistency(other1, other2))
    raise AssertionError(kind)


CONSISTENCY_KINDS = [
    *NODE_MUTATIONS,
    "flip a root1 bit",
    "flip a root2 bit",
    "hash of wrong length",
    "size1 plus or minus one",
    "size2 plus or minus one",
    "random size1",
    "random size2",
    "swap the sizes and roots",
    "swap the sizes only",
    "swap the roots only",
    "root2 as root1",
    "from the empty tree",
    "equal sizes",
    "huge size",
    "negative size",
    "another real proof",
]


def rejects(check: Callable[..., None], *args: Any) -> bool:
    try:
        check(*args)
    except ProofError:
        return True
    return False


def base_inclusion(rng: random.Random) -> Inclusion:
    size = rng.choice([rng.randint(1, 17), rng.randint(1, LOG_SIZE - 1)])
    index = rng.randrange(size)
    return (index, size, LEAVES[index], true_inclusion(index, size), ROOTS[size])


def base_consistency(rng: random.Random) -> Consistency:
    size2 = rng.choice([rng.randint(2, 17), rng.randint(2, LOG_SIZE - 1)])
    size1 = rng.randint(1, size2 - 1)
    return (size1, size2, ROOTS[size1], ROOTS[size2], true_consistency(size1, size2))


def test_no_forged_inclusion_proof_is_accepted() -> None:
    rng = random.Random(SEED)
    tried: Counter[str] = Counter()
    accepted: list[tuple[str, Inclusion]] = []
    dropped = 0
    while sum(tried.values()) < INCLUSION_MUTANTS:
        original = base_inclusion(rng)
        verify_inclusion(*original)
        kind = INCLUSION_KINDS[sum(tried.values()) % len(INCLUSION_KINDS)]
        mutant = mutate_inclusion(kind, original, rng)
        if mutant == original or inclusion_is_true(mutant):
            dropped += 1
            continue
        tried[kind] += 1
        if not rejects(verify_inclusion, *mutant):
            accepted.append((kind, mutant))
    assert accepted == []
    assert sum(tried.values()) == INCLUSION_MUTANTS
    assert set(tried) == set(INCLUSION_KINDS)
    assert dropped < INCLUSION_MUTANTS // 4


def test_no_forged_consistency_proof_is_accepted() -> None:
    rng = random.Random(SEED + 1)
    tried: Counter[str] = Counter()
    accepted: list[tuple[str, Consistency]] = []
    dropped = 0
    while sum(tried.values()) < CONSISTENCY_MUTANTS:
        original = base_consistency(rng)
        verify_consistency(*original)
        kind = CONSISTENCY_KINDS[sum(tried.values()) % len(CONSISTENCY_KINDS)]
        mutant = mutate_consistency(kind, original, rng)
        if mutant == original or consistency_is_true(mutant):
            dropped += 1
            continue
        tried[kind] += 1
        if not rejects(verify_consistency, *mutant):
            accepted.append((kind, mutant))
    assert accepted == []
    assert sum(tried.values()) == CONSISTENCY_MUTANTS
    assert set(tried) == set(CONSISTENCY_KINDS)
    assert dropped < CONSISTENCY_MUTANTS // 4


def keypair(seed: int) -> tuple[Ed25519PrivateKey, bytes]:
    private = Ed25519PrivateKey.from_private_bytes(random.Random(seed).randbytes(32))
    return private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


SIGNER, SIGNER_RAW = keypair(1)
COLLEAGUE, COLLEAGUE_RAW = keypair(2)
OUTSIDER, OUTSIDER_RAW = keypair(3)
TRUSTED = {key_id(SIGNER_RAW): SIGNER_RAW, key_id(COLLEAGUE_RAW): COLLEAGUE_RAW}
LOG_IDS = ["accord/tenant-a", "accord/tenant-b", "accord/ünïcode"]
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def canonical(head: Mapping[str, Any]) -> str:
    return json.dumps(head, sort_keys=True, default=repr)


def sign(private: Ed25519PrivateKey, head: Mapping[str, Any]) -> str:
    signed = sign_tree_head(
        private,
        log_id=head["log_id"],
        tree_size=head["tree_size"],
        timestamp_ms=head["timestamp"],
        root_hash=bytes.fromhex(head["root_hash"]),
    )
    return signed["signature"]


def base_heads(rng: random.Random) -> list[Head]:
    heads: list[Head] = []
    for number in range(64):
        size = rng.randint(0, LOG_SIZE)
        head = sign_tree_head(
            SIGNER,
            log_id=rng.choice(LOG_IDS),
            tree_size=size,
            timestamp_ms=1_700_000_000_000 + 1000 * number + rng.randrange(1000),
            root_hash=ROOTS[size],
        )
        heads.append(dict(head))
    return heads


def _flip_signature(signature: str, rng: random.Random) -> str:
    return base64.b64encode(flip(base64.b64decode(signature), rng)).decode()


def _non_canonical(head: Head, rng: random.Random) -> Head:
    choice = rng.randrange(4)
    if choice == 0:
        head["root_hash"] = head["root_hash"].upper()
    elif choice == 1:
        # The last data character of a 64-byte signature carries 4 padding bits; setting one
        # keeps the decoded bytes the same.
        signature = head["signature"]
        last = B64[B64.index(signature[85]) ^ (1 << rng.randrange(4))]
        head["signature"] = signature[:85] + last + signature[86:]
    elif choice == 2:
        head["signature"] = head["signature"].rstrip("=")
    else:
        head["key_id"] = head["key_id"].upper()
    return head


def _wrong_type(head: Head, rng: random.Random) -> Head:
    field = rng.choice(sorted(head))
    value = head[field]
    if isinstance(value, int):
        head[field] = rng.choice([str(value), float(value), None, [value], value == 0])
    else:
        head[field] = rng.choice([None, 7, [value], {"value": value}, value.encode()])
    return head


def mutate_head(
    kind: str, original: Head, heads: list[Head], rng: random.Random
) -> tuple[Head, Mapping[str, bytes]]:
    head = dict(original)
    keys: Mapping[str, bytes] = TRUSTED
    match kind:
        case "tree size plus or minus one":
            head["tree_size"] += rng.choice([-1, 1])
        case "random tree size":
            head["tree_size"] = rng.randrange(2**64)
        case "tree size at a bound":
            head["tree_size"] = rng.choice([0, 2**64 - 1])
        case "timestamp plus or minus one":
            head["timestamp"] += rng.choice([-1, 1])
        case "random timestamp":
            head["timestamp"] = rng.randrange(2**64)
        case "flip a root bit":
            head["root_hash"] = flip(bytes.fromhex(head["root_hash"]), rng).hex()
        case "random root":
            head["root_hash"] = random_hash(rng).hex()
        case "another size's real root":
            head["root_hash"] = rng.choice(ROOTS).hex()
        case "change a log id character":
            log_id = head["log_id"]
            position = rng.randrange(len(log_id))
            head["log_id"] = (
                log_id[:position] + chr(ord(log_id[position]) ^ 1) + log_id[position + 1 :]
            )
        case "extend the log id":
            head["log_id"] += rng.choice(["x", "/", " ", "\x00"])
        case "another log id":
            head["log_id"] = rng.choice(LOG_IDS)
        case "flip a signature bit":
            head["signature"] = _flip_signature(head["signature"], rng)
        case "random signature":
            head["signature"] = base64.b64encode(rng.randbytes(64)).decode()
        case "another head's signature":
            head["signature"] = rng.choice(heads)["signature"]
        case "key id of the other trusted key":
            head["key_id"] = key_id(COLLEAGUE_RAW)
        case "key id of an untrusted key":
            head["key_id"] = key_id(OUTSIDER_RAW)
        case "random key id":
            head["key_id"] = rng.randbytes(8).hex()
        case "signed by an untrusted key":
            head["signature"] = sign(OUTSIDER, head)
        case "signed and named by an untrusted key":
            head["signature"] = sign(OUTSIDER, head)
            head["key_id"] = key_id(OUTSIDER_RAW)
        case "signed by the other trusted key under this key id":
            head["signature"] = sign(COLLEAGUE, head)
        case "key list files an untrusted key under this key id":
            head["signature"] = sign(OUTSIDER, head)
            keys = {head["key_id"]: OUTSIDER_RAW}
        case "field of the wrong type":
            head = _wrong_type(head, rng)
        case "non-canonical encoding":
            head = _non_canonical(head, rng)
        case "missing field":
            del head[rng.choice(sorted(head))]
        case "extra field":
            head[rng.choice(["note", "tree_size2", "sth_extensions"])] = rng.choice(["", 0, []])
        case "out of range":
            field, value = rng.choice(
                [
                    ("tree_size", 2**64),
                    ("tree_size", -1),
                    ("timestamp", 2**64 + 5),
                    ("timestamp", -1),
                    ("log_id", ""),
                    ("log_id", "a" * 256),
                    ("log_id", "\ud800"),
                ]
            )
            head[field] = value
        case _:
            raise AssertionError(kind)
    return head, keys


HEAD_KINDS = [
    "tree size plus or minus one",
    "random tree size",
    "tree size at a bound",
    "timestamp plus or minus one",
    "random timestamp",
    "flip a root bit",
    "random root",
    "another size's real root",
    "change a log id character",
    "extend the log id",
    "another log id",
    "flip a signature bit",
    "random signature",
    "another head's signature",
    "key id of the other trusted key",
    "key id of an untrusted key",
    "random key id",
    "signed by an untrusted key",
    "signed and named by an untrusted key",
    "signed by the other trusted key under this key id",
    "key list files an untrusted key under this key id",
    "field of the wrong type",
    "non-canonical encoding",
    "missing field",
    "extra field",
    "out of range",
]


def test_no_forged_tree_head_is_accepted() -> None:
    rng = random.Random(SEED + 2)
    heads = base_heads(rng)
    genuine = {canonical(head) for head in heads}
    assert len(genuine) == len(heads)
    for head in heads:
        verify_tree_head(head, TRUSTED)
    tried: Counter[str] = Counter()
    accepted: list[tuple[str, Head]] = []
    dropped = 0
    while sum(tried.values()) < HEAD_MUTANTS:
        original = rng.choice(heads)
        kind = HEAD_KINDS[sum(tried.values()) % len(HEAD_KINDS)]
        mutant, keys = mutate_head(kind, original, heads, rng)
        if canonical(mutant) in genuine and keys is TRUSTED:
            dropped += 1
            continue
        tried[kind] += 1
        if not rejects(verify_tree_head, mutant, keys):
            accepted.append((kind, mutant))
    assert accepted == []
    assert sum(tried.values()) == HEAD_MUTANTS
    assert set(tried) == set(HEAD_KINDS)
    assert dropped < HEAD_MUTANTS // 10


def test_the_mutant_counts_add_up_to_over_100000() -> None:
    assert INCLUSION_MUTANTS + CONSISTENCY_MUTANTS + HEAD_MUTANTS == 106_000


def test_a_size_is_only_as_good_as_the_signed_head_that_pairs_it_with_a_root() -> None:
    """Why no mutant changes a size but keeps the old root.

    The paths to leaf 0 in trees of 5 and of 6 leaves chain the same way, so the proof for 5
    leaves, checked against size 6 and the root of 5, passes: no hash-level check can tell
    which size a bare root belongs to. Only the signed tree head binds the two, which is why an
    auditor must take size and root from the same verified head.
    """
    proof = true_inclusion(0, 5)
    verify_inclusion(0, 6, LEAVES[0], proof, ROOTS[5])
    assert rejects(verify_inclusion, 0, 6, LEAVES[0], proof, ROOTS[6])


def test_the_signed_bytes_are_the_documented_layout() -> None:
    root = bytes(range(32))
    expected = (
        b"accord signed tree head v1\n"
        + b"\x08accord/t"
        + (1_700_000_000_123).to_bytes(8, "big")
        + (5).to_bytes(8, "big")
        + b"\x20"
        + root
        + b"\x00\x00"
    )
    assert tree_head_message("accord/t", 5, 1_700_000_000_123, root) == expected
    head = sign_tree_head(
        SIGNER, log_id="accord/t", tree_size=5, timestamp_ms=1_700_000_000_123, root_hash=root
    )
    SIGNER.public_key().verify(base64.b64decode(head["signature"]), expected)
    assert head["key_id"] == hashlib.sha256(SIGNER_RAW).hexdigest()[:16]
    for log_id in ("", "x" * 256, "é" * 128):
        with pytest.raises(ValueError, match="log_id must be 1 to 255 bytes"):
            tree_head_message(log_id, 5, 0, root)
    with pytest.raises(ValueError, match="root_hash must be 32 bytes"):
        tree_head_message("accord/t", 5, 0, root[:31])
    with pytest.raises(ValueError, match="tree_size must be between 0 and 2\\*\\*64 - 1"):
        tree_head_message("accord/t", 2**64, 0, root)


def test_a_rejected_head_says_why() -> None:
    signed = sign_tree_head(
        SIGNER, log_id="accord/t", tree_size=3, timestamp_ms=7, root_hash=ROOTS[3]
    )
    head: Head = {**signed}
    verify_tree_head(head, TRUSTED)
    own_id = signed["key_id"]
    cases: list[tuple[Head, Mapping[str, bytes], str]] = [
        ({**head, "key_id": key_id(OUTSIDER_RAW)}, TRUSTED, "is not a trusted key"),
        (head, {own_id: COLLEAGUE_RAW}, "the key list is mislabelled"),
        (head, {own_id: b"short"}, "is not a raw 32-byte Ed25519 public key"),
        ({**head, "tree_size": 4}, TRUSTED, "does not verify with key"),
        ({**head, "root_hash": signed["root_hash"].upper()}, TRUSTED, "64 lowercase hex"),
        ({**head, "tree_size": "3"}, TRUSTED, "'tree_size' must be an integer"),
        ({**head, "tree_size": True}, TRUSTED, "'tree_size' must be an integer"),
        ({**head, "tree_size": -3}, TRUSTED, "malformed: tree_size must be between"),
        ({**head, "extra": 1}, TRUSTED, "unsigned extra field"),
        ({k: v for k, v in head.items() if k != "timestamp"}, TRUSTED, "missing field"),
        ({**head, "signature": signed["signature"][:-4]}, TRUSTED, "signature must be 64 bytes"),
        ({**head, "signature": "!" + signed["signature"][1:]}, TRUSTED, "not valid base64"),
    ]
    for mutant, keys, message in cases:
        with pytest.raises(ProofError, match=message):
            verify_tree_head(mutant, keys)
