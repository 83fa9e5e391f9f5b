"""The engine (one per process), the per-request session and its transaction."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, cast

import anyio
from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import event, exc, text
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.core.errors import AppError

SQLITE_BUSY_TIMEOUT_MS = 5000


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
    # The pool's liveness check, without a round trip. asyncpg reads its socket all the time,
    # so a connection the server closed (restart, idle timeout, pg_terminate_backend) is
    # already marked closed when it is checked out; the pool then discards it and connects
    # afresh (DisconnectionError is the documented signal). `pool_pre_ping` would instead
    # send a query on every checkout: one more round trip per request, for the same result.
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
    url = settings.async_database_url
    if settings.is_postgres:
        engine = create_async_engine(
            url,
            echo=settings.DB_ECHO,
            pool_size=settings.DB_POOL_SIZE if pool_size is None else pool_size,
            max_overflow=settings.DB_MAX_OVERFLOW if max_overflow is None else max_overflow,
            pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
            pool_recycle=READ_SESSION_MAX_AGE_SECONDS,
            # Short connect timeout: /health/ready must answer promptly while the server is down.
            connect_args={"timeout": 5, "server_settings": {"timezone": "UTC"}},
            **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
        )
        event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
        return engine
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


# A held read connection is replaced once this old, like the pool's own (`pool_recycle`).
READ_SESSION_MAX_AGE_SECONDS = 1800
# Writes run in one transaction at the server's usual level.
WRITE_ISOLATION_LEVEL = "READ COMMITTED"
# Methods that never change data: their sessions need no transaction (see `Database`).
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


class Database:
    """The engine and session factories of one process, owned by the app's lifespan.

    On PostgreSQL, pooled connections rest in autocommit mode and there are two views of the
    one pool (one set of connections, one size limit):

    - `engine` / `sessionmaker`: a transaction per session (BEGIN ... COMMIT, READ COMMITTED),
      for every request that may write and for everything outside requests.
    - `read_sessionmaker`: no BEGIN/COMMIT, for GET and HEAD requests. Under READ COMMITTED
      every statement takes its own snapshot anyway, so a read-only request sees exactly what
      it saw inside a transaction, minus two round trips. (The rare `last_used_at` touch of
      the token check commits on its own, which is all it needs.) Its sessions are kept and
      reused, each bound to a connection it holds (`ReadSessions`).

    SQLite keeps one transactional engine (its driver opens no transaction for a SELECT).
    """

    def __init__(self, settings: Settings) -> None:
        base = create_engine(settings, autocommit=settings.is_postgres)
        self._base = base
        self.engine = (
            base.execution_options(isolation_level=WRITE_ISOLATION_LEVEL)
            if settings.is_postgres
            else base
        )
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )
        self.read_sessionmaker = async_sessionmaker(
            base, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )
        # Read requests queue here, first come first served, before they reach the pool
        # (sized by `read_capacity`).
        # SQLAlchemy's pool lets a request that arrives just as a connection comes back take
        # it ahead of those already waiting, so under a backlog a few requests wait far longer
        # than the rest (the p99 of the 256- and 1,024-connection benchmarks). asyncio's
        # semaphore is fair. Writes skip it: some hold their session through a password hash
        # and would keep reads out for the hash's duration.
        self.read_sessions = (
            ReadSessions(base, self.read_sessionmaker, read_capacity(settings))
            if settings.is_postgres
            else None
        )
        self.read_gate = (
            self.read_sessions.gate
            if self.read_sessions is not None
            else asyncio.Semaphore(read_capacity(settings))
        )

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for a GET or HEAD request, after waiting its turn (see the class docstring).

        On PostgreSQL it is one of `ReadSessions`: bound to a connection held out of the pool,
        its driver connection kept for HotQuery. On SQLite, a new session behind the gate.
        """
        if self.read_sessions is None:
            async with self.read_gate, self.read_sessionmaker() as session:
                yield session
            return
        session = await self.read_sessions.acquire()
        try:
            yield session
        finally:
            await self.read_sessions.release(session)

    async def ping(self) -> None:
        """Run a trivial query; raises if the database cannot be reached."""
        async with self._base.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self.read_sessions is not None:
            await self.read_sessions.close()
        await self._base.dispose()


