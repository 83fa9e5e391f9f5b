"""Request and response models for projects: no client can set a server-owned field."""

import uuid
from typing import Annotated

from pydantic import Field as PydanticField
from pydantic import StrictBool, StringConstraints
from sqlmodel import Field

from app.core.schemas import InputModel, Instant, PublicModel, name_constraints
from app.projects.models import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH

# "#rrggbb"; shared by projects and labels.
Color = Annotated[
    str,
    StringConstraints(max_length=7, pattern=r"^#[0-9a-fA-F]{6}$"),
    PydanticField(examples=["#3b82f6"]),
]
ProjectName = Annotated[str, name_constraints(NAME_MAX_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH)]


class ProjectCreate(InputModel):
    """A new project."""

    name: ProjectName = Field(schema_extra={"examples": ["Garden"]})
    description: Description | None = None
    color: Color | None = None
    is_archived: StrictBool = False


class ProjectUpdate(InputModel):
    """A partial update: only the fields sent change; `null` clears description or color.

    `name` and `is_archived` cannot be null: their default here only means "not sent", and an
    explicit null fails validation (422).
    """

    name: ProjectName = Field(default=None)
    description: Description | None = None
    color: Color | None = None
    is_archived: StrictBool = Field(default=None)


class ProjectPublic(PublicModel):
    """A project as the API shows it."""

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    description: str | None
    color: str | None
    is_archived: bool
    is_inbox: bool
    version: int
    created_at: Instant
    updated_at: Instant
