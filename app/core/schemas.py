"""Field types shared by every area's request and response models."""

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi.openapi.models import Example
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from sqlmodel import SQLModel

from app.core.errors import describe_pattern

EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128


def _lower(value: str) -> str:
    # Lower-casing can undo NFC (the validator's form) for a few letters; NFC again after.
    return unicodedata.normalize("NFC", value.lower())


# The one form an email is stored and compared in: the validator's (local part NFC, domain
# IDNA-decoded and UTS-46 mapped, so "xn--bcher-kva" and fullwidth letters read as typed
# Unicode), then lower-cased, so addresses compare case-insensitively.
Email = Annotated[
    EmailStr,
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    AfterValidator(_lower),
    Field(examples=["ada@example.com"]),
]

_EMAIL = TypeAdapter(Email)


def canonical_email(value: str) -> str | None:
    """The form sign-up stores this address in; None if it is not an address sign-up takes.

    Every path that finds an account by a typed email (sign-in, recovery, the admin made at
    start-up, the stored-email migration and its check) goes through this function.
    """
    try:
        return _EMAIL.validate_python(value.strip())
    except ValidationError:
        return None


def typed_email(value: str) -> str:
    """The form accounts stored before `canonical_email` existed: NFC, lower-cased.

    Accounts whose canonical form clashes with another's keep this form until an admin
    resolves them (`tasks-api check-emails`), and can still sign in as they typed it.
    """
    return unicodedata.normalize("NFC", value.strip()).lower()


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


def _utc_iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _iso_only(value: object) -> object:
    # Pydantic would read a number, or any string that reads as one ("1e-36", "inf", "2024"),
    # as Unix seconds; the API documents ISO 8601 only, so whatever float() takes is refused.
    if isinstance(value, int | float):
        raise ValueError("expected an ISO 8601 date-time with a UTC offset")
    if isinstance(value, str | bytes):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("expected an ISO 8601 date-time with a UTC offset")
    return value


def _in_utc(value: datetime) -> datetime:
    # Every instant is kept and compared in UTC; one whose UTC value leaves years 1-9999
    # (9999-12-31T23:59:59-01:00) has no datetime, and is the client's error, not a 500.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant, in UTC, must fall within the years 1 to 9999") from None


# An instant a client sends: ISO 8601 with an offset; naive or numeric values are a 422. It is
# taken in UTC.
InstantIn = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_in_utc)]

# Responses show instants in UTC as ISO 8601 with an explicit offset ("+00:00"), whatever
# offset the client sent.
Instant = Annotated[
    datetime,
    PlainSerializer(_utc_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


def _number_only(value: object) -> object:
    # JSON Schema's "integer" admits 2.0 but not "2" or true; pydantic's lax mode takes all
    # three and strict mode refuses 2.0. This matches the document the API publishes.
    if isinstance(value, bool | str | bytes):
        raise ValueError("expected a JSON number")
    return value


# For an integer in a request body: a JSON number with no fractional part (2 or 2.0), never a
# string or a boolean. Put it after the field's bounds, as in
# `Annotated[int, Field(ge=0), NUMBER_ONLY]`, so the published schema keeps minimum/maximum.
NUMBER_ONLY = BeforeValidator(_number_only)


# Something besides white space (what Python's str.strip() removes: Unicode white space and
# the separators \x1c-\x1f), and no NUL anywhere (refused at the edge, see middleware.py).
# Published in the schema, so clients and fuzzers know a blank name is refused before sending.
NOT_BLANK = describe_pattern(
    r"^[^\x00]*[^\s\x00\x1c-\x1f][^\x00]*$", "Must hold something besides white space."
)


def name_constraints(max_length: int) -> StringConstraints:
    """For a display name: surrounding white space trimmed, never blank, at most `max_length`.

    Use as `Annotated[str, name_constraints(200)]`.
    """
    return StringConstraints(
        strip_whitespace=True, min_length=1, max_length=max_length, pattern=NOT_BLANK
    )


# Response models say every field is always sent (`required`), defaults or not: generated
# clients then type them as present.
RESPONSE_MODEL_CONFIG = ConfigDict(
    from_attributes=True, json_schema_serialization_defaults_required=True
)


def examples(**named: tuple[str, dict[str, Any]]) -> dict[str, Example]:
    """Request-body examples for `Body(openapi_examples=...)`: name=(summary, value)."""
    return {name: {"summary": summary, "value": value} for name, (summary, value) in named.items()}


class PublicModel(BaseModel):
    """Base of response models: plain pydantic (SQLModel's own `__init__` would validate every
    instance twice), read from ORM instances by attribute."""

    model_config = RESPONSE_MODEL_CONFIG