class ReadSessions:
    """PostgreSQL's sessions for reads: each bound to a connection held out of the pool.

    Checking a connection out and building a session for every GET cost ~70 us of CPU
    (SQLAlchemy's async adaptation: greenlet hops, Connection and Session objects), more
    than any other part of a read but FastAPI's; reusing them costs ~2 us. At most `size`
    are in use at once (the read gate: asyncio's semaphore lets waiters in first come first
    served); a read takes an idle one or opens one. One whose connection the server closed,
    or that is older than the pool's recycle time, is replaced before it is handed out; each
    goes back reset (no loaded objects, its original `info`, no transaction), or is closed
    if that fails.
    """

    def __init__(
        self, engine: AsyncEngine, maker: async_sessionmaker[AsyncSession], size: int
    ) -> None:
        self._engine = engine
        self._maker = maker
        self.gate = asyncio.Semaphore(size)
        self._idle: list[AsyncSession] = []
        self._open: dict[AsyncSession, tuple[AsyncConnection, float]] = {}

    async def acquire(self) -> AsyncSession:
        """A ready session, after waiting in turn for a free place."""
        await self.gate.acquire()
        try:
            while self._idle:
                session = self._idle.pop()
                if self._usable(session):
                    return session
                await self._discard(session)
            return await self._new()
        except BaseException:
            self.gate.release()
            raise

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
        finally:
            self.gate.release()

    async def close(self) -> None:
        """Give every held connection back (the app's shutdown)."""
        self._idle.clear()
        for session in list(self._open):
            await self._discard(session)

    def _usable(self, session: AsyncSession) -> bool:
        connection, opened_at = self._open[session]
        driver = session.info.get(_DRIVER_KEY)
        fresh = time.monotonic() - opened_at < READ_SESSION_MAX_AGE_SECONDS
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


async def end_read_only_transaction(session: AsyncSession) -> None:
    """Give the session's connection back to the pool before slow work (a password hash).

    Only for a session that has read and not written: ending that transaction loses nothing,
    and loaded objects stay usable (the sessions do not expire on commit). Holding a pooled
    connection through a 50 ms hash is what exhausts the pool under a sign-in storm.
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("end_read_only_transaction() with pending writes")
    await session.commit()


async def get_database(request: Request) -> Database:
    """The process's database, as set up by the lifespan."""
    # `async def`: FastAPI runs a plain `def` dependency in a worker thread (a round trip).
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


def pool_capacity(settings: Settings) -> int:
    """How many connections one process's main pool may hold at once."""
    return settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW


def read_capacity(settings: Settings) -> int:
    """How many GET/HEAD sessions may be open at once: half the pool.

    On PostgreSQL each of them holds its connection (`ReadSessions`), so the other half is
    what writes have, and they skip the read gate. Measured (bench/README.md): with three
    quarters held, writes at 64 connections lost a fifth of their rate and the list at 1,024
    connections kept 88% of its 32-connection rate; with half, reads lose ~3% and writes,
    the 1,024-connection list and the sign-in storm all do better. With the whole pool open
    to reads, a storm's writes waited inside SQLAlchemy's pool, which is not first come
    first served.
    """
    return max(1, pool_capacity(settings) // 2)


class RequestTransaction:
    """One request's session and its transaction: opened when first asked for (by the route
    itself, before any other work, for a read that will need it), ended by the route (see
    TransactionRoute) once the endpoint has answered and before the answer is sent.

    Success commits, so a client never sees a 2xx for a write that did not persist (a failed
    commit is a 500); an error rolls back, except an AppError that `keeps_writes`. GET and
    HEAD wait at the database's fair read gate and get a read session (see `Database`): on
    PostgreSQL no transaction, and nothing to commit when HotQuerys alone served them.
    """

    __slots__ = ("_app_state", "_opened", "_read_only", "_session")

    def __init__(self, request: Request) -> None:
        # Not the request itself: the request's scope holds this object, and that cycle left
        # every request's objects to the garbage collector (p99 up by half under load).
        self._app_state = request.app.state
        self._read_only = request.method in READ_ONLY_METHODS
        self._session: AsyncSession | None = None
        self._opened: AbstractAsyncContextManager[AsyncSession] | None = None

    @property
    def read_only(self) -> bool:
        """A GET or HEAD: its session is a read session."""
        return self._read_only

    async def session(self) -> AsyncSession:
        """The request's session, opened on the first call."""
        if self._session is not None:
            return self._session
        database: Database = self._app_state.database
        opened = database.read_session() if self._read_only else database.sessionmaker()
        session = await opened.__aenter__()
        self._opened, self._session = opened, session
        return session

    async def end(self, error: BaseException | None) -> None:
        """Commit (no error) or roll back (`error`), then close or give back the session."""
        session, opened = self._session, self._opened
        if session is None or opened is None:
            return
        self._session = self._opened = None
        try:
            if error is None:
                # A read served by HotQuerys alone never opened the session's transaction.
                if not self._read_only or session.in_transaction():
                    await session.commit()
            else:
                # Shielded: a cancelled request still returns its connection cleanly.
                with anyio.CancelScope(shield=True):
                    if isinstance(error, AppError) and error.keeps_writes:
                        await session.commit()
                    else:
                        await session.rollback()
        finally:
            with anyio.CancelScope(shield=error is not None):
                await opened.__aexit__(None, None, None)


_TRANSACTION_KEY = "tasks_api.transaction"


class TransactionRoute(APIRoute):
    """An API route whose request has one RequestTransaction, ended before the response.

    Every router of the app uses it (`APIRouter(route_class=TransactionRoute)`; a test walks
    the routes). It replaces a generator dependency: FastAPI enters those in an exit stack
    under an anyio cancel scope, ~20 us of CPU a request (bench/README.md).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        uses_session = _uses(self.dependant, get_session)

        async def in_transaction(request: Request) -> Response:
            transaction = RequestTransaction(request)
            request.scope[_TRANSACTION_KEY] = transaction
            try:
                # A read that will need a session waits its turn for one before any other
                # work (token check, parameters): waiting, it holds almost nothing, and once
                # in it runs start to finish. Taken after that work, hundreds of half-done
                # requests waited with their objects alive (1,024 connections: 3-5% fewer
                # requests/s, bench/README.md).
                if (
                    uses_session
                    and transaction.read_only
                    and get_session not in request.app.dependency_overrides
                ):
                    await transaction.session()
                response = await handler(request)
            except BaseException as exc:
                await transaction.end(exc)
                raise
            await transaction.end(None)
            return response

        return in_transaction


def _uses(dependant: Dependant, call: Callable[..., Any]) -> bool:
    """Whether `call` is among the dependencies of `dependant`, at any depth."""
    return any(sub.call is call or _uses(sub, call) for sub in dependant.dependencies)


async def get_session(request: Request) -> AsyncSession:
    """The request's session: one transaction per request (see RequestTransaction)."""
    transaction = request.scope.get(_TRANSACTION_KEY)
    if not isinstance(transaction, RequestTransaction):
        raise RuntimeError("get_session() outside a TransactionRoute: set the router's route_class")
    return await transaction.session()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


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


# session.info key: the driver connection under a read session's own (`Database.read_session`).
_DRIVER_KEY = "tasks_api.driver_connection"
_DRIVER_DIALECT = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]


