"""Comments on tasks."""

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Text, Uuid
from sqlmodel import Field

from app.core.models import UTCDateTime, UUIDPrimaryKey, utcnow

BODY_MAX_LENGTH = 10_000


class Comment(UUIDPrimaryKey, table=True):
    """A note on a task by one account; ids are time-ordered (UUIDv7), so a task's comments
    in id order are oldest first. A trashed task's comments are hidden with it."""

    __table_args__ = (Index("ix_comment_task_id_id", "task_id", "id"),)

    task_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("task.id", ondelete="CASCADE"), nullable=False)
    )
    # No foreign key: a deleted account's comments stay, shown as a deleted user.
    author_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid, nullable=True))
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
