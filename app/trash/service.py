"""The trash: listing what the caller deleted, and purging what has been there too long."""

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Select, delete, literal, null, or_, union_all, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity import service as activity
from app.activity.models import EntityType
from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.projects.models import Project
from app.quotas import service as quota_service
from app.quotas.models import Resource
from app.tasks.models import Task
from app.trash.exceptions import PurgeInterrupted
from app.trash.schemas import PurgeResult, TrashItem


async def list_trash(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    retention: timedelta,
    page: PageParams,
    codec: CursorCodec,
) -> Page[TrashItem]:
    """The caller's deleted projects and tasks, most recently deleted first.

    Only rows deleted on their own are listed: the tasks a project or parent took along are
    restored with it and are not items of their own.
    """
    tasks: Select[*tuple[Any, ...]] = sa_select(
        literal("task").label("kind"),
        col(Task.id).label("id"),
        col(Task.title).label("name"),
        col(Task.project_id).label("project_id"),
        col(Task.deleted_at).label("deleted_at"),
    ).where(
        col(Task.owner_id) == owner_id,
        col(Task.deleted_at).is_not(None),
        col(Task.trashed_with).is_(None),
    )
    projects: Select[*tuple[Any, ...]] = sa_select(
        literal("project").label("kind"),
        col(Project.id).label("id"),
        col(Project.name).label("name"),
        null().label("project_id"),
        col(Project.deleted_at).label("deleted_at"),
    ).where(col(Project.owner_id) == owner_id, col(Project.deleted_at).is_not(None))
    trash = union_all(tasks, projects).subquery("trash")
    keys = [SortKey(trash.c.deleted_at, descending=True), SortKey(trash.c.id, descending=True)]
    return await paginate(
        session,
        sa_select(trash),
        keys=keys,
        page=page,
        codec=codec,
        scope="trash",
        key_of=lambda row: [row.deleted_at, row.id],
        to_item=lambda row: TrashItem(
            kind=row.kind,
            id=row.id,
            name=row.name,
            project_id=row.project_id,
            deleted_at=row.deleted_at,
            purge_after=row.deleted_at + retention,
        ),
    )


async def purge_expired_trash(
    session: AsyncSession, *, now: datetime, retention: timedelta
) -> PurgeResult:
    """Delete for good what has been in the trash longer than `retention`; the counts are
    of every row deleted (subtasks and a project's tasks included).

    A live row is never deleted: a trashed task with a live task anywhere below it, and a
    trashed project holding a live task, stay in the trash (the live rows would otherwise go
    by ON DELETE CASCADE). Works for trees of any depth on both databases: the rows' parent
    links are cleared before the DELETE, so no cascade runs from task to task.
    """
    for _ in range(_PURGE_ATTEMPTS):
        plan = await _purge_plan(session, cutoff=now - retention)
        if await _lock_plan(session, plan):
            return await _carry_out(session, plan, now)
        # Something was restored or changed between reading and locking: read again.
        await session.rollback()
    raise PurgeInterrupted()


_PURGE_ATTEMPTS = 5
# Ids a statement binds at most (SQLite allows 32,766 parameters).
_CHUNK = 5_000


class _PurgePlan(NamedTuple):
    tasks: list[uuid.UUID]
    projects: list[uuid.UUID]
    # Each doomed task's project (for its change record).
    project_of: dict[uuid.UUID, uuid.UUID]
    # Per owner, how many tasks and projects go: their usage counters go down by as many.
    owners: dict[tuple[uuid.UUID, Resource], int]


