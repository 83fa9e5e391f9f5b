"""A task's place in its project: order keys in the database (app/tasks/position.py holds
the key arithmetic), moves next to another task, and moves to another project."""

import uuid
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import referring
from app.core.versioning import touch
from app.projects import service as project_service
from app.tasks import prebuilt, tree
from app.tasks.exceptions import NO_SUCH_PROJECT, AnchorNotFound, InvalidMove
from app.tasks.models import Task
from app.tasks.position import key_between, keys_after
from app.tasks.visibility import LIVE

# Past this length, a project's order keys are renumbered (one rare write of every row).
POSITION_REBALANCE_LENGTH = 200


async def rebalance(
    session: AsyncSession, *, owner_id: uuid.UUID, project_id: uuid.UUID, now: datetime
) -> None:
    """Give every live task of the project a short key again, keeping their order."""
    statement = (
        select(Task)
        .where(Task.owner_id == owner_id, Task.project_id == project_id, LIVE)
        .order_by(col(Task.position), col(Task.id))
    )
    tasks = list((await session.exec(statement)).all())
    for task, key in zip(tasks, keys_after(None, len(tasks)), strict=True):
        task.position = key
        touch(task, now=now)
        session.add(task)
    await session.flush()


async def key_after(
    session: AsyncSession,
    last: str | None,
    *,
    owner_id: uuid.UUID,
    project_id: uuid.UUID,
    now: datetime,
) -> str:
    """The key after `last`, the project's last one (renumbering the project if it is long)."""
    key = key_between(last, None)
    if len(key) > POSITION_REBALANCE_LENGTH:
        await rebalance(session, owner_id=owner_id, project_id=project_id, now=now)
        last = await prebuilt.last_position(session, owner_id=owner_id, project_id=project_id)
        key = key_between(last, None)
    return key


async def key_at_end(
    session: AsyncSession, *, owner_id: uuid.UUID, project_id: uuid.UUID, now: datetime
) -> str:
    """A key after every live task of the project."""
    last = await prebuilt.last_position(session, owner_id=owner_id, project_id=project_id)
    return await key_after(session, last, owner_id=owner_id, project_id=project_id, now=now)


async def _neighbour_key(
    session: AsyncSession, task: Task, *, after: bool, pivot: str | None
) -> str | None:
    """The key of the first task (other than `task`) strictly past `pivot` in its project."""
    statement = select(Task.position).where(
        Task.owner_id == task.owner_id, Task.project_id == task.project_id, LIVE, Task.id != task.id
    )
    if after:
        if pivot is not None:
            statement = statement.where(col(Task.position) > pivot)
        statement = statement.order_by(col(Task.position))
    else:
        if pivot is not None:
            statement = statement.where(col(Task.position) < pivot)
        statement = statement.order_by(col(Task.position).desc())
    return (await session.exec(statement.limit(1))).first()


async def _get_anchor(
    session: AsyncSession, task: Task, anchor_id: uuid.UUID, *, field: str
) -> Task:
    statement = select(Task).where(Task.id == anchor_id, Task.owner_id == task.owner_id, LIVE)
    anchor = (await session.exec(statement)).first()
    if anchor is None:
        raise AnchorNotFound(loc=("body", field), extra={"anchor_id": str(anchor_id)})
    if anchor.project_id != task.project_id:
        raise InvalidMove(loc=("body", field))
    return anchor


async def move_next_to(
    session: AsyncSession, task: Task, *, anchor_id: uuid.UUID | None, after: bool, now: datetime
) -> None:
    """Give `task` a key right after (or before) the anchor; no anchor: first (or last).

    Only the moved row changes: its new key lies between the anchor's and the neighbour's.
    """
    field = "after_id" if after else "before_id"
    low: str | None
    high: str | None
    if anchor_id is None:
        # "After nothing" is the top of the list, "before nothing" the bottom.
        if after:
            low, high = None, await _neighbour_key(session, task, after=True, pivot=None)
        else:
            low, high = await _neighbour_key(session, task, after=False, pivot=None), None
    elif anchor_id == task.id:
        raise InvalidMove(loc=("body", field))
    else:
        anchor = await _get_anchor(session, task, anchor_id, field=field)
        if after:
            low = anchor.position
            high = await _neighbour_key(session, task, after=True, pivot=low)
        else:
            high = anchor.position
            low = await _neighbour_key(session, task, after=False, pivot=high)
    key = key_between(low, high)
    if len(key) > POSITION_REBALANCE_LENGTH:
        await rebalance(session, owner_id=task.owner_id, project_id=task.project_id, now=now)
        await move_next_to(session, task, anchor_id=anchor_id, after=after, now=now)
        return
    task.position = key


async def move_to_project(
    session: AsyncSession, task: Task, project_id: uuid.UUID, now: datetime
) -> None:
    """Put the task at the end of another project, its subtree right after it."""
    with referring("body", "project_id", detail=NO_SUCH_PROJECT):
        await project_service.get_project(session, owner_id=task.owner_id, project_id=project_id)
    descendant_ids = [task_id for task_id, _ in await tree.descendants(session, task.id)]
    subtree: list[Task] = [task]
    if descendant_ids:
        statement = (
            select(Task)
            .where(col(Task.id).in_(descendant_ids))
            .order_by(col(Task.position), col(Task.id))
        )
        subtree.extend((await session.exec(statement)).all())
    last = await prebuilt.last_position(session, owner_id=task.owner_id, project_id=project_id)
    for row, key in zip(subtree, keys_after(last, len(subtree)), strict=True):
        row.project_id = project_id
        row.position = key
        if row is not task:
            touch(row, now=now)
            session.add(row)
