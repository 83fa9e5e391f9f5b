"""The task table and its link to labels."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    CheckConstraint,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, Relationship, SQLModel

from app.core.db.errors import retry_on_clash
from app.core.models import Timestamps, UTCDateTime, UUIDPrimaryKey
from app.labels.models import Label

TITLE_MAX_LENGTH = 500
DESCRIPTION_MAX_LENGTH = 20_000
POSITION_MAX_LENGTH = 255
PRIORITY_MIN = 0
PRIORITY_MAX = 4
MAX_LABELS_PER_TASK = 20

_version_column = Column("version", Integer, nullable=False)

# Partial indexes cover live rows only: every list filters on this, the trash on its negation.
_LIVE = text("deleted_at IS NULL")
TASK_POSITION_INDEX = "uq_task_project_id_position"
retry_on_clash(TASK_POSITION_INDEX, sqlite_columns="task.project_id, task.position")
_TRASHED = text("deleted_at IS NOT NULL")


class TaskStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class OrderKey(TypeDecorator[str]):
    """A fractional order key: compared byte by byte, whatever the database's collation."""

    impl = String(POSITION_MAX_LENGTH)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(String(POSITION_MAX_LENGTH, collation="C"))
        # SQLite compares text with memcmp (the BINARY collation) by default.
        return dialect.type_descriptor(String(POSITION_MAX_LENGTH))


class TaskLabel(SQLModel, table=True):
    """Which labels a task carries; rows go when either side is deleted."""

    __tablename__ = "task_label"
    __table_args__ = (Index("ix_task_label_label_id_task_id", "label_id", "task_id"),)

    task_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("task.id", ondelete="CASCADE"), primary_key=True)
    )
    label_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("label.id", ondelete="CASCADE"), primary_key=True)
    )


class Task(UUIDPrimaryKey, Timestamps, table=True):
    """A to-do item in one of its owner's projects, optionally a subtask of another task."""

    __table_args__ = (
        CheckConstraint(f"priority BETWEEN {PRIORITY_MIN} AND {PRIORITY_MAX}", name="priority"),
        CheckConstraint("status IN ('todo', 'in_progress', 'done')", name="status"),
        # One index per list view, each ending in the id tie-breaker the keyset uses.
        Index(
            "ix_task_owner_id_project_id_position",
            "owner_id",
            "project_id",
            "position",
            "id",
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index(
            "ix_task_owner_id_created_at",
            "owner_id",
            "created_at",
            "id",
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index(
            "ix_task_owner_id_updated_at",
            "owner_id",
            "updated_at",
            "id",
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index(
            "ix_task_owner_id_priority",
            "owner_id",
            "priority",
            "id",
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index(
            "ix_task_owner_id_title",
            "owner_id",
            "title",
            "id",
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        # Due-date lists read the dated rows, then the undated ones (NULLs last, see
        # `paginate_prebuilt`): both are ranges of this one index, in either direction.
        Index(
            "ix_task_owner_id_due_at",
            "owner_id",
            "due_at",
            "id",
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index(
            "ix_task_owner_id_status_due_at",
            "owner_id",
            "status",
            "due_at",
            "id",
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index(
            "ix_task_owner_id_completed_at",
            "owner_id",
            "completed_at",
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index("ix_task_project_id", "project_id"),
        # Manual order is a strict order: no two live tasks of a project share a key. Writes
        # add random digits to the keys they compute (position.jitter), so concurrent ones
        # rarely clash; when they do, this index refuses one and its request runs again.
        Index(
            TASK_POSITION_INDEX,
            "project_id",
            "position",
            unique=True,
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index("ix_task_parent_id", "parent_id"),
        Index(
            "ix_task_owner_id_deleted_at",
            "owner_id",
            "deleted_at",
            "id",
            postgresql_where=_TRASHED,
            sqlite_where=_TRASHED,
        ),
        Index("ix_task_deleted_at", "deleted_at", postgresql_where=_TRASHED, sqlite_where=_TRASHED),
        Index("ix_task_trashed_with", "trashed_with"),
    )
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "version_id_col": _version_column,
        "version_id_generator": False,
    }

    owner_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    project_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    )
    parent_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("task.id", ondelete="CASCADE"), nullable=True),
    )
    title: str = Field(max_length=TITLE_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    status: TaskStatus = Field(default=TaskStatus.TODO, sa_type=String(16), nullable=False)
    priority: int = Field(default=0, nullable=False)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    position: str = Field(sa_type=OrderKey, nullable=False)
    version: int = Field(default=1, sa_column=_version_column)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # The project or task whose deletion put this row in the trash along with it; restoring
    # that one restores exactly these rows. Null for a row deleted on its own (a trash root).
    trashed_with: uuid.UUID | None = Field(default=None, nullable=True)
    # Who made it (kept when it moves, and when its project changes owner). No foreign key:
    # the id stays after that account is deleted, and is then shown as a deleted user.
    created_by_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid, nullable=True))

    labels: list[Label] = Relationship(
        link_model=TaskLabel,
        sa_relationship_kwargs={"lazy": "selectin", "order_by": "Label.name_key"},
    )