async def _purge_plan(session: AsyncSession, *, cutoff: datetime) -> _PurgePlan:
    expired = select(col(Project.id)).where(col(Project.deleted_at) < cutoff)
    expired_projects = set((await session.exec(expired)).all())
    closure = (
        select(col(Task.id).label("id"))
        .where(or_(col(Task.deleted_at) < cutoff, col(Task.project_id).in_(expired)))
        .cte("closure", recursive=True)
    )
    # UNION, not UNION ALL: a row already reached is not followed again, whatever the shape.
    closure = closure.union(select(col(Task.id)).where(col(Task.parent_id) == closure.c.id))
    rows = (
        await session.exec(
            select(
                col(Task.id),
                col(Task.parent_id),
                col(Task.project_id),
                col(Task.deleted_at).is_(None),
            ).join(closure, closure.c.id == col(Task.id))
        )
    ).all()
    parent_of = {row[0]: row[1] for row in rows}
    kept: set[uuid.UUID] = set()
    for task_id, _parent, _project, live in rows:
        # A live row keeps itself and every ancestor that was to go.
        current: uuid.UUID | None = task_id if live else None
        while current is not None and current in parent_of and current not in kept:
            kept.add(current)
            current = parent_of[current]
    doomed = sorted(task_id for task_id in parent_of if task_id not in kept)
    kept_projects = {row[2] for row in rows if row[0] in kept}
    if expired_projects:
        live_in = select(col(Task.project_id)).where(
            col(Task.project_id).in_(expired), col(Task.deleted_at).is_(None)
        )
        kept_projects.update((await session.exec(live_in)).all())
    projects = sorted(expired_projects - kept_projects)
    owners: Counter[tuple[uuid.UUID, Resource]] = Counter()
    for start in range(0, len(doomed), _CHUNK):
        chunk = doomed[start : start + _CHUNK]
        owned = select(col(Task.owner_id)).where(col(Task.id).in_(chunk))
        owners.update((owner, Resource.TASKS) for owner in (await session.exec(owned)).all())
    for start in range(0, len(projects), _CHUNK):
        chunk = projects[start : start + _CHUNK]
        owned = select(col(Project.owner_id)).where(col(Project.id).in_(chunk))
        owners.update((owner, Resource.PROJECTS) for owner in (await session.exec(owned)).all())
    project_of = {row[0]: row[2] for row in rows}
    return _PurgePlan(doomed, projects, {t: project_of[t] for t in doomed}, dict(owners))


async def _all_trashed_and_locked(
    session: AsyncSession, model: type[Project] | type[Task], ids: list[uuid.UUID]
) -> bool:
    """Lock these rows FOR UPDATE in id order; whether every one is still in the trash."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        locked = select(col(model.id)).where(
            col(model.id).in_(chunk), col(model.deleted_at).is_not(None)
        )
        found = (await session.exec(locked.order_by(col(model.id)).with_for_update())).all()
        if len(found) != len(chunk):
            return False
    return True


async def _lock_plan(session: AsyncSession, plan: _PurgePlan) -> bool:
    """Lock the rows to delete (in id order) and say whether all are still in the trash."""
    if not await _all_trashed_and_locked(session, Project, plan.projects):
        return False
    if not await _all_trashed_and_locked(session, Task, plan.tasks):
        return False
    # No live task may have arrived below a row to go, or in a project to go.
    doomed = set(plan.tasks)
    for start in range(0, len(plan.tasks), _CHUNK):
        chunk = plan.tasks[start : start + _CHUNK]
        below = select(col(Task.id)).where(
            col(Task.parent_id).in_(chunk), col(Task.deleted_at).is_(None)
        )
        if (await session.exec(below.limit(1))).first() is not None:
            return False
        children = select(col(Task.id)).where(col(Task.parent_id).in_(chunk))
        if any(child not in doomed for child in (await session.exec(children))):
            return False
    for start in range(0, len(plan.projects), _CHUNK):
        chunk = plan.projects[start : start + _CHUNK]
        inside = select(col(Task.id)).where(col(Task.project_id).in_(chunk))
        if any(task not in doomed for task in (await session.exec(inside))):
            return False
    return True


async def _carry_out(session: AsyncSession, plan: _PurgePlan, now: datetime) -> PurgeResult:
    for start in range(0, len(plan.tasks), _CHUNK):
        chunk = plan.tasks[start : start + _CHUNK]
        # No task-to-task cascade: each row goes by this DELETE, whatever the tree's depth
        # (SQLite's cascades recurse, and stop at 1,000 levels).
        await session.exec(update(Task).where(col(Task.id).in_(chunk)).values(parent_id=None))
    for start in range(0, len(plan.tasks), _CHUNK):
        chunk = plan.tasks[start : start + _CHUNK]
        await session.exec(delete(Task).where(col(Task.id).in_(chunk)))
    for start in range(0, len(plan.projects), _CHUNK):
        chunk = plan.projects[start : start + _CHUNK]
        await session.exec(delete(Project).where(col(Project.id).in_(chunk)))
    for (owner_id, resource), amount in plan.owners.items():
        await quota_service.refund(session, owner_id=owner_id, resource=resource, amount=amount)
    # A record for each project and each task deleted for good, outside a purged project
    # (those went with it, as they went to the trash with it).
    purged = set(plan.projects)
    await activity.record_purged(
        session,
        [(EntityType.PROJECT, project_id, project_id) for project_id in plan.projects]
        + [
            (EntityType.TASK, task_id, plan.project_of[task_id])
            for task_id in plan.tasks
            if plan.project_of[task_id] not in purged
        ],
        now=now,
    )
    return PurgeResult(tasks=len(plan.tasks), projects=len(plan.projects))
