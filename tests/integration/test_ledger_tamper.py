"""Tampering with a stored ledger through SQL: verification notices every change, and names the
entry the change touched.

A small real ledger (governed runs with connector calls, a refused call, a consent grant, a flag
change and signed heads: about sixty entries on SQLite) is changed through SQL thousands of ways,
one change at a time, each undone before the next: single bytes of entries, of stored tree nodes
and of signed heads; deleted, reordered and inserted entries; and the log rolled back, its last
entries removed together with their nodes and the tree state rewound to match. After every
change ``verify_ledger`` must report a problem, and the first problem it reports must be at the
first entry the change touched.

The same loop puts every change to two verifiers with the protection switched off (STYLE.md
rule 14): one that checks only that each head's signature covers its stored root, trusting the
stored tree, and one that checks nothing. They miss the entry changes, so the loop can fail.

The changes are shared out to two processes, each with its own copy of the database.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sqlite3
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import pytest
import rfc8785
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.audit import SignedHead, verify_ledger
from accord.audit.verifier import ProofError, verify_tree_head
from accord.connectors import CapabilityRegistry
from accord.core import TenantId
from accord.journeys import JourneyBuilder, JourneySpec
from accord.service import Accord, Settings, build
from accord.storage import Database
from accord.storage import ledger as stored
from accord.storage._schema import ledger_entries, ledger_heads, ledger_nodes, ledger_state
from accord.testing import FrozenClock, SequentialIds
from tests.capabilities import Calls, register_test_capabilities
from tests.governance import PERMIT_ALL, deploy_policies
from tests.ledgers import MASTER_KEY, SIGNING_KEY

T = TenantId("default")
TENANT = str(T)
SUBJECT = "cus-7"
STRANGER = "cus-without-consent"
PURPOSE = "dpv:ServiceProvision"
SEED = 20_260_101
WORKERS = min(2, os.cpu_count() or 1)

ENTRY_BYTES = 6_000
NODE_BYTES = 3_000
HEAD_BYTES = 1_000
EACH_STRUCTURAL = 1_000

Family = Literal[
    "entry byte", "node byte", "head byte", "deleted", "reordered", "truncated", "inserted"
]
FAMILIES: tuple[Family, ...] = get_args(Family)
REQUIRED: dict[Family, int] = {
    "entry byte": ENTRY_BYTES,
    "node byte": NODE_BYTES,
    "head byte": HEAD_BYTES,
    "deleted": EACH_STRUCTURAL,
    "reordered": EACH_STRUCTURAL,
    "truncated": EACH_STRUCTURAL,
    "inserted": EACH_STRUCTURAL,
}
REAL = "verify_ledger"
SIGNATURES_ONLY = "head signatures only"
NOTHING = "no verification"

# -- the ledger under attack -------------------------------------------------------------------


def journey() -> JourneySpec:
    return (
        JourneyBuilder("tamper_order", purpose=PURPOSE)
        .input(value="string")
        .task("fetch", "test.profile", input={"customer_id": "run.subject"})
        .task("echo", "test.echo", input={"value": "input.value"})
        .end("done", outcome="done", output={"echo": "steps.echo.value"})
        .build()
    )


def order(accord: Accord, clock: FrozenClock, value: str, *, subject: str = SUBJECT) -> None:
    accord.runtime.start(T, "tamper_order", input={"value": value}, subject=subject)
    accord.runtime.drive()
    clock.advance(7)


def build_ledger(directory: Path) -> tuple[Path, Trust]:
    """About sixty entries of every everyday kind, and signed heads: whatever the workers sign
    on their interval, one midway and one over the whole log."""
    path = directory / "ledger.db"
    registry = CapabilityRegistry()
    register_test_capabilities(registry, Calls())
    clock = FrozenClock()
    settings = Settings(
        database_url=f"sqlite:///{path}",
        keys_dir=directory / "keys",
        sqlite_synchronous="OFF",
        ledger_signing_key=SIGNING_KEY,
        ledger_master_key=MASTER_KEY,
    )
    with build(settings, capabilities=registry, clock=clock, ids=SequentialIds()) as accord:
        deploy_policies(accord, PERMIT_ALL)
        accord.runtime.catalog.deploy(T, journey())
        accord.consent.grant(
            T, SUBJECT, purpose=PURPOSE, categories=["pd:Name", "pd:EmailAddress"], actor="tests"
        )
        accord.set_flag("capability:test.charge", False, actor="ops", reason="processor down")
        for i in range(3):
            order(accord, clock, f"first-{i}")
        accord.tree_head(fresh=True)
        clock.advance(60)
        order(accord, clock, "no basis", subject=STRANGER)
        for i in range(3):
            order(accord, clock, f"second-{i}")
        accord.tree_head(fresh=True)
        trust = Trust(accord.ledger.log_id(TENANT), dict(accord.ledger.keyring.trusted))
    return path, trust


@dataclass(frozen=True)
class Trust:
    """What a verifier is given: the log's name and the keys it trusts."""

    log_id: str
    keys: dict[str, bytes]


