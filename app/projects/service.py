"""Queries and rules for projects: plain functions, session first, keyword-only after."""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, bindparam, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity import service as activity
from app.activity.models import EntityType, Verb
from app.core.db import DriverQuery
from app.core.http import check_if_match
from app.core.models import table_of, utcnow
from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.core.versioning import bumped, flush_versioned, touch
from app.projects.exceptions import (
    InboxUnarchivable,
    InboxUndeletable,
    ProjectNotFound,
    ProjectNotInTrash,
)
from app.projects.models import INBOX_NAME, Project
from app.projects.schemas import ProjectPublic
from app.quotas import service as quota_service
from app.quotas.models import Resource
from app.quotas.service import DEFAULT_QUOTAS, Quotas
from app.sharing.models import ProjectMember, Role
from app.tasks.models import Task

PROJECT_KEYS = [SortKey(col(Project.created_at)), SortKey(col(Project.id))]
UPDATABLE_FIELDS = frozenset({"name", "description", "color", "is_archived"})


async def record_change(
    session: AsyncSession,
    project: Project,
    verb: Verb,
    changes: Mapping[str, Any],
    *,
    actor_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> None:
    """The project's change record (by its owner unless `actor_id` says who)."""
    await activity.record(
        session,
        actor_id=actor_id or project.owner_id,
        verb=verb,
        entity_type=EntityType.PROJECT,
        entity_id=project.id,
        project_id=project.id,
        changes=changes,
        now=now,
    )


def _fields(project: Project) -> dict[str, Any]:
    return {name: getattr(project, name) for name in sorted(UPDATABLE_FIELDS)}


async def create_inbox(session: AsyncSession, *, owner_id: uuid.UUID) -> Project:
    """Give a new user their Inbox, the default project for tasks."""
    await quota_service.charge(
        session, owner_id=owner_id, resource=Resource.PROJECTS, quotas=DEFAULT_QUOTAS
    )
    inbox = Project(owner_id=owner_id, name=INBOX_NAME, is_inbox=True)
    session.add(inbox)
    await session.flush()
    await record_change(session, inbox, Verb.CREATE, activity.created(_fields(inbox)))
    return inbox


_PROJECT = table_of(Project).c
# Creating a task in the Inbox needs only its id: a prebuilt column read, not an ORM instance.
_INBOX_ID = DriverQuery(
    select(_PROJECT.id).where(
        _PROJECT.owner_id == bindparam("owner_id", type_=_PROJECT.owner_id.type), _PROJECT.is_inbox
    )
)


async def inbox_id(session: AsyncSession, *, owner_id: uuid.UUID) -> uuid.UUID:
    """The id of the user's Inbox (created now for an account made before projects existed)."""
    found = await _INBOX_ID.fetch_one(session, {"owner_id": owner_id})
    if found is None:
        return (await create_inbox(session, owner_id=owner_id)).id
    return cast(uuid.UUID, found["id"])


async def get_project(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    project_id: uuid.UUID,
    include_trashed: bool = False,
    for_update: bool = False,
    for_share: bool = False,
) -> Project:
    """The caller's project with this id, or ProjectNotFound (also for anyone else's).

    `for_share` (a write that puts a task in it): locked FOR SHARE, so it cannot go to the
    trash before this transaction ends; a deletion in progress is waited for, and then the
    project is read again as it committed (in the trash: not found).
    """
    statement = select(Project).where(Project.id == project_id, Project.owner_id == owner_id)
    if not include_trashed:
        statement = statement.where(col(Project.deleted_at).is_(None))
    if for_update:
        # PostgreSQL: a concurrent writer waits here and then sees the new version.
        statement = statement.with_for_update()
    elif for_share:
        statement = statement.with_for_update(read=True)
    project = (await session.exec(statement)).first()
    if project is None:
        raise ProjectNotFound()
    return project


_PROJECT_FIELDS = [name for name in ProjectPublic.model_fields if name != "role"]


def public(project: Project, role: Role) -> ProjectPublic:
    """The project as the API shows it to someone with `role` in it."""
    fields = {name: getattr(project, name) for name in _PROJECT_FIELDS}
    return ProjectPublic(**fields, role=role)


async def list_projects(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    page: PageParams,
    codec: CursorCodec,
    is_archived: bool | None = None,
    shared: bool | None = None,
) -> Page[ProjectPublic]:
    """The live projects the caller owns or is a member of, in creation order, each with the
    caller's role; `shared` keeps only those shared with the caller (true) or their own.

    The caller reaches at most QUOTA_PROJECTS own and SHARED_PROJECTS_PER_USER_MAX shared
    projects, so the `OR` of the two costs a bounded sort, never a scan of everyone's.
    """
    member = ProjectMember
    owned = col(Project.owner_id) == user_id
    joined = col(member.user_id).is_not(None)
    statement = (
        select(Project, col(member.role))
        .outerjoin(
            member, and_(col(member.project_id) == Project.id, col(member.user_id) == user_id)
        )
        .where(col(Project.deleted_at).is_(None))
    )
    if shared is None:
        statement = statement.where(or_(owned, joined))
    else:
        statement = statement.where(joined if shared else owned)
    if is_archived is not None:
        statement = statement.where(col(Project.is_archived).is_(is_archived))

    def to_item(row: Any) -> ProjectPublic:
        project, role = row
        return public(project, Role(role) if role is not None else Role.OWNER)

    return await paginate(
        session,
        statement,
        keys=PROJECT_KEYS,
        page=page,
        codec=codec,
        scope="projects",
        key_of=lambda row: [row[0].created_at, row[0].id],
        to_item=to_item,
    )


async def create_project(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    name: str,
    description: str | None = None,
    color: str | None = None,
    is_archived: bool = False,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> Project:
    """Insert a project for `owner_id`; QuotaExceeded (409) past the account's quota."""
    await quota_service.charge(
        session, owner_id=owner_id, resource=Resource.PROJECTS, quotas=quotas
    )
    project = Project(
        owner_id=owner_id,
        name=name,
        description=description,
        color=color,
        is_archived=is_archived,
    )
    session.add(project)
    await session.flush()
    await record_change(session, project, Verb.CREATE, activity.created(_fields(project)))
    return project


async def update_project(
    session: AsyncSession,
    project: Project,
    changes: Mapping[str, Any],
    *,
    if_match: str | None = None,
) -> Project:
    """Apply validated field changes; 412 if `if_match` is stale, 409 on archiving the Inbox."""
    check_if_match(if_match, project.version)
    if project.is_inbox and changes.get("is_archived"):
        raise InboxUnarchivable()
    before = _fields(project)
    changed = False
    for field, value in changes.items():
        if field in UPDATABLE_FIELDS and getattr(project, field) != value:
            setattr(project, field, value)
            changed = True
    if changed:
        touch(project)
        session.add(project)
        await flush_versioned(session, project)
        await record_change(session, project, Verb.UPDATE, activity.diff(before, _fields(project)))
    return project


async def trash_project(
    session: AsyncSession,
    project: Project,
    *,
    if_match: str | None = None,
    now: datetime | None = None,
) -> None:
    """Move the project and its live tasks to the trash; the Inbox cannot go (409)."""
    check_if_match(if_match, project.version)
    if project.is_inbox:
        raise InboxUndeletable()
    now = now or utcnow()
    project.deleted_at = now
    touch(project, now=now)
    session.add(project)
    await flush_versioned(session, project)
    # One statement, however many tasks: they remember the project that took them along.
    await session.exec(
        update(Task)
        .where(col(Task.project_id) == project.id, col(Task.deleted_at).is_(None))
        .values(deleted_at=now, trashed_with=project.id, **bumped(Task.version, now))
        .execution_options(synchronize_session=False)
    )
    # One record: its tasks went with it (`trashed_with`).
    await record_change(session, project, Verb.DELETE, activity.diff({}, {"deleted_at": now}))


async def restore_project(
    session: AsyncSession, project: Project, *, now: datetime | None = None
) -> Project:
    """Bring a trashed project back with exactly the tasks its deletion took along."""
    if project.deleted_at is None:
        raise ProjectNotInTrash()
    now = now or utcnow()
    trashed_at = project.deleted_at
    project.deleted_at = None
    touch(project, now=now)
    session.add(project)
    await flush_versioned(session, project)
    await session.exec(
        update(Task)
        .where(col(Task.trashed_with) == project.id, col(Task.deleted_at).is_not(None))
        .values(deleted_at=None, trashed_with=None, **bumped(Task.version, now))
        .execution_options(synchronize_session=False)
    )
    changes = activity.diff({"deleted_at": trashed_at}, {"deleted_at": None})
    await record_change(session, project, Verb.RESTORE, changes, now=now)
    return project
