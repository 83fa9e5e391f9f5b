"""The project table."""

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Column, ForeignKey, Index, Integer, Uuid, text
from sqlmodel import Field

from app.core.models import Timestamps, UTCDateTime, UUIDPrimaryKey

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 5000
COLOR_MAX_LENGTH = 16
INBOX_NAME = "Inbox"

# Declared once so the mapper can use it for optimistic locking (see `__mapper_args__`).
_version_column = Column("version", Integer, nullable=False)


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
        # The trash view and the purge look up deleted projects only.
        Index(
            "ix_project_owner_id_deleted_at",
            "owner_id",
            "deleted_at",
            "id",
            postgresql_where=text("deleted_at IS NOT NULL"),
            sqlite_where=text("deleted_at IS NOT NULL"),
        ),
    )
    # Every ORM UPDATE carries `WHERE version = <the version read>`: a write racing another
    # one fails (StaleDataError → 412) instead of silently overwriting it. The services set
    # the new version themselves, so it grows by exactly one per change.
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "version_id_col": _version_column,
        "version_id_generator": False,
    }

    owner_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(max_length=NAME_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    color: str | None = Field(default=None, max_length=COLOR_MAX_LENGTH)
    is_archived: bool = Field(default=False, nullable=False)
    is_inbox: bool = Field(default=False, nullable=False)
    version: int = Field(default=1, sa_column=_version_column)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
