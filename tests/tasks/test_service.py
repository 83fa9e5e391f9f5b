"""app/tasks/service.py on the real database: races, trash, PATCH's two paths, create.

The tree, order keys, the list and the prebuilt reads have their own modules (test_tree.py,
test_ordering.py, test_position.py, test_listing.py, test_prebuilt.py).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import MalformedPrecondition, ReferenceNotFound
from app.core.http import VersionMismatch
from app.core.models import new_id
from app.projects import service as project_service
from app.tasks import position, service
from app.tasks.exceptions import ContainerInTrash, TaskNotFound
from app.tasks.models import Task, TaskStatus
from tests.factories import make_user

# Races and writes


@pytest.mark.anyio
async def test_a_write_racing_another_is_a_412_not_a_lost_update(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    task = await service.create_task(db_session, owner_id=owner, title="race")
    await db_session.commit()
    # A second request read the same version before this one wrote.
    other = AsyncSession(db_session.bind)
    async with other:
        stale = await service.get_task(other, owner_id=owner, task_id=task.id)
        await service.update_task(db_session, task, {"title": "first"}, if_match='"v1"')
        await db_session.commit()
        with pytest.raises(VersionMismatch) as raised:
            await service.update_task(other, stale, {"title": "second"}, if_match='"v1"')
        assert raised.value.extra["current_version"] == 2
    await db_session.refresh(task)
    assert (task.title, task.version) == ("first", 2)


# Trash and purge


@pytest.mark.anyio
async def test_restore_needs_live_containers(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    project = await project_service.create_project(db_session, owner_id=owner, name="p")
    parent = await service.create_task(db_session, owner_id=owner, title="p", project_id=project.id)
    child = await service.create_task(db_session, owner_id=owner, title="c", parent_id=parent.id)
    assert await service.trash_task(db_session, parent) == [child.id]
    with pytest.raises(TaskNotFound):
        await service.get_task(db_session, owner_id=owner, task_id=child.id)
    await project_service.trash_project(db_session, project)
    with pytest.raises(ContainerInTrash):
        await service.restore_task(db_session, parent)
    await project_service.restore_project(db_session, project)
    # The parent was trashed on its own before the project: it stays in the trash.
    with pytest.raises(TaskNotFound):
        await service.get_task(db_session, owner_id=owner, task_id=parent.id)
    await service.restore_task(db_session, parent)
    await db_session.commit()
    alive = await db_session.exec(select(Task.id).where(col(Task.deleted_at).is_(None)))
    assert set(alive.all()) == {parent.id, child.id}


# PATCH: the task's own fields without an ORM instance, the ORM path for the rest


async def _patched_both_ways(
    session: AsyncSession, owner: uuid.UUID, changes: dict[str, object], *, status: TaskStatus
) -> tuple[dict[str, object], dict[str, object]]:
    """The same changes through patch_task (no ORM instance) and update_task, compared."""
    due = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)
    results = []
    for way in ("statement", "orm"):
        task = await service.create_task(
            session,
            owner_id=owner,
            title="same",
            description="d",
            status=status,
            due_at=due,
            now=datetime(2030, 1, 1, tzinfo=UTC),
        )
        await session.commit()
        now = datetime(2030, 6, 1, tzinfo=UTC)
        if way == "statement":
            document = await service.patch_task(
                session, owner_id=owner, task_id=task.id, changes=changes, now=now
            )
            public = document.public()
        else:
            loaded = await service.get_task(session, owner_id=owner, task_id=task.id)
            public = service.to_public(await service.update_task(session, loaded, changes, now=now))
        await session.commit()
        read = await service.read_task(session, owner_id=owner, task_id=task.id)
        assert read.model_dump() == public.model_dump()
        results.append(public.model_dump(exclude={"id", "position", "created_at"}))
    return results[0], results[1]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "changes"),
    [
        (TaskStatus.TODO, {"title": "new"}),
        (TaskStatus.TODO, {"title": "same"}),  # no change: version and updated_at stay
        (TaskStatus.TODO, {"description": None, "due_at": None, "priority": 3}),
        (TaskStatus.TODO, {"due_at": datetime(2031, 1, 2, 3, 4, tzinfo=UTC)}),  # the same
        (TaskStatus.TODO, {"status": TaskStatus.DONE}),  # completed_at set
        (TaskStatus.DONE, {"status": TaskStatus.DONE, "title": "x"}),  # completed_at kept
        (TaskStatus.DONE, {"status": TaskStatus.IN_PROGRESS}),  # completed_at cleared
        (TaskStatus.IN_PROGRESS, {"status": TaskStatus.IN_PROGRESS}),  # nothing changes
    ],
)
async def test_a_field_patch_is_what_the_orm_path_does(
    db_session: AsyncSession, status: TaskStatus, changes: dict[str, object]
) -> None:
    owner = (await make_user(db_session)).id
    statement, orm = await _patched_both_ways(db_session, owner, changes, status=status)
    assert statement == orm


@pytest.mark.anyio
async def test_a_field_patch_without_a_change_keeps_version_and_updated_at(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    task = await service.create_task(db_session, owner_id=owner, title="t", priority=2)
    await db_session.commit()
    later = datetime(2040, 1, 1, tzinfo=UTC)
    same = (
        await service.patch_task(
            db_session, owner_id=owner, task_id=task.id, changes={"priority": 2}, now=later
        )
    ).public()
    assert (same.version, same.updated_at) == (1, task.updated_at)
    moved = (
        await service.patch_task(
            db_session, owner_id=owner, task_id=task.id, changes={"priority": 3}, now=later
        )
    ).public()
    assert (moved.version, moved.updated_at) == (2, later)


@pytest.mark.anyio
async def test_a_malformed_if_match_is_refused_before_either_patch_path_writes(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    task_id = (await service.create_task(db_session, owner_id=owner, title="t")).id
    await db_session.commit()
    # A field of the task's own (the field path) and a move (the ORM path).
    for changes in ({"title": "u"}, {"after_id": None}):
        with pytest.raises(MalformedPrecondition):
            await service.patch_task(
                db_session, owner_id=owner, task_id=task_id, changes=changes, if_match="nonsense"
            )
        await db_session.rollback()
    read = await service.read_task(db_session, owner_id=owner, task_id=task_id)
    assert (read.title, read.version) == ("t", 1)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("if_match", "passes"),
    [
        ('"v1"', True),
        ("*", True),
        ('"v9", "v1"', True),  # several of our tags: decided after reading the row
        ('"v2"', False),
        ('W/"v1"', False),  # If-Match compares strongly
        ('"v01"', False),  # not the tag we sent
        ('"v\u00b9"', False),  # a superscript one (str.isdigit() says yes): not ours either
        ('"v99999999999999999999"', False),  # past any version the column can hold
    ],
)
async def test_a_field_patch_checks_if_match_like_the_orm_path(
    db_session: AsyncSession, if_match: str, passes: bool
) -> None:
    owner = (await make_user(db_session)).id
    task_id = (await service.create_task(db_session, owner_id=owner, title="t")).id
    await db_session.commit()
    if passes:
        document = await service.patch_task(
            db_session, owner_id=owner, task_id=task_id, changes={"title": "u"}, if_match=if_match
        )
        public = document.public()
        assert (public.title, public.version) == ("u", 2)
        return
    with pytest.raises(VersionMismatch) as raised:
        await service.patch_task(
            db_session, owner_id=owner, task_id=task_id, changes={"title": "u"}, if_match=if_match
        )
    assert raised.value.extra["current_version"] == 1
    await db_session.rollback()
    read = await service.read_task(db_session, owner_id=owner, task_id=task_id)
    assert (read.title, read.version) == ("t", 1)


@pytest.mark.anyio
async def test_a_field_patch_of_a_foreign_trashed_or_missing_task_is_not_found(
    db_session: AsyncSession,
) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    task_id = (await service.create_task(db_session, owner_id=owner, title="mine")).id
    trashed = await service.create_task(db_session, owner_id=owner, title="gone")
    trashed_id = trashed.id
    await service.trash_task(db_session, trashed)
    await db_session.commit()
    for who, target in ((stranger, task_id), (owner, trashed_id), (owner, new_id())):
        for if_match in (None, '"v1"', '"v7"'):
            with pytest.raises(TaskNotFound):
                await service.patch_task(
                    db_session,
                    owner_id=who,
                    task_id=target,
                    changes={"title": "x"},
                    if_match=if_match,
                )
            await db_session.rollback()
    read = await service.read_task(db_session, owner_id=owner, task_id=task_id)
    assert (read.title, read.version) == ("mine", 1)


# Waiting for a concurrent event: on the event itself, never on the clock; 30 s is only a
# guard against a hang.
HANG_GUARD_SECONDS = 30


@asynccontextmanager
async def _lock_waits(
    session: AsyncSession,
) -> AsyncIterator[Callable[[asyncio.Task[Any]], Awaitable[None]]]:
    """Connect `session`; yield what waits until `task`, running a statement of `session`,
    either is done or waits for a lock another transaction holds (guarded against a hang
    only, no clock).

    PostgreSQL: its backend has a lock request not granted (pg_locks, one query a turn from a
    connection of its own). SQLite locks the whole file and shows nobody that a connection
    waits in its busy handler: its BEGIN IMMEDIATE (or UPDATE) has begun (the connection's
    trace callback, removed on the way out), the lock it needs being held; if SQLite did not
    wait, it would fail ("database is locked") instead of ending once the lock is given up.
    """
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if connection.dialect.name == "postgresql":
        pid = driver.get_server_pid()
        waiting = text("SELECT EXISTS (SELECT FROM pg_locks WHERE pid = :pid AND NOT granted)")

        async def until_postgresql_waits(task: asyncio.Task[Any]) -> None:
            async with connection.engine.connect() as watcher:
                await watcher.execution_options(isolation_level="AUTOCOMMIT")
                with anyio.fail_after(HANG_GUARD_SECONDS):
                    while not task.done():
                        if (await watcher.execute(waiting, {"pid": pid})).scalar():
                            return

        yield until_postgresql_waits
        return
    began = anyio.Event()
    loop = asyncio.get_running_loop()

    def trace(statement: str) -> None:  # on the connection's own thread
        # A write transaction takes the write lock at its first locking read (BEGIN
        # IMMEDIATE, app/core/db/engine.py); an UPDATE outside one waits at the UPDATE.
        if statement.lstrip().upper().startswith(("UPDATE", "BEGIN IMMEDIATE")):
            loop.call_soon_threadsafe(began.set)

    async def until_sqlite_updates(task: asyncio.Task[Any]) -> None:
        task.add_done_callback(lambda _: began.set())
        with anyio.fail_after(HANG_GUARD_SECONDS):
            await began.wait()

    await driver.set_trace_callback(trace)
    try:
        yield until_sqlite_updates
    finally:
        await driver.set_trace_callback(None)  # runs once the connection's statement is over


@pytest.mark.anyio
async def test_two_field_patches_at_one_version_one_wins_the_other_is_412(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    task_id = (await service.create_task(db_session, owner_id=owner, title="race")).id
    await db_session.commit()
    assert db_session.bind is not None
    params = {"owner_id": owner, "task_id": task_id, "if_match": '"v1"'}
    async with AsyncSession(db_session.bind) as first, AsyncSession(db_session.bind) as second:
        # The first writer's transaction is open, its row lock held, when the second arrives.
        await first.exec(text("SELECT 1"))
        await service.patch_task(first, changes={"title": "first"}, **params)  # type: ignore[arg-type]
        async with _lock_waits(second) as until_waiting:
            racing = asyncio.create_task(
                service.patch_task(second, changes={"title": "second"}, **params)  # type: ignore[arg-type]
            )
            await until_waiting(racing)
            assert not racing.done()  # waiting for the lock, not reading the old row
            await first.commit()
            with pytest.raises(VersionMismatch) as raised:
                await racing
        assert raised.value.extra["current_version"] == 2
    read = await service.read_task(db_session, owner_id=owner, task_id=task_id)
    assert (read.title, read.version) == ("first", 2)


# Create


@pytest.mark.anyio
async def test_create_task_is_the_stored_task(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    inbox = await project_service.inbox_id(db_session, owner_id=owner)
    await db_session.commit()
    first = service.to_public(await service.create_task(db_session, owner_id=owner, title="one"))
    second = await service.create_task(
        db_session,
        owner_id=owner,
        title="two",
        description="d",
        status=TaskStatus.DONE,
        priority=2,
        due_at=datetime(2031, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
    )
    second = service.to_public(second)
    await db_session.commit()
    assert first.project_id == second.project_id == inbox
    # After the last, with the random digits a write adds (position.jitter).
    assert second.position[: -position.JITTER_DIGITS] == position.key_between(first.position, None)
    assert second.completed_at == second.created_at
    for created in (first, second):
        stored = await service.read_task(db_session, owner_id=owner, task_id=created.id)
        assert stored.model_dump() == created.model_dump()


@pytest.mark.anyio
async def test_create_task_with_labels_or_a_project_checks_them_all_or_nothing(
    db_session: AsyncSession,
) -> None:
    from app.labels import service as label_service

    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    label = await label_service.create_label(db_session, owner_id=owner, name="b")
    foreign = await label_service.create_label(db_session, owner_id=stranger, name="f")
    project = await project_service.create_project(db_session, owner_id=owner, name="P")
    foreign_project = await project_service.create_project(db_session, owner_id=stranger, name="Q")
    ids = label.id, foreign.id, project.id, foreign_project.id
    await db_session.commit()
    label_id, foreign_id, project_id, foreign_project_id = ids
    labelled = service.to_public(
        await service.create_task(
            db_session, owner_id=owner, title="l", label_ids=[label_id], project_id=project_id
        )
    )
    await db_session.commit()
    assert [brief.id for brief in labelled.labels] == [label_id]
    assert labelled.project_id == project_id
    stored = await service.read_task(db_session, owner_id=owner, task_id=labelled.id)
    assert stored.model_dump() == labelled.model_dump()
    with pytest.raises(ReferenceNotFound):
        await service.create_task(
            db_session, owner_id=owner, title="x", label_ids=[label_id, foreign_id]
        )
    await db_session.rollback()
    with pytest.raises(ReferenceNotFound):
        await service.create_task(
            db_session, owner_id=owner, title="x", project_id=foreign_project_id
        )
    await db_session.rollback()
    titles = {
        task.title
        for task in (await db_session.exec(select(Task).where(col(Task.owner_id) == owner))).all()
    }
    assert titles == {"l"}


@pytest.mark.anyio
async def test_create_task_stays_in_the_sessions_transaction(db_session: AsyncSession) -> None:
    """The ORM-returning create is for sessions that go on writing: a rollback undoes it."""
    owner = (await make_user(db_session)).id
    await project_service.inbox_id(db_session, owner_id=owner)
    await db_session.commit()
    await service.create_task(db_session, owner_id=owner, title="undone")
    await db_session.rollback()
    titles = (await db_session.exec(select(Task.title).where(col(Task.owner_id) == owner))).all()
    assert titles == []


@pytest.mark.anyio
async def test_a_field_patch_updates_an_instance_the_session_already_holds(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    task = await service.create_task(db_session, owner_id=owner, title="before")
    await db_session.commit()
    held = await service.get_task(db_session, owner_id=owner, task_id=task.id)
    document = await service.patch_task(
        db_session, owner_id=owner, task_id=task.id, changes={"title": "after", "status": "done"}
    )
    public = document.public()
    assert (held.title, held.status, held.version) == ("after", TaskStatus.DONE, 2)
    assert held.completed_at == public.completed_at
    assert service.to_public(held) == public
