"""Request and response models for users: no client can set a server-owned field."""

import uuid
from typing import Annotated, Self

from fastapi import Body
from pydantic import StrictBool, StringConstraints, model_validator
from sqlmodel import Field, SQLModel

from app.core.errors import describe_pattern
from app.core.schemas import (
    PASSWORD_MAX_LENGTH,
    RESPONSE_MODEL_CONFIG,
    Email,
    InputModel,
    Instant,
    Password,
    examples,
)
from app.users.models import FULL_NAME_MAX_LENGTH, Role

# No control characters: PostgreSQL refuses NUL in text (a 500 rather than a 422), and a
# newline or escape in a name shown to others is never wanted.
NO_CONTROL_CHARACTERS = describe_pattern(
    r"^[^\x00-\x1f\x7f]*$", "Must not contain control characters."
)
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
    email_verified: StrictBool | None = Field(
        default=None,
        description="Whether the address counts as confirmed: true marks it confirmed now,"
        " false makes the account confirm it again (POST /auth/verify/resend).",
    )


class PasswordChange(InputModel):
    # No stored password is longer than a new one may be: a longer guess cannot match.
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    new_password: Password


UserRegisterBody = Annotated[
    UserRegister,
    Body(
        openapi_examples=examples(
            account=(
                "An account",
                {
                    "email": "ada@example.com",
                    "password": "correct horse battery staple",
                    "full_name": "Ada Lovelace",
                },
            ),
        )
    ),
]
UserCreateBody = Annotated[
    UserCreate,
    Body(
        openapi_examples=examples(
            member=(
                "A member",
                {"email": "grace@example.com", "password": "correct horse battery staple"},
            ),
            admin=(
                "Another admin",
                {
                    "email": "alan@example.com",
                    "password": "correct horse battery staple",
                    "role": "admin",
                },
            ),
        )
    ),
]
UserUpdateMeBody = Annotated[
    UserUpdateMe,
    Body(
        openapi_examples=examples(
            name=("Change my name", {"full_name": "Ada King"}),
            email=(
                "Change my email (needs the password)",
                {
                    "email": "ada@lovelace.example",
                    "current_password": "correct horse battery staple",
                },
            ),
        )
    ),
]
UserUpdateBody = Annotated[
    UserUpdate,
    Body(
        openapi_examples=examples(
            deactivate=("Deactivate the account", {"is_active": False}),
            verify=("Mark the address confirmed", {"email_verified": True}),
            promote=("Make them an admin", {"role": "admin"}),
        )
    ),
]
PasswordChangeBody = Annotated[
    PasswordChange,
    Body(
        openapi_examples=examples(
            change=(
                "A new password",
                {
                    "current_password": "correct horse battery staple",
                    "new_password": "tr0ub4dor and then some",
                },
            ),
        )
    ),
]


class UserPublic(UserBase):
    """A user as the API shows it: never a hash."""

    model_config = RESPONSE_MODEL_CONFIG  # type: ignore[assignment]  # SQLModel's TypedDict

    id: uuid.UUID
    role: Role
    is_active: bool
    email_verified: bool = Field(
        description="Whether the account has confirmed that it receives mail at `email`;"
        " until then it cannot share projects or be added to one."
    )
    pending_email: str | None = Field(
        description="A new address asked for, which replaces `email` once the link mailed"
        " to it is used (POST /auth/verify)."
    )
    created_at: Instant
    updated_at: Instant
