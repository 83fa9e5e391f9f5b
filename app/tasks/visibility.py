"""Which tasks a caller sees: their own, and not in the trash.

Every statement that reads or locks a task takes its condition from here (ORM and Core
statements alike: the table's columns are what the ORM's attributes compile to).
"""

import uuid
from typing import Any

from sqlalchemy import ColumnElement, bindparam

from app.core.models import table_of
from app.tasks.models import Task

TASK = table_of(Task).c
LIVE: ColumnElement[bool] = TASK.deleted_at.is_(None)


def owned_by(owner_id: uuid.UUID | Any) -> ColumnElement[bool]:
    """The caller's tasks (`owner_id` a value or a bound parameter)."""
    return TASK.owner_id == owner_id


def owned_live(task_id: str = "task_id", owner_id: str = "owner_id") -> list[ColumnElement[bool]]:
    """The task named by the `task_id` parameter, if it is `owner_id`'s and not in the trash
    (both bound parameters, for statements built once)."""
    return [
        TASK.id == bindparam(task_id, type_=TASK.id.type),
        owned_by(bindparam(owner_id, type_=TASK.owner_id.type)),
        LIVE,
    ]
