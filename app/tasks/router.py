"""Tasks: the caller's to-do items, their subtasks, labels, order, bulk changes and trash."""

import uuid
from typing import Any

from fastapi import Request, Response, status
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from app.core.pagination import CursorCodec, CursorCodecDep, Page
from app.core.query import query_parameters
from app.core.routing import AppRouter
from app.projects.dependencies import OwnedProject, ReadableProject
from app.quotas.dependencies import QuotasDep
from app.sharing import service as sharing
from app.sharing.models import Role
from app.sharing.policy import Action
from app.tasks import bulk, listing, service
from app.tasks.dependencies import (
    ProjectTaskListQueryDep,
    TaskForUpdate,
    TaskId,
    TaskInTrashOrNot,
    TaskListQueryDep,
)
from app.tasks.exceptions import TaskNotFound
from app.tasks.models import Task
from app.tasks.prebuilt import TaskDocument
from app.tasks.schemas import (
    BulkRequestBody,
    BulkResult,
    ProjectTaskCreateBody,
    ProjectTaskListQuery,
    TaskCreateBody,
    TaskListQuery,
    TaskPublic,
    TaskUpdateBody,
)

router = AppRouter(tags=["tasks"])

NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Not modified"}}


def _public(task: Task, response: Response) -> TaskPublic:
    response.headers["ETag"] = etag_for(task.version)
    return service.to_public(task)


async def _page(
    session: AsyncSession,
    owner_id: uuid.UUID,
    cursors: CursorCodec,
    query: ProjectTaskListQuery,
    *,
    project_id: uuid.UUID | None,
    within_project: bool = False,
) -> Response:
    tasks = await listing.list_tasks(
        session,
        owner_id=owner_id,
        within_project=within_project,
        filters=query.filters(project_id=project_id),
        sort=query.sort,
        page=query,
        codec=cursors,
    )
    return Response(content=tasks.json(), media_type="application/json")


def _document(document: TaskDocument, *, status_code: int = 200, **headers: str) -> Response:
    headers = {"ETag": etag_for(document.version), **headers}
    return Response(document.json, status_code, headers, media_type="application/json")


def _created(task: Task, request: Request) -> Response:
    public = service.to_public(task)
    location = location_of(request, "read_task", task_id=task.id)
    return _document(
        TaskDocument.of(public), status_code=status.HTTP_201_CREATED, Location=location
    )


@router.get(
    "/tasks",
    summary="List tasks",
    response_model=Page[TaskPublic],
    responses=problem_responses(401, 404, 422),
    openapi_extra={"parameters": query_parameters(TaskListQuery)},
)
async def list_tasks(
    user: ActiveUser, session: SessionDep, cursors: CursorCodecDep, query: TaskListQueryDep
) -> Response:
    """The caller's tasks matching every filter given, one keyset page at a time."""
    return await _page(session, user.id, cursors, query, project_id=query.project_id)


@router.post(
    "/tasks",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses=problem_responses(401, 404, 409, 422),
)
async def create_task(
    data: TaskCreateBody,
    user: ActiveUser,
    session: SessionDep,
    request: Request,
    quotas: QuotasDep,
) -> Response:
    """Create a task at the end of its project (the Inbox unless `project_id` is given).

    409 `quota_exceeded` when the account holds as many tasks as it may."""
    fields = data.model_dump()
    task = await service.create_task(session, owner_id=user.id, quotas=quotas, **fields)
    return _created(task, request)


@router.post(
    "/tasks/bulk",
    summary="Change many tasks at once",
    response_model=BulkResult,
    responses=problem_responses(401, 404, 409, 422),
)
async def bulk_tasks(data: BulkRequestBody, user: ActiveUser, session: SessionDep) -> BulkResult:
    """Apply up to 100 operations in order, all or none; a failure names `operation_index`.

    Operations: `update` (`fields` as in PATCH), `complete`, `move` (`project_id`; a subtask
    moved on its own leaves its parent), `add_labels` / `remove_labels` (`label_ids`), `delete`.
    """
    return await bulk.bulk(session, owner_id=user.id, operations=data.operations)


