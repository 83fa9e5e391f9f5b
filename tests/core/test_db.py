"""The database layer: one transaction per request, UTC everywhere, tuned connections."""

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import Message, Receive, Scope, Send

from app.core.db import (
    RequestTransaction,
    SessionDep,
    TransactionRoute,
    get_session,
    read_capacity,
)
from app.core.errors import Conflict
from app.core.models import NAMING_CONVENTION, UTCDateTime
from app.users.models import User
from tests.helpers import HANG_GUARD


def _user(email: str) -> User:
    return User(email=email, hashed_password="x")


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop's other tasks run until `condition()` holds."""
    import anyio

    with anyio.fail_after(HANG_GUARD):
        while not condition():
            await anyio.lowlevel.checkpoint()


def _waiting_at(gate: asyncio.Semaphore) -> int:
    """How many tasks wait at `gate` for a place. asyncio's semaphore (the read gate) counts
    them nowhere public, unlike anyio's `statistics()`: this reads its queue of waiters."""
    return sum(not waiter.done() for waiter in gate._waiters or ())


async def _until_closed(driver: Any) -> None:
    """Until asyncpg's connection `driver` has seen the server close it (is_closed() holds
    from then on: what the pool checks at checkout)."""
    import anyio

    closed = anyio.Event()
    driver.add_termination_listener(lambda _connection: closed.set())
    with anyio.fail_after(HANG_GUARD):
        await closed.wait()
    assert driver.is_closed()


def add_write_routes(app: FastAPI) -> None:
    @app.post("/probe/ok")
    async def write_ok(session: SessionDep) -> dict[str, str]:
        session.add(_user("ok@example.com"))
        return {"status": "written"}

    @app.post("/probe/domain-error")
    async def write_then_domain_error(session: SessionDep) -> None:
        session.add(_user("domain@example.com"))
        await session.flush()
        raise Conflict("changed my mind")

    @app.post("/probe/crash")
    async def write_then_crash(session: SessionDep) -> None:
        session.add(_user("crash@example.com"))
        await session.flush()
        raise RuntimeError("boom")

    @app.post("/probe/commit-fails")
    async def commit_fails(session: SessionDep) -> dict[str, str]:
        # Two rows with one email: the unique constraint fires at commit, after the handler
        # returned. The client must see the failure, not a 200.
        session.add(_user("twice@example.com"))
        session.add(_user("twice@example.com"))
        return {"status": "should not be seen"}


def emails(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(text('SELECT email FROM "user"'))}


@pytest.fixture
def write_client(app: FastAPI) -> TestClient:
    add_write_routes(app)
    return TestClient(app, raise_server_exceptions=False)


def test_success_commits(write_client: TestClient, housekeeping_engine: Engine) -> None:
    with write_client:
        assert write_client.post("/probe/ok").status_code == 200
    assert emails(housekeeping_engine) == {"ok@example.com"}


def test_domain_error_rolls_back(write_client: TestClient, housekeeping_engine: Engine) -> None:
    with write_client:
        assert write_client.post("/probe/domain-error").status_code == 409
    assert emails(housekeeping_engine) == set()


def test_crash_rolls_back(write_client: TestClient, housekeeping_engine: Engine) -> None:
    with write_client:
        response = write_client.post("/probe/crash")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert emails(housekeeping_engine) == set()


def test_commit_failure_is_not_reported_as_success(
    write_client: TestClient, housekeeping_engine: Engine
) -> None:
    with write_client:
        response = write_client.post("/probe/commit-fails")
    assert response.status_code == 500
    assert "should not be seen" not in response.text
    assert emails(housekeeping_engine) == set()


def test_commit_happens_before_the_response_starts(make_app: Callable[..., FastAPI]) -> None:
    app = make_app()
    add_write_routes(app)
    events: list[str] = []

    class RecordResponseStart:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def recording_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    events.append("response-start")
                await send(message)

            await self.inner(scope, receive, recording_send)

    async def spying_session(request: Request) -> AsyncSession:
        # The override pattern: same session dependency, with commit() recorded.
        session = await get_session(request)

        async def commit(real_commit: Any = session.commit) -> None:
            await real_commit()
            events.append("commit")

        session.commit = commit  # type: ignore[method-assign]
        return session

    app.dependency_overrides[get_session] = spying_session
    app.add_middleware(RecordResponseStart)
    with TestClient(app) as client:
        assert client.post("/probe/ok").status_code == 200
    assert events == ["commit", "response-start"]


