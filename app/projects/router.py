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
from app.projects.dependencies import OwnedProject, ProjectForUpdate, ProjectInTrashOrNot
from app.projects.models import Project
from app.projects.schemas import ProjectCreateBody, ProjectPublic, ProjectUpdateBody
from app.quotas.dependencies import QuotasDep

router = AppRouter(prefix="/projects", tags=["projects"])


def _public(project: Project, response: Response) -> ProjectPublic:
    response.headers["ETag"] = etag_for(project.version)
    return ProjectPublic.model_validate(project, from_attributes=True)


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
) -> Page[ProjectPublic]:
    """The caller's projects (not those in the trash), oldest first."""
    return await service.list_projects(
        session, owner_id=user.id, page=page, codec=cursors, is_archived=is_archived
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
    return _public(project, response)


@router.get(
    "/{project_id}",
    summary="Read a project",
    response_model=ProjectPublic,
    responses={304: {"description": "Not modified"}, **problem_responses(401, 404, 422)},
)
async def read_project(
    project: OwnedProject, response: Response, if_none_match: IfNoneMatchHeader = None
) -> ProjectPublic | Response:
    """One project; 304 with no body when `If-None-Match` names its current ETag."""
    if if_none_match_matches(if_none_match, project.version):
        return Response(status_code=304, headers={"ETag": etag_for(project.version)})
    return _public(project, response)


@router.patch(
    "/{project_id}",
    summary="Update a project",
    response_model=ProjectPublic,
    responses=problem_responses(401, 404, 409, 412, 422),
)
async def update_project(
    data: ProjectUpdateBody,
    project: ProjectForUpdate,
    session: SessionDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> ProjectPublic:
    """Change the fields sent (`null` clears description or color); the Inbox can be renamed
    but not archived. With `If-Match`, a stale ETag is a 412 and nothing changes.
    """
    changes = data.model_dump(exclude_unset=True)
    updated = await service.update_project(session, project, changes, if_match=if_match)
    return _public(updated, response)


@router.delete(
    "/{project_id}",
    summary="Delete a project",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 409, 412, 422),
)
async def delete_project(
    project: ProjectForUpdate, session: SessionDep, if_match: IfMatchHeader = None
) -> None:
    """Move the project and its tasks to the trash (the Inbox cannot be deleted: 409)."""
    await service.trash_project(session, project, if_match=if_match)


@router.post(
    "/{project_id}/restore",
    summary="Restore a project from the trash",
    response_model=ProjectPublic,
    responses=problem_responses(401, 404, 409, 422),
)
async def restore_project(
    project: ProjectInTrashOrNot, session: SessionDep, response: Response
) -> ProjectPublic:
    """Take the project out of the trash with the tasks that were deleted with it."""
    return _public(await service.restore_project(session, project), response)
