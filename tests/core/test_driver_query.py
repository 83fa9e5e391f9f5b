"""DriverQuery: prebuilt SELECTs a read session runs on asyncpg's own connection.

They must return exactly what SQLAlchemy's own execution returns (types included), refuse
what SQLAlchemy refuses, run inside a write session's transaction, and refuse, when built,
any statement but a SELECT and any type asyncpg would convert differently.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Enum,
    Float,
    Numeric,
    String,
    Text,
    Uuid,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import StatementError
from sqlalchemy.types import TypeDecorator
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.core.db import Database, DriverQuery, driver_connection
from app.core.models import table_of, utcnow
from app.projects import service as project_service
from app.tasks import prebuilt
from app.tasks.models import Task
from app.users.models import User

pytestmark = pytest.mark.anyio

TASKS = table_of(Task).c
USERS = table_of(User).c


@asynccontextmanager
async def _database(settings: Settings, housekeeping_engine: Engine) -> AsyncIterator[Database]:
    from tests.conftest import empty_all_tables

    database = Database(settings)
    try:
        yield database
    finally:
        await database.dispose()
        empty_all_tables(housekeeping_engine)


async def _owner_with_a_labelled_task(session: AsyncSession) -> tuple[uuid.UUID, Task]:
    from app.labels.models import Label
    from app.tasks.models import TaskLabel

    user = User(email=f"driver-{uuid.uuid4().hex[:8]}@example.com", hashed_password="x")
    session.add(user)
    await session.flush()
    inbox = await project_service.create_inbox(session, owner_id=user.id)
    task = Task(
        owner_id=user.id,
        project_id=inbox.id,
        title="Driver",
        description="read both ways",
        position="a0",
        due_at=utcnow(),
    )
    label = Label(owner_id=user.id, name="Zeta", name_key="zeta", color="#112233")
    session.add_all([task, label])
    await session.flush()
    session.add(TaskLabel(task_id=task.id, label_id=label.id))
    await session.flush()
    return user.id, task


async def _both_ways(
    session: AsyncSession, query: DriverQuery, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    by_driver = await query.fetch_one(session, params)
    assert by_driver is not None
    connection = await session.connection()
    plain = (await connection.execute(query.statement, params)).mappings().first()
    assert plain is not None
    return dict(by_driver), dict(plain)


async def test_driver_reads_equal_sqlalchemy_reads_types_included(
    settings: Settings, housekeeping_engine: Engine
) -> None:
    async with _database(settings, housekeeping_engine) as database:
        async with database.sessionmaker() as session:
            owner_id, task = await _owner_with_a_labelled_task(session)
            await session.commit()
        # A read session: the one kind that runs them on the driver (PostgreSQL).
        async with database.read_session() as session:
            assert (driver_connection(session) is not None) is settings.is_postgres
            checks = [
                (prebuilt.READ_ONE, {"task_id": task.id, "owner_id": owner_id}),
                (
                    prebuilt.LAST_POSITION,
                    {"owner_id": owner_id, "project_id": task.project_id},
                ),
                (project_service._INBOX_ID, {"owner_id": owner_id}),
                (prebuilt.INBOX_END, {"owner_id": owner_id}),
            ]
            for query, params in checks:
                by_driver, plain = await _both_ways(session, query, params)
                assert by_driver == plain
                for name, value in by_driver.items():
                    # asyncpg's UUIDs are a subclass of uuid.UUID; everything else is the same type
                    expected = plain[name]
                    assert isinstance(value, type(expected)), (name, value, expected)
                    assert str(value) == str(expected), name
            row = await prebuilt.READ_ONE.fetch_one(
                session, {"task_id": task.id, "owner_id": owner_id}
            )
            assert row is not None
            public = prebuilt.task_from_row(row)
            assert public.labels[0].name == "Zeta"
            assert public.due_at is not None
            assert public.due_at.utcoffset() is not None


async def test_an_aware_datetime_parameter_is_bound_as_sqlalchemy_binds_it(
    settings: Settings, housekeeping_engine: Engine
) -> None:
    # UTCDateTime's bind processing (to UTC) runs on the driver path too.
    due = bindparam("due", type_=TASKS.due_at.type)
    query = DriverQuery(select(TASKS.id, TASKS.due_at).where(TASKS.due_at == due))
    async with _database(settings, housekeeping_engine) as database:
        async with database.sessionmaker() as session:
            _, task = await _owner_with_a_labelled_task(session)
            await session.commit()
        assert task.due_at is not None
        elsewhere = task.due_at.astimezone(timezone(timedelta(hours=-7)))
        async with database.read_session() as session:
            by_driver, plain = await _both_ways(session, query, {"due": elsewhere})
        assert by_driver == plain == {"id": task.id, "due_at": task.due_at}


async def test_a_naive_datetime_is_refused_as_through_the_orm(
    settings: Settings, housekeeping_engine: Engine
) -> None:
    naive = datetime(2030, 1, 1)
    due = bindparam("due", type_=TASKS.due_at.type)
    query = DriverQuery(select(TASKS.id).where(TASKS.due_at < due))
    async with (
        _database(settings, housekeeping_engine) as database,
        database.read_session() as session,
    ):
        with pytest.raises(StatementError) as by_driver:
            await query.fetch(session, {"due": naive})
        with pytest.raises(StatementError) as through_the_orm:
            await session.exec(select(Task).where(Task.due_at < naive))  # type: ignore[arg-type,operator]
    for raised in (by_driver.value, through_the_orm.value):
        assert isinstance(raised.orig, ValueError)
        assert str(raised.orig) == "naive datetime given to a UTC column"
    assert str(by_driver.value).splitlines()[0] == str(through_the_orm.value).splitlines()[0]


async def test_a_driver_read_sees_what_its_session_wrote_before_commit(
    settings: Settings, housekeeping_engine: Engine
) -> None:
    async with _database(settings, housekeeping_engine) as database:
        async with database.sessionmaker() as session:
            owner_id, task = await _owner_with_a_labelled_task(session)
            params = {"task_id": task.id, "owner_id": owner_id}
            assert await prebuilt.READ_ONE.fetch_one(session, params) is not None
            await session.rollback()
        async with database.sessionmaker() as session:
            assert await prebuilt.READ_ONE.fetch_one(session, params) is None


async def test_in_a_write_session_a_driver_query_runs_inside_its_transaction(
    settings: Settings, housekeeping_engine: Engine
) -> None:
    """A DriverQuery as a write session's first statement opens its transaction: a write
    after it is undone by rollback(), on PostgreSQL as on SQLite."""
    email = "atomic@example.com"
    with housekeeping_engine.begin() as connection:
        connection.execute(
            insert(table_of(User)),
            {"id": uuid.uuid4(), "email": email, "hashed_password": "x", "full_name": "before"},
        )
    by_email = DriverQuery(select(USERS.id).where(USERS.email == bindparam("email", type_=String)))
    async with _database(settings, housekeeping_engine) as database:
        async with database.sessionmaker() as session:
            found = await by_email.fetch_one(session, {"email": email})
            assert found is not None
            assert session.in_transaction()
            if settings.is_postgres:
                # The driver query and the session's own statement: one transaction.
                xact = DriverQuery(select(func.txid_current(type_=BigInteger).label("xact")))
                row = await xact.fetch_one(session, {})
                assert row is not None
                own = (await session.exec(text("SELECT txid_current()"))).scalar()  # type: ignore[call-overload]
                assert row["xact"] == own
            user = await session.get(User, found["id"])
            assert user is not None
            user.full_name = "after"
            await session.flush()
            await session.rollback()
        with housekeeping_engine.connect() as connection:
            stored = connection.execute(
                select(USERS.full_name).where(USERS.email == email)
            ).scalar_one()
    assert stored == "before"


def test_only_selects_are_accepted() -> None:
    for statement in (
        insert(table_of(Task)),
        update(table_of(Task)).values(title="x"),
        delete(table_of(Task)),
        # A SELECT around a data-modifying CTE writes all the same.
        select(literal(1)).add_cte(update(table_of(Task)).values(title="x").cte()),
        text("SELECT 1"),
    ):
        with pytest.raises(TypeError, match="SELECTs only"):
            DriverQuery(statement)


class _Reversed(TypeDecorator[str]):
    """A decorator that converts values: not known to be safe on the driver."""

    impl = String()
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else value[::-1]


@pytest.mark.parametrize(
    "type_",
    [
        Enum("a", "b", name="choice"),
        DateTime(),
        Numeric(),
        Float(asdecimal=True),
        Uuid(as_uuid=False),
        JSON(),
        _Reversed(),
    ],
    ids=repr,
)
def test_types_asyncpg_converts_differently_are_refused(type_: Any) -> None:
    with pytest.raises(TypeError, match="asyncpg would not convert"):
        DriverQuery(select(cast(TASKS.title, type_).label("value")))
    with pytest.raises(TypeError, match="asyncpg would not convert"):
        DriverQuery(select(TASKS.id).where(TASKS.title == bindparam("value", type_=type_)))


def test_untyped_columns_are_refused() -> None:
    with pytest.raises(TypeError, match="asyncpg would not convert"):
        DriverQuery(select(func.some_function()))


def test_the_models_types_are_accepted() -> None:
    # Uuid, AutoString, String, Integer, UTCDateTime, OrderKey, and JSON read as text.
    query = DriverQuery(
        select(
            *TASKS,
            cast(func.json_build_object(literal("k"), TASKS.title), Text).label("json"),
        ).where(TASKS.updated_at >= bindparam("since", type_=TASKS.updated_at.type))
    )
    assert query.sql is not None


def test_in_lists_stay_with_sqlalchemy_and_literals_are_bound() -> None:
    expanding = DriverQuery(
        select(TASKS.id).where(TASKS.status.in_(bindparam("s", expanding=True)))
    )
    assert expanding.sql is None  # spelled out per execution: not prebuilt
    literal_query = DriverQuery(
        select(cast(func.json_build_object(literal("k"), TASKS.title), Text)).where(
            TASKS.id == bindparam("id", type_=TASKS.id.type)
        )
    )
    assert literal_query.sql is not None
    assert "$2" in literal_query.sql
    assert literal_query._args({"id": 1}) == ["k", 1]
