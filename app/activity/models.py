"""The change log: one record per change, written in the transaction of the change.

`seq` orders the records as readers may see them (service.py explains how it is made on each
database, and why a reader that has seen everything up to N never later finds a record
below N).
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, String, Uuid
from sqlmodel import Field, SQLModel

from app.core.models import UTCDateTime


class EntityType(StrEnum):
    TASK = "task"
    PROJECT = "project"
    LABEL = "label"
    MEMBERSHIP = "membership"
    INVITATION = "invitation"
    COMMENT = "comment"
    # Personal: served only to the account notified, never in a project's activity.
    NOTIFICATION = "notification"
    # Audit entries (admin actions): in the sequence, never served to clients.
    ACCOUNT = "account"


class Verb(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"  # to the trash, or for good where there is no trash (labels, members)
    RESTORE = "restore"
    PURGE = "purge"


# What clients may see in activity views: everything but the audit entries.
SERVED_TYPES = (
    EntityType.TASK,
    EntityType.PROJECT,
    EntityType.LABEL,
    EntityType.MEMBERSHIP,
    EntityType.INVITATION,
    EntityType.COMMENT,
)


class ChangeRecord(SQLModel, table=True):
    """Who did what to which row, when, and the fields it changed (old and new values)."""

    __tablename__ = "change_record"
    __table_args__ = (
        Index("ix_change_record_project_id_seq", "project_id", "seq"),
        Index("ix_change_record_entity_id_seq", "entity_id", "seq"),
        # Deleting an account sets its records' actor to NULL: found by this index.
        Index("ix_change_record_actor_id", "actor_id"),
    )

    # PostgreSQL: computed by the INSERT (service.py). SQLite: the rowid (INTEGER PRIMARY KEY),
    # one more than the largest, so a pruning must always keep the newest record.
    seq: int | None = Field(
        default=None,
        sa_column=Column(
            # "autoincrement" for SQLite's rowid; PostgreSQL's INSERT always names the value
            # (the migration gives it no sequence).
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    # A deleted account's records stay, shown as a deleted user.
    actor_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("user.id", ondelete="SET NULL"), nullable=True),
    )
    verb: str = Field(sa_type=String(16), nullable=False)
    entity_type: str = Field(sa_type=String(16), nullable=False)
    entity_id: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False))
    # No foreign key: the history of a purged project stays readable for its retention.
    project_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid, nullable=True))
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
