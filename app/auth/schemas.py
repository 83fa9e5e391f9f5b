"""Request and response models for signing in and out."""

import uuid
from typing import Annotated, Literal

from fastapi import Body
from pydantic import ConfigDict
from sqlmodel import Field

from app.core.schemas import Email, InputModel, Instant, Password, PublicModel, examples

TOKEN_MAX_LENGTH = 4096


class TokenPair(PublicModel):
    """What a successful sign-in or refresh returns."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                "token_type": "bearer",
                "expires_in": 900,
                "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
            }
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str


class RefreshRequest(InputModel):
    refresh_token: str = Field(min_length=1, max_length=TOKEN_MAX_LENGTH)


class PasswordRecoveryRequest(InputModel):
    email: Email


class PasswordResetRequest(InputModel):
    token: str = Field(min_length=1, max_length=TOKEN_MAX_LENGTH)
    new_password: Password


class VerifyRequest(InputModel):
    token: str = Field(min_length=1, max_length=TOKEN_MAX_LENGTH)


class VerifyResendRequest(InputModel):
    email: Email


RefreshRequestBody = Annotated[
    RefreshRequest,
    Body(
        openapi_examples=examples(
            rotate=(
                "The refresh token",
                {"refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."},
            )
        )
    ),
]
PasswordRecoveryRequestBody = Annotated[
    PasswordRecoveryRequest,
    Body(openapi_examples=examples(forgot=("My email", {"email": "ada@example.com"}))),
]
PasswordResetRequestBody = Annotated[
    PasswordResetRequest,
    Body(
        openapi_examples=examples(
            reset=(
                "The mailed token",
                {
                    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                    "new_password": "correct horse battery staple",
                },
            )
        )
    ),
]
VerifyRequestBody = Annotated[
    VerifyRequest,
    Body(
        openapi_examples=examples(
            confirm=("The mailed token", {"token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."})
        )
    ),
]
VerifyResendRequestBody = Annotated[
    VerifyResendRequest,
    Body(openapi_examples=examples(resend=("My email", {"email": "ada@example.com"}))),
]


class Accepted(PublicModel):
    detail: str = Field(
        schema_extra={"examples": ["If the account exists, a reset link is on its way."]}
    )


class SessionPublic(PublicModel):
    """One active sign-in of the caller."""

    id: uuid.UUID
    created_at: Instant
    last_used_at: Instant
    expires_at: Instant
    user_agent: str | None
    ip_address: str | None
    current: bool = Field(description="Whether this is the session making the request.")
