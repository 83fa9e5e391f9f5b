"""The user table."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, String
from sqlmodel import Field

from app.core.models import Timestamps, UTCDateTime, UUIDPrimaryKey

EMAIL_MAX_LENGTH = 254
FULL_NAME_MAX_LENGTH = 200


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(UUIDPrimaryKey, Timestamps, table=True):
    """An account. Emails are stored lower-cased, so uniqueness is case-insensitive.

    `email_verified_at` is when the account proved it receives mail at `email` (None: not
    yet); `pending_email` is a new address asked for and not confirmed yet, which takes the
    place of `email` only when its mailed link is used.
    """

    email: str = Field(sa_column=Column(String(EMAIL_MAX_LENGTH), unique=True, nullable=False))
    full_name: str | None = Field(default=None, max_length=FULL_NAME_MAX_LENGTH)
    hashed_password: str = Field(max_length=255)
    role: Role = Field(default=Role.USER, sa_type=String(16), nullable=False)
    is_active: bool = Field(default=True, nullable=False)
    email_verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    pending_email: str | None = Field(
        default=None, sa_column=Column(String(EMAIL_MAX_LENGTH), nullable=True)
    )

    @property
    def email_verified(self) -> bool:
        """Whether the account has proved it receives mail at its address."""
        return self.email_verified_at is not None
