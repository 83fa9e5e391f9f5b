"""Subtasks: parents, ancestors, descendants, and the depth and cycle rules of a tree."""

import uuid

from sqlalchemy import literal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.tasks.exceptions import ParentNotFound, TaskCycle, TaskTooDeep
from app.tasks.models import Task
from app.tasks.visibility import LIVE

# Levels of subtasks below a top-level task; bounds every walk up or down a task tree.
MAX_DEPTH = 4


async def get_parent(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    parent_id: uuid.UUID,
    loc: tuple[str | int, ...] = ParentNotFound.loc,
) -> Task:
    """The caller's live task `parent_id`, or ParentNotFound (a 422 naming the field, `loc`)."""
    statement = select(Task).where(Task.id == parent_id, Task.owner_id == owner_id, LIVE)
    parent = (await session.exec(statement)).first()
    if parent is None:
        raise ParentNotFound(loc=loc, extra={"parent_id": str(parent_id)})
    return parent


async def ancestor_ids(session: AsyncSession, task: Task) -> list[uuid.UUID]:
    """Ids from the task's parent up to its top-level ancestor."""
    ancestors: list[uuid.UUID] = []
    current = task.parent_id
    while current is not None and len(ancestors) <= MAX_DEPTH + 1:
        ancestors.append(current)
        result = await session.exec(select(Task.parent_id).where(Task.id == current))
        current = result.first()
    return ancestors


async def descendants(
    session: AsyncSession, root_id: uuid.UUID, *, live: bool = True
) -> list[tuple[uuid.UUID, int]]:
    """(id, depth below the root) of every descendant, by one recursive query."""
    alive = [LIVE] if live else []
    tree = (
        select(col(Task.id).label("id"), literal(1).label("depth"))
        .where(Task.parent_id == root_id, *alive)
        .cte("tree", recursive=True)
    )
    child = select(col(Task.id), tree.c.depth + 1).where(
        Task.parent_id == tree.c.id, tree.c.depth <= MAX_DEPTH, *alive
    )
    tree = tree.union_all(child)
    result = await session.exec(select(tree.c.id, tree.c.depth))
    return [(row[0], int(row[1])) for row in result.all()]


async def check_new_child(session: AsyncSession, parent: Task) -> None:
    """TaskTooDeep if a new subtask of `parent` would be deeper than MAX_DEPTH."""
    if len(await ancestor_ids(session, parent)) + 1 > MAX_DEPTH:
        raise TaskTooDeep(extra={"max_depth": MAX_DEPTH})


async def check_reparent(session: AsyncSession, task: Task, parent: Task) -> None:
    """TaskCycle if `parent` is the task or below it; TaskTooDeep if the task's subtree
    would reach deeper than MAX_DEPTH under it."""
    ancestors = await ancestor_ids(session, parent)
    if parent.id == task.id or task.id in ancestors:
        raise TaskCycle()
    height = max((depth for _, depth in await descendants(session, task.id)), default=0)
    if len(ancestors) + 1 + height > MAX_DEPTH:
        raise TaskTooDeep(extra={"max_depth": MAX_DEPTH})
