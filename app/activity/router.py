"""The activity history: what happened in a project, or to one task, newest first."""

from app.activity import service
from app.activity.schemas import ChangePublic
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import CursorCodecDep, Page, PageParamsDep
from app.core.routing import AppRouter
from app.projects.dependencies import ReadableProject
from app.tasks.dependencies import TaskSeen

router = AppRouter(tags=["activity"])


@router.get(
    "/projects/{project_id}/activity",
    summary="A project's activity",
    response_model=Page[ChangePublic],
    responses=problem_responses(401, 404, 422),
)
async def project_activity(
    access: ReadableProject, session: SessionDep, cursors: CursorCodecDep, page: PageParamsDep
) -> Page[ChangePublic]:
    """Every change to the project, its tasks, members and invitations, newest first; any
    member may read it."""
    return await service.history(session, page=page, codec=cursors, project_id=access.project.id)


@router.get(
    "/tasks/{task_id}/activity",
    summary="A task's activity",
    response_model=Page[ChangePublic],
    responses=problem_responses(401, 404, 422),
)
async def task_activity(
    task: TaskSeen, session: SessionDep, cursors: CursorCodecDep, page: PageParamsDep
) -> Page[ChangePublic]:
    """Every change to the task (in the trash too), newest first."""
    return await service.history(session, page=page, codec=cursors, entity_id=task.id)
