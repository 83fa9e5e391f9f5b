"""app/tasks/tree.py on the real database: parents, ancestors, descendants, depth and cycles."""

import uuid
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.models import new_id
from app.projects import service as project_service
from app.tasks import service, tree
from app.tasks.exceptions import ParentNotFound, RestoreTooDeep, TaskCycle, TaskTooDeep
from app.tasks.models import Task
from tests.factories import make_user


async def _chain(session: AsyncSession, owner_id: uuid.UUID, length: int) -> list[Task]:
    """`length` tasks, each the subtask of the one before (the first one top-level)."""
    chain: list[Task] = []
    for level in range(length):
        parent_id = chain[-1].id if chain else None
        chain.append(
            await service.create_task(
                session, owner_id=owner_id, title=f"level {level}", parent_id=parent_id
            )
        )
    return chain


@pytest.mark.anyio
async def test_cycles_are_refused_through_the_service(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    a = await service.create_task(db_session, owner_id=owner, title="a")
    b = await service.create_task(db_session, owner_id=owner, title="b", parent_id=a.id)
    with pytest.raises(TaskCycle):
        await service.update_task(db_session, a, {"parent_id": b.id})


@pytest.mark.anyio
async def test_a_parent_is_the_callers_live_task(db_session: AsyncSession) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    parent = await service.create_task(db_session, owner_id=owner, title="parent")
    trashed = await service.create_task(db_session, owner_id=owner, title="trashed")
    await service.trash_task(db_session, trashed)
    found = await tree.get_parent(db_session, owner_id=owner, parent_id=parent.id)
    assert found.id == parent.id
    for who, parent_id in ((stranger, parent.id), (owner, trashed.id), (owner, new_id())):
        with pytest.raises(ParentNotFound) as raised:
            await tree.get_parent(db_session, owner_id=who, parent_id=parent_id)
        assert raised.value.extra == {"parent_id": str(parent_id)}


@pytest.mark.anyio
async def test_ancestors_run_from_the_parent_up_to_the_top(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    chain = await _chain(db_session, owner, 4)
    assert await tree.ancestor_ids(db_session, chain[0]) == []
    assert await tree.ancestor_ids(db_session, chain[3]) == [task.id for task in chain[2::-1]]


@pytest.mark.anyio
async def test_descendants_have_their_depth_and_a_trashed_branch_hides_its_subtree(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    root = await service.create_task(db_session, owner_id=owner, title="root")
    live = await service.create_task(db_session, owner_id=owner, title="l", parent_id=root.id)
    below_live = await service.create_task(
        db_session, owner_id=owner, title="ll", parent_id=live.id
    )
    gone = await service.create_task(db_session, owner_id=owner, title="g", parent_id=root.id)
    below_gone = await service.create_task(
        db_session, owner_id=owner, title="gl", parent_id=gone.id
    )
    # Only the branch's own row is trashed: its subtask stays live, yet out of the live tree.
    trashed = update(Task).where(col(Task.id) == gone.id)
    await db_session.exec(trashed.values(deleted_at=datetime(2030, 1, 1, tzinfo=UTC)))
    assert sorted(await tree.descendants(db_session, root.id)) == sorted(
        [(live.id, 1), (below_live.id, 2)]
    )
    assert sorted(await tree.descendants(db_session, root.id, live=False)) == sorted(
        [(live.id, 1), (below_live.id, 2), (gone.id, 1), (below_gone.id, 2)]
    )
    assert await tree.descendants(db_session, below_live.id) == []


@pytest.mark.anyio
async def test_a_new_child_may_not_go_below_the_deepest_level(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    chain = await _chain(db_session, owner, tree.MAX_DEPTH + 1)  # levels 0 to MAX_DEPTH
    await tree.check_new_child(db_session, chain[-2])
    with pytest.raises(TaskTooDeep) as raised:
        await tree.check_new_child(db_session, chain[-1])
    assert raised.value.extra == {"max_depth": tree.MAX_DEPTH}


@pytest.mark.anyio
async def test_a_reparent_refuses_cycles_and_subtrees_that_would_reach_too_deep(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    chain = await _chain(db_session, owner, tree.MAX_DEPTH)
    for parent in (chain[0], chain[2]):  # the task itself, or a task below it
        with pytest.raises(TaskCycle):
            await tree.check_reparent(db_session, chain[0], parent)
    # A task with one level of subtasks fits under level 2 (its subtask then at MAX_DEPTH),
    # not under level 3.
    task, _ = await _chain(db_session, owner, 2)
    await tree.check_reparent(db_session, task, chain[-2])
    with pytest.raises(TaskTooDeep) as raised:
        await tree.check_reparent(db_session, task, chain[-1])
    assert raised.value.extra == {"max_depth": tree.MAX_DEPTH}


async def _legacy_chain(session: AsyncSession, owner_id: uuid.UUID, length: int) -> list[Task]:
    """A chain deeper than the rules allow, as older releases could leave one: top-level
    tasks linked by their parent ids directly in the table."""
    chain = [
        await service.create_task(session, owner_id=owner_id, title=f"level {n}")
        for n in range(length)
    ]
    for parent, child in pairwise(chain):
        await session.exec(update(Task).where(col(Task.id) == child.id).values(parent_id=parent.id))
    await session.commit()
    for task in chain:
        await session.refresh(task)
    return chain


@pytest.mark.anyio
async def test_subtree_operations_reach_every_level_whatever_the_depth(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    chain = await _legacy_chain(db_session, owner, tree.MAX_DEPTH + 8)
    below = await tree.descendants(db_session, chain[0].id)
    assert sorted(depth for _, depth in below) == list(range(1, len(chain)))
    trashed = await service.trash_task(db_session, chain[0])
    assert set(trashed) == {task.id for task in chain[1:]}
    await db_session.commit()
    restored = await service.get_task(
        db_session, owner_id=owner, task_id=chain[0].id, include_trashed=True
    )
    # Back under no parent, but the chain is deeper than the rules allow: refused as a whole.
    with pytest.raises(RestoreTooDeep):
        await service.restore_task(db_session, restored)


@pytest.mark.anyio
async def test_a_loop_left_in_the_table_ends_every_walk(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    a, b = (await _legacy_chain(db_session, owner, 2))[:2]
    await db_session.exec(update(Task).where(col(Task.id) == a.id).values(parent_id=b.id))
    await db_session.commit()
    await db_session.refresh(a)
    assert len(await tree.ancestor_ids(db_session, a)) <= tree.MAX_DEPTH + 2
    assert [task_id for task_id, _ in await tree.descendants(db_session, a.id)] == [b.id]


@pytest.mark.anyio
async def test_restore_keeps_the_depth_limit(db_session: AsyncSession) -> None:
    """Trash a branch, move its parent deep, restore the branch: refused (409), not a chain
    deeper than the limit (older releases built chains of any depth this way)."""
    owner = (await make_user(db_session)).id
    top = await service.create_task(db_session, owner_id=owner, title="top")
    branch = await service.create_task(db_session, owner_id=owner, title="b", parent_id=top.id)
    await service.create_task(db_session, owner_id=owner, title="leaf", parent_id=branch.id)
    await service.trash_task(db_session, branch)
    deep = await _chain(db_session, owner, tree.MAX_DEPTH - 1)
    await service.update_task(db_session, top, {"parent_id": deep[-1].id})
    await db_session.commit()
    trashed = await service.get_task(
        db_session, owner_id=owner, task_id=branch.id, include_trashed=True
    )
    with pytest.raises(RestoreTooDeep) as raised:
        await service.restore_task(db_session, trashed)
    assert raised.value.extra == {"max_depth": tree.MAX_DEPTH}


@pytest.mark.anyio
async def test_restore_puts_a_subtask_in_its_parents_project(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    elsewhere = await project_service.create_project(db_session, owner_id=owner, name="else")
    parent = await service.create_task(db_session, owner_id=owner, title="parent")
    child = await service.create_task(db_session, owner_id=owner, title="c", parent_id=parent.id)
    grandchild = await service.create_task(
        db_session, owner_id=owner, title="g", parent_id=child.id
    )
    await service.trash_task(db_session, child)
    await service.update_task(db_session, parent, {"project_id": elsewhere.id})
    await db_session.commit()
    trashed = await service.get_task(
        db_session, owner_id=owner, task_id=child.id, include_trashed=True
    )
    restored = await service.restore_task(db_session, trashed)
    await db_session.commit()
    assert restored.project_id == elsewhere.id
    moved = await service.get_task(db_session, owner_id=owner, task_id=grandchild.id)
    assert moved.project_id == elsewhere.id