@router.api_route("/tasks/bulk", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def bulk_tasks_other_methods() -> None:
    """Only POST exists here: 405, rather than reading "bulk" as a malformed task id (422)."""
    raise StarletteHTTPException(status_code=405, headers={"Allow": "POST"})


@router.get(
    "/tasks/{task_id}",
    summary="Read a task",
    response_model=TaskPublic,
    responses={**NOT_MODIFIED, **problem_responses(401, 404, 422)},
)
async def read_task(
    task_id: TaskId,
    user: ActiveUser,
    session: SessionDep,
    if_none_match: IfNoneMatchHeader = None,
) -> Response:
    """One task the caller owns, or reads as a member of its project; 304 with no body when
    `If-None-Match` names its current ETag (the same for every member)."""
    try:
        task = await service.read_task_document(session, owner_id=user.id, task_id=task_id)
    except TaskNotFound:
        # Not the caller's own: a member's read, through the policy (a miss is the same 404).
        access = await sharing.task_access(
            session, user_id=user.id, task_id=task_id, action=Action.READ
        )
        task = await service.read_task_document(session, owner_id=access.owner_id, task_id=task_id)
    if if_none_match_matches(if_none_match, task.version):
        return Response(status_code=304, headers={"ETag": etag_for(task.version)})
    return _document(task)


@router.patch(
    "/tasks/{task_id}",
    summary="Update a task",
    response_model=TaskPublic,
    responses=problem_responses(401, 404, 412, 422),
)
async def update_task(
    task_id: TaskId,
    data: TaskUpdateBody,
    user: ActiveUser,
    session: SessionDep,
    if_match: IfMatchHeader = None,
) -> Response:
    """Change the fields sent (`null` clears a nullable one); a stale `If-Match` is a 412.

    Reorder with `after_id` (right after that task of the same project; `null`: first) or
    `before_id` (right before it; `null`: last): only this task's `position` changes.
    `status` sets and clears `completed_at`. Without `If-Match`, the last write wins.
    """
    changes = data.model_dump(exclude_unset=True)
    task = await service.patch_task(
        session, owner_id=user.id, task_id=task_id, changes=changes, if_match=if_match
    )
    return _document(task)


@router.delete(
    "/tasks/{task_id}",
    summary="Delete a task",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 412, 422),
)
async def delete_task(
    task: TaskForUpdate, session: SessionDep, if_match: IfMatchHeader = None
) -> None:
    """Move the task and its subtasks to the trash (restorable until the retention ends)."""
    await service.trash_task(session, task, if_match=if_match)


@router.post(
    "/tasks/{task_id}/restore",
    summary="Restore a task from the trash",
    response_model=TaskPublic,
    responses=problem_responses(401, 404, 409, 422),
)
async def restore_task(
    task: TaskInTrashOrNot, session: SessionDep, response: Response
) -> TaskPublic:
    """Take the task and the subtasks deleted with it out of the trash.

    409 if the task is not in the trash, or if its project or parent is: restore that first.
    """
    return _public(await service.restore_task(session, task), response)


@router.get(
    "/projects/{project_id}/tasks",
    summary="List a project's tasks",
    response_model=Page[TaskPublic],
    responses=problem_responses(401, 404, 422),
    openapi_extra={"parameters": query_parameters(ProjectTaskListQuery)},
)
async def list_project_tasks(
    access: ReadableProject,
    session: SessionDep,
    cursors: CursorCodecDep,
    query: ProjectTaskListQueryDep,
) -> Response:
    """The project's tasks, in manual order unless `sort` says otherwise; same filters as
    `GET /tasks` (a parent named in `parent_id` must be in this project). Any member may
    list them.
    """
    project = access.project
    return await _page(
        session,
        project.owner_id,
        cursors,
        query,
        project_id=project.id,
        within_project=access.role is not Role.OWNER,
    )


@router.post(
    "/projects/{project_id}/tasks",
    summary="Create a task in a project",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses=problem_responses(401, 404, 409, 422),
)
async def create_project_task(
    data: ProjectTaskCreateBody,
    project: OwnedProject,
    user: ActiveUser,
    session: SessionDep,
    request: Request,
    quotas: QuotasDep,
) -> Response:
    """Create a task at the end of this project (409 `quota_exceeded` as `POST /tasks`)."""
    fields = {**data.model_dump(), "project_id": project.id}
    task = await service.create_task(session, owner_id=user.id, quotas=quotas, **fields)
    return _created(task, request)
