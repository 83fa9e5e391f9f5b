"""Load-and-check dependencies for task routes: the owner filter is part of the query; a
member of the task's project reaches it through the policy (reads and comments, so far)."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.core.errors import UnprocessableEntity
from app.core.query import query_dependency
from app.sharing import service as sharing
from app.sharing.policy import Action
from app.tasks import service
from app.tasks.exceptions import TaskNotFound
from app.tasks.models import Task
from app.tasks.schemas import ProjectTaskListQuery, TaskListQuery
from app.users.models import User

TaskId = Annotated[uuid.UUID, Path(description="The task's id.")]
Q = TypeVar("Q", bound=ProjectTaskListQuery)


async def get_owned_task_for_update(task_id: TaskId, user: ActiveUser, session: SessionDep) -> Task:
    """The caller's live task, locked for the rest of the transaction (on PostgreSQL).

    404 for a missing, trashed or someone else's task. (Reading one task needs no ORM
    instance: GET uses `service.read_task_document`.)
    """
    return await service.get_task(session, owner_id=user.id, task_id=task_id, for_update=True)


async def get_owned_task_any(task_id: TaskId, user: ActiveUser, session: SessionDep) -> Task:
    """The caller's task, live or in the trash (for restoring it)."""
    return await service.get_task(
        session, owner_id=user.id, task_id=task_id, include_trashed=True, for_update=True
    )


async def _reached_task(
    session: SessionDep, user: User, task_id: uuid.UUID, action: Action, *, include_trashed: bool
) -> Task:
    # The owner's own task in one query; a member's through the policy (a miss either way is
    # the same 404).
    try:
        return await service.get_task(
            session, owner_id=user.id, task_id=task_id, include_trashed=include_trashed
        )
    except TaskNotFound:
        access = await sharing.task_access(
            session,
            user_id=user.id,
            task_id=task_id,
            action=action,
            include_trashed=include_trashed,
        )
        return await service.get_task(
            session, owner_id=access.owner_id, task_id=task_id, include_trashed=include_trashed
        )


async def get_owned_task_seen(task_id: TaskId, user: ActiveUser, session: SessionDep) -> Task:
    """A task the caller owns or reads as a member of its project, live or in the trash,
    unlocked (for reading its history)."""
    return await _reached_task(session, user, task_id, Action.READ, include_trashed=True)


async def get_commentable_task(task_id: TaskId, user: ActiveUser, session: SessionDep) -> Task:
    """A live task the caller owns or may comment on as a member of its project, unlocked."""
    return await _reached_task(session, user, task_id, Action.COMMENT, include_trashed=False)


TaskForUpdate = Annotated[Task, Depends(get_owned_task_for_update)]
CommentableTask = Annotated[Task, Depends(get_commentable_task)]
TaskSeen = Annotated[Task, Depends(get_owned_task_seen)]
TaskInTrashOrNot = Annotated[Task, Depends(get_owned_task_any)]


def _task_list_query(model: type[Q]) -> Callable[[Request], Awaitable[Q]]:
    read = query_dependency(model)

    async def task_list_query(request: Request) -> Q:
        """The list's query parameters, validated in one go (see app.core.query)."""
        query = await read(request)
        if query.parent_id is not None and query.top_level is not None:
            raise UnprocessableEntity(
                "Use `parent_id` or `top_level`, not both.", loc=("query", "top_level")
            )
        return query

    return task_list_query


TaskListQueryDep = Annotated[TaskListQuery, Depends(_task_list_query(TaskListQuery))]
ProjectTaskListQueryDep = Annotated[
    ProjectTaskListQuery, Depends(_task_list_query(ProjectTaskListQuery))
]