@dataclass(frozen=True)
class Pristine:
    """Every ledger row of the tenant as it was before any tampering."""

    entries: list[dict[str, Any]]
    nodes: dict[tuple[int, int], bytes]
    state: dict[str, Any]
    heads: list[dict[str, Any]]

    @classmethod
    def read(cls, db: Database) -> Pristine:
        def rows(table: sa.Table, *order: sa.Column[Any]) -> list[dict[str, Any]]:
            query = sa.select(table).where(table.c.tenant_id == TENANT).order_by(*order)
            return [dict(row) for row in connection.execute(query).mappings()]

        with db.read() as connection:
            entries = rows(ledger_entries, ledger_entries.c.idx)
            nodes = rows(ledger_nodes, ledger_nodes.c.level, ledger_nodes.c.idx)
            (state,) = rows(ledger_state)
            heads = rows(ledger_heads, ledger_heads.c.tree_size, ledger_heads.c.timestamp)
        return cls(entries, {(n["level"], n["idx"]): n["hash"] for n in nodes}, state, heads)

    @property
    def size(self) -> int:
        return len(self.entries)

    def frontier(self, size: int) -> str:
        """The right edge of the tree of ``size`` entries, from the stored perfect nodes."""
        hashes, start = [], 0
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                hashes.append(self.nodes[(level, start >> level)].hex())
                start += 1 << level
        return json.dumps(hashes)


def _changed_byte(data: bytes, rng: random.Random) -> tuple[int, int]:
    """A position in ``data`` and a value that differs from the byte there."""
    offset = rng.randrange(len(data))
    return offset, (data[offset] + rng.randrange(1, 256)) % 256


def _with_byte(data: bytes, offset: int, value: int) -> bytes:
    changed = bytearray(data)
    changed[offset] = value
    return bytes(changed)


def _entry_at(idx: int) -> sa.ColumnElement[bool]:
    return sa.and_(ledger_entries.c.tenant_id == TENANT, ledger_entries.c.idx == idx)


def _changed_one(result: sa.CursorResult[Any], what: str) -> None:
    assert result.rowcount == 1, f"the tamper with {what} changed {result.rowcount} rows"


# A renumbering first moves the rows out of the way, so the primary key never collides midway.
_DETOUR = 1 << 40


def _renumber(connection: Connection, first: int, by: int) -> None:
    """Add ``by`` to the index of every entry from ``first`` on."""
    tenant = ledger_entries.c.tenant_id == TENANT
    connection.execute(
        ledger_entries.update()
        .where(tenant, ledger_entries.c.idx >= first)
        .values(idx=ledger_entries.c.idx + _DETOUR)
    )
    connection.execute(
        ledger_entries.update()
        .where(tenant, ledger_entries.c.idx >= _DETOUR)
        .values(idx=ledger_entries.c.idx - _DETOUR + by)
    )


# -- the tampers -------------------------------------------------------------------------------


class Tamper(ABC):
    """One change to the stored ledger, and how to take it back."""

    family: ClassVar[Family]

    @property
    @abstractmethod
    def expected(self) -> int | None:
        """The first entry the change touches (None: it touches a head, not an entry)."""

    @abstractmethod
    def apply(self, connection: Connection, pristine: Pristine) -> None: ...

    @abstractmethod
    def undo(self, connection: Connection, pristine: Pristine) -> None: ...


