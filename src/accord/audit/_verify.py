"""Whole-ledger verification: recompute every leaf and node, check every signed head.

What is checked, for one tenant's log:

- entries are numbered 0..n-1 without gaps; each is canonical JSON (RFC 8785) whose kind,
  time, run, subject and tenant agree with the columns it is found by;
- each entry's leaf hash, and every stored node, equal what the entries recompute to;
- the tree state (size and right edge) equals the recomputed tree;
- every signed tree head names this log, is signed by a trusted key, and its root equals the
  recomputed root of the tree at its size.

Problems are reported with the position of the first entry they affect, so the first bad entry
is named even when several checks trip over it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import rfc8785
from sqlalchemy.engine import Connection

from accord.audit._ledger import SignedHead
from accord.audit.verifier import EMPTY_ROOT, ProofError, leaf_hash, node_hash, verify_tree_head
from accord.storage import Database
from accord.storage import ledger as stored

ProblemKind = Literal[
    "entry_missing",
    "entry_unreadable",
    "entry_not_canonical",
    "entry_mismatch",
    "leaf_missing",
    "leaf_mismatch",
    "node_missing",
    "node_mismatch",
    "node_unexpected",
    "state_mismatch",
    "head_log_id",
    "head_untrusted_key",
    "head_signature",
    "head_beyond_ledger",
    "head_root_mismatch",
]

_MAX_PROBLEMS = 200
_HASH = 32


# Problems that only bound where the damage is (a root that does not match says some entry in
# a range differs, not which): they name the first bad entry only when nothing more precise does.
# A missing node is one too: the tree the entries now make may need nodes the store never had
# (an entry inserted), so the entry-level finding, when there is one, names the entry.
_BOUNDS: frozenset[str] = frozenset({"head_root_mismatch", "state_mismatch", "node_missing"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing verification found wrong. ``index`` is the first entry it affects."""

    kind: ProblemKind
    index: int | None
    message: str

    @property
    def exact(self) -> bool:
        """Whether ``index`` is the bad entry itself, not the start of a range holding it."""
        return self.index is not None and self.kind not in _BOUNDS

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": self.index, "message": self.message}


