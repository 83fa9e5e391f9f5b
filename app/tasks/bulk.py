"""Bulk: many operations on the caller's tasks in one request, all or none."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import AppError, UnprocessableEntity, referring
from app.core.models import utcnow
from app.tasks import tree
from app.tasks.models import Task, TaskStatus
from app.tasks.schemas import (
    BulkAddLabels,
    BulkComplete,
    BulkDelete,
    BulkMove,
    BulkOperation,
    BulkRemoveLabels,
    BulkResult,
    BulkUpdate,
)
from app.tasks.service import change_labels, get_task, to_public, trash_task, update_task


async def _apply(
    session: AsyncSession, operation: BulkOperation, task: Task, *, now: datetime
) -> tuple[Task, bool]:
    if isinstance(operation, BulkUpdate):
        changes = operation.fields.model_dump(exclude_unset=True)
        return await update_task(session, task, changes, now=now), False
    if isinstance(operation, BulkComplete):
        return await update_task(session, task, {"status": TaskStatus.DONE}, now=now), False
    if isinstance(operation, BulkMove):
        move: dict[str, Any] = {"project_id": operation.project_id}
        if task.parent_id is not None and operation.project_id != task.project_id:
            # Moving a subtask on its own detaches it from its parent.
            move["parent_id"] = None
        return await update_task(session, task, move, now=now), False
    if isinstance(operation, BulkAddLabels):
        return await change_labels(session, task, add=operation.label_ids), False
    if isinstance(operation, BulkRemoveLabels):
        return await change_labels(session, task, remove=operation.label_ids), False
    assert isinstance(operation, BulkDelete)  # noqa: S101 - the union is exhaustive
    await trash_task(session, task, now=now)
    return task, True


def _in_operation(error: AppError, index: int, *nested: str) -> AppError:
    """The error of operation `index`, saying so (its fields' `loc` inside that operation)."""
    error.extra["operation_index"] = index
    error.message = f"Operation {index}: {error.message}"
    if isinstance(error, UnprocessableEntity):
        error.within("operations", index, *nested)
    return error


async def bulk(
    session: AsyncSession, *, owner_id: uuid.UUID, operations: Sequence[BulkOperation]
) -> BulkResult:
    """Apply the operations in order, all or none (the caller's transaction rolls back).

    The first failing operation's problem carries its `operation_index`.
    """
    now = utcnow()
    # Every task named is locked first, in id order: two bulk requests over the same tasks in
    # different orders then queue instead of deadlocking.
    await tree.lock_in_order(session, (operation.id for operation in operations), owner_id=owner_id)
    touched: dict[uuid.UUID, Task] = {}
    deleted: list[uuid.UUID] = []
    for index, operation in enumerate(operations):
        try:
            with referring("body", "id", detail="You have no such task."):
                task = await get_task(
                    session, owner_id=owner_id, task_id=operation.id, for_update=True
                )
        except AppError as exc:
            raise _in_operation(exc, index) from None
        try:
            task, was_deleted = await _apply(session, operation, task, now=now)
        except AppError as exc:
            # An update's fields sit in its `fields`; every other operation's at its top.
            nested = ("fields",) if isinstance(operation, BulkUpdate) else ()
            raise _in_operation(exc, index, *nested) from None
        if was_deleted:
            deleted.append(task.id)
            touched.pop(task.id, None)
        else:
            touched[task.id] = task
    return BulkResult(
        tasks=[to_public(task) for task in touched.values() if task.deleted_at is None],
        deleted_ids=deleted,
    )
