"""Load-and-check dependencies for project routes: each asks the policy for one action.

A stranger gets 404 (as for a missing project), a member whose role is too low 403
(`app/sharing/policy.py`). The tasks routes under a project still use `OwnedProject`: the
project's owner only, until members can work on tasks.
"""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.projects import service
from app.projects.models import Project
from app.sharing import service as sharing
from app.sharing.policy import Action
from app.sharing.service import ProjectAccess

ProjectId = Annotated[uuid.UUID, Path(description="The project's id.")]


def project_access(
    action: Action, *, for_update: bool = False, include_trashed: bool = False
) -> Callable[..., Awaitable[ProjectAccess]]:
    """A dependency: the URL's project as the caller reaches it, if they may do `action`."""

    async def dependency(
        project_id: ProjectId, user: ActiveUser, session: SessionDep
    ) -> ProjectAccess:
        return await sharing.get_access(
            session,
            user_id=user.id,
            project_id=project_id,
            action=action,
            include_trashed=include_trashed,
            for_update=for_update,
        )

    return dependency


async def get_owned_project(
    project_id: ProjectId, user: ActiveUser, session: SessionDep
) -> Project:
    """The caller's own live project; 404 for a missing, trashed or someone else's project."""
    return await service.get_project(session, owner_id=user.id, project_id=project_id)


ReadableProject = Annotated[ProjectAccess, Depends(project_access(Action.READ))]
# Locked: the project's fields, or its members, change in this transaction.
ManagedProject = Annotated[
    ProjectAccess, Depends(project_access(Action.MANAGE_PROJECT, for_update=True))
]
ProjectInTrashOrNot = Annotated[
    ProjectAccess,
    Depends(project_access(Action.MANAGE_PROJECT, for_update=True, include_trashed=True)),
]
MembersOf = Annotated[ProjectAccess, Depends(project_access(Action.READ, for_update=True))]
OwnedProject = Annotated[Project, Depends(get_owned_project)]
