"""Check Accord ledger evidence: Merkle proofs (RFC 9162) and signed tree heads.

This file stands alone. It imports only the Python standard library and ``cryptography`` so that
an auditor can copy it next to an evidence bundle and check the bundle without installing Accord.

The tree is the RFC 9162 §2.1 Merkle tree over SHA-256: a leaf hashes as
``SHA-256(0x00 || data)``, an inner node as ``SHA-256(0x01 || left || right)``, the empty tree as
``SHA-256("")``, and a tree of ``n > 1`` leaves splits after the largest power of two below ``n``.
Leaf indexes are 0-based.

Every check raises :class:`ProofError` with a message that says which check failed; nothing here
returns ``False``. The checks are strict on purpose: every hash that is hashed or rebuilt must be
exactly 32 bytes, every size and index an unsigned 64-bit integer, every proof exactly as long as
the tree shape demands, and a signed tree head must use one canonical JSON form, so that one
statement has one encoding. (Two trees of equal size, and the empty subtree, involve no hashing:
as in the reference verifier, only equality with the other root, or with the empty root, is
checked there.)

Subtree proofs follow the Merkle Tree Certificates draft (draft-ietf-plants-merkle-tree-certs):
the leaf range ``[start, end)`` is a subtree when ``start`` is a multiple of the smallest power of
two that is at least ``end - start`` (any range starting at 0 qualifies). Such a range is shaped
like a whole tree of ``end - start`` leaves, and its hash is that tree's root.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import struct
import sys
from collections.abc import Mapping, Sequence
from typing import TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "BUNDLE_FORMAT",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ProofError",
    "SignedTreeHead",
    "key_id",
    "leaf_hash",
    "node_hash",
    "sign_tree_head",
    "tree_head_message",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
    "verify_tree_head",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_MAX_UINT64 = 2**64 - 1
_TREE_HEAD_CONTEXT = b"accord signed tree head v1\n"
_TREE_HEAD_FIELDS = frozenset(
    {"log_id", "tree_size", "timestamp", "root_hash", "key_id", "signature"}
)
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_HEX_KEY_ID = re.compile(r"[0-9a-f]{16}")
_SIGNATURE_SIZE = 64
_PUBLIC_KEY_SIZE = 32


class ProofError(ValueError):
    """Evidence failed verification; the message names the check that failed."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf's data: ``SHA-256(0x00 || data)`` (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _uint64_problem(name: str, value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an integer, got {type(value).__name__}"
    if not 0 <= value <= _MAX_UINT64:
        return f"{name} must be between 0 and 2**64 - 1, got {value}"
    return None


def _hash_problem(name: str, value: object) -> str | None:
    if not isinstance(value, bytes):
        return f"{name} must be bytes, got {type(value).__name__}"
    if len(value) != HASH_SIZE:
        return f"{name} must be {HASH_SIZE} bytes, got {len(value)}"
    return None


def _check_uint64(**values: object) -> None:
    for name, value in values.items():
        problem = _uint64_problem(name, value)
        if problem:
            raise ProofError(problem)


def _check_hashes(**values: object) -> None:
    for name, value in values.items():
        problem = _hash_problem(name, value)
        if problem:
            raise ProofError(problem)


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    # A bytes object is a Sequence too; taken as a proof it would read as a list of integers.
    if isinstance(proof, bytes | bytearray | str) or not isinstance(proof, Sequence):
        raise ProofError(f"proof must be a sequence of hashes, got {type(proof).__name__}")
    nodes = list(proof)
    for position, node in enumerate(nodes):
        problem = _hash_problem(f"proof[{position}]", node)
        if problem:
            raise ProofError(problem)
    return nodes


def _short(digest: bytes) -> str:
    return digest.hex()[:16]


def _inclusion_length(index: int, size: int) -> int:
    # Below level `inner` the path to `index` has a sibling at every level; above it the path
    # runs along the right edge and has a (left) sibling only where `index` has a 1 bit.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_length(size1: int, size2: int) -> int:
    # The proof is the inclusion path of leaf size1 - 1 in the new tree, from the level of the
    # last perfect subtree of the old tree upward, led by that subtree's hash unless it is the
    # whole old tree (then the verifier already holds it as root1).
    low = (size1 & -size1).bit_length() - 1
    fork = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> fork).bit_count()
    seed = 0 if size1 == 1 << low else 1
    return seed + (fork - low) + border


