"""Comments: plain functions, session first; the caller's access to the task is checked by
the route's dependency (the task must be one the caller sees, and live)."""

import uuid
from datetime import datetime

from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity import service as activity
from app.activity.models import EntityType, Verb
from app.activity.schemas import Actor
from app.comments.exceptions import CommentNotFound, NotCommentAuthor
from app.comments.models import Comment
from app.comments.schemas import CommentPublic
from app.core.models import utcnow
from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.notifications import service as notifications
from app.notifications.models import NotificationKind
from app.quotas.exceptions import QuotaExceeded
from app.sharing.models import ProjectMember
from app.tasks.models import Task
from app.users.models import User

COMMENT_KEYS = [SortKey(col(Comment.id))]


def public(comment: Comment, author: User | None) -> CommentPublic:
    """The comment as the API shows it; `author` None: that account was deleted."""
    return CommentPublic(
        id=comment.id,
        task_id=comment.task_id,
        author_id=comment.author_id,
        author=None
        if author is None
        else Actor(id=author.id, full_name=author.full_name, email=author.email),
        body=comment.body,
        created_at=comment.created_at,
        updated_at=comment.updated_at,
    )


async def author_of(session: AsyncSession, comment: Comment) -> User | None:
    """The comment's author, if that account still exists."""
    if comment.author_id is None:
        return None
    return await session.get(User, comment.author_id)


async def _record(
    session: AsyncSession,
    comment: Comment,
    task: Task,
    verb: Verb,
    changes: dict[str, list[object]],
    *,
    actor_id: uuid.UUID,
    now: datetime,
) -> None:
    await activity.record(
        session,
        actor_id=actor_id,
        verb=verb,
        entity_type=EntityType.COMMENT,
        entity_id=comment.id,
        project_id=task.project_id,
        changes={**changes, "task_id": [None, str(task.id)]},
        now=now,
    )


async def list_comments(
    session: AsyncSession, *, task: Task, page: PageParams, codec: CursorCodec
) -> Page[CommentPublic]:
    """The task's comments, oldest first."""
    statement = (
        select(Comment, User)
        .outerjoin(User, col(User.id) == Comment.author_id)
        .where(Comment.task_id == task.id)
    )
    return await paginate(
        session,
        statement,
        keys=COMMENT_KEYS,
        page=page,
        codec=codec,
        scope="comments",
        key_of=lambda row: [row[0].id],
        to_item=lambda row: public(row[0], row[1]),
    )


async def add_comment(
    session: AsyncSession,
    *,
    task: Task,
    author_id: uuid.UUID,
    body: str,
    limit: int,
    now: datetime | None = None,
) -> Comment:
    """Add a comment; 409 `quota_exceeded` when the task holds `limit` comments already.

    The task row is locked, so concurrent comments on one task count each other."""
    await session.exec(select(Task.id).where(Task.id == task.id).with_for_update())
    held = select(Comment.id).where(Comment.task_id == task.id).limit(limit + 1).subquery()
    if int((await session.exec(select(func.count()).select_from(held))).one()) >= limit:
        raise QuotaExceeded(extra={"resource": "comments", "limit": limit})
    now = now or utcnow()
    comment = Comment(
        task_id=task.id, author_id=author_id, body=body, created_at=now, updated_at=now
    )
    session.add(comment)
    await session.flush()
    await _record(
        session, comment, task, Verb.CREATE, {"body": [None, body]}, actor_id=author_id, now=now
    )
    # The task's owner hears of it (never of their own comment).
    await notifications.notify(
        session,
        user_id=task.owner_id,
        kind=NotificationKind.COMMENTED,
        actor_id=author_id,
        project_id=task.project_id,
        data={"task_id": str(task.id), "task_title": task.title, "comment_id": str(comment.id)},
        now=now,
    )
    return comment


async def get_comment(
    session: AsyncSession,
    *,
    comment_id: uuid.UUID,
    user_id: uuid.UUID,
    for_update: bool = False,
) -> tuple[Comment, Task]:
    """A comment on a live task the caller owns or may comment on as a member of its
    project (locked with `for_update`); 404 otherwise, as for a comment that does not exist."""
    member = ProjectMember
    statement = (
        select(Comment, Task)
        .join(Task, col(Task.id) == Comment.task_id)
        .outerjoin(
            member,
            and_(col(member.project_id) == Task.project_id, col(member.user_id) == user_id),
        )
        .where(
            Comment.id == comment_id,
            or_(col(Task.owner_id) == user_id, col(member.user_id).is_not(None)),
            col(Task.deleted_at).is_(None),
        )
    )
    if for_update:
        statement = statement.with_for_update(of=Comment)
    found = (await session.exec(statement)).first()
    if found is None:
        raise CommentNotFound()
    return found


async def edit_comment(
    session: AsyncSession,
    *,
    comment: Comment,
    task: Task,
    user_id: uuid.UUID,
    body: str,
    now: datetime | None = None,
) -> Comment:
    """Change a comment's text: its author only (403 `not_comment_author`)."""
    if comment.author_id != user_id:
        raise NotCommentAuthor()
    if body != comment.body:
        now = now or utcnow()
        await _record(
            session,
            comment,
            task,
            Verb.UPDATE,
            {"body": [comment.body, body]},
            actor_id=user_id,
            now=now,
        )
        comment.body, comment.updated_at = body, now
        session.add(comment)
        await session.flush()
    return comment


async def delete_comment(
    session: AsyncSession,
    *,
    comment: Comment,
    task: Task,
    user_id: uuid.UUID,
    now: datetime | None = None,
) -> None:
    """Delete a comment for good: its author, or the owner of the task's project."""
    if user_id not in (comment.author_id, task.owner_id):
        raise NotCommentAuthor()
    await _record(
        session,
        comment,
        task,
        Verb.DELETE,
        {"body": [comment.body, None]},
        actor_id=user_id,
        now=now or utcnow(),
    )
    await session.delete(comment)
    await session.flush()
