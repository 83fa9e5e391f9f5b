"""Field types shared by every area's request and response models."""

from typing import Annotated

from pydantic import AfterValidator, ConfigDict, EmailStr, Field, StringConstraints
from sqlmodel import SQLModel

EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128


def _lower(value: str) -> str:
    return value.lower()


# Emails compare case-insensitively: normalised to lower case on the way in.
Email = Annotated[
    EmailStr,
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    AfterValidator(_lower),
    Field(examples=["ada@example.com"]),
]

# Measured in characters (code points); argon2 hashes every byte, so none is dropped.
Password = Annotated[
    str,
    Field(
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        examples=["correct horse battery staple"],
    ),
]


class InputModel(SQLModel):
    """Base of request bodies: an unknown field is a 422, never silently dropped or applied."""

    # SQLModel types model_config as its own TypedDict; this is the pydantic key it extends.
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
