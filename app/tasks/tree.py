"""Subtasks: parents, ancestors, descendants, and the depth and cycle rules of a tree."""

import uuid
from collections.abc import Iterable

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.tasks.exceptions import ParentNotFound, RestoreTooDeep, TaskCycle, TaskTooDeep
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
    lock: bool = False,
) -> Task:
    """The caller's live task `parent_id`, or ParentNotFound (a 422 naming the field, `loc`).

    `lock` (a write that puts a task under it): the row is locked FOR SHARE, so the parent
    cannot go to the trash or move until this transaction ends; a trash or move already in
    progress is waited for, and then the parent is read again as it committed.
    """
    statement = select(Task).where(Task.id == parent_id, Task.owner_id == owner_id, LIVE)
    if lock:
        statement = statement.with_for_update(read=True)
    parent = (await session.exec(statement)).first()
    if parent is None:
        raise ParentNotFound(loc=loc, extra={"parent_id": str(parent_id)})
    return parent


async def ancestor_ids(session: AsyncSession, task: Task, *, lock: bool = False) -> list[uuid.UUID]:
    """Ids from the task's parent up to its top-level ancestor (at most MAX_DEPTH + 2 of them:
    enough to decide every depth rule, and a bound even on a chain that loops).

    `lock`: each ancestor is locked FOR SHARE as it is read, so no ancestor can be moved
    until this transaction ends; one being moved is waited for and read as it committed.
    Two moves that would close a loop between them thus see each other's change (or
    deadlock, and one is run again): a cycle can never be committed.
    """
    ancestors: list[uuid.UUID] = []
    current = task.parent_id
    while current is not None and len(ancestors) <= MAX_DEPTH + 1:
        ancestors.append(current)
        statement = select(Task.parent_id).where(Task.id == current)
        if lock:
            statement = statement.with_for_update(read=True)
        current = (await session.exec(statement)).first()
    return ancestors


async def descendants(
    session: AsyncSession, root_id: uuid.UUID, *, live: bool = True
) -> list[tuple[uuid.UUID, int]]:
    """(id, depth below the root) of every descendant, whatever the depth, by one recursive
    query (a row is reached once, so even a chain that loops ends)."""
    alive = [LIVE] if live else []
    tree = (
        select(col(Task.id).label("id"))
        .where(Task.parent_id == root_id, *alive)
        .cte("tree", recursive=True)
    )
    # UNION, not UNION ALL: a row already reached is not followed again.
    tree = tree.union(select(col(Task.id)).where(Task.parent_id == tree.c.id, *alive))
    ids = list((await session.exec(select(tree.c.id))).all())
    if not ids:
        return []
    return _depths(root_id, await _parents_of(session, ids))


async def _parents_of(
    session: AsyncSession, ids: list[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID | None]:
    parents: dict[uuid.UUID, uuid.UUID | None] = {}
    # In slices: SQLite binds at most 32,766 parameters a statement.
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        rows = await session.exec(select(Task.id, Task.parent_id).where(col(Task.id).in_(chunk)))
        parents.update((row[0], row[1]) for row in rows.all())
    return parents


def _depths(
    root_id: uuid.UUID, parents: dict[uuid.UUID, uuid.UUID | None]
) -> list[tuple[uuid.UUID, int]]:
    """Each row's depth below `root_id`, walking the parent links breadth first."""
    children: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    for task_id, parent_id in parents.items():
        children.setdefault(parent_id, []).append(task_id)
    depths: list[tuple[uuid.UUID, int]] = []
    level, depth, seen = [root_id], 0, {root_id}
    while level:
        depth += 1
        level = [c for p in level for c in children.get(p, []) if c not in seen]
        seen.update(level)
        depths.extend((task_id, depth) for task_id in level)
    return depths


async def trashed_with(session: AsyncSession, task: Task) -> list[tuple[uuid.UUID, int]]:
    """(id, depth below the task) of the rows that went to the trash with it."""
    statement = select(Task.id, Task.parent_id).where(Task.trashed_with == task.id)
    rows = (await session.exec(statement)).all()
    return _depths(task.id, {row[0]: row[1] for row in rows})


async def lock_in_order(
    session: AsyncSession, ids: Iterable[uuid.UUID], *, owner_id: uuid.UUID
) -> None:
    """Lock these task rows FOR UPDATE in id order (PostgreSQL; SQLite's write transaction
    holds the whole database): every write that locks several tasks takes them in this one
    order, so two such writes queue instead of deadlocking. Only the owner's rows: a request
    naming someone else's task never holds a lock on it."""
    wanted = sorted(set(ids))
    if wanted:
        statement = (
            select(Task.id)
            .where(col(Task.id).in_(wanted), Task.owner_id == owner_id)
            .order_by(col(Task.id))
            .with_for_update()
        )
        await session.exec(statement)


def height(subtree: list[tuple[uuid.UUID, int]]) -> int:
    """Levels below the root of a subtree given as `descendants` gives it."""
    return max((depth for _, depth in subtree), default=0)


async def check_new_child(session: AsyncSession, parent: Task) -> None:
    """TaskTooDeep if a new subtask of `parent` would be deeper than MAX_DEPTH (the parent's
    ancestors are locked while they are read: see `ancestor_ids`)."""
    if len(await ancestor_ids(session, parent, lock=True)) + 1 > MAX_DEPTH:
        raise TaskTooDeep(extra={"max_depth": MAX_DEPTH})


async def check_reparent(session: AsyncSession, task: Task, parent: Task) -> None:
    """TaskCycle if `parent` is the task or below it; TaskTooDeep if the task's subtree
    would reach deeper than MAX_DEPTH under it (ancestors locked as `ancestor_ids` says)."""
    ancestors = await ancestor_ids(session, parent, lock=True)
    if parent.id == task.id or task.id in ancestors:
        raise TaskCycle()
    if len(ancestors) + 1 + height(await descendants(session, task.id)) > MAX_DEPTH:
        raise TaskTooDeep(extra={"max_depth": MAX_DEPTH})


async def check_restore(
    session: AsyncSession, task: Task, subtree: list[tuple[uuid.UUID, int]]
) -> None:
    """RestoreTooDeep if the task, back under its parent with `subtree` (the rows restored
    with it), would reach deeper than MAX_DEPTH; the parent's ancestors are locked."""
    depth = len(await ancestor_ids(session, task, lock=True))
    if depth + height(subtree) > MAX_DEPTH:
        raise RestoreTooDeep(extra={"max_depth": MAX_DEPTH})
