"""Response models for the activity history."""

import uuid
from typing import Any

from pydantic import Field as PydanticField

from app.core.schemas import Instant, PublicModel


class Actor(PublicModel):
    """Who made a change (co-members see each other's name and address)."""

    id: uuid.UUID
    full_name: str | None
    email: str


class ChangePublic(PublicModel):
    """One change: who, what, to which row, and the fields it changed."""

    seq: int = PydanticField(description="The change's place in the log (larger: later).")
    actor: Actor | None = PydanticField(
        description="Null for a deleted account, or for the service itself (purges)."
    )
    verb: str = PydanticField(examples=["update"])
    entity_type: str = PydanticField(examples=["task"])
    entity_id: uuid.UUID
    project_id: uuid.UUID | None
    changes: dict[str, list[Any]] = PydanticField(
        description="`{field: [old, new]}` for every field the change wrote.",
        examples=[{"status": ["todo", "done"]}],
    )
    at: Instant
