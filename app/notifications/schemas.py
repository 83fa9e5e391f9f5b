"""Response models for notifications."""

import uuid
from typing import Any

from pydantic import Field as PydanticField

from app.core.schemas import Instant, PublicModel
from app.notifications.models import NotificationKind


class NotificationPublic(PublicModel):
    """Something someone else did that concerns you."""

    id: uuid.UUID
    kind: NotificationKind
    actor_id: uuid.UUID | None = PydanticField(description="Who did it (null: deleted).")
    project_id: uuid.UUID | None
    data: dict[str, Any] = PydanticField(
        description="What happened, by kind: `project_name`, `role`.",
        examples=[{"project_name": "Garden", "role": "editor"}],
    )
    created_at: Instant
    read_at: Instant | None
