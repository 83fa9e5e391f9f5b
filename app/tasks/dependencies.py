"""Load-and-check dependencies for task routes: the owner filter is part of the query."""

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.core.errors import UnprocessableEntity
from app.core.schemas import InstantIn
from app.tasks import service
from app.tasks.models import PRIORITY_MAX, PRIORITY_MIN, Task, TaskStatus
from app.tasks.schemas import TaskFilters

TaskId = Annotated[uuid.UUID, Path(description="The task's id.")]
MAX_FILTER_VALUES = 20
Q_MAX_LENGTH = 200


async def get_owned_task_for_update(task_id: TaskId, user: ActiveUser, session: SessionDep) -> Task:
    """The caller's live task, locked for the rest of the transaction (on PostgreSQL).

    404 for a missing, trashed or someone else's task. (Reading one task needs no ORM
    instance: GET uses `service.read_task`.)
    """
    return await service.get_task(session, owner_id=user.id, task_id=task_id, for_update=True)


async def get_owned_task_any(task_id: TaskId, user: ActiveUser, session: SessionDep) -> Task:
    """The caller's task, live or in the trash (for restoring it)."""
    return await service.get_task(
        session, owner_id=user.id, task_id=task_id, include_trashed=True, for_update=True
    )


TaskForUpdate = Annotated[Task, Depends(get_owned_task_for_update)]
TaskInTrashOrNot = Annotated[Task, Depends(get_owned_task_any)]


async def task_filters(
    status: Annotated[
        list[TaskStatus] | None,
        Query(max_length=MAX_FILTER_VALUES, description="Any of these statuses (repeatable)."),
    ] = None,
    priority_min: Annotated[
        int | None, Query(ge=PRIORITY_MIN, le=PRIORITY_MAX, description="At least this priority.")
    ] = None,
    label: Annotated[
        list[uuid.UUID] | None,
        Query(max_length=MAX_FILTER_VALUES, description="Carrying every one of these labels."),
    ] = None,
    due_before: Annotated[
        InstantIn | None, Query(description="Due strictly before this instant (with offset).")
    ] = None,
    due_after: Annotated[
        InstantIn | None, Query(description="Due at or after this instant (with offset).")
    ] = None,
    overdue: Annotated[
        bool | None, Query(description="Due in the past and not done (or the opposite).")
    ] = None,
    has_due: Annotated[bool | None, Query(description="With (or without) a due date.")] = None,
    parent_id: Annotated[uuid.UUID | None, Query(description="Subtasks of this task.")] = None,
    top_level: Annotated[
        bool | None, Query(description="Only tasks without a parent (or only subtasks).")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=Q_MAX_LENGTH,
            description="Text in the title or description (case-insensitive).",
        ),
    ] = None,
    updated_since: Annotated[
        InstantIn | None, Query(description="Changed at or after this instant.")
    ] = None,
    completed_since: Annotated[
        InstantIn | None, Query(description="Completed at or after this instant.")
    ] = None,
) -> TaskFilters:
    """The list filters shared by `/tasks` and `/projects/{id}/tasks`.

    Instants must carry a UTC offset: a naive one would be guessed against some zone, so it
    is a 422 instead.
    """
    if parent_id is not None and top_level is not None:
        raise UnprocessableEntity("Use `parent_id` or `top_level`, not both.")
    return TaskFilters(
        statuses=tuple(status or ()),
        priority_min=priority_min,
        label_ids=tuple(label or ()),
        due_before=due_before,
        due_after=due_after,
        overdue=overdue,
        has_due=has_due,
        parent_id=parent_id,
        top_level=top_level,
        q=q,
        updated_since=updated_since,
        completed_since=completed_since,
    )


TaskFiltersDep = Annotated[TaskFilters, Depends(task_filters)]