@dataclass(slots=True)
class VerifyReport:
    """The outcome of verifying one tenant's ledger."""

    tenant: str
    log_id: str
    entries: int = 0
    nodes: int = 0
    heads: int = 0
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False
    unsigned_tail: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The problem that names the first bad entry: the exact one at the lowest position,
        else the lowest range, else one without a position (a head's signature, say)."""
        if not self.problems:
            return None
        return min(self.problems, key=_first_order)

    def add(self, kind: ProblemKind, index: int | None, message: str) -> None:
        if len(self.problems) >= _MAX_PROBLEMS:
            self.truncated = True
            return
        self.problems.append(Problem(kind, index, message))

    def to_json(self) -> dict[str, Any]:
        first = self.first
        return {
            "tenant": self.tenant,
            "log_id": self.log_id,
            "ok": self.ok,
            "entries": self.entries,
            "nodes": self.nodes,
            "heads": self.heads,
            "unsigned_tail": self.unsigned_tail,
            "first_problem": None if first is None else first.to_json(),
            "problems": [p.to_json() for p in sorted(self.problems, key=_order)],
            "problems_truncated": self.truncated,
        }


def _order(p: Problem) -> tuple[bool, int]:
    return (p.index is None, p.index or 0)


def _first_order(p: Problem) -> tuple[int, int]:
    return (0 if p.exact else 1 if p.index is not None else 2, p.index or 0)


class _Levels:
    """Recomputed node hashes, one packed bytearray per level."""

    def __init__(self) -> None:
        self.levels: list[bytearray] = [bytearray()]
        # stored nodes that differ from the recomputed ones, per level
        self.bad: dict[int, set[int]] = {}

    def add_leaf(self, digest: bytes) -> None:
        self.levels[0] += digest

    def build(self) -> None:
        level = 0
        while len(self.levels[level]) >= 2 * _HASH:
            below = self.levels[level]
            above = bytearray()
            for i in range(0, len(below) - _HASH, 2 * _HASH):
                above += node_hash(
                    bytes(below[i : i + _HASH]), bytes(below[i + _HASH : i + 2 * _HASH])
                )
            self.levels.append(above)
            level += 1

    def get(self, level: int, idx: int) -> bytes | None:
        if level >= len(self.levels):
            return None
        data = self.levels[level]
        start = idx * _HASH
        if start + _HASH > len(data):
            return None
        return bytes(data[start : start + _HASH])

    @property
    def size(self) -> int:
        return len(self.levels[0]) // _HASH

    def root(self, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        parts: list[bytes] = []
        start = 0
        for level in reversed(range(size.bit_length())):
            if size & (1 << level):
                digest = self.get(level, start >> level)
                assert digest is not None
                parts.append(digest)
                start += 1 << level
        root = parts[-1]
        for part in reversed(parts[:-1]):
            root = node_hash(part, root)
        return root

    def frontier(self, size: int) -> list[str]:
        hashes = []
        start = 0
        for level in reversed(range(size.bit_length())):
            if size & (1 << level):
                digest = self.get(level, start >> level)
                assert digest is not None
                hashes.append(digest.hex())
                start += 1 << level
        return hashes


_ZERO = bytes(_HASH)


def verify_ledger(
    db: Database,
    tenant: str,
    *,
    log_id: str,
    trusted: Mapping[str, bytes],
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify one tenant's whole ledger in a consistent read snapshot."""
    report = VerifyReport(tenant, log_id)
    with db.read() as connection:
        levels = _check_entries(connection, tenant, report, progress)
        levels.build()
        _check_nodes(connection, tenant, levels, report)
        _check_state(connection, tenant, levels, report)
        _check_heads(connection, tenant, levels, report, log_id=log_id, trusted=trusted)
    return report


def _check_entries(
    connection: Connection,
    tenant: str,
    report: VerifyReport,
    progress: Callable[[int], None] | None,
) -> _Levels:
    levels = _Levels()
    levels.bad[0] = set()
    expected = 0
    for row, stored_leaf in stored.stream_entries(connection, tenant):
        if row.idx > expected:
            # rows come in index order and indexes are unique, so a jump is the only disorder
            report.add(
                "entry_missing",
                expected,
                f"entries {expected}..{row.idx - 1} are missing (the next stored entry is "
                f"{row.idx})",
            )
            for _ in range(expected, row.idx):
                levels.add_leaf(_ZERO)
        digest = leaf_hash(row.entry)
        _check_entry(tenant, row, report)
        if stored_leaf != digest:
            levels.bad[0].add(row.idx)
        if stored_leaf is None:
            report.add("leaf_missing", row.idx, f"entry {row.idx} has no stored leaf hash")
        elif stored_leaf != digest:
            report.add(
                "leaf_mismatch",
                row.idx,
                f"entry {row.idx} does not hash to its stored leaf hash: its bytes or its "
                "leaf hash were changed",
            )
        levels.add_leaf(digest)
        expected = row.idx + 1
        report.entries += 1
        if progress is not None and report.entries % 10000 == 0:
            progress(report.entries)
    return levels


def _check_entry(tenant: str, row: stored.EntryRow, report: VerifyReport) -> None:
    try:
        envelope = json.loads(row.entry)
    except (UnicodeDecodeError, ValueError) as exc:
        report.add("entry_unreadable", row.idx, f"entry {row.idx} is not JSON: {exc}")
        return
    if not isinstance(envelope, dict):
        report.add("entry_unreadable", row.idx, f"entry {row.idx} is not a JSON object")
        return
    try:
        canonical = rfc8785.dumps(envelope)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        report.add("entry_not_canonical", row.idx, f"entry {row.idx} cannot be canonical: {exc}")
        return
    if canonical != row.entry:
        report.add(
            "entry_not_canonical",
            row.idx,
            f"entry {row.idx} is not in RFC 8785 canonical form",
        )
    columns = {
        "tenant": tenant,
        "kind": row.kind,
        "at": row.at,
        "run": row.run_id,
        "subject": row.subject_id,
    }
    for name, value in columns.items():
        if envelope.get(name) != value:
            report.add(
                "entry_mismatch",
                row.idx,
                f"entry {row.idx}: the stored {name} column is {value!r} but the entry says "
                f"{envelope.get(name)!r}",
            )


def _check_nodes(
    connection: Connection, tenant: str, levels: _Levels, report: VerifyReport
) -> None:
    size = levels.size
    seen = {level: 0 for level in range(len(levels.levels))}
    for level, idx, digest in stored.stream_nodes(connection, tenant):
        report.nodes += 1
        first = idx << level
        want = levels.get(level, idx)
        if want is None:
            report.add(
                "node_unexpected",
                min(first, size),
                f"stored node ({level}, {idx}) covers entries {first}..{first + (1 << level) - 1},"
                f" beyond the {size} entries stored",
            )
            continue
        expected = seen.get(level, 0)
        if idx > expected:
            report.add(
                "node_missing",
                expected << level,
                f"stored nodes ({level}, {expected}..{idx - 1}) are missing",
            )
        seen[level] = idx + 1
        if digest == want:
            continue
        bad = levels.bad.setdefault(level, set())
        bad.add(idx)
        if level == 0:
            continue  # the entry pass reported it against the entry
        below = levels.bad.get(level - 1, set())
        if 2 * idx in below or 2 * idx + 1 in below:
            continue  # explained lower down: a child differs too
        report.add(
            "node_mismatch",
            first,
            f"stored node ({level}, {idx}) over entries {first}..{first + (1 << level) - 1} "
            "was changed: it does not match its entries, though its children do",
        )
    for level, data in enumerate(levels.levels):
        count = len(data) // _HASH
        if level > 0 and seen.get(level, 0) < count:
            missing = seen.get(level, 0)
            report.add(
                "node_missing",
                missing << level,
                f"stored nodes ({level}, {missing}..{count - 1}) are missing",
            )


def _check_state(
    connection: Connection, tenant: str, levels: _Levels, report: VerifyReport
) -> None:
    state = stored.read_state(connection, tenant)
    size = levels.size
    if state.size != size:
        report.add(
            "state_mismatch",
            min(state.size, size),
            f"the ledger state says {state.size} entries but {size} are stored",
        )
        return
    if json.loads(state.frontier) != levels.frontier(size):
        report.add(
            "state_mismatch",
            None,
            "the stored right edge of the tree does not match the entries",
        )


def _check_heads(
    connection: Connection,
    tenant: str,
    levels: _Levels,
    report: VerifyReport,
    *,
    log_id: str,
    trusted: Mapping[str, bytes],
) -> None:
    size = levels.size
    good_below = 0
    signed = 0
    for row in stored.heads(connection, tenant):
        report.heads += 1
        head = SignedHead.from_row(row)
        where = f"head at size {row.tree_size} (timestamp {row.timestamp})"
        if row.log_id != log_id:
            report.add("head_log_id", None, f"{where} names log {row.log_id!r}, not {log_id!r}")
            continue
        if row.key_id not in trusted:
            report.add(
                "head_untrusted_key",
                None,
                f"{where} is signed by key {row.key_id}, which this verifier does not trust",
            )
            continue
        try:
            verify_tree_head(head.to_json(), trusted)
        except ProofError as exc:
            report.add("head_signature", None, f"{where}: {exc}")
            continue
        if row.tree_size > size:
            report.add(
                "head_beyond_ledger",
                size,
                f"{where} signs {row.tree_size} entries but only {size} are stored: entries "
                f"{size}..{row.tree_size - 1} were removed",
            )
            continue
        if levels.root(row.tree_size) != row.root_hash:
            report.add(
                "head_root_mismatch",
                good_below,
                f"{where} does not match the entries: an entry between {good_below} and "
                f"{row.tree_size - 1} differs from what was signed",
            )
            continue
        good_below = max(good_below, row.tree_size)
        signed = max(signed, row.tree_size)
    report.unsigned_tail = size - signed
