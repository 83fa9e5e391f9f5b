"""Writing notifications (never for one's own actions) and reading them."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity import service as activity
from app.activity.models import EntityType, Verb
from app.core.models import utcnow
from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.notifications.exceptions import NotificationNotFound
from app.notifications.models import Notification, NotificationKind
from app.notifications.schemas import NotificationPublic

NOTIFICATION_KEYS = [SortKey(col(Notification.id), descending=True)]


async def notify(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    kind: NotificationKind,
    actor_id: uuid.UUID,
    project_id: uuid.UUID | None,
    data: dict[str, Any],
    now: datetime | None = None,
) -> None:
    """Tell `user_id` what `actor_id` did, in the transaction of the change (and in the
    change log, as an entry served to that account only); nothing for one's own action."""
    if user_id == actor_id:
        return
    now = now or utcnow()
    notification = Notification(
        user_id=user_id,
        kind=kind,
        actor_id=actor_id,
        project_id=project_id,
        data=data,
        created_at=now,
    )
    session.add(notification)
    await session.flush()
    await activity.record(
        session,
        actor_id=actor_id,
        verb=Verb.CREATE,
        entity_type=EntityType.NOTIFICATION,
        entity_id=notification.id,
        project_id=None,
        changes={"kind": [None, kind.value], "user_id": [None, str(user_id)]},
        now=now,
    )


def _public(notification: Notification) -> NotificationPublic:
    return NotificationPublic.model_validate(notification, from_attributes=True)


async def list_notifications(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    page: PageParams,
    codec: CursorCodec,
    unread: bool | None = None,
) -> Page[NotificationPublic]:
    """The account's notifications, newest first; `unread` keeps the (un)read ones only."""
    statement = select(Notification).where(Notification.user_id == user_id)
    if unread is not None:
        read_at = col(Notification.read_at)
        statement = statement.where(read_at.is_(None) if unread else read_at.is_not(None))
    return await paginate(
        session,
        statement,
        keys=NOTIFICATION_KEYS,
        page=page,
        codec=codec,
        scope="notifications",
        key_of=lambda notification: [notification.id],
        to_item=_public,
    )


async def mark_read(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    notification_id: uuid.UUID,
    now: datetime | None = None,
) -> NotificationPublic:
    """Mark one of the account's notifications read (kept as it was if it already is)."""
    found = (
        await session.exec(
            select(Notification).where(
                Notification.id == notification_id, Notification.user_id == user_id
            )
        )
    ).first()
    if found is None:
        raise NotificationNotFound()
    if found.read_at is None:
        found.read_at = now or utcnow()
        session.add(found)
        await session.flush()
    return _public(found)


async def mark_all_read(
    session: AsyncSession, *, user_id: uuid.UUID, now: datetime | None = None
) -> None:
    """Mark every unread notification of the account read."""
    await session.exec(
        update(Notification)
        .where(col(Notification.user_id) == user_id, col(Notification.read_at).is_(None))
        .values(read_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