def _chain_inclusion(index: int, size: int, seed: bytes, path: Sequence[bytes]) -> bytes:
    """Run RFC 9162 §2.1.3.2 and return the root the path leads to."""
    fn, sn = index, size - 1
    result = seed
    for node in path:
        if sn == 0:
            raise ProofError("inclusion proof has more nodes than the path to the root")
        if fn & 1 or fn == sn:
            result = node_hash(node, result)
            while fn != 0 and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof has fewer nodes than the path to the root")
    return result


def _chain_consistency(
    size1: int, size2: int, root1: bytes, path: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Run RFC 9162 §2.1.4.2 for ``0 < size1 < size2``; return the two roots it rebuilds."""
    if not path:
        raise ProofError(f"consistency proof from size {size1} to {size2} must not be empty")
    nodes = list(path)
    if size1 & (size1 - 1) == 0:
        # The old tree is one perfect subtree of the new one, so its root is the proof's seed.
        nodes.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = nodes[0]
    for node in nodes[1:]:
        if sn == 0:
            raise ProofError("consistency proof has more nodes than the trees have levels")
        if fn & 1 or fn == sn:
            first = node_hash(node, first)
            second = node_hash(node, second)
            while fn != 0 and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof has fewer nodes than the trees have levels")
    return first, second


def _check_length(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{what} must have {expected} nodes, got {len(proof)}")


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that a leaf is in a tree (RFC 9162 §2.1.3.2).

    Args:
        leaf_index: 0-based index of the leaf.
        tree_size: Number of leaves in the tree whose root is ``root``.
        leaf_hash: The leaf's hash, ``leaf_hash(data)``.
        proof: The inclusion path, lowest sibling first.
        root: The tree's root hash, as its signed tree head gives it.

    Raises:
        ProofError: An argument is malformed, the index is outside the tree, the proof has the
            wrong number of nodes, or it does not lead to ``root``.
    """
    _check_uint64(leaf_index=leaf_index, tree_size=tree_size)
    _check_hashes(leaf_hash=leaf_hash, root=root)
    path = _check_proof(proof)
    if leaf_index >= tree_size:
        raise ProofError(f"leaf index {leaf_index} is outside a tree of size {tree_size}")
    _check_length(
        path,
        _inclusion_length(leaf_index, tree_size),
        f"inclusion proof for leaf {leaf_index} in a tree of size {tree_size}",
    )
    computed = _chain_inclusion(leaf_index, tree_size, leaf_hash, path)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {leaf_index} leads to root {_short(computed)}…, "
            f"not to the root {_short(root)}… of the tree of size {tree_size}"
        )


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size2`` leaves extends the tree of ``size1`` (RFC 9162 §2.1.4.2).

    Equal sizes need an empty proof and equal roots. The empty tree (``size1 == 0``) is a prefix
    of every tree: its proof is empty and ``root1`` must be :data:`EMPTY_ROOT`.

    Args:
        size1: Size of the older tree.
        size2: Size of the newer tree.
        root1: Root hash of the older tree.
        root2: Root hash of the newer tree.
        proof: The consistency proof, as RFC 9162 §2.1.4.1 orders it.

    Raises:
        ProofError: An argument is malformed, ``size1 > size2``, the proof has the wrong number
            of nodes, or it does not rebuild both roots.
    """
    _check_uint64(size1=size1, size2=size2)
    path = _check_proof(proof)
    if size1 > size2:
        raise ProofError(
            f"size1 {size1} is larger than size2 {size2}: a log only grows, so put the older "
            "tree first"
        )
    if size1 == 0 and root1 != EMPTY_ROOT:
        raise ProofError(f"root1 {_short(root1)}… is not the root of the empty tree")
    if size1 == size2:
        # Nothing is hashed: the claim is only that both roots are one and the same value, as
        # in the reference verifier (transparency-dev/merkle), whose probes accept it for any
        # byte string. Callers that need a well-formed root check it where they read it.
        _check_length(path, 0, f"consistency proof between two trees of size {size1}")
        if root1 != root2:
            raise ProofError(
                f"two trees of size {size1} have different roots "
                f"{_short(root1)}… and {_short(root2)}…"
            )
        return
    _check_hashes(root1=root1, root2=root2)
    if size1 == 0:
        _check_length(path, 0, "consistency proof from the empty tree")
        return
    _check_length(
        path,
        _consistency_length(size1, size2),
        f"consistency proof from size {size1} to {size2}",
    )
    first, second = _chain_consistency(size1, size2, root1, path)
    if first != root1:
        raise ProofError(
            f"consistency proof rebuilds {_short(first)}… for the tree of size {size1}, "
            f"not its root {_short(root1)}…"
        )
    if second != root2:
        raise ProofError(
            f"consistency proof rebuilds {_short(second)}… for the tree of size {size2}, "
            f"not its root {_short(root2)}…"
        )


def _check_subtree(start: int, end: int) -> None:
    if start > end:
        raise ProofError(f"subtree [{start}, {end}) ends before it starts")
    if start in (0, end):
        return
    length = end - start
    span = 1 << (length - 1).bit_length()
    if start % span:
        raise ProofError(
            f"[{start}, {end}) is not a subtree: its start must be a multiple of {span}, "
            f"the smallest power of two at least its length {length}"
        )


def verify_subtree_inclusion(
    leaf_index: int,
    start: int,
    end: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root: bytes,
) -> None:
    """Check that a leaf is in the subtree of leaves ``[start, end)``.

    The subtree is shaped like a tree of ``end - start`` leaves, so the proof is the RFC 9162
    inclusion path of leaf ``leaf_index - start`` in that tree.

    Args:
        leaf_index: 0-based index of the leaf in the whole log.
        start: First leaf of the subtree.
        end: One past the last leaf of the subtree.
        leaf_hash: The leaf's hash.
        proof: The inclusion path inside the subtree, lowest sibling first.
        root: The subtree's hash.

    Raises:
        ProofError: An argument is malformed, ``[start, end)`` is not a non-empty subtree, the
            leaf lies outside it, or the proof does not lead to ``root``.
    """
    _check_uint64(leaf_index=leaf_index, start=start, end=end)
    _check_hashes(leaf_hash=leaf_hash, root=root)
    path = _check_proof(proof)
    _check_subtree(start, end)
    if not start <= leaf_index < end:
        raise ProofError(f"leaf index {leaf_index} is outside the subtree [{start}, {end})")
    index, size = leaf_index - start, end - start
    _check_length(
        path,
        _inclusion_length(index, size),
        f"inclusion proof for leaf {leaf_index} in the subtree [{start}, {end})",
    )
    computed = _chain_inclusion(index, size, leaf_hash, path)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {leaf_index} leads to {_short(computed)}…, "
            f"not to the hash {_short(root)}… of the subtree [{start}, {end})"
        )


def verify_subtree_consistency(
    start: int,
    end: int,
    tree_size: int,
    subtree_root: bytes,
    tree_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the subtree ``[start, end)`` is part of the tree of ``tree_size`` leaves.

    With ``start == 0`` this is :func:`verify_consistency` from ``end`` to ``tree_size``. An
    empty subtree is part of every tree: its proof is empty and its hash is :data:`EMPTY_ROOT`.

    Otherwise let ``span`` be the smallest power of two at least ``end - start``. The subtree
    is the left part of the tree node ``A`` that starts at ``start`` and covers ``span`` leaves
    (fewer if the tree ends first). The proof is the RFC 9162 consistency proof from
    ``end - start`` to the size of ``A`` inside ``A`` (nothing when the subtree is ``A``), then
    the inclusion path of ``A`` in the tree. This is the layout of the draft's
    ``SUBTREE_PROOF(start, end, D_n)``.

    Args:
        start: First leaf of the subtree.
        end: One past the last leaf of the subtree.
        tree_size: Size of the tree whose root is ``tree_root``.
        subtree_root: The subtree's hash.
        tree_root: The tree's root hash.
        proof: The subtree consistency proof.

    Raises:
        ProofError: An argument is malformed, ``[start, end)`` is not a subtree of the tree,
            the proof has the wrong number of nodes, or it does not rebuild both hashes.
    """
    _check_uint64(start=start, end=end, tree_size=tree_size)
    path = _check_proof(proof)
    _check_subtree(start, end)
    if end > tree_size:
        raise ProofError(f"subtree [{start}, {end}) ends past the tree of size {tree_size}")
    if start == end:
        # the empty subtree is part of every tree: the tree root plays no part, as upstream
        _check_length(path, 0, f"consistency proof for the empty subtree [{start}, {end})")
        if subtree_root != EMPTY_ROOT:
            raise ProofError(
                f"subtree_root {_short(subtree_root)}… is not the hash of the empty subtree "
                f"[{start}, {end})"
            )
        return
    if start == 0:
        verify_consistency(end, tree_size, subtree_root, tree_root, path)
        return
    _check_hashes(subtree_root=subtree_root, tree_root=tree_root)
    length = end - start
    level = (length - 1).bit_length()
    anchor_size = min(1 << level, tree_size - start)
    inner = 0 if length == anchor_size else _consistency_length(length, anchor_size)
    # Seen from A's level the tree has ceil(tree_size / span) nodes, A among them at index
    # start >> level, so the rest of the proof is an ordinary inclusion path for A.
    outer_index, outer_size = start >> level, ((tree_size - 1) >> level) + 1
    _check_length(
        path,
        inner + _inclusion_length(outer_index, outer_size),
        f"consistency proof for the subtree [{start}, {end}) in a tree of size {tree_size}",
    )
    anchor = subtree_root
    if inner:
        first, anchor = _chain_consistency(length, anchor_size, subtree_root, path[:inner])
        if first != subtree_root:
            raise ProofError(
                f"consistency proof rebuilds {_short(first)}… for the subtree "
                f"[{start}, {end}), not its hash {_short(subtree_root)}…"
            )
    computed = _chain_inclusion(outer_index, outer_size, anchor, path[inner:])
    if computed != tree_root:
        raise ProofError(
            f"consistency proof for the subtree [{start}, {end}) leads to root "
            f"{_short(computed)}…, not to the root {_short(tree_root)}… of the tree of size "
            f"{tree_size}"
        )