@pytest.mark.anyio
async def test_datetimes_are_utc_aware_in_and_out(db_session: AsyncSession) -> None:
    moment = datetime(2030, 5, 17, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    user = User(email="tz@example.com", hashed_password="x", created_at=moment)
    db_session.add(user)
    await db_session.commit()
    db_session.expunge_all()
    loaded = (await db_session.exec(select(User).where(User.email == "tz@example.com"))).one()
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.created_at == moment
    assert loaded.created_at.hour == 7


def test_naive_datetimes_are_refused() -> None:
    column = UTCDateTime()
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2030, 1, 1), dialect=None)  # type: ignore[arg-type]
    assert column.process_bind_param(None, dialect=None) is None  # type: ignore[arg-type]


def test_sqlite_connections_are_tuned(settings: Any, housekeeping_engine: Engine) -> None:
    if not settings.DATABASE_URL.startswith("sqlite"):
        # PostgreSQL needs no per-connection pragmas; check its pool instead.
        from app.core.db import create_engine

        engine = create_engine(settings)
        assert engine.pool.size() == settings.DB_POOL_SIZE  # type: ignore[attr-defined]
        return
    import anyio

    from app.core.db import Database

    async def pragmas() -> tuple[Any, ...]:
        database = Database(settings)
        async with database.engine.connect() as connection:
            values = []
            for name in ("journal_mode", "foreign_keys", "busy_timeout"):
                values.append((await connection.execute(text(f"PRAGMA {name}"))).scalar())
        await database.dispose()
        return tuple(values)

    busy_ms = round(settings.DB_STATEMENT_TIMEOUT_SECONDS * 1000)
    assert anyio.run(pragmas) == ("wal", 1, busy_ms)


def test_constraint_names_follow_the_convention(housekeeping_engine: Engine) -> None:
    from sqlalchemy import inspect

    inspector = inspect(housekeeping_engine)
    assert inspector.get_pk_constraint("user")["name"] == "pk_user"
    foreign_keys = inspector.get_foreign_keys("auth_session")
    assert foreign_keys[0]["name"] == "fk_auth_session_user_id_user"
    assert set(NAMING_CONVENTION) == {"ix", "uq", "ck", "fk", "pk"}


def test_now_is_utc() -> None:
    from app.core.models import utcnow

    assert utcnow().tzinfo is UTC


def test_a_connection_the_server_closed_is_replaced_without_an_error(
    settings: Any, housekeeping_engine: Engine
) -> None:
    """The pool hands out live connections only, without a ping query per checkout."""
    import anyio

    from app.core.db import Database

    async def scenario() -> tuple[Any, Any, Any]:
        database = Database(settings)
        try:
            async with database.engine.connect() as connection:
                before = (await connection.execute(text(_BACKEND_ID[dialect]))).scalar()
                driver = (await connection.get_raw_connection()).driver_connection
            # The connection rests in the pool; the server ends it behind the pool's back.
            if dialect == "postgresql":
                with housekeeping_engine.connect() as admin:
                    admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
                    admin.commit()
                await _until_closed(driver)
            async with database.engine.connect() as connection:
                after = (await connection.execute(text(_BACKEND_ID[dialect]))).scalar()
                answer = (await connection.execute(text("SELECT 41 + 1"))).scalar()
            return before, after, answer
        finally:
            await database.dispose()

    dialect = housekeeping_engine.dialect.name
    before, after, answer = anyio.run(scenario)
    assert answer == 42
    if dialect == "postgresql":
        assert after != before  # a fresh connection, and no error on the way
    else:
        assert after == before  # SQLite: an in-process file handle has no server to lose


_BACKEND_ID = {"postgresql": "SELECT pg_backend_pid()", "sqlite": "SELECT 1"}


