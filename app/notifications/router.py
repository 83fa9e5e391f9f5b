"""Notifications: what others did that concerns you, newest first."""

import uuid
from typing import Annotated

from fastapi import Path, Query, status

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import CursorCodecDep, Page, PageParamsDep
from app.core.routing import AppRouter
from app.notifications import service
from app.notifications.schemas import NotificationPublic

router = AppRouter(prefix="/notifications", tags=["notifications"])

NotificationId = Annotated[uuid.UUID, Path(description="The notification's id.")]


@router.get(
    "",
    summary="List your notifications",
    response_model=Page[NotificationPublic],
    responses=problem_responses(401, 422),
)
async def list_notifications(
    user: ActiveUser,
    session: SessionDep,
    cursors: CursorCodecDep,
    page: PageParamsDep,
    unread: Annotated[
        bool | None, Query(description="Only unread (true) or read (false) notifications.")
    ] = None,
) -> Page[NotificationPublic]:
    """Invitations, role changes, removals and comments on your tasks that others made,
    newest first."""
    return await service.list_notifications(
        session, user_id=user.id, page=page, codec=cursors, unread=unread
    )


@router.post(
    "/read-all",
    summary="Mark every notification read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401),
)
async def mark_all_read(user: ActiveUser, session: SessionDep) -> None:
    """Mark all your unread notifications read."""
    await service.mark_all_read(session, user_id=user.id)


@router.post(
    "/{notification_id}/read",
    summary="Mark a notification read",
    response_model=NotificationPublic,
    responses=problem_responses(401, 404, 422),
)
async def mark_read(
    notification_id: NotificationId, user: ActiveUser, session: SessionDep
) -> NotificationPublic:
    """Mark one of your notifications read (404 for anyone else's)."""
    return await service.mark_read(session, user_id=user.id, notification_id=notification_id)