class SignedTreeHead(TypedDict):
    """A signed tree head as JSON: what :func:`sign_tree_head` returns and auditors check."""

    log_id: str
    tree_size: int
    timestamp: int
    root_hash: str
    key_id: str
    signature: str


def tree_head_message(log_id: str, tree_size: int, timestamp_ms: int, root_hash: bytes) -> bytes:
    """The exact bytes a tree head signature covers.

    They are the context string ``b"accord signed tree head v1\\n"``, a 1-byte length and the
    UTF-8 ``log_id``, then the RFC 9162 §4.10 ``TreeHeadDataV2`` in TLS encoding: uint64
    timestamp, uint64 tree size, the root hash with a 1-byte length prefix, and an empty
    ``sth_extensions`` (2-byte zero length).

    Args:
        log_id: Name of the log, 1 to 255 bytes of UTF-8.
        tree_size: Number of leaves.
        timestamp_ms: When the head was produced, in milliseconds since the Unix epoch.
        root_hash: The tree's 32-byte root hash.

    Raises:
        ValueError: An argument is out of range or malformed.
    """
    if not isinstance(log_id, str):
        raise ValueError(f"log_id must be a string, got {type(log_id).__name__}")
    try:
        encoded = log_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"log_id {log_id!r} cannot be encoded as UTF-8") from exc
    if not 1 <= len(encoded) <= 255:
        raise ValueError(f"log_id must be 1 to 255 bytes of UTF-8, got {len(encoded)}")
    for problem in (
        _uint64_problem("tree_size", tree_size),
        _uint64_problem("timestamp_ms", timestamp_ms),
        _hash_problem("root_hash", root_hash),
    ):
        if problem:
            raise ValueError(problem)
    return b"".join(
        (
            _TREE_HEAD_CONTEXT,
            bytes((len(encoded),)),
            encoded,
            struct.pack(">QQ", timestamp_ms, tree_size),
            bytes((HASH_SIZE,)),
            root_hash,
            b"\x00\x00",
        )
    )