@dataclass(frozen=True)
class EntryByte(Tamper):
    family: ClassVar[Family] = "entry byte"
    index: int
    offset: int
    value: int

    @property
    def expected(self) -> int:
        return self.index

    def apply(self, connection: Connection, pristine: Pristine) -> None:
        data = _with_byte(pristine.entries[self.index]["entry"], self.offset, self.value)
        result = connection.execute(
            ledger_entries.update().where(_entry_at(self.index)).values(entry=data)
        )
        _changed_one(result, str(self))

    def undo(self, connection: Connection, pristine: Pristine) -> None:
        connection.execute(
            ledger_entries.update()
            .where(_entry_at(self.index))
            .values(entry=pristine.entries[self.index]["entry"])
        )


def _node_at(level: int, idx: int) -> sa.ColumnElement[bool]:
    return sa.and_(
        ledger_nodes.c.tenant_id == TENANT, ledger_nodes.c.level == level, ledger_nodes.c.idx == idx
    )


@dataclass(frozen=True)
class NodeByte(Tamper):
    family: ClassVar[Family] = "node byte"
    level: int
    idx: int
    offset: int
    value: int

    @property
    def expected(self) -> int:
        return self.idx << self.level

    def apply(self, connection: Connection, pristine: Pristine) -> None:
        digest = _with_byte(pristine.nodes[(self.level, self.idx)], self.offset, self.value)
        result = connection.execute(
            ledger_nodes.update().where(_node_at(self.level, self.idx)).values(hash=digest)
        )
        _changed_one(result, str(self))

    def undo(self, connection: Connection, pristine: Pristine) -> None:
        connection.execute(
            ledger_nodes.update()
            .where(_node_at(self.level, self.idx))
            .values(hash=pristine.nodes[(self.level, self.idx)])
        )


@dataclass(frozen=True)
class HeadByte(Tamper):
    family: ClassVar[Family] = "head byte"
    head: int
    column: Literal["root_hash", "signature"]
    offset: int
    value: int

    @property
    def expected(self) -> None:
        return None

    def _where(self, pristine: Pristine) -> sa.ColumnElement[bool]:
        row = pristine.heads[self.head]
        return sa.and_(
            ledger_heads.c.tenant_id == TENANT,
            ledger_heads.c.tree_size == row["tree_size"],
            ledger_heads.c.timestamp == row["timestamp"],
        )

    def apply(self, connection: Connection, pristine: Pristine) -> None:
        data = _with_byte(pristine.heads[self.head][self.column], self.offset, self.value)
        result = connection.execute(
            ledger_heads.update().where(self._where(pristine)).values({self.column: data})
        )
        _changed_one(result, str(self))

    def undo(self, connection: Connection, pristine: Pristine) -> None:
        connection.execute(
            ledger_heads.update()
            .where(self._where(pristine))
            .values({self.column: pristine.heads[self.head][self.column]})
        )


@dataclass(frozen=True)
class Deleted(Tamper):
    family: ClassVar[Family] = "deleted"
    index: int

    @property
    def expected(self) -> int:
        return self.index

    def apply(self, connection: Connection, pristine: Pristine) -> None:
        result = connection.execute(ledger_entries.delete().where(_entry_at(self.index)))
        _changed_one(result, str(self))

    def undo(self, connection: Connection, pristine: Pristine) -> None:
        connection.execute(ledger_entries.insert().values(pristine.entries[self.index]))


@dataclass(frozen=True)
class Reordered(Tamper):
    """Two entries trade places: each one's bytes now sit at the other's index."""

    family: ClassVar[Family] = "reordered"
    first: int
    second: int

    @property
    def expected(self) -> int:
        return self.first

    def _put(self, connection: Connection, pristine: Pristine, *, swapped: bool) -> None:
        a, b = (self.second, self.first) if swapped else (self.first, self.second)
        for idx, source in ((self.first, a), (self.second, b)):
            result = connection.execute(
                ledger_entries.update()
                .where(_entry_at(idx))
                .values(entry=pristine.entries[source]["entry"])
            )
            _changed_one(result, str(self))

    def apply(self, connection: Connection, pristine: Pristine) -> None:
        self._put(connection, pristine, swapped=True)

    def undo(self, connection: Connection, pristine: Pristine) -> None:
        self._put(connection, pristine, swapped=False)


