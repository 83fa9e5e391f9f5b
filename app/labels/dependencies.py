"""Load-and-check dependencies for label routes: the owner filter is part of the query."""

import uuid
from typing import Annotated

from fastapi import Depends, Path

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.labels import service
from app.labels.models import Label

LabelId = Annotated[uuid.UUID, Path(description="The label's id.")]


async def get_owned_label(label_id: LabelId, user: ActiveUser, session: SessionDep) -> Label:
    """The caller's label; 404 for a missing or someone else's label."""
    return await service.get_label(session, owner_id=user.id, label_id=label_id)


async def get_owned_label_for_update(
    label_id: LabelId, user: ActiveUser, session: SessionDep
) -> Label:
    """As `get_owned_label`, locked for the rest of the transaction (on PostgreSQL)."""
    return await service.get_label(session, owner_id=user.id, label_id=label_id, for_update=True)


OwnedLabel = Annotated[Label, Depends(get_owned_label)]
LabelForUpdate = Annotated[Label, Depends(get_owned_label_for_update)]
