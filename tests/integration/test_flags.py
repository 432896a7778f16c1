"""Flags on SQLite and PostgreSQL: storage, versions, tenants, evaluation through OpenFeature."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from accord.core import IdGenerator, TenantId
from accord.errors import ConfigurationError, InputError
from accord.flags import Flags, FlagStore, FlagTable
from accord.storage import Database
from accord.storage import _flags as stored
from accord.testing import FrozenClock, SequentialIds
from tests.ledgers import ledger_for

T1 = "default"
T2 = "acme"


class RepeatedIds(SequentialIds):
    """Hands out the same change id twice, so the second write's change row collides."""

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_repeated"


class CountingStore(FlagStore):
    """Counts the reads the provider makes, to show it does not read on every evaluation."""

    def __init__(self, db: Database, *, clock: FrozenClock) -> None:
        super().__init__(db, clock=clock, ids=SequentialIds(), ledger=ledger_for(db, clock))
        self.loads = 0
        self.version_reads = 0

    def load(self, tenant: str) -> FlagTable:
        self.loads += 1
        return super().load(tenant)

    def version(self, tenant: str) -> int:
        self.version_reads += 1
        return super().version(tenant)


@pytest.fixture
def databases(database_url: str) -> Iterator[Callable[[], Database]]:
    """Opens databases on the test URL (each one like another process) and migrates once."""
    opened: list[Database] = []

    def open_database() -> Database:
        db = Database(database_url)
        if not opened:
            db.migrate()
        opened.append(db)
        return db

    yield open_database
    for db in opened:
        db.dispose()


@pytest.fixture
def make_flags(
    databases: Callable[[], Database], clock: FrozenClock
) -> Iterator[Callable[..., Flags]]:
    built: list[Flags] = []

    def make(*, db: Database | None = None, refresh_seconds: float = 1.0) -> Flags:
        store_db = db or databases()
        store = FlagStore(
            store_db, clock=clock, ids=SequentialIds(len(built)), ledger=ledger_for(store_db, clock)
        )
        flags = Flags(store, refresh_seconds=refresh_seconds)
        built.append(flags)
        return flags

    yield make
    for flags in built:
        flags.close()


@pytest.fixture
def store(databases: Callable[[], Database], clock: FrozenClock) -> FlagStore:
    return _store(databases(), clock, SequentialIds())


def test_set_get_list_and_history(store: FlagStore, clock: FrozenClock) -> None:
    assert store.get(T1, "capability:orders.lookup") is None
    first = store.set(
        T1, "capability:orders.lookup", False, actor="ann", reason="incident 7: double refunds"
    )
    assert (first.key, first.value, first.version) == ("capability:orders.lookup", False, 1)
    assert (first.updated_by, first.reason, first.updated_at) == (
        "ann",
        "incident 7: double refunds",
        clock.now(),
    )
    assert store.get(T1, "capability:orders.lookup") == first

    clock.advance(60)
    store.set(T1, "rollout:refund_request", 25, actor="bob", reason="canary")
    clock.advance(60)
    again = store.set(T1, "capability:orders.lookup", True, actor="ann", reason="fixed")
    assert (again.value, again.version, again.updated_at) == (True, 3, clock.now())

    assert [(r.key, r.value, r.version) for r in store.list(T1)] == [
        ("capability:orders.lookup", True, 3),
        ("rollout:refund_request", 25, 2),
    ]
    history = store.history(T1)
    assert [(c.key, c.previous, c.value, c.actor) for c in history] == [
        ("capability:orders.lookup", None, False, "ann"),
        ("rollout:refund_request", None, 25, "bob"),
        ("capability:orders.lookup", False, True, "ann"),
    ]
    assert [c.reason for c in store.history(T1, "capability:orders.lookup")] == [
        "incident 7: double refunds",
        "fixed",
    ]
    assert len({c.change_id for c in history}) == 3


def test_switching_a_kill_switch_off_needs_a_reason_and_writes_nothing_without_one(
    store: FlagStore,
) -> None:
    with pytest.raises(InputError) as caught:
        store.set(T1, "capability:orders.lookup", False, actor="ann", reason="  ")
    assert "switching capability:orders.lookup off needs a reason" in caught.value.message
    assert caught.value.hint is not None and "--reason" in caught.value.hint
    assert store.set(T1, "capability:orders.lookup", True, actor="ann").reason == ""
    assert store.set(T1, "shadow:triage", False, actor="ann").value is False


