"""The tamper-evident ledger: append entries in the caller's transaction, sign tree heads,
serve inclusion and consistency proofs, and read entries back with their personal parts opened.

Each tenant has its own log (log id ``<origin>/<tenant>``): an RFC 9162 Merkle tree over the
RFC 8785 canonical JSON bytes of its entries. Appending takes the tenant's ledger lock, so leaf
indexes follow commit order without gaps; the right edge of the tree (at most one hash per
level) lives in one row, so an append reads nothing but that row and writes the new leaf and
the nodes it completes.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import rfc8785
from sqlalchemy.engine import Connection

from accord.audit import _entries
from accord.audit._entries import Entry
from accord.audit._keys import Keyring, public_key_text
from accord.audit._merkle import Frontier, NodeId, consistency_proof, inclusion_proof
from accord.audit._shredding import (
    ERASED,
    Erased,
    InvalidTag,
    SubjectVault,
    associated_data,
    open_sealed,
    seal,
)
from accord.audit.verifier import leaf_hash, sign_tree_head
from accord.core import Clock
from accord.errors import InputError
from accord.storage import Database
from accord.storage import ledger as stored
from accord.storage._records import json_text

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A signed tree head as JSON-ready fields (see ``verifier.verify_tree_head``)."""

    log_id: str
    tree_size: int
    timestamp: int
    root_hash: str
    key_id: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "timestamp": self.timestamp,
            "root_hash": self.root_hash,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_row(cls, row: stored.HeadRow) -> SignedHead:
        return cls(
            row.log_id,
            row.tree_size,
            row.timestamp,
            row.root_hash.hex(),
            row.key_id,
            base64.b64encode(row.signature).decode(),
        )


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An entry read back: its index, its exact bytes, the parsed envelope, and its personal
    part opened (``ERASED`` when the subject's key is gone, None when it has none)."""

    index: int
    data: bytes
    envelope: dict[str, Any]
    personal: Any

    @property
    def kind(self) -> str:
        return str(self.envelope["kind"])

    @property
    def at(self) -> float:
        return float(self.envelope["at"])

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.envelope["body"]
        return body

    @property
    def run_id(self) -> str | None:
        return self.envelope.get("run")

    @property
    def subject_id(self) -> str | None:
        return self.envelope.get("subject")


@dataclass(frozen=True, slots=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: str
    path: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash,
            "path": self.path,
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    size1: int
    size2: int
    path: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"size1": self.size1, "size2": self.size2, "path": self.path}


class _Reader:
    """Stored nodes for proof generation: one statement per proof."""

    def __init__(
        self, connection: Connection, tenant: str, *, also: Collection[NodeId] = ()
    ) -> None:
        self._connection = connection
        self._tenant = tenant
        self._also = set(also)
        self.found: dict[NodeId, bytes] = {}

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        wanted = set(ids) | self._also
        self.found = stored.read_nodes(self._connection, self._tenant, wanted)
        missing = sorted(i for i in wanted if i not in self.found)
        if missing:
            raise LookupError(f"ledger nodes missing: {missing[:4]}")
        return self.found


class Ledger:
    """Appends entries, issues signed tree heads and answers proofs for every tenant's log.

    Args:
        db: the database.
        keyring: the signing and master keys.
        clock: entry and head times.
        origin: the first part of every log id (``ACCORD_LEDGER_ORIGIN``).
        head_interval: seconds between heads issued by :meth:`issue_due_heads`.
    """

    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        *,
        clock: Clock,
        origin: str = "accord",
        head_interval: float = 60.0,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.clock = clock
        self.origin = origin
        self.head_interval = head_interval
        self.vault = SubjectVault(keyring.master, keyring.master_id)
        self._next_head_check = 0.0
        self._lock = threading.Lock()

    def log_id(self, tenant: str) -> str:
        return f"{self.origin}/{tenant}"

    # -- appending -------------------------------------------------------------------------

    def append(self, connection: Connection, tenant: str, entries: Sequence[Entry]) -> list[int]:
        """Append entries in the caller's transaction; returns their leaf indexes.

        The entries become part of the ledger exactly when the caller's transaction commits,
        together with the change they record.
        """
        if not entries:
            return []
        state = stored.lock_state(connection, tenant)
        return self.append_locked(connection, tenant, state, entries)

    def append_locked(
        self,
        connection: Connection,
        tenant: str,
        state: stored.TreeState,
        entries: Sequence[Entry],
    ) -> list[int]:
        """Append while the caller already holds the ledger lock (``state`` from
        ``storage.ledger.lock_state`` in the same transaction)."""
        frontier = Frontier.from_json(state.size, json.loads(state.frontier))
        subjects = {e.subject_id for e in entries if e.subject_id and e.personal is not None}
        now = self.clock.now()
        keys = self.vault.keys(connection, tenant, subjects, now=now, create=True)
        entry_rows: list[dict[str, Any]] = []
        node_rows: list[dict[str, Any]] = []
        indexes: list[int] = []
        for entry in entries:
            data = encode(tenant, entry, keys)
            index = frontier.size
            for (level, idx), digest in frontier.append(leaf_hash(data)):
                node_rows.append({"tenant_id": tenant, "level": level, "idx": idx, "hash": digest})
            entry_rows.append(
                {
                    "tenant_id": tenant,
                    "idx": index,
                    "kind": entry.kind,
                    "at": entry.at,
                    "run_id": entry.run_id,
                    "subject_id": entry.subject_id,
                    "entry": data,
                }
            )
            indexes.append(index)
        stored.insert_entries(connection, entry_rows)
        stored.insert_nodes(connection, node_rows)
        stored.save_state(
            connection,
            tenant,
            state,
            size=frontier.size,
            frontier=json_text(frontier.to_json()),
            at=now,
        )
        return indexes

    # -- signed tree heads -----------------------------------------------------------------

    def issue_head(self, tenant: str) -> SignedHead:
        """Sign the tenant's tree as it stands now (on demand); a head is issued even when the
        tree has not grown, so its timestamp says when the log was last vouched for."""
        return self._issue(tenant, only_if_due=False)[0]

    def _issue(self, tenant: str, *, only_if_due: bool) -> tuple[SignedHead, bool]:
        """Sign a head; returns it and whether it is new. With ``only_if_due``, the newest head
        is returned instead unless the log grew since it and it is older than the head interval
        (decided under the ledger lock, so workers on many machines sign a grown tree once)."""
        with self.db.transaction() as connection:
            state = stored.lock_state(connection, tenant)
            latest = stored.latest_head(connection, tenant)
            signing = self.keyring.signing
            if only_if_due and latest is not None and latest.key_id == signing.key_id:
                age_ms = self.clock.now() * 1000 - latest.timestamp
                if state.size == latest.tree_size or age_ms < self.head_interval * 1000:
                    return SignedHead.from_row(latest), False
            if latest is None or latest.key_id != signing.key_id:
                entry = _entries.ledger_key(
                    key_id=signing.key_id,
                    public_key=public_key_text(signing.public_raw),
                    previous=None if latest is None else latest.key_id,
                    at=self.clock.now(),
                )
                self.append_locked(connection, tenant, state, [entry])
                state = stored.read_state(connection, tenant)
            frontier = Frontier.from_json(state.size, json.loads(state.frontier))
            timestamp = int(self.clock.now() * 1000)
            if latest is not None and timestamp <= latest.timestamp:
                if latest.tree_size == state.size and latest.key_id == signing.key_id:
                    return SignedHead.from_row(latest), False
                timestamp = latest.timestamp + 1
            head = sign_tree_head(
                signing.private,
                log_id=self.log_id(tenant),
                tree_size=state.size,
                timestamp_ms=timestamp,
                root_hash=frontier.root(),
            )
            stored.insert_head(
                connection,
                stored.HeadRow(
                    tenant_id=tenant,
                    tree_size=state.size,
                    timestamp=timestamp,
                    log_id=head["log_id"],
                    root_hash=bytes.fromhex(head["root_hash"]),
                    key_id=head["key_id"],
                    signature=base64.b64decode(head["signature"]),
                ),
            )
        signed = SignedHead(
            head["log_id"],
            head["tree_size"],
            head["timestamp"],
            head["root_hash"],
            head["key_id"],
            head["signature"],
        )
        return signed, True

    def issue_due_heads(self) -> int:
        """Issue a head for every tenant whose log grew since its last head and whose last
        head is older than the interval. Cheap to call often: it looks at most four times an
        interval. Returns how many heads were issued."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_head_check:
                return 0
            self._next_head_check = now + max(self.head_interval / 4, 0.05)
        issued = 0
        with self.db.read() as connection:
            tenants = stored.ledger_tenants(connection)
            due = []
            for tenant in tenants:
                state = stored.read_state(connection, tenant)
                latest = stored.latest_head(connection, tenant)
                if latest is None or (
                    state.size > latest.tree_size
                    and self.clock.now() * 1000 - latest.timestamp >= self.head_interval * 1000
                ):
                    due.append(tenant)
        for tenant in due:
            issued += self._issue(tenant, only_if_due=True)[1]
        return issued

    def heads(self, tenant: str) -> list[SignedHead]:
        with self.db.read() as connection:
            return [SignedHead.from_row(r) for r in stored.heads(connection, tenant)]

    def latest_head(self, tenant: str, *, covering: int | None = None) -> SignedHead:
        """The newest signed head; a new one is issued when there is none or when it does not
        cover the entry at index ``covering``."""
        with self.db.read() as connection:
            row = stored.latest_head(connection, tenant)
        if row is None or (covering is not None and row.tree_size <= covering):
            return self.issue_head(tenant)
        return SignedHead.from_row(row)

    def size(self, tenant: str) -> int:
        with self.db.read() as connection:
            return stored.read_state(connection, tenant).size

    # -- proofs ----------------------------------------------------------------------------

    def inclusion_proof(
        self, tenant: str, index: int, *, tree_size: int | None = None
    ) -> InclusionProof:
        """The audit path of entry ``index`` in the tree of ``tree_size`` entries (default:
        the newest signed head, issued if it does not cover the entry yet).

        Raises:
            InputError: the index or size is outside the ledger.
        """
        if tree_size is None:
            tree_size = self.latest_head(tenant, covering=index).tree_size
        with self.db.read() as connection:
            size = stored.read_state(connection, tenant).size
            if not 0 < tree_size <= size:
                raise InputError(
                    f"tree size {tree_size} is outside the ledger of tenant {tenant!r} "
                    f"({size} entries)",
                    hint="ask for a size between 1 and the newest head's tree_size",
                )
            if not 0 <= index < tree_size:
                raise InputError(
                    f"entry {index} is not in a tree of {tree_size} entries",
                    hint=f"entries of that tree are numbered 0 to {tree_size - 1}",
                )
            reader = _Reader(connection, tenant, also=[(0, index)])
            path = inclusion_proof(index, tree_size, reader)
            leaf = reader.found[(0, index)]
        return InclusionProof(index, tree_size, leaf.hex(), [p.hex() for p in path])

    def consistency_proof(self, tenant: str, size1: int, size2: int) -> ConsistencyProof:
        """The proof that the tree of ``size1`` entries is a prefix of the tree of ``size2``.

        Raises:
            InputError: the sizes are not 0 < size1 <= size2 <= the ledger's size.
        """
        with self.db.read() as connection:
            size = stored.read_state(connection, tenant).size
            if not 0 < size1 <= size2 <= size:
                raise InputError(
                    f"cannot prove sizes {size1} -> {size2} on a ledger of {size} entries",
                    hint="use 0 < size1 <= size2 <= the newest head's tree_size",
                )
            path = consistency_proof(size1, size2, _Reader(connection, tenant))
        return ConsistencyProof(size1, size2, [p.hex() for p in path])

    # -- reading ---------------------------------------------------------------------------

    def entries(
        self,
        tenant: str,
        *,
        run_id: str | None = None,
        subject_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
        newest: bool = False,
        after: int | None = None,
        connection: Connection | None = None,
    ) -> list[LedgerEntry]:
        """Entries matching every filter given, in ledger order, personal parts opened
        (``limit`` with ``newest``: the last ones)."""
        with self._reading(connection) as reading:
            rows = stored.entries_where(
                reading,
                tenant,
                run_id=run_id,
                subject_id=subject_id,
                since=since,
                until=until,
                kinds=kinds,
                limit=limit,
                newest=newest,
                after=after,
            )
            return self.decode(reading, tenant, rows)

    @contextmanager
    def _reading(self, connection: Connection | None) -> Iterator[Connection]:
        """The caller's connection, or a read transaction of our own."""
        if connection is not None:
            yield connection
            return
        with self.db.read() as own:
            yield own

    def decode(
        self, connection: Connection, tenant: str, rows: Sequence[stored.EntryRow]
    ) -> list[LedgerEntry]:
        envelopes = [json.loads(r.entry) for r in rows]
        subjects = {e["subject"] for e in envelopes if e.get("subject") and "sealed" in e}
        keys = self.vault.keys(connection, tenant, subjects, now=0.0, create=False)
        return [
            LedgerEntry(r.idx, r.entry, e, _open(tenant, e, keys))
            for r, e in zip(rows, envelopes, strict=True)
        ]


def encode(tenant: str, entry: Entry, keys: Mapping[str, bytes | None]) -> bytes:
    """The entry's canonical bytes (RFC 8785), its personal part sealed under the subject's
    key, kept in clear when it names no subject, or dropped when the subject was erased."""
    envelope: dict[str, Any] = {
        "v": _entries.FORMAT_VERSION,
        "kind": entry.kind,
        "tenant": tenant,
        "at": entry.at,
        "run": entry.run_id,
        "subject": entry.subject_id,
        "body": entry.body,
    }
    if entry.personal is not None:
        text = json_text(entry.personal)
        if entry.subject_id is None:
            envelope["personal"] = text
        else:
            key = keys.get(entry.subject_id)
            if key is None:
                envelope["erased"] = True
            else:
                aad = associated_data(tenant, entry.subject_id, entry.kind, entry.run_id)
                envelope["sealed"] = seal(key, text.encode(), aad)
    return rfc8785.dumps(envelope)


def _open(tenant: str, envelope: dict[str, Any], keys: Mapping[str, bytes | None]) -> Any:
    if "personal" in envelope:
        return json.loads(envelope["personal"])
    if envelope.get("erased"):
        return ERASED
    sealed = envelope.get("sealed")
    if sealed is None:
        return None
    key = keys.get(envelope["subject"])
    if key is None:
        return ERASED
    aad = associated_data(tenant, envelope["subject"], envelope["kind"], envelope.get("run"))
    try:
        return json.loads(open_sealed(key, sealed, aad))
    except (InvalidTag, ValueError, KeyError):
        log.warning("a sealed part of the ledger does not open; run 'accord audit verify'")
        return ERASED


__all__ = ["ConsistencyProof", "Erased", "InclusionProof", "Ledger", "LedgerEntry", "SignedHead"]