@dataclass(frozen=True)
class Truncated(Tamper):
    """The log rolled back: its last ``count`` entries removed, with the nodes over them, and
    the tree state rewound to the shorter log, so that the stored tree is self-consistent."""

    family: ClassVar[Family] = "truncated"
    count: int
    size: int

    @property
    def expected(self) -> int:
        return self.size - self.count

    def _removed_nodes(self, pristine: Pristine) -> list[tuple[int, int]]:
        kept = self.expected
        return [(level, idx) for level, idx in pristine.nodes if (idx + 1) << level > kept]

    def apply(self, connection: Connection, pristine: Pristine) -> None:
        kept = self.expected
        result = connection.execute(
            ledger_entries.delete().where(
                ledger_entries.c.tenant_id == TENANT, ledger_entries.c.idx >= kept
            )
        )
        assert result.rowcount == self.count
        connection.execute(
            ledger_nodes.delete().where(
                ledger_nodes.c.tenant_id == TENANT,
                sa.tuple_(ledger_nodes.c.level, ledger_nodes.c.idx).in_(
                    self._removed_nodes(pristine)
                ),
            )
        )
        connection.execute(
            ledger_state.update()
            .where(ledger_state.c.tenant_id == TENANT)
            .values(size=kept, frontier=pristine.frontier(kept))
        )

    def undo(self, connection: Connection, pristine: Pristine) -> None:
        connection.execute(ledger_entries.insert(), pristine.entries[self.expected :])
        connection.execute(
            ledger_nodes.insert(),
            [
                {
                    "tenant_id": TENANT,
                    "level": level,
                    "idx": idx,
                    "hash": pristine.nodes[level, idx],
                }
                for level, idx in self._removed_nodes(pristine)
            ],
        )
        connection.execute(
            ledger_state.update()
            .where(ledger_state.c.tenant_id == TENANT)
            .values(size=pristine.state["size"], frontier=pristine.state["frontier"])
        )


@dataclass(frozen=True)
class Inserted(Tamper):
    """A forged entry slipped in at ``position``, the entries from there on moved up one (at the
    end of the log, it is a forged entry appended beyond the newest head). The forged entry is
    canonical and agrees with its columns: only the tree can tell."""

    family: ClassVar[Family] = "inserted"
    position: int
    template: int
    row: dict[str, Any] = field(repr=False)

    @property
    def expected(self) -> int:
        return self.position

    def apply(self, connection: Connection, pristine: Pristine) -> None:
        _renumber(connection, self.position, 1)
        connection.execute(ledger_entries.insert().values(self.row))

    def undo(self, connection: Connection, pristine: Pristine) -> None:
        connection.execute(ledger_entries.delete().where(_entry_at(self.position)))
        _renumber(connection, self.position + 1, -1)


