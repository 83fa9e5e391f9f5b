"""Request and response models for comments."""

import uuid
from typing import Annotated

from fastapi import Body

from app.activity.schemas import Actor
from app.comments.models import BODY_MAX_LENGTH
from app.core.schemas import InputModel, Instant, PublicModel, examples, name_constraints

# Plain text, trimmed, never blank, the same rules as other text fields (no NUL anywhere).
CommentText = Annotated[str, name_constraints(BODY_MAX_LENGTH)]


class CommentWrite(InputModel):
    """A comment's text."""

    body: CommentText


CommentBody = Annotated[
    CommentWrite,
    Body(openapi_examples=examples(plain=("A comment", {"body": "Done, see the photo."}))),
]


class CommentPublic(PublicModel):
    """A comment as the API shows it, with its author (null: the account was deleted)."""

    id: uuid.UUID
    task_id: uuid.UUID
    author_id: uuid.UUID | None
    author: Actor | None
    body: str
    created_at: Instant
    updated_at: Instant
