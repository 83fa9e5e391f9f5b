"""Test harness: a real database per run (SQLite, or PostgreSQL when TEST_DATABASE_URL is set).

- The run gets its own database: a temporary SQLite file, or a fresh PostgreSQL database
  created on the TEST_DATABASE_URL server and dropped at the end. Migrations (never
  `create_all`) build the schema once.
- Each test gets a new app (its lifespan opens and closes the engine) and, afterwards, every
  table is emptied, so tests cannot see each other's rows.
- `app.dependency_overrides` is the way to swap a dependency (session, current user, ...);
  the `app` fixture clears it after every test.
"""

import gc
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app import all_models  # noqa: F401 - registers every table on the metadata
from app.core.clock import Clock
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.main import create_app
from tests.helpers import POSTGRES_ONLY_REASON

ROOT = Path(__file__).resolve().parent.parent

# Every run explores the same examples unless exploration is asked for, so a red run is always
# the code's fault and can be replayed; `TEST_EXPLORE=1` draws fresh ones (README, "Attack
# suites"). No example database either: a failure saved by an exploring run must not turn a
# later plain run red.
EXPLORE = os.environ.get("TEST_EXPLORE") == "1"
hypothesis_settings.register_profile("reproducible", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile("explore" if EXPLORE else "reproducible")
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"

# Cheap hashing and generous throttles by default; tests about throttling or hashing cost
# build an app with their own settings through `make_app`.
BASE_SETTINGS: dict[str, Any] = {
    "ENVIRONMENT": "test",
    "SECRET_KEY": TEST_SECRET,
    "ARGON2_MEMORY_KIB": 1024,
    "ARGON2_TIME_COST": 1,
    "REGISTER_MAX_PER_IP": 10_000,
    "REGISTER_MAX_PER_EMAIL": 10_000,
    "LOGIN_MAX_FAILURES_PER_IP": 10_000,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 10_000,
    "RECOVERY_MAX_PER_IP": 10_000,
    "RECOVERY_MAX_PER_EMAIL": 10_000,
    "VERIFY_RESEND_MAX_PER_IP": 10_000,
    "VERIFY_RESEND_MAX_PER_EMAIL": 10_000,
    "LOG_LEVEL": "WARNING",
    # Process-wide: tests/core/test_process.py turns it on, and back off, itself.
    "GC_TUNING": False,
}


def sync_url(url: str) -> str:
    """The URL with a synchronous driver, for the harness's own housekeeping."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(drivername="sqlite"))
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def create_postgres_database(server_url: str, name: str) -> str:
    """Create database `name` on the server of `server_url`; return its URL."""
    admin = create_engine(sync_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(server_url: str, name: str) -> None:
    admin = create_engine(sync_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def new_database_url(tmp_dir: Path) -> tuple[str, Callable[[], None]]:
    """A fresh, empty database on the selected backend, and how to drop it."""
    server = os.environ.get("TEST_DATABASE_URL")
    if server:
        name = f"tasks_test_{uuid.uuid4().hex[:12]}"
        return create_postgres_database(server, name), lambda: drop_postgres_database(server, name)
    path = tmp_dir / f"test-{uuid.uuid4().hex[:8]}.db"
    return f"sqlite:///{path}", lambda: None


def alembic_config(settings: Settings) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["settings"] = settings
    config.attributes["configure_logger"] = False
    return config


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return Settings(**{**BASE_SETTINGS, "DATABASE_URL": database_url, **overrides})  # type: ignore[arg-type]


def pytest_report_header() -> list[str]:
    """The fuzzing seed, up front (pytest reads this hook only from the root conftest)."""
    from tests.security import fuzzing

    mode = "exploring (TEST_EXPLORE=1)" if EXPLORE else "reproducible"
    return [
        f"fuzzing: {mode}, SCHEMATHESIS_SEED={fuzzing.SEED} FUZZ_EXAMPLES={fuzzing.EXAMPLES}"
        " (set both to replay this run)"
    ]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Collect garbage only between tests, never inside one.

    Twice a CI lane hung for good (SQLite, under coverage, CPython 3.11.7) with the main thread
    inside a collection that an allocation had started, running a weakref callback while the
    app's worker threads (aiosqlite's, AnyIO's, the test client's portal) ran: a collection at
    an arbitrary point of a multi-threaded test. Between tests those threads are idle, so the
    collector runs there (teardown, below) and is off meanwhile.
    """
    gc.collect()
    gc.freeze()  # what collection and imports built: never garbage, no need to walk it again
    gc.disable()


# A full collection walks everything the run keeps (about 40 ms here); the young generations,
# where a test's garbage is, cost a fraction of that.
FULL_COLLECTION_EVERY = 25
_tests_torn_down = 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After every fixture of the test is torn down: the collection the test did not run."""
    global _tests_torn_down
    yield
    _tests_torn_down += 1
    gc.collect(2 if _tests_torn_down % FULL_COLLECTION_EVERY == 0 else 1)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.postgres` tests run only in the PostgreSQL lane (.ci/run checks they did)."""
    if item.get_closest_marker("postgres") and not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip(POSTGRES_ONLY_REASON)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The run's database, migrated to head once."""
    url, drop = new_database_url(tmp_path_factory.mktemp("db"))
    command.upgrade(alembic_config(settings_for(url)), "head")
    yield url
    drop()


@pytest.fixture(scope="session")
def housekeeping_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(sync_url(database_url))
    yield engine
    engine.dispose()


def empty_all_tables(engine: Engine) -> None:
    tables = [table.name for table in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{name}"' for name in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                # Names come from our own metadata, not from input.
                connection.execute(text(f'DELETE FROM "{name}"'))  # noqa: S608


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
def make_app(database_url: str, housekeeping_engine: Engine) -> Iterator[Callable[..., FastAPI]]:
    """Build an app on the test database with setting overrides (and, for tests of windows and
    expiries, a `clock`, such as `tests.helpers.ManualClock`); cleaned up after the test."""
    apps: list[FastAPI] = []

    def factory(*, clock: Clock | None = None, **overrides: Any) -> FastAPI:
        application = create_app(settings_for(database_url, **overrides), clock=clock)
        apps.append(application)
        return application

    yield factory
    for application in apps:
        application.dependency_overrides.clear()
    empty_all_tables(housekeeping_engine)


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, make_app: Callable[..., FastAPI]
) -> Iterator[None]:
    """The environment a shell would give `tasks-api`, on the test database."""
    # make_app is requested so the tables are emptied after the test.
    for name, value in {
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "cli-test-secret-key-that-is-long-enough-0123456789",
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_TIME_COST": "1",
        "LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client whose `with` block runs the app's lifespan (engine open for the test)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def db_session(
    settings: Settings, housekeeping_engine: Engine
) -> AsyncIterator[AsyncSession]:
    """A session for calling service functions directly; tables are emptied afterwards."""
    database = Database(settings)
    async with database.sessionmaker() as session:
        yield session
    await database.dispose()
    empty_all_tables(housekeeping_engine)
