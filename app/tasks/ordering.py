"""A task's place in its project: order keys in the database (app/tasks/position.py holds
the key arithmetic), moves next to another task, and moves to another project."""

import uuid
from datetime import datetime

from sqlalchemy import bindparam, exists, update
from sqlalchemy.orm import aliased
from sqlalchemy.orm.util import identity_key
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import referring
from app.core.models import table_of
from app.core.versioning import bumped, touch
from app.projects import service as project_service
from app.tasks import prebuilt, tree
from app.tasks.exceptions import NO_SUCH_PROJECT, AnchorNotFound, InvalidMove
from app.tasks.models import Task
from app.tasks.position import jitter, key_between, keys_after
from app.tasks.visibility import LIVE, TASK

# Past this length, a project's order keys are renumbered (one rare write of every row).
POSITION_REBALANCE_LENGTH = 200


async def rebalance(
    session: AsyncSession, *, owner_id: uuid.UUID, project_id: uuid.UUID, now: datetime
) -> None:
    """Give every live task of the project a short key again, keeping their order.

    The project's live rows are locked first (in id order), so no write interleaves; the
    keys are rewritten in two passes, first to placeholders no order key can equal, so the
    unique index on (project, key) never sees two rows with one key, whatever order the
    database writes them in. Instances of these rows the session holds are refreshed.
    """
    locked = (
        select(Task.id)
        .where(Task.project_id == project_id, LIVE)
        .order_by(col(Task.id))
        .with_for_update()
    )
    await session.exec(locked)
    in_order = (
        select(Task.id)
        .where(Task.project_id == project_id, LIVE)
        .order_by(col(Task.position), col(Task.id))
    )
    ids = list((await session.exec(in_order)).all())
    if not ids:
        return
    moved = update(table_of(Task)).where(TASK.id == bindparam("task_id"))
    # "~" sorts after every digit of a key, so a placeholder is never a real key.
    placeholders = [{"task_id": task_id, "key": f"~{n}"} for n, task_id in enumerate(ids)]
    await session.exec(moved.values(position=bindparam("key")), params=placeholders)
    keys = keys_after(None, len(ids))
    final = [{"task_id": task_id, "key": key} for task_id, key in zip(ids, keys, strict=True)]
    renumbered = moved.values(position=bindparam("key"), **bumped(TASK.version, now))
    await session.exec(renumbered, params=final)
    for task_id in ids:
        held = session.sync_session.identity_map.get(identity_key(Task, task_id))
        if held is not None:
            await session.refresh(held)


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
    task.position = jitter(key, below=high)


async def move_to_project(
    session: AsyncSession, task: Task, project_id: uuid.UUID, now: datetime
) -> None:
    """Put the task at the end of another project, its subtree right after it."""
    with referring("body", "project_id", detail=NO_SUCH_PROJECT):
        await project_service.get_project(
            session, owner_id=task.owner_id, project_id=project_id, for_share=True
        )
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
        key = jitter(key)  # each key has its own integer part: the digits keep it below the next
        row.project_id = project_id
        row.position = key
        if row is not task:
            touch(row, now=now)
            session.add(row)


async def free_keys(
    session: AsyncSession, ids: list[uuid.UUID], *, project_id: uuid.UUID, now: datetime
) -> None:
    """Before rows `ids` come back from the trash into the project: those whose key a live
    task took meanwhile move to the end (the unique index would refuse them)."""
    live = aliased(Task)
    clashing = (
        select(Task)
        .where(
            col(Task.id).in_(ids),
            exists().where(
                col(live.project_id) == project_id,
                col(live.position) == col(Task.position),
                col(live.deleted_at).is_(None),
            ),
        )
        .order_by(col(Task.position), col(Task.id))
    )
    rows = list((await session.exec(clashing)).all())
    if not rows:
        return
    last = await prebuilt.last_position(session, owner_id=rows[0].owner_id, project_id=project_id)
    for row, key in zip(rows, keys_after(last, len(rows)), strict=True):
        row.position = jitter(key)
        session.add(row)
    await session.flush()
