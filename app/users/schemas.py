"""Request and response models for users: no client can set a server-owned field."""

import uuid
from typing import Annotated, Self

from pydantic import StrictBool, StringConstraints, model_validator
from sqlmodel import Field, SQLModel

from app.core.schemas import PASSWORD_MAX_LENGTH, Email, InputModel, Instant, Password
from app.users.models import FULL_NAME_MAX_LENGTH, Role

# No control characters: PostgreSQL refuses NUL in text (a 500 rather than a 422), and a
# newline or escape in a name shown to others is never wanted.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
FullName = Annotated[
    str, StringConstraints(max_length=FULL_NAME_MAX_LENGTH, pattern=NO_CONTROL_CHARACTERS)
]


class UserBase(SQLModel):
    email: Email
    full_name: FullName | None = Field(default=None, schema_extra={"examples": ["Ada Lovelace"]})


class _PasswordNotEmail(SQLModel):
    @model_validator(mode="after")
    def _password_differs_from_email(self) -> Self:
        password = getattr(self, "password", None) or getattr(self, "new_password", None)
        email = getattr(self, "email", None)
        if password and email and password.strip().lower() == email.lower():
            raise ValueError("the password must not be the email address")
        return self


class UserRegister(UserBase, _PasswordNotEmail, InputModel):
    """Self-service sign-up: the role is always `user`."""

    password: Password


class UserCreate(UserRegister):
    """An admin creating an account may choose the role and whether it is active."""

    role: Role = Role.USER
    is_active: StrictBool = True


class UserUpdateMe(InputModel):
    """What a user may change about themselves; a new email needs the current password."""

    email: Email | None = None
    full_name: FullName | None = None
    current_password: str | None = Field(
        default=None,
        min_length=1,
        max_length=PASSWORD_MAX_LENGTH,
        description="Required to change `email`: a stolen token alone cannot take the account.",
    )


class UserUpdate(InputModel):
    """What an admin may change about any user."""

    email: Email | None = None
    full_name: FullName | None = None
    role: Role | None = None
    is_active: StrictBool | None = None
    password: Password | None = None


class PasswordChange(InputModel):
    # No stored password is longer than a new one may be: a longer guess cannot match.
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    new_password: Password


class UserPublic(UserBase):
    """A user as the API shows it: never a hash."""

    id: uuid.UUID
    role: Role
    is_active: bool
    created_at: Instant
    updated_at: Instant
