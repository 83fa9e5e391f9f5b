"""Load-and-check dependencies for project routes: the owner filter is part of the query."""

import uuid
from typing import Annotated

from fastapi import Depends, Path

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.projects import service
from app.projects.models import Project

ProjectId = Annotated[uuid.UUID, Path(description="The project's id.")]


async def get_owned_project(
    project_id: ProjectId, user: ActiveUser, session: SessionDep
) -> Project:
    """The caller's live project; 404 for a missing, trashed or someone else's project."""
    return await service.get_project(session, owner_id=user.id, project_id=project_id)


async def get_owned_project_for_update(
    project_id: ProjectId, user: ActiveUser, session: SessionDep
) -> Project:
    """As `get_owned_project`, locked for the rest of the transaction (on PostgreSQL)."""
    return await service.get_project(
        session, owner_id=user.id, project_id=project_id, for_update=True
    )


async def get_owned_project_any(
    project_id: ProjectId, user: ActiveUser, session: SessionDep
) -> Project:
    """The caller's project, live or in the trash (for restoring it)."""
    return await service.get_project(
        session, owner_id=user.id, project_id=project_id, include_trashed=True, for_update=True
    )


OwnedProject = Annotated[Project, Depends(get_owned_project)]
ProjectForUpdate = Annotated[Project, Depends(get_owned_project_for_update)]
ProjectInTrashOrNot = Annotated[Project, Depends(get_owned_project_any)]
