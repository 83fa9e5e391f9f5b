"""Request and response models for projects: no client can set a server-owned field."""

import uuid
from typing import Annotated

from fastapi import Body
from pydantic import Field as PydanticField
from pydantic import StrictBool, StringConstraints
from sqlmodel import Field

from app.core.errors import describe_pattern
from app.core.schemas import InputModel, Instant, PublicModel, examples, name_constraints
from app.projects.models import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH
from app.sharing.models import Role

# "#rrggbb"; shared by projects and labels.
Color = Annotated[
    str,
    StringConstraints(
        max_length=7,
        pattern=describe_pattern(r"^#[0-9a-fA-F]{6}$", "A colour is written #rrggbb, in hex."),
    ),
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


ProjectCreateBody = Annotated[
    ProjectCreate,
    Body(
        openapi_examples=examples(
            simple=("A project", {"name": "Garden"}),
            styled=(
                "With a description and a colour",
                {"name": "Garden", "description": "Beds, trees and the shed.", "color": "#3b82f6"},
            ),
        )
    ),
]
ProjectUpdateBody = Annotated[
    ProjectUpdate,
    Body(
        openapi_examples=examples(
            rename=("Rename it", {"name": "Allotment"}),
            archive=("Archive it", {"is_archived": True}),
            plain=("Clear the colour", {"color": None}),
        )
    ),
]


class ProjectPublic(PublicModel):
    """A project as the API shows it."""

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    description: str | None
    color: str | None
    is_archived: bool
    is_inbox: bool
    role: Role = PydanticField(description="The caller's role in the project.")
    version: int
    created_at: Instant
    updated_at: Instant
