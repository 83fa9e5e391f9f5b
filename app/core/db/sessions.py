"""Sessions: the write and read session makers, the read gate and the held read sessions."""

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.core.db.engine import CONNECTION_MAX_AGE_SECONDS, SQLITE_IMMEDIATE, create_engine
from app.core.db.errors import DatabaseUnavailable, unavailability

logger = logging.getLogger(__name__)

# Writes run in one transaction at the server's usual level.
WRITE_ISOLATION_LEVEL = "READ COMMITTED"
# session.info key: the asyncpg connection under a held read session's own.
_DRIVER_KEY = "tasks_api.driver_connection"


class Availability:
    """Whether to try the database now: after it failed to answer, requests fail fast with a
    503 for a while that doubles with each failure in a row (0.5 s up to 8 s), then one
    request tries again; the first success ends it. So a database that is down or
    recovering sees one connection attempt a while, not one a request."""

    FIRST_WAIT = 0.5
    LONGEST_WAIT = 8.0

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._failures = 0
        self._until = 0.0

    def _wait(self) -> float:
        wait: float = self.FIRST_WAIT * 2.0 ** (self._failures - 1)
        return min(wait, self.LONGEST_WAIT)

    def check(self) -> None:
        """DatabaseUnavailable while the wait after the last failure runs; else go ahead
        (after failures, this request is the one that tries: the others wait again)."""
        if not self._failures:
            return
        now = self._clock()
        if now < self._until:
            raise DatabaseUnavailable(retry_after=math.ceil(self._until - now))
        self._until = now + self._wait()

    def failed(self) -> None:
        """The database did not answer: wait longer before the next try."""
        self._failures += 1
        self._until = self._clock() + self._wait()

    def succeeded(self) -> None:
        """The database answered."""
        if self._failures:
            self._failures = 0
            self._until = 0.0


class Database:
    """The engine and session factories of one process, owned by the app's lifespan.

    On PostgreSQL, pooled connections rest in autocommit mode, and the one pool has two views:
    `sessionmaker`, a READ COMMITTED transaction per session (writes, and everything outside
    requests), and `read_sessionmaker`, no transaction at all, for GET and HEAD (under READ
    COMMITTED each statement takes its own snapshot anyway, so a read sees the same rows
    without BEGIN and COMMIT). On SQLite, `sessionmaker`'s transactions take the write lock at
    their first write or locking read (see engine.py) and `read_sessionmaker`'s never do.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        base = create_engine(settings, autocommit=settings.is_postgres)
        self.settings = settings
        self.availability = Availability(clock)
        self._base = base
        self.engine = (
            base.execution_options(isolation_level=WRITE_ISOLATION_LEVEL)
            if settings.is_postgres
            else base.execution_options(**{SQLITE_IMMEDIATE: True})
        )
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )
        self.read_sessionmaker = async_sessionmaker(
            base, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )
        # Reads queue here, first come first served, before they reach the pool: SQLAlchemy's
        # pool lets a late arrival overtake those already waiting, asyncio's semaphore does
        # not. Writes skip it, as some hold their session through a password hash.
        self.read_gate = asyncio.Semaphore(read_capacity(settings))
        self.read_sessions = (
            ReadSessions(base, self.read_sessionmaker) if settings.is_postgres else None
        )

    @property
    def counter_engine(self) -> AsyncEngine:
        """The pool's engine without a write transaction's options: autocommit on PostgreSQL,
        deferred transactions on SQLite (they take no write lock until they write). For
        writers that must not wait on a request's transaction, such as counters (the app
        gives its rate limiter a pool of its own)."""
        return self._base

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for a GET or HEAD, after waiting at the read gate for a place."""
        async with self.read_gate, self.placed_read_session() as session:
            yield session

    def placed_read_session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read session for a caller that already holds a place at the read gate.

        On PostgreSQL one of `ReadSessions`; on SQLite a new session.
        """
        if self.read_sessions is None:
            return self.read_sessionmaker()
        return self.read_sessions.lend()

    async def ping(self) -> None:
        """Run a trivial query; raises if the database cannot be reached (TimeoutError past
        the connect and statement bounds together)."""
        bound = (
            self.settings.DB_CONNECT_TIMEOUT_SECONDS + self.settings.DB_STATEMENT_TIMEOUT_SECONDS
        )
        with anyio.fail_after(bound):
            async with self._base.connect() as connection:
                await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close the held read sessions and every pooled connection (the app's shutdown).

        Bounded: a server that does not answer the goodbye is not waited for (the process is
        going away, and its connections with it)."""
        with anyio.move_on_after(self.settings.DB_CONNECT_TIMEOUT_SECONDS) as scope:
            if self.read_sessions is not None:
                await self.read_sessions.close()
            await self._base.dispose()
        if scope.cancelled_caught:
            logger.warning("database connections not closed within %ss at shutdown", scope.deadline)