def key_id(public_key_raw: bytes) -> str:
    """Name an Ed25519 public key: the first 8 bytes of SHA-256 of its raw form, as hex.

    Raises:
        ValueError: ``public_key_raw`` is not 32 bytes.
    """
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != _PUBLIC_KEY_SIZE:
        raise ValueError("an Ed25519 public key is 32 raw bytes")
    return hashlib.sha256(public_key_raw).digest()[:8].hex()


def sign_tree_head(
    private_key: Ed25519PrivateKey,
    *,
    log_id: str,
    tree_size: int,
    timestamp_ms: int,
    root_hash: bytes,
) -> SignedTreeHead:
    """Sign a tree head with an Ed25519 key.

    Args:
        private_key: The log's signing key.
        log_id: Name of the log, 1 to 255 bytes of UTF-8.
        tree_size: Number of leaves.
        timestamp_ms: Milliseconds since the Unix epoch.
        root_hash: The tree's 32-byte root hash.

    Returns:
        The JSON object auditors check with :func:`verify_tree_head`.

    Raises:
        ValueError: An argument is out of range or malformed.
    """
    message = tree_head_message(log_id, tree_size, timestamp_ms, root_hash)
    public_raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "log_id": log_id,
        "tree_size": tree_size,
        "timestamp": timestamp_ms,
        "root_hash": root_hash.hex(),
        "key_id": key_id(public_raw),
        "signature": base64.b64encode(private_key.sign(message)).decode("ascii"),
    }


