"""Sign-in sessions: the database record that makes revocation hold in every process."""

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Uuid
from sqlmodel import Field

from app.core.models import UTCDateTime, UUIDPrimaryKey, utcnow

USER_AGENT_MAX_LENGTH = 400


class AuthSession(UUIDPrimaryKey, table=True):
    """One sign-in. Its access tokens and its current refresh token live while it does.

    `refresh_jti` names the one refresh token that may be used next; presenting any older
    one of the same session means it was stolen, and the whole session is revoked, except
    the one just replaced (`previous_refresh_jti`) within a few seconds of `rotated_at`: two
    tabs, or a retry, refreshing at once.
    """

    __tablename__ = "auth_session"
    __table_args__ = (Index("ix_auth_session_user_id_revoked_at", "user_id", "revoked_at"),)

    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    refresh_jti: str = Field(max_length=64)
    previous_refresh_jti: str | None = Field(default=None, max_length=64)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    user_agent: str | None = Field(default=None, max_length=USER_AGENT_MAX_LENGTH)
    ip_address: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