def test_reads_wait_at_a_fair_gate_sized_to_the_pool(settings: Any) -> None:
    """Past the read capacity, reads queue in arrival order; writes do not queue there."""
    from types import SimpleNamespace

    import anyio

    from app.core.db import Database

    small = settings.model_copy(update={"DB_POOL_SIZE": 4, "DB_MAX_OVERFLOW": 0})
    entered: list[str] = []
    inside = peak = 0

    async def scenario() -> None:
        nonlocal inside, peak
        database = Database(small)
        gate = database.read_gate
        all_arrived = anyio.Event()

        def request(method: str) -> Any:
            return SimpleNamespace(
                app=SimpleNamespace(state=SimpleNamespace(database=database)), method=method
            )

        async def use(name: str, method: str) -> None:
            nonlocal inside, peak
            transaction = RequestTransaction(request(method))
            session = await transaction.session()
            entered.append(name)
            if method == "GET":
                inside += 1
                peak = max(peak, inside)
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            await all_arrived.wait()  # those in hold their places until all have arrived
            if method == "GET":
                inside -= 1
            await transaction.end(None)

        def arrived(reads: int) -> bool:
            # Each one either has its session or waits at the gate.
            return len([name for name in entered if name != "write"]) + _waiting_at(gate) == reads

        try:
            with anyio.fail_after(HANG_GUARD):
                async with anyio.create_task_group() as group:
                    for n in range(6):
                        group.start_soon(use, f"read-{n}", "GET")
                        await _until(lambda n=n: arrived(n + 1))  # arrive in this order
                    group.start_soon(use, "write", "POST")
                    # Through at once, or (if writes queued there) behind the four reads.
                    await _until(lambda: "write" in entered or _waiting_at(gate) == 5)
                    all_arrived.set()
        finally:
            await database.dispose()

    anyio.run(scenario)
    assert read_capacity(small) == 2  # half of 4
    assert peak == 2  # never more reads holding sessions than the read gate lets in
    reads = [name for name in entered if name.startswith("read")]
    assert reads == [f"read-{n}" for n in range(6)]  # first come, first served
    assert entered.index("write") < entered.index("read-2")  # the write did not queue behind


def _read_probe_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    from sqlalchemy import literal
    from sqlalchemy import select as core_select

    from app.core.db import DriverQuery, driver_connection

    app = make_app()
    one = DriverQuery(core_select(literal(1).label("one")))

    @app.get("/probe/read-driver")
    async def read_driver(session: SessionDep) -> dict[str, Any]:
        row = await one.fetch_one(session, {})
        return {"one": row and row["one"], "in_transaction": session.in_transaction()}

    @app.get("/probe/read-same-connection")
    async def read_same_connection(session: SessionDep) -> dict[str, Any]:
        driver = driver_connection(session)
        own = await (await session.connection()).get_raw_connection()
        return {"driver": driver is not None, "same": driver is own.driver_connection}

    @app.get("/probe/read-writes")
    async def read_writes(session: SessionDep) -> dict[str, str]:
        # As the token check's rare `last_used_at` touch does on a GET.
        await session.exec(text("UPDATE \"user\" SET full_name = 'touched'"))  # type: ignore[call-overload]
        return {"status": "written"}

    return app


def test_a_read_served_by_driver_queries_opens_no_transaction(
    make_app: Callable[..., FastAPI], settings: Any
) -> None:
    with TestClient(_read_probe_app(make_app)) as client:
        reply = client.get("/probe/read-driver").json()
    assert reply["one"] == 1
    # On SQLite a DriverQuery is executed by the session itself.
    assert reply["in_transaction"] is not settings.is_postgres


def test_a_reads_driver_queries_use_the_sessions_own_connection(
    make_app: Callable[..., FastAPI], settings: Any
) -> None:
    with TestClient(_read_probe_app(make_app)) as client:
        reply = client.get("/probe/read-same-connection").json()
    # PostgreSQL: the driver's connection under the session's own; SQLite: none (the session
    # executes DriverQuerys itself).
    expected = settings.is_postgres
    assert reply == {"driver": expected, "same": expected}


def test_a_read_that_writes_through_the_session_is_committed(
    make_app: Callable[..., FastAPI], housekeeping_engine: Engine
) -> None:
    with housekeeping_engine.begin() as connection:
        connection.execute(
            text(
                'INSERT INTO "user" (id, email, hashed_password, role, is_active, created_at,'
                " updated_at) VALUES (:id, 'reader@example.com', 'x', 'user', true, :now, :now)"
            ),
            {"id": "0190000000007000800000000000abcd", "now": datetime.now(UTC)},
        )
    with TestClient(_read_probe_app(make_app)) as client:
        reply = client.get("/probe/read-writes")
    assert reply.status_code == 200
    with housekeeping_engine.connect() as connection:
        names = connection.execute(text('SELECT full_name FROM "user"')).scalars().all()
    assert names == ["touched"]


