"""The engine: one per process, with SQLite's per-connection tuning and a free liveness check."""

from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from app.core.config import Settings

# A pooled connection is replaced once this old (`pool_recycle`); so is a held read one.
CONNECTION_MAX_AGE_SECONDS = 1800
# Execution option of SQLite's write engine: its transactions take the write lock at their
# first write or locking read (`_lock_before_writing`).
SQLITE_IMMEDIATE = "tasks_api_sqlite_immediate"
# connection.info key: whether this transaction holds the write lock (or never will).
_SQLITE_LOCKED = "tasks_api_sqlite_locked"


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _tune_sqlite(
    dbapi_connection: Any, _record: ConnectionPoolEntry, busy_seconds: float = 5.0
) -> None:
    # Runs on every new connection: foreign keys are per connection in SQLite, and WAL
    # lets readers proceed while one writer writes.
    # SQLite's own lower() (and so ILIKE, which SQLAlchemy writes as lower() LIKE lower())
    # folds ASCII only: "ÄPFEL" would not match "äpf" as it does on PostgreSQL. Nothing
    # indexes lower(), so replacing it per connection changes no stored order.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    # The driver's own transaction handling off: `_begin_sqlite` says BEGIN (SQLAlchemy's
    # documented recipe), so reads are inside the transaction and a write transaction can
    # take the write lock when it needs it (`_lock_before_writing`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={round(busy_seconds * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_sqlite(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
    connection.info[_SQLITE_LOCKED] = False


def _takes_write_lock(statement: str, context: Any) -> bool:
    if statement.lstrip()[:7].upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE")):
        return True
    compiled = getattr(context, "compiled", None)
    # SQLite's compiler leaves FOR UPDATE / FOR SHARE out; the statement still asks for it.
    return getattr(getattr(compiled, "statement", None), "_for_update_arg", None) is not None


def _lock_before_writing(
    connection: Any,
    cursor: Any,
    statement: str,
    _parameters: Any,
    context: Any,
    _executemany: bool,
) -> None:
    # SQLite has no row locks: a write transaction (SQLITE_IMMEDIATE) takes the database's one
    # write lock at its first write or locking read (FOR UPDATE / FOR SHARE), as PostgreSQL
    # would lock the rows, so concurrent writers queue and each reads what the previous one
    # committed. A deferred transaction that read first would read a state that is stale by
    # the time it may write (a 412 no client asked for, or a tree cycle). Until then it has
    # only read: it is ended, and the rest runs in a new one begun IMMEDIATE (each statement
    # seeing the latest committed rows, as under PostgreSQL's READ COMMITTED). Reads before
    # the first write take no lock, so a counter written on another connection meanwhile
    # (the rate limiter's) never waits for this transaction.
    if connection.info.get(_SQLITE_LOCKED, True):
        return
    if not connection.get_execution_options().get(SQLITE_IMMEDIATE, False):
        connection.info[_SQLITE_LOCKED] = True
        return
    if _takes_write_lock(statement, context):
        connection.info[_SQLITE_LOCKED] = True
        cursor.execute("COMMIT")
        cursor.execute("BEGIN IMMEDIATE")


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
            # Client-side bounds: connecting, and every statement (asyncpg's command_timeout).
            connect_args={
                "timeout": settings.DB_CONNECT_TIMEOUT_SECONDS,
                "command_timeout": settings.DB_STATEMENT_TIMEOUT_SECONDS,
                "server_settings": {"timezone": "UTC"},
            },
            **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
        )
        event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
        return engine
    # SQLite's lock waits are bounded by its busy timeout: the statement bound.
    busy = settings.DB_STATEMENT_TIMEOUT_SECONDS
    engine = create_async_engine(url, **pool, connect_args={"timeout": busy})
    event.listen(
        engine.sync_engine,
        "connect",
        lambda dbapi_connection, record: _tune_sqlite(dbapi_connection, record, busy),
    )
    event.listen(engine.sync_engine, "begin", _begin_sqlite)
    event.listen(engine.sync_engine, "before_cursor_execute", _lock_before_writing)
    return engine
