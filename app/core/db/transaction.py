"""The request's transaction: one session per request, ended by its route before the response."""

import logging
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db.errors import (
    DatabaseUnavailable,
    is_retryable,
    sqlstate_of,
    unavailability,
)
from app.core.db.sessions import Database
from app.core.errors import AppError, ServiceUnavailable

logger = logging.getLogger(__name__)

# Methods that never change data: their sessions are read sessions (see `Database`).
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


class RequestTransaction:
    """One request's session and its transaction, opened when first asked for and ended by
    the route (see TransactionRoute) once the endpoint has answered, before the answer is sent.

    Success commits, so a client never sees a 2xx for a write that did not persist (a failed
    commit is a 500); an error rolls back, except an AppError that `keeps_writes`. A GET or
    HEAD first takes a place at the database's read gate and then gets a read session; the
    place is given back when the request ends, whether or not a session was opened.
    """

    __slots__ = ("_app_state", "_opened", "_placed", "_read_only", "_session")

    def __init__(self, request: Request) -> None:
        # Not the request itself: the request's scope holds this object, and that cycle would
        # leave every request's objects to the garbage collector.
        self._app_state = request.app.state
        self._read_only = request.method in READ_ONLY_METHODS
        self._placed = False
        self._session: AsyncSession | None = None
        self._opened: AbstractAsyncContextManager[AsyncSession] | None = None

    @property
    def read_only(self) -> bool:
        """A GET or HEAD: its session is a read session."""
        return self._read_only

    async def take_read_place(self) -> None:
        """A read: wait at the read gate, first come first served, for a place (once);
        DatabaseUnavailable if none comes within the pool's bound."""
        if self._read_only and not self._placed:
            database: Database = self._app_state.database
            gate = database.read_gate
            if gate.locked():
                try:
                    with anyio.fail_after(database.settings.DB_POOL_TIMEOUT_SECONDS):
                        await gate.acquire()
                except TimeoutError:
                    logger.warning(
                        "database unavailable: no read place within %ss",
                        database.settings.DB_POOL_TIMEOUT_SECONDS,
                    )
                    raise DatabaseUnavailable() from None
            else:
                await gate.acquire()
            self._placed = True

    @property
    def opened(self) -> bool:
        """Whether a session was opened (the database was used)."""
        return self._session is not None

    async def session(self) -> AsyncSession:
        """The request's session, opened on the first call."""
        if self._session is not None:
            return self._session
        database: Database = self._app_state.database
        database.availability.check()
        if self._read_only:
            await self.take_read_place()
            opened = database.placed_read_session()
        else:
            opened = database.sessionmaker()
        session = await opened.__aenter__()
        self._opened, self._session = opened, session
        return session

    async def end(self, error: BaseException | None) -> None:
        """Commit (no error) or roll back (`error`), close or give back the session, then
        give back the read place."""
        session, opened = self._session, self._opened
        self._session = self._opened = None
        try:
            if session is not None and opened is not None:
                await self._finish(session, opened, error)
        finally:
            if self._placed:
                self._placed = False
                database: Database = self._app_state.database
                database.read_gate.release()

    async def _finish(
        self,
        session: AsyncSession,
        opened: AbstractAsyncContextManager[AsyncSession],
        error: BaseException | None,
    ) -> None:
        try:
            if error is None:
                # A read served by DriverQuerys alone never opened the session's transaction.
                if not self._read_only or session.in_transaction():
                    await session.commit()
            else:
                # Shielded: a cancelled request still returns its connection cleanly.
                with anyio.CancelScope(shield=True):
                    if unavailability(error) is not None:
                        await _terminate(session)
                    elif isinstance(error, AppError) and error.keeps_writes:
                        await session.commit()
                    else:
                        await session.rollback()
        finally:
            with anyio.CancelScope(shield=error is not None):
                if error is not None and unavailability(error) is not None:
                    # The session's maker decides what a connection that failed this way
                    # becomes (a held read connection is discarded).
                    await opened.__aexit__(type(error), error, error.__traceback__)
                else:
                    await opened.__aexit__(None, None, None)


async def _terminate(session: AsyncSession) -> None:
    # A connection whose statement outlasted its bound, or was cut, is in an unknown state
    # (the server may still run the statement, or the network stalled): it is terminated,
    # never given back to the pool, and the session forgets it. Only this connection: the
    # pool's others may be fine.
    if session.in_transaction():
        connection = await session.connection()
        await connection.invalidate()


_TRANSACTION_KEY = "tasks_api.transaction"

# Attempts of one request's transaction before it is answered with a 503.
TRANSACTION_ATTEMPTS = 3


class TransactionConflict(ServiceUnavailable):
    """The request's transaction lost to concurrent ones every time it ran (503)."""

    code = "transaction_conflict"
    detail = "The request conflicted with concurrent changes; nothing was changed. Retry it."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class TransactionRoute(APIRoute):
    """An API route whose request has one RequestTransaction, ended before the response.

    Every router of the app uses it (`AppRouter`; a test walks the routes). It replaces a
    generator dependency, which FastAPI would enter in an exit stack under a cancel scope.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, run inside the request's transaction."""
        handler = super().get_route_handler()
        # Read from the route's own dependencies: whether its request will ask for a session.
        uses_session = _uses(self.dependant, get_session)

        async def run_once(request: Request) -> Response:
            transaction = RequestTransaction(request)
            request.scope[_TRANSACTION_KEY] = transaction
            try:
                # A read waits for its place before any other work (token check,
                # parameters): waiting, it holds almost nothing, and once in it runs start to
                # finish.
                if uses_session:
                    await transaction.take_read_place()
                response = await handler(request)
            except BaseException as exc:
                await transaction.end(exc)
                raise
            used = transaction.opened
            await transaction.end(None)
            if used:
                database: Database = request.app.state.database
                database.availability.succeeded()
            return response

        async def in_transaction(request: Request) -> Response:
            # A deadlock or serialization failure rolled the whole transaction back, so the
            # request's work runs again from the start (the request caches its body); nothing
            # outside the database happens before the commit (background tasks run after the
            # response is sent).
            for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
                try:
                    return await run_once(request)
                except Exception as exc:
                    reason = unavailability(exc)
                    if reason is not None:
                        # One line, no traceback: an outage must not flood the log.
                        logger.warning("database unavailable: %s (%s)", reason, request.url.path)
                        request.app.state.database.availability.failed()
                        raise DatabaseUnavailable() from None
                    if not is_retryable(exc):
                        raise
                    logger.warning(
                        "transaction attempt %d of %d lost a race (%s), %s",
                        attempt,
                        TRANSACTION_ATTEMPTS,
                        sqlstate_of(exc) or type(exc).__name__,
                        "answering 503" if attempt == TRANSACTION_ATTEMPTS else "running again",
                    )
                    if attempt == TRANSACTION_ATTEMPTS:
                        raise TransactionConflict() from exc
            raise AssertionError("unreachable")  # pragma: no cover

        return in_transaction


def _uses(dependant: Dependant, call: Callable[..., Any]) -> bool:
    """Whether `call` is among the dependencies of `dependant`, at any depth."""
    return any(sub.call is call or _uses(sub, call) for sub in dependant.dependencies)


async def get_session(request: Request) -> AsyncSession:
    """The request's session: one transaction per request (see RequestTransaction)."""
    transaction = request.scope.get(_TRANSACTION_KEY)
    if not isinstance(transaction, RequestTransaction):
        raise RuntimeError("get_session() outside a TransactionRoute: use AppRouter")
    return await transaction.session()


SessionDep = Annotated[AsyncSession, Depends(get_session)]
