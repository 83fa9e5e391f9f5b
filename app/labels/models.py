"""The label table."""

import uuid
from typing import Any, ClassVar

from sqlalchemy import Column, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlmodel import Field

from app.core.models import Timestamps, UUIDPrimaryKey

NAME_MAX_LENGTH = 50
# Case folding can lengthen a name ("ß" → "ss"), so the key column has room to spare.
NAME_KEY_MAX_LENGTH = 4 * NAME_MAX_LENGTH
COLOR_MAX_LENGTH = 7

_version_column = Column("version", Integer, nullable=False)


def name_key(name: str) -> str:
    """The form in which label names are compared: case-folded, so "Work" and "WORK" clash."""
    return name.casefold()


class Label(UUIDPrimaryKey, Timestamps, table=True):
    """A user's tag for tasks; names are unique per user, case-insensitively."""

    __table_args__ = (
        # The database enforces the case-insensitive uniqueness on SQLite and PostgreSQL alike,
        # and the same index serves the list, which is ordered by name.
        UniqueConstraint("owner_id", "name_key", name="uq_label_owner_id_name_key"),
    )
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "version_id_col": _version_column,
        "version_id_generator": False,
    }

    owner_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(max_length=NAME_MAX_LENGTH)
    name_key: str = Field(sa_column=Column(String(NAME_KEY_MAX_LENGTH), nullable=False))
    color: str | None = Field(default=None, max_length=COLOR_MAX_LENGTH)
    version: int = Field(default=1, sa_column=_version_column)
