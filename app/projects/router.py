"""Projects: the caller's lists of tasks, with the Inbox every account starts with."""

from typing import Annotated

from fastapi import Query, Request, Response, status

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http import (
    IfMatchHeader,
    IfNoneMatchHeader,
    etag_for,
    if_none_match_matches,
    location_of,
)
from app.core.pagination import CursorCodecDep, Page, PageParamsDep
from app.core.routing import AppRouter
from app.projects import service
from app.projects.dependencies import ManagedProject, ProjectInTrashOrNot, ReadableProject
from app.projects.schemas import ProjectCreateBody, ProjectPublic, ProjectUpdateBody
from app.quotas.dependencies import QuotasDep
from app.sharing.models import Role
from app.sharing.service import ProjectAccess

router = AppRouter(prefix="/projects", tags=["projects"])


def _public(access: ProjectAccess, response: Response) -> ProjectPublic:
    response.headers["ETag"] = etag_for(access.project.version)
    return service.public(access.project, access.role)


@router.get(
    "",
    summary="List projects",
    response_model=Page[ProjectPublic],
    responses=problem_responses(401, 422),
)
async def list_projects(
    user: ActiveUser,
    session: SessionDep,
    cursors: CursorCodecDep,
    page: PageParamsDep,
    is_archived: Annotated[
        bool | None, Query(description="Only archived (true) or active (false) projects.")
    ] = None,
    shared: Annotated[
        bool | None,
        Query(description="Only projects others share with you (true) or your own (false)."),
    ] = None,
) -> Page[ProjectPublic]:
    """The projects the caller owns or is a member of (not those in the trash), oldest
    first, each with the caller's `role`."""
    return await service.list_projects(
        session,
        user_id=user.id,
        page=page,
        codec=cursors,
        is_archived=is_archived,
        shared=shared,
    )


@router.post(
    "",
    summary="Create a project",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectPublic,
    responses=problem_responses(401, 409, 422),
)
async def create_project(
    data: ProjectCreateBody,
    user: ActiveUser,
    session: SessionDep,
    request: Request,
    response: Response,
    quotas: QuotasDep,
) -> ProjectPublic:
    """Create a project; `Location` and `ETag` name the new project. 409 `quota_exceeded`
    when the account holds as many projects as it may."""
    fields = data.model_dump()
    project = await service.create_project(session, owner_id=user.id, quotas=quotas, **fields)
    response.headers["Location"] = location_of(request, "read_project", project_id=project.id)
    return _public(ProjectAccess(project, Role.OWNER), response)


@router.get(
    "/{project_id}",
    summary="Read a project",
    response_model=ProjectPublic,
    responses={304: {"description": "Not modified"}, **problem_responses(401, 404, 422)},
)
async def read_project(
    access: ReadableProject, response: Response, if_none_match: IfNoneMatchHeader = None
) -> ProjectPublic | Response:
    """One project the caller owns or is a member of; 304 with no body when `If-None-Match`
    names its current ETag."""
    version = access.project.version
    if if_none_match_matches(if_none_match, version):
        return Response(status_code=304, headers={"ETag": etag_for(version)})
    return _public(access, response)


@router.patch(
    "/{project_id}",
    summary="Update a project",
    response_model=ProjectPublic,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_project(
    data: ProjectUpdateBody,
    access: ManagedProject,
    session: SessionDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> ProjectPublic:
    """Change the fields sent (`null` clears description or color); the Inbox can be renamed
    but not archived. With `If-Match`, a stale ETag is a 412 and nothing changes. The owner
    only (members: 403 `role_too_low`).
    """
    changes = data.model_dump(exclude_unset=True)
    updated = await service.update_project(session, access.project, changes, if_match=if_match)
    return _public(ProjectAccess(updated, access.role), response)


@router.delete(
    "/{project_id}",
    summary="Delete a project",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def delete_project(
    access: ManagedProject, session: SessionDep, if_match: IfMatchHeader = None
) -> None:
    """Move the project and its tasks to the trash (the Inbox cannot be deleted: 409). The
    owner only."""
    await service.trash_project(session, access.project, if_match=if_match)


@router.post(
    "/{project_id}/restore",
    summary="Restore a project from the trash",
    response_model=ProjectPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def restore_project(
    access: ProjectInTrashOrNot, session: SessionDep, response: Response
) -> ProjectPublic:
    """Take the project out of the trash with the tasks that were deleted with it (the owner
    only)."""
    restored = await service.restore_project(session, access.project)
    return _public(ProjectAccess(restored, access.role), response)