def test_reads_leave_half_of_the_pool_to_writes(settings: Any) -> None:
    """With every read slot taken and more reads waiting, a write still gets a connection."""
    from types import SimpleNamespace

    import anyio

    from app.core.db import Database

    small = settings.model_copy(
        update={"DB_POOL_SIZE": 4, "DB_MAX_OVERFLOW": 0, "DB_POOL_TIMEOUT_SECONDS": 2}
    )
    assert read_capacity(small) == 2
    written = anyio.Event()
    order: list[str] = []

    async def scenario() -> None:
        database = Database(small)

        def request(method: str) -> Any:
            return SimpleNamespace(
                app=SimpleNamespace(state=SimpleNamespace(database=database)), method=method
            )

        async def use(name: str, method: str) -> None:
            transaction = RequestTransaction(request(method))
            session = await transaction.session()
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            order.append(name)
            if method == "GET":
                await written.wait()  # hold the connection until the write is through
            else:
                written.set()
            await transaction.end(None)

        try:
            with anyio.fail_after(HANG_GUARD):
                async with anyio.create_task_group() as group:
                    for n in range(5):
                        group.start_soon(use, f"read-{n}", "GET")
                    # Every read holds its connection or waits at the gate.
                    await _until(lambda: len(order) + _waiting_at(database.read_gate) == 5)
                    group.start_soon(use, "write", "POST")
                    await _until(lambda: "write" in order or _waiting_at(database.read_gate) > 3)
                    assert "write" in order, "the write queued at the read gate"
        finally:
            await database.dispose()

    anyio.run(scenario)
    # Two reads hold the read slots, three wait at the gate; the write went straight through.
    assert len(order) == 6
    assert all(name.startswith("read") for name in order[:2])
    assert order[2] == "write"


def test_every_route_runs_in_a_request_transaction(app: FastAPI) -> None:
    """get_session needs its route's RequestTransaction: no route may be a plain APIRoute."""
    from fastapi.routing import APIRoute

    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    assert routes
    plain = [route.path for route in routes if not isinstance(route, TransactionRoute)]
    assert plain == []


@pytest.fixture
def plain_route_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    from fastapi.routing import APIRoute

    app = make_app()
    app.router.route_class = APIRoute

    @app.get("/probe/plain-route")
    async def plain_route(session: SessionDep) -> None:
        """Never reached: the dependency refuses."""

    return app


def test_get_session_outside_a_transaction_route_says_why(
    plain_route_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), TestClient(plain_route_app) as client:
        response = client.get("/probe/plain-route")
    assert response.status_code == 500
    errors = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "TransactionRoute" in str(errors[0])


@pytest.mark.anyio
async def test_a_cancelled_request_rolls_back_and_returns_its_connection(settings: Any) -> None:
    import asyncio
    from types import SimpleNamespace

    from app.core.db import Database

    database = Database(settings.model_copy(update={"DB_POOL_SIZE": 1, "DB_MAX_OVERFLOW": 0}))
    request: Any = SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(database=database)), method="POST"
    )
    try:
        transaction = RequestTransaction(request)
        session = await transaction.session()
        session.add(_user("cancelled@example.com"))
        await session.flush()
        await transaction.end(asyncio.CancelledError())
        # The one pooled connection is back: a second request gets it, and sees no row.
        again = RequestTransaction(request)
        other = await again.session()
        rows = (await other.exec(select(User).where(User.email == "cancelled@example.com"))).all()
        assert rows == []
        await again.end(None)
    finally:
        await database.dispose()


def test_read_sessions_are_reused_reset_and_replaced_when_their_connection_dies(
    settings: Any, housekeeping_engine: Engine
) -> None:
    """PostgreSQL: a read's session is kept (bound to its connection) and handed out again
    reset; a connection the server closed is replaced. SQLite: a new session every read."""
    import anyio

    from app.core.db import Database

    async def scenario() -> list[Any]:
        database = Database(settings.model_copy(update={"DB_POOL_SIZE": 4}))
        seen: list[Any] = []
        try:
            async with database.read_session() as session:
                session.add(_user("kept@example.com"))  # loaded state that must not leak
                session.info["left-behind"] = True
                pid = (await session.exec(text(_BACKEND_ID[dialect]))).scalar()  # type: ignore[call-overload]
                seen.append((session, pid))
            async with database.read_session() as again:
                pid = (await again.exec(text(_BACKEND_ID[dialect]))).scalar()  # type: ignore[call-overload]
                seen.append((again, pid))
                assert "left-behind" not in again.info
                assert list(again.new) == []
                driver = (await (await again.connection()).get_raw_connection()).driver_connection
            if database.read_sessions is not None:
                with housekeeping_engine.connect() as admin:
                    admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    admin.commit()
                await _until_closed(driver)
            async with database.read_session() as third:
                pid = (await third.exec(text(_BACKEND_ID[dialect]))).scalar()  # type: ignore[call-overload]
                seen.append((third, pid))
                assert (await third.exec(text("SELECT 41 + 1"))).scalar() == 42  # type: ignore[call-overload]
        finally:
            await database.dispose()
        if database.read_sessions is not None:
            assert database._base.pool.checkedout() == 0  # type: ignore[attr-defined]  # all given back
        return seen

    dialect = housekeeping_engine.dialect.name
    (first, pid1), (second, pid2), (third, pid3) = anyio.run(scenario)
    if dialect == "postgresql":
        assert second is first  # the same session...
        assert pid2 == pid1  # ...on the same connection
        assert third is not first  # replaced...
        assert pid3 != pid1  # ...without an error
    else:
        assert second is not first