def forged_row(template: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of ``template`` at another time: an entry an attacker backdates or invents."""
    envelope = json.loads(template["entry"])
    envelope["at"] = envelope["at"] + rng.randrange(1, 4096) / 8
    return {
        **template,
        "at": envelope["at"],
        "entry": rfc8785.dumps(envelope),
    }


def plan(pristine: Pristine, rng: random.Random) -> list[Tamper]:
    """Every tamper of the campaign, drawn from ``rng``."""
    size = pristine.size
    node_ids = sorted(pristine.nodes)
    tampers: list[Tamper] = []
    for _ in range(ENTRY_BYTES):
        index = rng.randrange(size)
        tampers.append(EntryByte(index, *_changed_byte(pristine.entries[index]["entry"], rng)))
    for _ in range(NODE_BYTES):
        level, idx = rng.choice(node_ids)
        tampers.append(NodeByte(level, idx, *_changed_byte(pristine.nodes[level, idx], rng)))
    for _ in range(HEAD_BYTES):
        head = rng.randrange(len(pristine.heads))
        column = rng.choice(("root_hash", "signature"))
        data = pristine.heads[head][column]
        tampers.append(HeadByte(head, column, *_changed_byte(data, rng)))
    for _ in range(EACH_STRUCTURAL):
        tampers.append(Deleted(rng.randrange(size)))
    for _ in range(EACH_STRUCTURAL):
        first, second = sorted(rng.sample(range(size), 2))
        tampers.append(Reordered(first, second))
    for _ in range(EACH_STRUCTURAL):
        tampers.append(Truncated(rng.randint(1, size), size))
    for _ in range(EACH_STRUCTURAL):
        position = rng.randint(0, size)
        template = rng.randrange(size)
        row = {**forged_row(pristine.entries[template], rng), "idx": position}
        tampers.append(Inserted(position, template, row))
    return tampers


# -- verifiers, with the protection on and off -------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What a verifier made of one tampered ledger: whether it noticed, and its first problem."""

    detected: bool
    kind: str | None = None
    index: int | None = None
    problems: tuple[tuple[str, int | None], ...] = ()


def with_verification(db: Database, trust: Trust) -> Finding:
    report = verify_ledger(db, TENANT, log_id=trust.log_id, trusted=trust.keys)
    first = report.first
    if first is None:
        return Finding(False)
    problems = tuple(sorted(((p.kind, p.index) for p in report.problems), key=_by_position))
    return Finding(True, first.kind, first.index, problems)


def _by_position(problem: tuple[str, int | None]) -> tuple[bool, int, str]:
    kind, index = problem
    return (index is None, index or 0, kind)


def with_head_signatures_only(db: Database, trust: Trust) -> Finding:
    """The protection off: every head's signature is checked over its own stored root, and
    the stored tree and entries are trusted to match it."""
    with db.read() as connection:
        heads = stored.heads(connection, TENANT)
    for row in heads:
        try:
            verify_tree_head(SignedHead.from_row(row).to_json(), trust.keys)
        except ProofError:
            return Finding(True, "head_signature")
    return Finding(False)


def without_verification(db: Database, trust: Trust) -> Finding:
    return Finding(False)


VERIFIERS: dict[str, Callable[[Database, Trust], Finding]] = {
    REAL: with_verification,
    SIGNATURES_ONLY: with_head_signatures_only,
    NOTHING: without_verification,
}


@dataclass(frozen=True)
class ShardResult:
    findings: list[dict[str, Finding]]
    restored: bool
    clean: bool


def run_shard(path: str, trust: Trust, tampers: Sequence[Tamper]) -> ShardResult:
    """Apply each tamper to the database at ``path`` and put it to every verifier; the undoing
    of one tamper commits with the next."""
    db = Database(f"sqlite:///{path}", sqlite_synchronous="OFF")
    try:
        pristine = Pristine.read(db)
        findings = []
        previous: Tamper | None = None
        for tamper in tampers:
            with db.transaction() as connection:
                if previous is not None:
                    previous.undo(connection, pristine)
                tamper.apply(connection, pristine)
            findings.append({name: check(db, trust) for name, check in VERIFIERS.items()})
            previous = tamper
        if previous is not None:
            with db.transaction() as connection:
                previous.undo(connection, pristine)
        restored = Pristine.read(db) == pristine
        clean = with_verification(db, trust) == Finding(False)
    finally:
        db.dispose()
    return ShardResult(findings, restored, clean)


# -- the campaign ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    pristine: Pristine
    tampers: list[Tamper]
    findings: list[dict[str, Finding]]
    restored: bool
    seconds: float

    def of(self, family: Family) -> list[tuple[Tamper, dict[str, Finding]]]:
        return [
            (t, f) for t, f in zip(self.tampers, self.findings, strict=True) if t.family == family
        ]

    def detected(self, verifier: str, family: Family) -> int:
        return sum(f[verifier].detected for _, f in self.of(family))


def _copy(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as connection:
        connection.execute("VACUUM INTO ?", (str(target),))


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    directory = tmp_path_factory.mktemp("tamper")
    path, trust = build_ledger(directory)
    db = Database(f"sqlite:///{path}", sqlite_synchronous="OFF")
    try:
        pristine = Pristine.read(db)
        assert with_verification(db, trust) == Finding(False), "the untouched ledger verifies"
    finally:
        db.dispose()
    tampers = plan(pristine, random.Random(SEED))
    shards = [tampers[i::WORKERS] for i in range(WORKERS)]
    copies = [directory / f"copy-{i}.db" for i in range(WORKERS)]
    for copy in copies:
        _copy(path, copy)
    began = time.perf_counter()
    if WORKERS == 1:
        results = [run_shard(str(copies[0]), trust, shards[0])]
    else:
        with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [
                pool.submit(run_shard, str(copy), trust, shard)
                for copy, shard in zip(copies, shards, strict=True)
            ]
            results = [future.result() for future in futures]
    seconds = time.perf_counter() - began
    findings: list[dict[str, Finding]] = [{} for _ in tampers]
    for i, result in enumerate(results):
        findings[i::WORKERS] = result.findings
    return Campaign(
        pristine,
        tampers,
        findings,
        restored=all(r.restored and r.clean for r in results),
        seconds=seconds,
    )


def summary(campaign: Campaign) -> str:
    lines = [f"{'tamper':<11} {'count':>6} " + " ".join(f"{v:>22}" for v in VERIFIERS)]
    for family in FAMILIES:
        count = len(campaign.of(family))
        noticed = " ".join(f"{campaign.detected(v, family):>22}" for v in VERIFIERS)
        lines.append(f"{family:<11} {count:>6} {noticed}")
    lines.append(
        f"{len(campaign.tampers)} tampers in {campaign.seconds:.1f} s in {WORKERS} processes"
    )
    return "\n".join(lines)


def _described(tamper: Tamper, finding: Finding) -> str:
    return (
        f"{tamper}: expected position {tamper.expected}, first problem {finding.kind} at "
        f"{finding.index}; all: {list(finding.problems)[:8]}"
    )


# -- the tests ---------------------------------------------------------------------------------


def test_the_ledger_under_attack_is_a_real_one(campaign: Campaign) -> None:
    pristine = campaign.pristine
    kinds = Counter(e["kind"] for e in pristine.entries)
    assert 60 <= pristine.size <= 150, kinds
    for kind in ("run.transition", "gateway.decision", "connector.call"):
        assert kinds[kind] >= 10, kinds
    for kind in ("consent.change", "flag.change", "policy.deploy", "journey.deploy", "ledger.key"):
        assert kinds[kind] >= 1, kinds
    assert kinds["gateway.decision"] > kinds["connector.call"], "one call was refused"
    sizes = [h["tree_size"] for h in pristine.heads]
    assert len(sizes) >= 2 and sizes[-1] == pristine.size, sizes


def test_every_tamper_is_detected(campaign: Campaign) -> None:
    print(f"\n{summary(campaign)}")
    counts = Counter(t.family for t in campaign.tampers)
    assert sum(counts[f] for f in ("entry byte", "node byte", "head byte")) >= 10_000
    for family in FAMILIES:
        assert counts[family] >= REQUIRED[family], summary(campaign)
    missed = [
        _described(t, f[REAL])
        for t, f in zip(campaign.tampers, campaign.findings, strict=True)
        if not f[REAL].detected
    ]
    assert not missed, f"{len(missed)} tampers went unnoticed:\n" + "\n".join(missed[:20])
    assert campaign.restored, "every tamper was undone and the ledger verifies again"


def test_verification_names_the_first_entry_each_tamper_touched(campaign: Campaign) -> None:
    wrong: dict[Family, list[str]] = {}
    for tamper, findings in zip(campaign.tampers, campaign.findings, strict=True):
        finding = findings[REAL]
        if tamper.expected is None:
            located = finding.kind is not None and finding.kind.startswith("head_")
        else:
            located = finding.index == tamper.expected
        if not located:
            wrong.setdefault(tamper.family, []).append(_described(tamper, finding))
    report = "\n".join(
        f"{family}: {len(cases)} of {len(campaign.of(family))} placed wrongly, e.g.\n  "
        + "\n  ".join(cases[:3])
        for family, cases in wrong.items()
    )
    assert not wrong, f"verify_ledger's first problem is not where the tamper was:\n{report}"


def test_with_verification_off_the_same_tampers_go_unnoticed(campaign: Campaign) -> None:
    entry_changes = len(campaign.of("entry byte"))
    assert campaign.detected(NOTHING, "entry byte") == 0
    assert all(campaign.detected(NOTHING, family) == 0 for family in FAMILIES)
    assert campaign.detected(SIGNATURES_ONLY, "entry byte") < entry_changes / 100, summary(campaign)
    assert campaign.detected(SIGNATURES_ONLY, "head byte") == len(campaign.of("head byte")), (
        "the signature check does what it can: every altered head fails it"
    )
    assert campaign.detected(REAL, "entry byte") == entry_changes
