"""The project table."""

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Uuid, text
from sqlmodel import Field

from app.core.models import Timestamps, UTCDateTime, UUIDPrimaryKey

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 5000
INBOX_NAME = "Inbox"


class Project(UUIDPrimaryKey, Timestamps, table=True):
    """A list of tasks owned by one user. Every user has exactly one Inbox."""

    __table_args__ = (
        Index("ix_project_owner_id_created_at", "owner_id", "created_at", "id"),
        # At most one Inbox per user, enforced by the database.
        Index(
            "uq_project_owner_id_inbox",
            "owner_id",
            unique=True,
            postgresql_where=text("is_inbox"),
            sqlite_where=text("is_inbox"),
        ),
    )

    owner_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(max_length=NAME_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    color: str | None = Field(default=None, max_length=16)
    is_archived: bool = Field(default=False, nullable=False)
    is_inbox: bool = Field(default=False, nullable=False)
    version: int = Field(default=1, nullable=False)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