@pytest.mark.parametrize(
    ("key", "value", "actor", "message"),
    [
        ("feature:x", True, "ann", "unknown flag kind 'feature'"),
        ("capability:orders.lookup", 1, "ann", "takes on or off"),
        ("rollout:refund_request", 101, "ann", "integer from 0 to 100"),
        ("capability:orders.lookup", True, " ", "needs an actor"),
    ],
)
def test_invalid_sets_write_nothing(
    store: FlagStore, key: str, value: bool | int, actor: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        store.set(T1, key, value, actor=actor, reason="r")
    assert store.version(T1) == 0
    assert store.list(T1) == []
    assert store.history(T1) == []


def test_the_flag_and_its_change_are_written_in_one_transaction(
    databases: Callable[[], Database], clock: FrozenClock
) -> None:
    store = _store(databases(), clock, RepeatedIds())
    store.set(T1, "capability:orders.lookup", False, actor="ann", reason="incident 7")
    with pytest.raises(sa.exc.IntegrityError):
        store.set(T1, "capability:orders.lookup", True, actor="bob", reason="fixed")
    with pytest.raises(sa.exc.IntegrityError):
        store.set(T1, "journey:refund_request", False, actor="bob", reason="paused")
    record = store.get(T1, "capability:orders.lookup")
    assert record is not None and (record.value, record.version, record.updated_by) == (
        False,
        1,
        "ann",
    )
    assert store.get(T1, "journey:refund_request") is None
    assert store.version(T1) == 1
    assert len(store.history(T1)) == 1


def test_versions_increase_per_tenant(store: FlagStore) -> None:
    assert store.version(T1) == store.version(T2) == 0
    assert store.set(T1, "capability:a", True, actor="ann").version == 1
    assert store.set(T1, "capability:b", True, actor="ann").version == 2
    assert store.set(T2, "capability:a", True, actor="ann").version == 1
    assert store.set(T1, "capability:a", False, actor="ann", reason="r").version == 3
    assert store.load(T1).version == store.version(T1) == 3
    with store.db.read() as connection:
        assert stored.version(connection, TenantId(T1)) == 3
        assert stored.version(connection, TenantId(T2)) == 1
        assert stored.version(connection, TenantId("nobody")) == 0


class _WriterIds(SequentialIds):
    """Change ids that differ between writer threads."""

    def __init__(self, writer: str) -> None:
        super().__init__()
        self._writer = writer

    def new_id(self, prefix: str) -> str:
        return super().new_id(f"{prefix}_{self._writer}")


def test_concurrent_writers_never_share_a_version(
    databases: Callable[[], Database], clock: FrozenClock
) -> None:
    writers = {f"w{i}": _store(databases(), clock, _WriterIds(f"w{i}")) for i in range(4)}
    start = threading.Barrier(len(writers))
    versions: list[int] = []
    lock = threading.Lock()

    def write(writer: str, store: FlagStore) -> None:
        start.wait()
        for n in range(5):
            record = store.set(T1, f"capability:{writer}_{n}", True, actor=writer)
            with lock:
                versions.append(record.version)

    threads = [threading.Thread(target=write, args=item) for item in writers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == list(range(1, 21))
    assert writers["w0"].version(T1) == 20
    assert len(writers["w0"].history(T1)) == 20


def test_tenants_do_not_see_each_other(make_flags: Callable[..., Flags]) -> None:
    flags = make_flags()
    flags.set(T1, "capability:orders.lookup", False, actor="ann", reason="incident 7")
    assert flags.is_enabled(T1, "capability:orders.lookup") is False
    assert flags.is_enabled(T2, "capability:orders.lookup") is True
    assert flags.kill_switch(T2, capability="orders.lookup") is None
    assert flags.get(T2, "capability:orders.lookup") is None
    assert flags.list(T2) == [] and flags.history(T2) == []
    flags.set(T2, "capability:orders.lookup", True, actor="eve", reason="mine")
    assert [r.value for r in flags.list(T1)] == [False]
    assert flags.is_enabled(T1, "capability:orders.lookup") is False


def test_this_instance_sees_its_own_change_at_once(make_flags: Callable[..., Flags]) -> None:
    flags = make_flags(refresh_seconds=3600)
    assert flags.is_enabled(T1, "journey:refund_request") is True
    flags.set(T1, "journey:refund_request", False, actor="ann", reason="paused")
    assert flags.is_enabled(T1, "journey:refund_request") is False


def test_another_instance_sees_a_change_after_observe(
    make_flags: Callable[..., Flags], clock: FrozenClock
) -> None:
    writer, reader = make_flags(), make_flags()
    assert reader.is_enabled(T1, "capability:orders.lookup") is True
    record = writer.set(T1, "capability:orders.lookup", False, actor="ann", reason="incident 7")
    assert reader.is_enabled(T1, "capability:orders.lookup") is True  # not told yet
    reader.observe(T1, record.version)
    assert reader.is_enabled(T1, "capability:orders.lookup") is False
    assert reader.kill_switch(T1, capability="orders.lookup") == "capability:orders.lookup"


def test_another_instance_sees_a_change_after_refresh_seconds(
    make_flags: Callable[..., Flags], clock: FrozenClock
) -> None:
    writer, reader = make_flags(), make_flags(refresh_seconds=2.0)
    assert reader.kill_switch(T1, capability="orders.lookup") is None
    writer.set(T1, "capability:orders.lookup", False, actor="ann", reason="incident 7")
    clock.advance(1.9)
    assert reader.kill_switch(T1, capability="orders.lookup") is None
    clock.advance(0.1)
    assert reader.kill_switch(T1, capability="orders.lookup") == "capability:orders.lookup"

    eager = make_flags(refresh_seconds=0)
    assert eager.is_enabled(T1, "capability:orders.lookup") is False
    writer.set(T1, "capability:orders.lookup", True, actor="ann", reason="fixed")
    assert eager.is_enabled(T1, "capability:orders.lookup") is True


def test_the_provider_reads_the_database_only_when_the_version_may_have_changed(
    databases: Callable[[], Database], clock: FrozenClock
) -> None:
    store = CountingStore(databases(), clock=clock)
    flags = Flags(store, refresh_seconds=1.0)
    try:
        for _ in range(100):
            assert flags.kill_switch(T1, capability="orders.lookup", journey="j") is None
            assert flags.is_enabled(T1, "channel:sms") is True
        assert (store.loads, store.version_reads) == (1, 0)

        clock.advance(1.0)
        flags.is_enabled(T1, "channel:sms")
        flags.is_enabled(T1, "channel:sms")
        assert (store.loads, store.version_reads) == (1, 1)

        clock.advance(1.0)
        flags.observe(T1, 0)  # the owner read the version: no check needed, nothing changed
        flags.is_enabled(T1, "channel:sms")
        assert (store.loads, store.version_reads) == (1, 1)

        _store(store.db, clock, SequentialIds(9)).set(
            T1, "channel:sms", False, actor="ann", reason="provider outage"
        )
        flags.observe(T1, 1)
        assert flags.is_enabled(T1, "channel:sms") is False
        assert flags.is_enabled(T1, "channel:sms") is False
        assert (store.loads, store.version_reads) == (2, 1)
    finally:
        flags.close()


def test_two_instances_in_one_process_do_not_interfere(
    make_flags: Callable[..., Flags], tmp_path: Path
) -> None:
    other_db = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other_db.migrate()
    try:
        first, second = make_flags(), make_flags(db=other_db)
        assert first.domain != second.domain
        first.set(T1, "capability:orders.lookup", False, actor="ann", reason="incident 7")
        second.set(T1, "rollout:refund_request", 40, actor="bob", reason="canary")
        context = EvaluationContext(targeting_key=T1)
        assert first.is_enabled(T1, "capability:orders.lookup") is False
        assert second.is_enabled(T1, "capability:orders.lookup") is True
        assert first.client.get_integer_value("rollout:refund_request", 0, context) == 0
        assert second.client.get_integer_value("rollout:refund_request", 0, context) == 40

        first.close()
        first.close()
        with pytest.raises(ConfigurationError, match="closed"):
            first.is_enabled(T1, "capability:orders.lookup")
        with pytest.raises(ConfigurationError, match="closed"):
            first.kill_switch(T1, capability="orders.lookup")
        unbound = api.get_client(first.domain).get_boolean_details(
            "capability:orders.lookup", True, context
        )
        assert (unbound.value, unbound.reason) == (True, Reason.DEFAULT)
        assert second.client.get_integer_value("rollout:refund_request", 0, context) == 40
    finally:
        other_db.dispose()


def test_evaluation_through_openfeature(make_flags: Callable[..., Flags]) -> None:
    flags = make_flags()
    flags.set(T1, "capability:orders.lookup", False, actor="ann", reason="incident 7")
    flags.set(T1, "rollout:refund_request", 25, actor="bob", reason="canary")
    client, context = flags.client, EvaluationContext(targeting_key=T1)

    stored_flag = client.get_boolean_details("capability:orders.lookup", True, context)
    assert (stored_flag.value, stored_flag.reason, stored_flag.error_code) == (
        False,
        Reason.STATIC,
        None,
    )
    assert stored_flag.flag_metadata == {"version": 1}
    missing = client.get_boolean_details("capability:payments.refund", True, context)
    assert (missing.value, missing.reason, missing.error_code) == (True, Reason.DEFAULT, None)
    assert client.get_integer_value("rollout:refund_request", 0, context) == 25
    assert client.get_float_value("rollout:refund_request", 0.0, context) == 25.0
    assert client.get_integer_value("rollout:other_journey", 100, context) == 100

    as_integer = client.get_integer_details("capability:orders.lookup", 7, context)
    assert (as_integer.value, as_integer.error_code) == (7, ErrorCode.TYPE_MISMATCH)
    assert as_integer.error_message is not None and "holds a boolean" in as_integer.error_message
    as_boolean = client.get_boolean_details("rollout:refund_request", True, context)
    assert (as_boolean.value, as_boolean.error_code) == (True, ErrorCode.TYPE_MISMATCH)
    as_string = client.get_string_details("rollout:refund_request", "x", context)
    assert (as_string.value, as_string.error_code) == ("x", ErrorCode.TYPE_MISMATCH)
    as_object = client.get_object_details("capability:orders.lookup", {"a": 1}, context)
    assert (as_object.value, as_object.error_code) == ({"a": 1}, ErrorCode.TYPE_MISMATCH)

    assert client.get_boolean_value("capability:orders.lookup", True) is False  # default tenant
    assert client.get_boolean_value("capability:orders.lookup", True, EvaluationContext("x"))


def test_is_enabled_defaults_and_refusals(make_flags: Callable[..., Flags]) -> None:
    flags = make_flags()
    assert flags.is_enabled(T1, "agent:triage") is True
    assert flags.is_enabled(T1, "shadow:triage") is False
    flags.set(T1, "shadow:triage", True, actor="ann", reason="compare v2")
    assert flags.is_enabled(T1, "shadow:triage") is True
    with pytest.raises(InputError, match="rollout percentage, not on or off"):
        flags.is_enabled(T1, "rollout:refund_request")
    with pytest.raises(InputError, match="unknown flag kind"):
        flags.is_enabled(T1, "feature:dark_mode")


def test_kill_switch_reports_the_first_switched_off_key_in_order(
    make_flags: Callable[..., Flags],
) -> None:
    flags = make_flags()

    def check(**names: str | None) -> str | None:
        return flags.kill_switch(T1, capability="orders.lookup", **names)

    everything = {"journey": "refund_request", "channel": "email", "agent": "triage"}
    assert check(**everything) is None
    flags.set(T1, "agent:triage", False, actor="ann", reason="bad answers")
    assert check(**everything) == "agent:triage"
    assert check(journey="refund_request", channel="email") is None
    flags.set(T1, "channel:email", False, actor="ann", reason="mail relay down")
    assert check(**everything) == "channel:email"
    flags.set(T1, "journey:refund_request", False, actor="ann", reason="paused")
    assert check(**everything) == "journey:refund_request"
    assert check(journey="other", channel="email") == "channel:email"
    flags.set(T1, "capability:orders.lookup", False, actor="ann", reason="incident 7")
    assert check(**everything) == "capability:orders.lookup"
    assert flags.kill_switch(T1, capability="orders.refund", agent="triage") == "agent:triage"
    for key in ("capability:orders.lookup", "journey:refund_request", "channel:email"):
        flags.set(T1, key, True, actor="ann", reason="back")
    flags.set(T1, "shadow:triage", False, actor="ann", reason="not a kill switch")
    assert check(**everything) == "agent:triage"
    flags.set(T1, "agent:triage", True, actor="ann", reason="back")
    assert check(**everything) is None


def _store(db: Database, clock: FrozenClock, ids: IdGenerator) -> FlagStore:
    return FlagStore(db, clock=clock, ids=ids, ledger=ledger_for(db, clock))
