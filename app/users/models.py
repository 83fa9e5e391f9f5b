"""The user table."""

from enum import StrEnum

from sqlalchemy import Column, String
from sqlmodel import Field

from app.core.models import Timestamps, UUIDPrimaryKey

EMAIL_MAX_LENGTH = 254
FULL_NAME_MAX_LENGTH = 200


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(UUIDPrimaryKey, Timestamps, table=True):
    """An account. Emails are stored lower-cased, so uniqueness is case-insensitive."""

    email: str = Field(sa_column=Column(String(EMAIL_MAX_LENGTH), unique=True, nullable=False))
    full_name: str | None = Field(default=None, max_length=FULL_NAME_MAX_LENGTH)
    hashed_password: str = Field(max_length=255)
    role: Role = Field(default=Role.USER, sa_type=String(16), nullable=False)
    is_active: bool = Field(default=True, nullable=False)
