"""Notifications: what someone else did that concerns you."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Uuid, text
from sqlmodel import Field

from app.core.models import UTCDateTime, UUIDPrimaryKey, utcnow


class NotificationKind(StrEnum):
    INVITED = "invited"  # to a project, at your confirmed address
    ROLE_CHANGED = "role_changed"  # in a project (a transfer makes you its owner)
    REMOVED = "removed"  # from a project
    COMMENTED = "commented"  # on a task you own


class Notification(UUIDPrimaryKey, table=True):
    """One notification for one account; ids are time-ordered (UUIDv7): newest first is
    descending id order."""

    __table_args__ = (
        Index("ix_notification_user_id_id", "user_id", "id"),
        Index(
            "ix_notification_user_id_unread",
            "user_id",
            "id",
            postgresql_where=text("read_at IS NULL"),
            sqlite_where=text("read_at IS NULL"),
        ),
    )

    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(sa_type=String(32), nullable=False)
    # Who caused it; no foreign key, so it stays (as a deleted user) after that account goes.
    actor_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid, nullable=True))
    project_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid, nullable=True))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
