"""What the trash shows."""

import uuid
from typing import Literal

from app.core.schemas import Instant, PublicModel


class TrashItem(PublicModel):
    """A project or task deleted on its own (what was deleted along with it comes back too)."""

    kind: Literal["project", "task"]
    id: uuid.UUID
    name: str
    project_id: uuid.UUID | None
    deleted_at: Instant
    purge_after: Instant


class PurgeResult(PublicModel):
    """How many rows a purge deleted: every task (subtasks and a project's tasks included) and
    every project."""

    tasks: int
    projects: int
