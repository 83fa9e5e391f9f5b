"""Field types shared by every area's request and response models."""

from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints

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
