"""The usage counters quotas are checked against."""

import uuid
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Integer, String, Uuid
from sqlmodel import Field, SQLModel

# A user's count of one resource is kept in this many rows, each write adding to one picked at
# random: concurrent creates of one user lock different rows, instead of queueing through
# commit behind one.
USAGE_SHARDS = 16


class Resource(StrEnum):
    """What a quota counts."""

    TASKS = "tasks"
    PROJECTS = "projects"
    LABELS = "labels"


class UsageCounter(SQLModel, table=True):
    """One shard of a user's count of one resource; the count is the sum of the shards."""

    __tablename__ = "usage_counter"

    owner_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    resource: str = Field(sa_column=Column(String(16), primary_key=True, nullable=False))
    shard: int = Field(sa_column=Column(Integer, primary_key=True, nullable=False))
    used: int = Field(sa_column=Column(Integer, nullable=False))
