"""Policy bundles in the database, on SQLite and PostgreSQL: versions, tenants, other processes."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.errors import InputError
from accord.policy import (
    Entity,
    PolicyBundleNotFound,
    PolicyDecisionPoint,
    PolicyInvalid,
    PolicyRequest,
    PolicyStore,
)
from accord.storage import Database
from accord.storage._policies import PolicyBundleRecord, insert_version, latest_version
from accord.storage._schema import policy_bundles
from accord.testing import FrozenClock
from tests.ledgers import ledger_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
POLICIES = (EXAMPLES / "retail.cedar").read_text(encoding="utf-8")
SCHEMA = (EXAMPLES / "accord.cedarschema").read_text(encoding="utf-8")
STRICTER = POLICIES.replace('decimal("100.00")', 'decimal("50.00")')

SERVICE = Entity("Service", "journey/refund_request", {"role": "journey", "journey": "refund"})
SUBJECT = Entity("Subject", "cus_00001", {"region": "eu"})
REFUND_80 = PolicyRequest(SERVICE, "payments.refund", SUBJECT, {"amount": Decimal("80")})


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def store(db: Database, clock: FrozenClock) -> PolicyStore:
    return PolicyStore(db, clock=clock, ledger=ledger_for(db, clock))


def rows(db: Database) -> int:
    with db.read() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(policy_bundles)).scalar_one()
        )


def test_deploys_make_versions_and_the_newest_is_active(
    store: PolicyStore, db: Database, clock: FrozenClock
) -> None:
    assert store.active("default") is None
    first = store.deploy("default", POLICIES, SCHEMA, source_name="retail.cedar", actor="ops")
    assert (first.version, first.deployed_at, first.deployed_by) == (1, clock.now(), "ops")
    assert first.source_name == "retail.cedar"
    assert store.active("default") is first

    clock.advance(60)
    second = store.deploy("default", STRICTER, SCHEMA, source_name="stricter.cedar", actor="ana")
    assert second.version == 2 and second.digest != first.digest
    assert store.active("default") is second
    assert [v.version for v in store.versions("default")] == [2, 1]
    assert [v.deployed_by for v in store.versions("default")] == ["ana", "ops"]
    assert store.get_compiled("default", 1) is first
    assert store.bundle("default") is second
    assert store.bundle("default", 1) is first
    with db.read() as connection:
        assert latest_version(connection, "default") == 2
        assert store.active("default", connection=connection) is second

    pdp = PolicyDecisionPoint()
    assert pdp.decide(first, REFUND_80).obligations_of("approval") == ()
    assert pdp.decide(second, REFUND_80).obligations_of("approval") == ("supervisor",)


def test_redeploying_the_active_content_changes_nothing(store: PolicyStore, db: Database) -> None:
    first = store.deploy("default", POLICIES, SCHEMA, source_name="a.cedar", actor="ops")
    again = store.deploy("default", POLICIES, SCHEMA, source_name="b.cedar", actor="other")
    assert again is first
    assert rows(db) == 1
    # Going back to earlier content after a change is a new version: a rollback is a deploy.
    store.deploy("default", STRICTER, SCHEMA, source_name="s.cedar", actor="ops")
    back = store.deploy("default", POLICIES, SCHEMA, source_name="a.cedar", actor="ops")
    assert back.version == 3 and back.digest == first.digest
    assert rows(db) == 3


def test_an_invalid_bundle_writes_nothing(store: PolicyStore, db: Database) -> None:
    broken = POLICIES.replace("context.amount.lessThanOrEqual", "context.amount.lessThanOrEqal")
    with pytest.raises(PolicyInvalid) as caught:
        store.deploy("default", broken, SCHEMA, source_name="broken.cedar", actor="ops")
    assert any('"refund-up-to-100"' in d for d in caught.value.diagnostics)
    assert rows(db) == 0
    assert store.active("default") is None

    good = store.deploy("default", POLICIES, SCHEMA, source_name="retail.cedar", actor="ops")
    with pytest.raises(PolicyInvalid):
        store.deploy("default", POLICIES, "namespace Accord {", source_name="x", actor="ops")
    assert store.active("default") is good
    assert rows(db) == 1


def test_a_tenants_bundles_are_invisible_to_other_tenants(store: PolicyStore, db: Database) -> None:
    store.deploy("tenant-a", POLICIES, SCHEMA, source_name="a.cedar", actor="ops")
    store.deploy("tenant-a", STRICTER, SCHEMA, source_name="a2.cedar", actor="ops")
    assert store.active("tenant-b") is None
    assert store.versions("tenant-b") == []
    with db.read() as connection:
        assert latest_version(connection, "tenant-b") == 0
    with pytest.raises(PolicyBundleNotFound) as caught:
        store.get_compiled("tenant-b", 1)
    assert "tenant 'tenant-b' has no policy bundle" in caught.value.message

    own = store.deploy("tenant-b", STRICTER, SCHEMA, source_name="b.cedar", actor="ops")
    assert own.version == 1  # same content as tenant-a's version 2, but its own first version
    active_a = store.active("tenant-a")
    assert active_a is not None and active_a.version == 2
    decision = PolicyDecisionPoint().decide(store.active("tenant-b"), REFUND_80)
    assert decision.bundle_version == 1


def test_another_store_on_the_same_database_sees_each_new_deploy(
    db: Database, database_url: str, clock: FrozenClock
) -> None:
    writer = PolicyStore(db, clock=clock, ledger=ledger_for(db, clock))
    other_db = Database(database_url)
    try:
        reader = PolicyStore(other_db, clock=clock, ledger=ledger_for(other_db, clock))
        assert reader.active("default") is None
        writer.deploy("default", POLICIES, SCHEMA, source_name="retail.cedar", actor="ops")
        seen = reader.active("default")
        assert seen is not None and seen.version == 1
        assert reader.active("default") is seen  # compiled once, then served from memory

        writer.deploy("default", STRICTER, SCHEMA, source_name="stricter.cedar", actor="ops")
        newer = reader.active("default")
        assert newer is not None and newer.version == 2
        assert PolicyDecisionPoint().decide(newer, REFUND_80).obligations_of("approval") == (
            "supervisor",
        )
        # The reader deploys what is already active: nothing new is written.
        assert (
            reader.deploy("default", STRICTER, SCHEMA, source_name="s.cedar", actor="x").version
            == 2
        )
    finally:
        other_db.dispose()


def test_a_stored_bundle_that_no_longer_compiles_fails_closed_and_can_be_replaced(
    store: PolicyStore, db: Database
) -> None:
    # As if Cedar had changed under a stored version: the row is there, but it does not compile.
    with db.transaction() as connection:
        insert_version(
            connection,
            PolicyBundleRecord("default", 1, "sha256:old", "permit (", SCHEMA, "old", 1.0, "ops"),
        )
    with pytest.raises(PolicyInvalid):
        store.active("default")
    fixed = store.deploy("default", POLICIES, SCHEMA, source_name="retail.cedar", actor="ops")
    assert fixed.version == 2
    assert store.active("default") is fixed


def test_missing_versions_are_reported_with_the_ones_that_exist(store: PolicyStore) -> None:
    with pytest.raises(PolicyBundleNotFound) as caught:
        store.bundle("default")
    assert caught.value.hint is not None and "accord policy deploy" in caught.value.hint
    store.deploy("default", POLICIES, SCHEMA, source_name="retail.cedar", actor="ops")
    with pytest.raises(PolicyBundleNotFound) as caught:
        store.bundle("default", 9)
    assert caught.value.message == "tenant 'default' has no policy bundle version 9"
    assert caught.value.hint is not None and caught.value.hint.startswith("versions: 1;")


def test_names_too_long_for_their_columns_are_refused_before_writing(
    store: PolicyStore, db: Database
) -> None:
    with pytest.raises(InputError, match="actor must be 1 to 128 characters"):
        store.deploy("default", POLICIES, SCHEMA, source_name="a", actor="x" * 129)
    with pytest.raises(InputError, match="tenant must be 1 to 64 characters"):
        store.deploy("t" * 65, POLICIES, SCHEMA, source_name="a", actor="ops")
    assert rows(db) == 0
