"""Shared fixtures: databases (SQLite and PostgreSQL), a wired Accord, test capabilities.

PostgreSQL tests run when ``ACCORD_TEST_POSTGRES_URL`` is set. With ``ACCORD_REQUIRE_POSTGRES=1``
(as in CI) a PostgreSQL test that cannot run fails the session instead of being skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from accord.connectors import CapabilityRegistry
from accord.core import TenantId
from accord.service import Accord, Settings, build
from accord.storage import Database
from accord.storage._schema import metadata
from accord.testing import FrozenClock, SequentialIds
from tests.capabilities import Calls, register_test_capabilities
from tests.governance import PERMIT_ALL, deploy_policies
from tests.replay import assert_replays_match

PG_URL = os.environ.get("ACCORD_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("ACCORD_REQUIRE_POSTGRES") == "1"
TENANT = TenantId("default")

_skipped_postgres: list[str] = []


# The longest modules run first, so that parallel workers do not end with one of them alone.
_LONG_FIRST = (
    "test_prompt_injection.py",
    "test_runtime_properties.py",
    "test_clinc150.py",
    "test_chaos.py",
    "test_crash_recovery.py",
    "test_concurrency.py",
    "test_gateway_properties.py",
    "test_connector_properties.py",
    "test_context_properties.py",
    "test_agents_llm.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(_LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "postgres" in report.keywords:
        _skipped_postgres.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_PG and _skipped_postgres:
        print(f"\nACCORD_REQUIRE_POSTGRES=1 but {len(_skipped_postgres)} PostgreSQL tests skipped:")
        for nodeid in _skipped_postgres[:20]:
            print(f"  {nodeid}")
        session.exitstatus = 1


def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    if not PG_URL:
        pytest.skip("set ACCORD_TEST_POSTGRES_URL to run PostgreSQL tests")
    name = f"accord_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(_admin_url(PG_URL), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL at {PG_URL} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    Database(url).migrate()
    yield url
    with psycopg.connect(_admin_url(PG_URL), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a new SQLite file and on (emptied) PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'accord.db'}"
    url: str = request.getfixturevalue("postgres_server")
    db = Database(url)
    with db.transaction() as connection:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        connection.execute(sa.text(f"TRUNCATE {names}"))
    db.dispose()
    return url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def capabilities(calls: Calls) -> CapabilityRegistry:
    registry = CapabilityRegistry()
    register_test_capabilities(registry, calls)
    return registry


@pytest.fixture
def make_accord(
    request: pytest.FixtureRequest,
    database_url: str,
    clock: FrozenClock,
    capabilities: CapabilityRegistry,
    tmp_path: Path,
) -> Iterator[Callable[..., Accord]]:
    """Build Accord instances on the test database (several may share it, like processes)."""
    built: list[Accord] = []

    def make(**options: object) -> Accord:
        """Build an instance; ``policies`` is the bundle it deploys (permit-all; None: none)."""
        settings = Settings(
            database_url=database_url,
            lease_seconds=options.pop("lease", 30.0),
            keys_dir=tmp_path / "keys",
        )
        policies = options.pop("policies", PERMIT_ALL)
        instance = build(
            settings,
            capabilities=capabilities,
            clock=clock,
            ids=SequentialIds(len(built)),
            **options,  # type: ignore[arg-type]
        )
        built.append(instance)
        if isinstance(policies, str):
            deploy_policies(instance, policies)
        return instance

    yield make
    try:
        if built and request.node.get_closest_marker("no_replay_check") is None:
            assert_replays_match(built[0])
    finally:
        for instance in built:
            instance.close()


@pytest.fixture
def accord(make_accord: Callable[..., Accord]) -> Accord:
    return make_accord()
