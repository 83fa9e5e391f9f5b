"""The trash's services on the real database: what is listed, and what a purge removes."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.pagination import CursorCodec, PageParams
from app.projects import service as project_service
from app.projects.models import Project
from app.tasks import service as task_service
from app.tasks.models import Task
from app.trash import service
from tests.factories import make_user

CODEC = CursorCodec("test-secret")
RETENTION = timedelta(days=30)


@pytest.mark.anyio
async def test_the_list_holds_what_was_deleted_on_its_own_newest_first(
    db_session: AsyncSession,
) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    base = datetime(2030, 1, 1, tzinfo=UTC)
    project = await project_service.create_project(db_session, owner_id=owner, name="p")
    await task_service.create_task(db_session, owner_id=owner, title="in p", project_id=project.id)
    parent = await task_service.create_task(db_session, owner_id=owner, title="parent")
    await task_service.create_task(db_session, owner_id=owner, title="child", parent_id=parent.id)
    await task_service.create_task(db_session, owner_id=owner, title="live")
    theirs = await task_service.create_task(db_session, owner_id=stranger, title="theirs")
    await task_service.trash_task(db_session, parent, now=base)
    await project_service.trash_project(db_session, project, now=base + timedelta(hours=1))
    await task_service.trash_task(db_session, theirs, now=base + timedelta(hours=2))
    await db_session.commit()

    page = await service.list_trash(
        db_session,
        owner_id=owner,
        retention=RETENTION,
        page=PageParams(limit=10, include_total=True),
        codec=CODEC,
    )
    # The child and the project's task went along with their container: not items of their own.
    assert [(item.kind, item.id, item.name) for item in page.items] == [
        ("project", project.id, "p"),
        ("task", parent.id, "parent"),
    ]
    assert page.total == 2
    assert [item.project_id for item in page.items] == [None, parent.project_id]
    assert [item.purge_after - item.deleted_at for item in page.items] == [RETENTION] * 2


@pytest.mark.anyio
async def test_purge_removes_only_expired_trash(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    now = datetime.now(UTC)
    retention = timedelta(days=30)
    old_project = await project_service.create_project(db_session, owner_id=owner, name="old")
    in_old = await task_service.create_task(
        db_session, owner_id=owner, title="in old", project_id=old_project.id
    )
    old_task = await task_service.create_task(db_session, owner_id=owner, title="old")
    old_child = await task_service.create_task(
        db_session, owner_id=owner, title="child", parent_id=old_task.id
    )
    recent = await task_service.create_task(db_session, owner_id=owner, title="recent")
    live = await task_service.create_task(db_session, owner_id=owner, title="live")
    await project_service.trash_project(db_session, old_project, now=now - timedelta(days=31))
    await task_service.trash_task(db_session, old_task, now=now - timedelta(days=30, seconds=1))
    await task_service.trash_task(db_session, recent, now=now - timedelta(days=29))
    await db_session.commit()
    result = await service.purge_expired_trash(db_session, now=now, retention=retention)
    await db_session.commit()
    assert (result.tasks, result.projects) >= (2, 1)
    remaining = set((await db_session.exec(select(Task.id))).all())
    assert remaining == {recent.id, live.id}
    assert remaining.isdisjoint({in_old.id, old_child.id})
    assert await db_session.get(Project, old_project.id) is None


async def _chain_in_table(db_session: AsyncSession, owner: Any, length: int) -> list[Task]:
    """`length` tasks each below the one before, linked in the table directly (deeper than
    the rules let a client build, as older releases could)."""
    chain = [
        await task_service.create_task(db_session, owner_id=owner, title=f"level {n}")
        for n in range(length)
    ]
    for parent, child in pairwise(chain):
        await db_session.exec(
            update(Task).where(col(Task.id) == child.id).values(parent_id=parent.id)
        )
    await db_session.commit()
    return chain


@pytest.mark.anyio
async def test_purge_never_deletes_a_live_row_and_counts_what_it_deletes(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    now = datetime.now(UTC)
    long_ago = now - RETENTION - timedelta(days=1)
    # An expired branch with a live task below it (left by a race in older releases).
    parent = await task_service.create_task(db_session, owner_id=owner, title="parent")
    child = await task_service.create_task(
        db_session, owner_id=owner, title="child", parent_id=parent.id
    )
    await task_service.trash_task(db_session, parent, now=long_ago)
    await db_session.exec(
        update(Task).where(col(Task.id) == child.id).values(deleted_at=None, trashed_with=None)
    )
    # An expired project still holding a live task.
    project = await project_service.create_project(db_session, owner_id=owner, name="p")
    inside = await task_service.create_task(
        db_session, owner_id=owner, title="inside", project_id=project.id
    )
    await project_service.trash_project(db_session, project, now=long_ago)
    await db_session.exec(update(Task).where(col(Task.id) == inside.id).values(deleted_at=None))
    # An expired branch of three, entirely in the trash.
    gone = await task_service.create_task(db_session, owner_id=owner, title="gone")
    for n in range(2):
        await task_service.create_task(
            db_session, owner_id=owner, title=f"gone {n}", parent_id=gone.id
        )
    await task_service.trash_task(db_session, gone, now=long_ago)
    await db_session.commit()

    result = await service.purge_expired_trash(db_session, now=now, retention=RETENTION)
    await db_session.commit()
    assert (result.tasks, result.projects) == (3, 0)
    remaining = set((await db_session.exec(select(Task.id))).all())
    assert {parent.id, child.id, inside.id} <= remaining
    assert gone.id not in remaining
    assert await db_session.get(Project, project.id) is not None


@pytest.mark.anyio
async def test_purge_works_for_a_chain_of_any_depth(db_session: AsyncSession) -> None:
    """SQLite's cascades recurse and stop at 1,000 levels; PostgreSQL's do not stop."""
    owner = (await make_user(db_session)).id
    now = datetime.now(UTC)
    chain = await _chain_in_table(db_session, owner, 1_100)
    await task_service.trash_task(db_session, chain[0], now=now - RETENTION - timedelta(days=1))
    await db_session.commit()
    result = await service.purge_expired_trash(db_session, now=now, retention=RETENTION)
    await db_session.commit()
    assert result.tasks == len(chain)
    assert (await db_session.exec(select(Task.id).where(Task.owner_id == owner))).all() == []


@pytest.mark.anyio
async def test_a_purge_writes_one_record_per_row_it_deletes_outside_a_purged_project(
    db_session: AsyncSession,
) -> None:
    from app.activity import service as activity

    owner = (await make_user(db_session)).id
    base = datetime(2030, 1, 1, tzinfo=UTC)
    project = await project_service.create_project(db_session, owner_id=owner, name="p")
    await task_service.create_task(db_session, owner_id=owner, title="in p", project_id=project.id)
    loose = await task_service.create_task(db_session, owner_id=owner, title="loose")
    await project_service.trash_project(db_session, project, now=base)
    await task_service.trash_task(db_session, loose, now=base)
    await db_session.commit()
    seen = [record.seq for record in await activity.read_after(db_session, after=0, limit=100)]
    await db_session.commit()
    result = await service.purge_expired_trash(
        db_session, now=base + RETENTION + timedelta(days=1), retention=RETENTION
    )
    await db_session.commit()
    assert (result.tasks, result.projects) == (2, 1)
    purged = await activity.read_after(db_session, after=max(seen), limit=100)
    assert sorted((r.verb, r.entity_type, r.entity_id, r.actor_id) for r in purged) == sorted(
        [("purge", "project", project.id, None), ("purge", "task", loose.id, None)]
    )
