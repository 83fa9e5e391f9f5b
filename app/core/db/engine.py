"""The engine: one per process, with SQLite's per-connection tuning and a free liveness check."""

from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from app.core.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 5000
# A pooled connection is replaced once this old (`pool_recycle`); so is a held read one.
CONNECTION_MAX_AGE_SECONDS = 1800


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _tune_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Runs on every new connection: foreign keys are per connection in SQLite, and WAL
    # lets readers proceed while one writer writes.
    # SQLite's own lower() (and so ILIKE, which SQLAlchemy writes as lower() LIKE lower())
    # folds ASCII only: "ÄPFEL" would not match "äpf" as it does on PostgreSQL. Nothing
    # indexes lower(), so replacing it per connection changes no stored order.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _refuse_closed_connection(
    dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any
) -> None:
    # The pool's liveness check without a round trip: asyncpg reads its socket all the time,
    # so a connection the server closed is already marked closed at checkout, and
    # DisconnectionError (the documented signal) makes the pool connect afresh.
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


def create_engine(
    settings: Settings,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    autocommit: bool = False,
) -> AsyncEngine:
    """Build an engine for the configured database (the pool sized by the settings).

    `autocommit=True` (PostgreSQL only) makes autocommit the connections' resting state; see
    `Database` for why and how transactions are still opened for writes.
    """
    pool: dict[str, Any] = {
        "echo": settings.DB_ECHO,
        "pool_size": settings.DB_POOL_SIZE if pool_size is None else pool_size,
        "max_overflow": settings.DB_MAX_OVERFLOW if max_overflow is None else max_overflow,
        "pool_timeout": settings.DB_POOL_TIMEOUT_SECONDS,
    }
    url = settings.async_database_url
    if settings.is_postgres:
        engine = create_async_engine(
            url,
            **pool,
            pool_recycle=CONNECTION_MAX_AGE_SECONDS,
            # Short connect timeout: /health/ready must answer promptly while the server is down.
            connect_args={"timeout": 5, "server_settings": {"timezone": "UTC"}},
            **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
        )
        event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
        return engine
    engine = create_async_engine(
        url, **pool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )
    event.listen(engine.sync_engine, "connect", _tune_sqlite)
    return engine