class ReadSessions:
    """PostgreSQL's read sessions, each bound to a connection held out of the pool and reused.

    Building a session and checking a connection out per GET costs more CPU than the rest of
    a read but FastAPI's. Only holders of a read-gate place borrow one, so at most the gate's
    size exist. One whose connection died or outlived the pool's recycle time is replaced
    before it is lent; each comes back reset (no loaded objects, its original `info`, no
    transaction), or is closed if that fails.
    """

    def __init__(self, engine: AsyncEngine, maker: async_sessionmaker[AsyncSession]) -> None:
        self._engine = engine
        self._maker = maker
        self._idle: list[AsyncSession] = []
        self._open: dict[AsyncSession, tuple[AsyncConnection, float]] = {}

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[AsyncSession]:
        """A ready session for the block, taken back after it."""
        session = await self.acquire()
        try:
            yield session
        except BaseException as exc:
            # A connection that timed out or was cut is in an unknown state: never lent again.
            if unavailability(exc) is not None:
                await self._discard(session)
            else:
                await self.release(session)
            raise
        await self.release(session)

    async def acquire(self) -> AsyncSession:
        """An idle session that is still usable, or a new one."""
        while self._idle:
            session = self._idle.pop()
            if self._usable(session):
                return session
            await self._discard(session)
        return await self._new()

    async def release(self, session: AsyncSession) -> None:
        """Take `session` back: reset for the next read, or closed if that fails."""
        try:
            if session.in_transaction():
                await session.close()  # ends its transaction; the connection stays held
            else:
                session.sync_session.expunge_all()
            info = session.info
            driver = info.get(_DRIVER_KEY)
            info.clear()
            info.update(self._maker.kw.get("info") or {})
            info[_DRIVER_KEY] = driver
            self._idle.append(session)
        except BaseException:
            await self._discard(session)
            raise

    async def close(self) -> None:
        """Give every held connection back."""
        self._idle.clear()
        for session in list(self._open):
            await self._discard(session)

    def _usable(self, session: AsyncSession) -> bool:
        connection, opened_at = self._open[session]
        driver = session.info.get(_DRIVER_KEY)
        fresh = time.monotonic() - opened_at < CONNECTION_MAX_AGE_SECONDS
        alive = driver is not None and not driver.is_closed() and not connection.invalidated
        return fresh and alive

    async def _new(self) -> AsyncSession:
        connection = await self._engine.connect()
        session = self._maker(bind=connection)
        checked_out = connection.sync_connection
        if checked_out is not None:
            # Checked out above, so no I/O: the pooled connection's asyncpg connection.
            session.info[_DRIVER_KEY] = checked_out.connection.driver_connection
        self._open[session] = (connection, time.monotonic())
        return session

    async def _discard(self, session: AsyncSession) -> None:
        connection, _ = self._open.pop(session)
        with anyio.CancelScope(shield=True):
            try:
                await session.close()
            finally:
                await connection.invalidate()
                await connection.close()


def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection a PostgreSQL read session holds (see `ReadSessions`).

    None for any other session: one that may hold a transaction, or any SQLite session.
    """
    return session.info.get(_DRIVER_KEY)


async def end_read_only_transaction(session: AsyncSession) -> None:
    """Give the session's connection back to the pool before slow work (a password hash).

    Only for a session that has read and not written: ending that transaction loses nothing,
    and loaded objects stay usable (the sessions do not expire on commit).
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("end_read_only_transaction() with pending writes")
    await session.commit()


async def get_database(request: Request) -> Database:
    """The process's database, as set up by the lifespan."""
    # `async def`: FastAPI runs a plain `def` dependency in a worker thread.
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


def pool_capacity(settings: Settings) -> int:
    """How many connections one process's main pool may hold at once."""
    return settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW


def read_capacity(settings: Settings) -> int:
    """How many GET/HEAD sessions may be open at once: half the pool.

    On PostgreSQL each of them holds its connection, so the other half is what writes have
    (they skip the read gate, and would otherwise queue in the pool, which is not fair).
    """
    return max(1, pool_capacity(settings) // 2)
