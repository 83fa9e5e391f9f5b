"""Who shares a project: its members and the invitations still waiting for an answer.

A project's owner is `project.owner_id` (never a member row), so "exactly one owner" is a
column, not a rule to keep; a member row gives one other account a role in one project.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, String, Uuid
from sqlmodel import Field, SQLModel

from app.core.models import UTCDateTime, UUIDPrimaryKey, utcnow
from app.users.models import EMAIL_MAX_LENGTH


class Role(StrEnum):
    """What an account may do in a project (app/sharing/policy.py says what each allows)."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


# The roles a member row or an invitation can hold: ownership moves only by a transfer.
MEMBER_ROLES = (Role.EDITOR, Role.VIEWER)


class ProjectMember(SQLModel, table=True):
    """One account's role in one project that someone else owns."""

    __tablename__ = "project_member"
    __table_args__ = (
        # "Which projects are shared with me": the visibility filters start here.
        Index("ix_project_member_user_id_project_id", "user_id", "project_id"),
    )

    project_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey("project.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    user_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    role: Role = Field(sa_type=String(16), nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Invitation(UUIDPrimaryKey, table=True):
    """A pending invitation: mailed to an address, answered with the mailed token.

    Only the token's SHA-256 is stored, so a copy of the table lets nobody accept anything.
    Answering (or a new invitation to the same address) deletes the row.
    """

    __tablename__ = "project_invitation"
    __table_args__ = (
        Index("uq_project_invitation_project_id_email", "project_id", "email", unique=True),
        Index("ix_project_invitation_email", "email"),
        Index("ix_project_invitation_inviter_id", "inviter_id"),
    )

    project_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    )
    inviter_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    email: str = Field(sa_column=Column(String(EMAIL_MAX_LENGTH), nullable=False))
    role: Role = Field(sa_type=String(16), nullable=False)
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True), repr=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