@pytest.fixture
def early_read_app(make_app: Callable[..., FastAPI]) -> tuple[FastAPI, threading.Event]:
    app = make_app()
    ran = threading.Event()

    async def first_work() -> None:
        ran.set()

    @app.get("/probe/early-read")
    async def early_read(
        _: Annotated[None, Depends(first_work)], session: SessionDep
    ) -> dict[str, bool]:
        await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        return {"ok": True}

    return app, ran


def _hold_the_read_gate(client: TestClient, app: FastAPI) -> Callable[[], None]:
    """Take every place at the read gate; returns the function that gives them back."""
    gate = app.state.database.read_gate
    places = read_capacity(app.state.settings)
    for _ in range(places):
        client.portal.call(gate.acquire)  # type: ignore[union-attr]
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            for _ in range(places):
                gate.release()

    return lambda: client.portal.call(release)  # type: ignore[union-attr,arg-type]


def _get_while_the_gate_is_held(
    client: TestClient, app: FastAPI, path: str, *, check: Callable[[Future[Any]], bool]
) -> tuple[Any, bool]:
    """GET `path` while every read place is taken: `check(pending GET)` runs once the GET
    has been answered or waits at the read gate, then the places are given back. Returns
    the response and what `check` said."""
    gate = app.state.database.read_gate
    release = _hold_the_read_gate(client, app)
    with ThreadPoolExecutor(1) as pool:
        try:
            pending = pool.submit(client.get, path)
            # In the app's loop, where the gate lives.
            client.portal.call(_until, lambda: pending.done() or _waiting_at(gate) > 0)  # type: ignore[union-attr]
            seen = check(pending)
        finally:
            release()  # before the pool waits for the request
        return pending.result(timeout=HANG_GUARD), seen


def test_a_read_waits_for_its_session_before_any_other_work(
    early_read_app: tuple[FastAPI, threading.Event],
) -> None:
    app, ran = early_read_app
    with TestClient(app) as client:
        response, ran_before_its_turn = _get_while_the_gate_is_held(
            client, app, "/probe/early-read", check=lambda _: ran.is_set()
        )
    assert response.json() == {"ok": True}
    assert not ran_before_its_turn, "its dependencies ran before it had a session"
    assert ran.is_set()


def test_a_route_without_a_session_never_waits_at_the_read_gate(
    early_read_app: tuple[FastAPI, threading.Event],
) -> None:
    # A liveness probe must answer while every read place is taken (a loaded server).
    app, _ = early_read_app
    with TestClient(app) as client:
        response, answered_while_held = _get_while_the_gate_is_held(
            client, app, "/health/live", check=lambda pending: pending.done()
        )
    assert answered_while_held
    assert response.status_code == 200


def test_an_overridden_session_waits_its_turn_and_gives_its_place_back(
    early_read_app: tuple[FastAPI, threading.Event], settings: Any
) -> None:
    # The route takes its place at the read gate from its own dependencies, whatever
    # get_session resolves to at run time; opening no session, it still gives the place back.
    from app.core.db import create_engine

    app, ran = early_read_app
    engine = create_engine(settings)

    async def own_session() -> AsyncIterator[AsyncSession]:
        async with AsyncSession(engine) as session:
            yield session

    app.dependency_overrides[get_session] = own_session
    with TestClient(app) as client:
        try:
            response, answered_while_held = _get_while_the_gate_is_held(
                client, app, "/probe/early-read", check=lambda pending: pending.done()
            )
            free = client.portal.call(_free_places, app.state.database.read_gate)  # type: ignore[union-attr]
        finally:
            client.portal.call(engine.dispose)  # type: ignore[union-attr]
    assert not answered_while_held
    assert response.json() == {"ok": True}
    assert ran.is_set()
    assert free == read_capacity(app.state.settings)


async def _free_places(gate: asyncio.Semaphore) -> int:
    """How many places at `gate` are free (taken and given back at once to count them)."""
    taken = 0
    while not gate.locked():
        await gate.acquire()
        taken += 1
    for _ in range(taken):
        gate.release()
    return taken
