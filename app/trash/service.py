"""The trash: listing what the caller deleted, and purging what has been there too long."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, literal, null, union_all
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.projects.models import Project
from app.tasks.models import Task
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
    """Delete for good every task and project deleted before `now - retention`.

    Subtasks, label links and a project's tasks go by the foreign keys' ON DELETE CASCADE.
    """
    cutoff = now - retention
    tasks = await session.exec(delete(Task).where(col(Task.deleted_at) < cutoff))
    projects = await session.exec(delete(Project).where(col(Project.deleted_at) < cutoff))
    return PurgeResult(tasks=tasks.rowcount, projects=projects.rowcount)
