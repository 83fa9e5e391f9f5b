"""Request and response models for labels: no client can set a server-owned field."""

import uuid
from typing import Annotated

from fastapi import Body
from sqlmodel import Field

from app.core.schemas import InputModel, Instant, PublicModel, examples, name_constraints
from app.labels.models import NAME_MAX_LENGTH
from app.projects.schemas import Color

LabelName = Annotated[str, name_constraints(NAME_MAX_LENGTH)]


class LabelCreate(InputModel):
    """A new label; its name must differ, ignoring case, from the caller's other labels."""

    name: LabelName = Field(schema_extra={"examples": ["errands"]})
    color: Color | None = None


class LabelUpdate(InputModel):
    """A partial update: only the fields sent change; `null` clears the color (not the name)."""

    name: LabelName = Field(default=None)
    color: Color | None = None


LabelCreateBody = Annotated[
    LabelCreate,
    Body(
        openapi_examples=examples(
            simple=("A label", {"name": "errands"}),
            coloured=("With a colour", {"name": "waiting", "color": "#f59e0b"}),
        )
    ),
]
LabelUpdateBody = Annotated[
    LabelUpdate,
    Body(
        openapi_examples=examples(
            rename=("Rename it", {"name": "shopping"}),
            plain=("Clear the colour", {"color": None}),
        )
    ),
]


class LabelBrief(PublicModel):
    """A label as shown inside a task."""

    id: uuid.UUID
    name: str
    color: str | None


class LabelPublic(LabelBrief):
    """A label as the API shows it."""

    version: int
    created_at: Instant
    updated_at: Instant
