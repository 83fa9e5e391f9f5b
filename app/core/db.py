"""The engine (one per process), the per-request session and its transaction."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.core.errors import AppError

SQLITE_BUSY_TIMEOUT_MS = 5000


def _tune_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Runs on every new connection: foreign keys are per connection in SQLite, and WAL
    # lets readers proceed while one writer writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(
    settings: Settings, *, pool_size: int | None = None, max_overflow: int | None = None
) -> AsyncEngine:
    """Build an engine for the configured database (the pool sized by the settings)."""
    url = settings.async_database_url
    if settings.is_postgres:
        return create_async_engine(
            url,
            echo=settings.DB_ECHO,
            pool_size=settings.DB_POOL_SIZE if pool_size is None else pool_size,
            max_overflow=settings.DB_MAX_OVERFLOW if max_overflow is None else max_overflow,
            pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
            pool_pre_ping=True,
            pool_recycle=1800,
            # Short connect timeout: /health/ready must answer promptly while the server is down.
            connect_args={"timeout": 5, "server_settings": {"timezone": "UTC"}},
        )
    engine = create_async_engine(
        url,
        echo=settings.DB_ECHO,
        pool_size=settings.DB_POOL_SIZE if pool_size is None else pool_size,
        max_overflow=settings.DB_MAX_OVERFLOW if max_overflow is None else max_overflow,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine.sync_engine, "connect", _tune_sqlite)
    return engine


class Database:
    """The engine and session factory of one process, owned by the app's lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )

    async def ping(self) -> None:
        """Run a trivial query; raises if the database cannot be reached."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def end_read_only_transaction(session: AsyncSession) -> None:
    """Give the session's connection back to the pool before slow work (a password hash).

    Only for a session that has read and not written: ending that transaction loses nothing,
    and loaded objects stay usable (the sessions do not expire on commit). Holding a pooled
    connection through a 50 ms hash is what exhausts the pool under a sign-in storm.
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("end_read_only_transaction() with pending writes")
    await session.commit()


def get_database(request: Request) -> Database:
    """The process's database, as set up by the lifespan."""
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


async def get_session(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit after the endpoint succeeds, roll back on error.

    Used with `scope="function"`, so the commit happens before the response is sent: a client
    never sees a 2xx for a write that did not persist.
    """
    async with database.sessionmaker() as session:
        try:
            yield session
        except AppError as exc:
            if exc.keeps_writes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


LIKE_ESCAPE = "\\"


def contains_pattern(fragment: str) -> str:
    """A LIKE pattern matching `fragment` anywhere, with `%`, `_` and `\\` taken literally.

    Use it with `escape=LIKE_ESCAPE`: user input must never act as a wildcard.
    """
    escaped = (
        fragment.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"