class HotQuery:
    """A prebuilt SELECT that PostgreSQL runs on the driver's own connection (asyncpg).

    For the few reads on every request's path. SQLAlchemy still writes the SQL (compiled once,
    here, into asyncpg's `$n` form) but does not execute it: its async adaptation, cursor
    wrapper and result objects cost more than the query itself (bench/README.md). So this
    is only for statements whose parameters and columns need no conversion on PostgreSQL
    (uuid, text, integers, booleans, timestamptz, and JSON cast to text); the tests read each
    one both ways and compare. On SQLite it is simply executed by the session.

    SQLAlchemy opens the driver's transaction with the session's first statement of its own,
    so a HotQuery that runs before any has none around it. For a read, under READ COMMITTED,
    that reads exactly what it would have read inside (every statement takes a fresh snapshot
    and, with no statement before it, the transaction has written nothing yet). A write there
    commits on its own: that is only right for the one statement that is the request's whole
    write (a PATCH's UPDATE, a create's INSERT), run last, so that the request's writes are
    still all or nothing. After any statement of the session's own, a HotQuery runs inside
    its transaction like any other statement.
    """

    __slots__ = ("_fixed", "names", "sql", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=_DRIVER_DIALECT)
        # Lists bound to IN (...) are spelled out by SQLAlchemy at execution: such a
        # statement stays with the session.
        self.sql: str | None = None if compiled.post_compile_params else compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values the statement carries itself (literals such as a JSON key): always the same.
        self._fixed = {
            name: compiled.binds[name].effective_value
            for name in self.names
            if not compiled.binds[name].required
        }

    async def fetch(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        """Every row, as mappings of column name to value."""
        connection = await _driver_connection(session) if self.sql is not None else None
        if connection is not None:
            rows: Sequence[Mapping[str, Any]] = await connection.fetch(
                self.sql, *self._args(params)
            )
            return rows
        result = await (await session.connection()).execute(self.statement, params)
        return cast(Sequence[Mapping[str, Any]], result.mappings().all())

    async def fetch_one(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row, or None."""
        connection = await _driver_connection(session) if self.sql is not None else None
        if connection is not None:
            row: Mapping[str, Any] | None = await connection.fetchrow(self.sql, *self._args(params))
            return row
        result = await (await session.connection()).execute(self.statement, params)
        return cast(Mapping[str, Any] | None, result.mappings().first())

    async def run(self, session: AsyncSession, params: Mapping[str, Any]) -> None:
        """Execute a statement that returns no rows (see the class docstring on writes)."""
        connection = await _driver_connection(session) if self.sql is not None else None
        if connection is not None:
            await connection.execute(self.sql, *self._args(params))
            return
        await (await session.connection()).execute(self.statement, params)

    def _args(self, params: Mapping[str, Any]) -> list[Any]:
        fixed = self._fixed
        return [fixed[name] if name in fixed else params[name] for name in self.names]


async def _driver_connection(session: AsyncSession) -> Any:
    """PostgreSQL: asyncpg's connection under the session's own (in its transaction once one
    is open: the read sees what the session's statements wrote). None on SQLite."""
    driver = session.info.get(_DRIVER_KEY)
    if driver is not None:
        return driver
    bind = session.bind
    if bind is None or bind.dialect.name != "postgresql":
        return None
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection
