"""HotQuery: prebuilt reads run on the driver's own connection on PostgreSQL.

They must return exactly what SQLAlchemy's own execution returns (types included), and see
what the session they run in has written.
"""

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.core.db import Database, HotQuery
from app.core.models import utcnow
from app.projects import service as project_service
from app.tasks import service as task_service
from app.tasks.models import Task
from app.users.models import User

pytestmark = pytest.mark.anyio


async def _owner_with_a_labelled_task(session: AsyncSession) -> tuple[uuid.UUID, Task]:
    from app.labels.models import Label
    from app.tasks.models import TaskLabel

    user = User(email=f"hot-{uuid.uuid4().hex[:8]}@example.com", hashed_password="x")
    session.add(user)
    await session.flush()
    inbox = await project_service.create_inbox(session, owner_id=user.id)
    task = Task(
        owner_id=user.id,
        project_id=inbox.id,
        title="Hot",
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
    session: AsyncSession, query: HotQuery, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    hot = await query.fetch_one(session, params)
    assert hot is not None
    connection = await session.connection()
    plain = (await connection.execute(query.statement, params)).mappings().first()
    assert plain is not None
    return dict(hot), dict(plain)


async def test_hot_reads_equal_sqlalchemy_reads_types_included(
    settings: Settings, housekeeping_engine: Engine
) -> None:
    from tests.conftest import empty_all_tables

    database = Database(settings)
    try:
        async with database.sessionmaker() as session:
            owner_id, task = await _owner_with_a_labelled_task(session)
            await session.commit()
            checks = [
                (task_service._READ_ONE, {"task_id": task.id, "owner_id": owner_id}),
                (
                    task_service._LAST_POSITION,
                    {"owner_id": owner_id, "project_id": task.project_id},
                ),
                (project_service._INBOX_ID, {"owner_id": owner_id}),
                (task_service._INBOX_END, {"owner_id": owner_id}),
            ]
            for query, params in checks:
                hot, plain = await _both_ways(session, query, params)
                assert hot == plain
                for name, value in hot.items():
                    # asyncpg's UUIDs are a subclass of uuid.UUID; everything else is the same type
                    expected = plain[name]
                    assert isinstance(value, type(expected)), (name, value, expected)
                    assert str(value) == str(expected), name
            row = await task_service._READ_ONE.fetch_one(
                session, {"task_id": task.id, "owner_id": owner_id}
            )
            assert row is not None
            public = task_service._public_from_row(row)
            assert public.labels[0].name == "Zeta"
            assert public.due_at is not None
            assert public.due_at.utcoffset() is not None
    finally:
        await database.dispose()
        empty_all_tables(housekeeping_engine)


async def test_a_hot_read_sees_what_its_session_wrote_before_commit(
    settings: Settings, housekeeping_engine: Engine
) -> None:
    from tests.conftest import empty_all_tables

    database = Database(settings)
    try:
        async with database.sessionmaker() as session:
            owner_id, task = await _owner_with_a_labelled_task(session)
            params = {"task_id": task.id, "owner_id": owner_id}
            assert await task_service._READ_ONE.fetch_one(session, params) is not None
            await session.rollback()
        async with database.sessionmaker() as session:
            assert await task_service._READ_ONE.fetch_one(session, params) is None
    finally:
        await database.dispose()
        empty_all_tables(housekeeping_engine)


def test_in_lists_stay_with_sqlalchemy_and_literals_are_bound() -> None:
    from sqlalchemy import bindparam, func, literal, select

    from app.core.models import table_of

    tasks = table_of(Task).c
    expanding = HotQuery(select(tasks.id).where(tasks.status.in_(bindparam("s", expanding=True))))
    assert expanding.sql is None  # spelled out per execution: not prebuilt
    literal_query = HotQuery(
        select(func.json_build_object(literal("k"), tasks.title)).where(
            tasks.id == bindparam("id", type_=tasks.id.type)
        )
    )
    assert literal_query.sql is not None
    assert "$2" in literal_query.sql
    assert literal_query._args({"id": 1}) == ["k", 1]
