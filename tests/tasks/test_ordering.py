"""app/tasks/ordering.py on the real database: order keys of a project, rebalancing, moves."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import ReferenceNotFound
from app.core.models import new_id
from app.projects import service as project_service
from app.tasks import ordering, position, service
from app.tasks.exceptions import AnchorNotFound, InvalidMove
from app.tasks.models import Task
from tests.factories import make_user
from tests.tasks.test_listing import _walk  # the list walk, shared with test_listing.py

NOW = datetime(2030, 1, 1, tzinfo=UTC)


async def _ids_in_order(session: AsyncSession, project_id: uuid.UUID) -> list[uuid.UUID]:
    """The project's task ids in order-key order (after flushing the session's moves)."""
    await session.flush()
    statement = select(Task.id).where(Task.project_id == project_id).order_by(col(Task.position))
    return list((await session.exec(statement)).all())


@pytest.mark.anyio
async def test_moving_into_a_crowded_gap_rebalances_keys(
    db_session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = (await make_user(db_session)).id
    tasks = [await service.create_task(db_session, owner_id=owner, title=f"{i}") for i in range(3)]
    monkeypatch.setattr(ordering, "POSITION_REBALANCE_LENGTH", 4)
    for _ in range(12):
        await service.update_task(db_session, tasks[2], {"after_id": tasks[0].id})
        await service.update_task(db_session, tasks[1], {"after_id": tasks[0].id})
    ordered = await _walk(db_session, owner, sort="position", limit=10)
    assert ordered == [tasks[0].id, tasks[1].id, tasks[2].id]
    # The keys' own length stays within the limit; a write adds its random digits after it.
    assert max(len(task.position) for task in tasks) <= 4 + position.JITTER_DIGITS


@pytest.mark.anyio
async def test_a_key_at_the_end_renumbers_a_project_whose_keys_grew_too_long(
    db_session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = (await make_user(db_session)).id
    inbox = await project_service.inbox_id(db_session, owner_id=owner)
    first = await ordering.key_at_end(db_session, owner_id=owner, project_id=inbox, now=NOW)
    assert first == position.key_between(None, None)  # an empty project
    grown = ["a0V", "a0VV", "a0VVV"]
    tasks = [
        Task(id=new_id(), owner_id=owner, project_id=inbox, title=key, position=key)
        for key in reversed(grown)
    ]
    db_session.add_all(tasks)
    await db_session.commit()
    # Short keys are handed out as they are.
    assert await ordering.key_after(
        db_session, grown[-1], owner_id=owner, project_id=inbox, now=NOW
    ) == position.key_between(grown[-1], None)
    monkeypatch.setattr(ordering, "POSITION_REBALANCE_LENGTH", 1)
    key = await ordering.key_after(db_session, grown[-1], owner_id=owner, project_id=inbox, now=NOW)
    renumbered = position.keys_after(None, len(grown))
    rows = (await db_session.exec(select(Task).order_by(col(Task.position)))).all()
    assert [(row.title, row.position, row.version) for row in rows] == [
        (title, key, 2) for title, key in zip(grown, renumbered, strict=True)
    ]
    assert key == position.key_between(renumbered[-1], None)


@pytest.mark.anyio
async def test_a_move_next_to_an_anchor_rewrites_only_the_moved_key(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    a, b, c = [await service.create_task(db_session, owner_id=owner, title=t) for t in "abc"]
    project = await project_service.create_project(db_session, owner_id=owner, name="P")
    elsewhere = await service.create_task(
        db_session, owner_id=owner, title="elsewhere", project_id=project.id
    )
    inbox = a.project_id
    await ordering.move_next_to(db_session, c, anchor_id=a.id, after=True, now=NOW)
    assert await _ids_in_order(db_session, inbox) == [a.id, c.id, b.id]
    await ordering.move_next_to(db_session, a, anchor_id=b.id, after=False, now=NOW)
    assert await _ids_in_order(db_session, inbox) == [c.id, a.id, b.id]
    # No anchor: after nothing is the top, before nothing the bottom.
    await ordering.move_next_to(db_session, b, anchor_id=None, after=True, now=NOW)
    assert await _ids_in_order(db_session, inbox) == [b.id, c.id, a.id]
    await ordering.move_next_to(db_session, b, anchor_id=None, after=False, now=NOW)
    assert await _ids_in_order(db_session, inbox) == [c.id, a.id, b.id]
    assert (a.version, c.version) == (1, 1)  # the caller records the change
    for anchor_id in (b.id, elsewhere.id):  # itself, or a task of another project
        with pytest.raises(InvalidMove):
            await ordering.move_next_to(db_session, b, anchor_id=anchor_id, after=True, now=NOW)
    missing = new_id()
    for after, field in ((True, "after_id"), (False, "before_id")):
        with pytest.raises(AnchorNotFound) as raised:
            await ordering.move_next_to(db_session, b, anchor_id=missing, after=after, now=NOW)
        assert raised.value.extra == {"anchor_id": str(missing)}
        assert raised.value.errors is not None
        assert raised.value.errors[0]["loc"] == ["body", field]


@pytest.mark.anyio
async def test_a_move_to_another_project_puts_the_subtree_at_its_end(
    db_session: AsyncSession,
) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    top = await service.create_task(db_session, owner_id=owner, title="top")
    child = await service.create_task(db_session, owner_id=owner, title="c", parent_id=top.id)
    grandchild = await service.create_task(
        db_session, owner_id=owner, title="g", parent_id=child.id
    )
    stays = await service.create_task(db_session, owner_id=owner, title="stays")
    project = await project_service.create_project(db_session, owner_id=owner, name="P")
    there = await service.create_task(
        db_session, owner_id=owner, title="there", project_id=project.id
    )
    foreign = await project_service.create_project(db_session, owner_id=stranger, name="F")
    with pytest.raises(ReferenceNotFound) as raised:
        await ordering.move_to_project(db_session, top, foreign.id, NOW)
    assert raised.value.errors is not None
    assert raised.value.errors[0]["loc"] == ["body", "project_id"]
    await ordering.move_to_project(db_session, top, project.id, NOW)
    assert await _ids_in_order(db_session, project.id) == [
        there.id,
        top.id,
        child.id,
        grandchild.id,
    ]
    assert await _ids_in_order(db_session, stays.project_id) == [stays.id]
    # The subtree's rows are changed here; the moved task's change is the caller's to record.
    assert (top.version, child.version, grandchild.version) == (1, 2, 2)