def _head_str(head: Mapping[str, object], name: str) -> str:
    value = head[name]
    if not isinstance(value, str):
        raise ProofError(
            f"signed tree head field {name!r} must be a string, got {type(value).__name__}"
        )
    return value


def _head_int(head: Mapping[str, object], name: str) -> int:
    value = head[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(
            f"signed tree head field {name!r} must be an integer, got {type(value).__name__}"
        )
    return value


def _decode_signature(text: str) -> bytes:
    try:
        signature = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProofError("signed tree head field 'signature' is not valid base64") from exc
    # Non-canonical base64 (stray padding bits) decodes to the same bytes; refusing it keeps
    # one encoding per signature.
    if base64.b64encode(signature).decode("ascii") != text:
        raise ProofError("signed tree head field 'signature' is not canonical base64")
    if len(signature) != _SIGNATURE_SIZE:
        raise ProofError(
            f"signed tree head signature must be {_SIGNATURE_SIZE} bytes, got {len(signature)}"
        )
    return signature


def verify_tree_head(head: Mapping[str, object], public_keys: Mapping[str, bytes]) -> None:
    """Check a signed tree head against the log's trusted Ed25519 keys.

    Args:
        head: The JSON object ``{"log_id", "tree_size", "timestamp", "root_hash", "key_id",
            "signature"}``; ``timestamp`` is in milliseconds, ``root_hash`` lowercase hex and
            ``signature`` standard base64. Other fields are refused, since the signature would
            not cover them.
        public_keys: Trusted keys: key id to raw 32-byte Ed25519 public key.

    Raises:
        ProofError: A field is missing, extra or malformed; the key id is not trusted or does
            not name the key listed under it; or the signature does not verify.
    """
    if not isinstance(head, Mapping):
        raise ProofError(f"signed tree head must be a JSON object, got {type(head).__name__}")
    missing = sorted(_TREE_HEAD_FIELDS - head.keys())
    if missing:
        raise ProofError(f"signed tree head is missing field(s) {', '.join(missing)}")
    extra = sorted(str(name) for name in head.keys() - _TREE_HEAD_FIELDS)
    if extra:
        raise ProofError(f"signed tree head has unsigned extra field(s) {', '.join(extra)}")

    log_id = _head_str(head, "log_id")
    tree_size = _head_int(head, "tree_size")
    timestamp = _head_int(head, "timestamp")
    root_text = _head_str(head, "root_hash")
    kid = _head_str(head, "key_id")
    signature_text = _head_str(head, "signature")

    if not _HEX_HASH.fullmatch(root_text):
        raise ProofError("signed tree head field 'root_hash' must be 64 lowercase hex digits")
    if not _HEX_KEY_ID.fullmatch(kid):
        raise ProofError("signed tree head field 'key_id' must be 16 lowercase hex digits")
    signature = _decode_signature(signature_text)
    try:
        message = tree_head_message(log_id, tree_size, timestamp, bytes.fromhex(root_text))
    except ValueError as exc:
        raise ProofError(f"signed tree head is malformed: {exc}") from exc

    if kid not in public_keys:
        trusted = ", ".join(sorted(public_keys)) or "none"
        raise ProofError(
            f"signed tree head of log {log_id!r} at size {tree_size} names key id {kid}, "
            f"which is not a trusted key (trusted: {trusted})"
        )
    public_raw = public_keys[kid]
    try:
        listed_id = key_id(public_raw)
    except ValueError as exc:
        raise ProofError(f"trusted key {kid} is not a raw 32-byte Ed25519 public key") from exc
    if listed_id != kid:
        raise ProofError(
            f"trusted key listed under id {kid} has key id {listed_id}: the key list is mislabelled"
        )
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except InvalidSignature:
        raise ProofError(
            f"signature on the tree head of log {log_id!r} at size {tree_size} does not verify "
            f"with key {kid}: the head was altered or signed by another key"
        ) from None


# -- evidence bundles --------------------------------------------------------------------------

BUNDLE_FORMAT = "accord-evidence/1"


def _bundle_keys(
    bundle: Mapping[str, object], trusted_keys: Sequence[str] | None
) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    if trusted_keys is not None:
        for i, text in enumerate(trusted_keys):
            raw = _public_key(text, f"trusted key {i}")
            keys[key_id(raw)] = raw
        return keys
    stated = bundle.get("public_keys")
    if not isinstance(stated, dict) or not stated:
        raise ProofError("the bundle lists no public keys; pass the log's keys with --key")
    for stated_id, text in stated.items():
        raw = _public_key(text, f"public key {stated_id!r}")
        if key_id(raw) != stated_id:
            raise ProofError(f"public key {stated_id!r} has key id {key_id(raw)}")
        keys[stated_id] = raw
    return keys


def _public_key(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProofError(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProofError(f"{what} is not valid base64") from exc
    if len(raw) != _PUBLIC_KEY_SIZE:
        raise ProofError(f"{what} has {len(raw)} bytes, expected {_PUBLIC_KEY_SIZE}")
    return raw


def _hex_list(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise ProofError(f"{what} is not a list of hex hashes")
    hashes = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not _HEX_HASH.fullmatch(item):
            raise ProofError(f"{what}[{i}] is not a 64-digit lowercase hex hash")
        hashes.append(bytes.fromhex(item))
    return hashes


def _selected(envelope: Mapping[str, object], selection: Mapping[str, object]) -> bool:
    run, subject = selection.get("run"), selection.get("subject")
    since, until = selection.get("since"), selection.get("until")
    at = envelope.get("at")
    if run is not None and envelope.get("run") != run:
        return False
    if subject is not None and envelope.get("subject") != subject:
        return False
    if not isinstance(at, int | float):
        return False
    if isinstance(since, int | float) and at < since:
        return False
    return not (isinstance(until, int | float) and at >= until)


def verify_bundle(
    bundle: Mapping[str, object], *, trusted_keys: Sequence[str] | None = None
) -> str:
    """Check an evidence bundle without Accord or its database.

    Checks that the tree head is signed by a trusted key (``trusted_keys``, base64 raw Ed25519
    public keys; by default the keys the bundle carries, which is only as good as where the
    bundle came from), that every entry is included in that head's tree, belongs to the log's
    tenant and matches the bundle's selection, and that every earlier head is consistent with
    the newest one.

    Returns:
        A one-line summary of what was proved.

    Raises:
        ProofError: anything fails; the message names the entry or head.
    """
    if bundle.get("format") != BUNDLE_FORMAT:
        raise ProofError(f"not an evidence bundle of format {BUNDLE_FORMAT!r}")
    keys = _bundle_keys(bundle, trusted_keys)
    head = bundle.get("tree_head")
    if not isinstance(head, dict):
        raise ProofError("the bundle has no tree_head")
    verify_tree_head(head, keys)
    log_id = head["log_id"]
    if bundle.get("log_id") != log_id:
        raise ProofError(f"the tree head is for log {log_id!r}, not {bundle.get('log_id')!r}")
    size = int(head["tree_size"])
    root = bytes.fromhex(str(head["root_hash"]))
    tenant = bundle.get("tenant")
    selection = bundle.get("selection")
    if not isinstance(selection, dict):
        raise ProofError("the bundle has no selection")
    entries = bundle.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ProofError("the bundle holds no entries")
    seen: set[int] = set()
    for position, item in enumerate(entries):
        if not isinstance(item, dict):
            raise ProofError(f"entries[{position}] is not an object")
        index, text = item.get("index"), item.get("entry")
        if not isinstance(index, int) or isinstance(index, bool) or not isinstance(text, str):
            raise ProofError(f"entries[{position}] needs an integer index and an entry string")
        if index in seen:
            raise ProofError(f"entry {index} appears twice")
        seen.add(index)
        data = text.encode("utf-8")
        try:
            envelope = json.loads(data)
        except ValueError as exc:
            raise ProofError(f"entry {index} is not JSON: {exc}") from exc
        if not isinstance(envelope, dict) or envelope.get("tenant") != tenant:
            raise ProofError(f"entry {index} does not belong to tenant {tenant!r}")
        if not _selected(envelope, selection):
            raise ProofError(f"entry {index} does not match the bundle's selection {selection}")
        proof = _hex_list(item.get("inclusion_proof"), f"entry {index} inclusion_proof")
        try:
            verify_inclusion(index, size, leaf_hash(data), proof, root)
        except ProofError as exc:
            raise ProofError(f"entry {index} is not in the signed tree: {exc}") from exc
    earlier = bundle.get("earlier_heads") or []
    if not isinstance(earlier, list):
        raise ProofError("earlier_heads is not a list")
    for position, item in enumerate(earlier):
        if not isinstance(item, dict) or not isinstance(item.get("head"), dict):
            raise ProofError(f"earlier_heads[{position}] has no head")
        old = item["head"]
        where = f"earlier head at size {old.get('tree_size')}"
        try:
            verify_tree_head(old, keys)
        except ProofError as exc:
            raise ProofError(f"{where}: {exc}") from exc
        if old["log_id"] != log_id:
            raise ProofError(f"{where} is for another log ({old['log_id']!r})")
        proof = _hex_list(item.get("consistency_proof"), f"{where} consistency_proof")
        try:
            verify_consistency(
                int(old["tree_size"]), size, bytes.fromhex(str(old["root_hash"])), root, proof
            )
        except ProofError as exc:
            raise ProofError(f"{where} is not consistent with the newest head: {exc}") from exc
    return (
        f"{len(entries)} entries included in {log_id} at tree size {size} (signed by key "
        f"{head['key_id']}); {len(earlier)} earlier heads consistent with it"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python verifier.py BUNDLE [--key BASE64]...``: exit 0 when the bundle verifies."""
    parser = argparse.ArgumentParser(description="Check an Accord evidence bundle.")
    parser.add_argument("bundle", help="the bundle file (JSON)")
    parser.add_argument(
        "--key",
        action="append",
        help="a trusted Ed25519 public key, base64 (repeatable; default: the bundle's keys)",
    )
    args = parser.parse_args(argv)
    try:
        with open(args.bundle, encoding="utf-8") as handle:
            bundle = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.bundle}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(bundle, dict):
        print(f"{args.bundle} is not a JSON object", file=sys.stderr)
        return 2
    try:
        summary = verify_bundle(bundle, trusted_keys=args.key)
    except ProofError as exc:
        print(f"REJECTED: {exc}", file=sys.stderr)
        return 1
    if args.key is None:
        print("note: keys taken from the bundle itself; pin the log's keys with --key")
    print(f"OK: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
