"""The rules of a task's own fields, written once.

Every write path applies them through these functions: the ORM's `update_task` and bulk,
the PATCH statement of `app/tasks/statements.py`, and create. What a change writes is
computed here, in Python, and only then stored, so no path restates a rule in SQL.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.tasks.models import TaskStatus

# The task's own values a PATCH can change without looking at other rows (not the tree,
# the project, the labels or the order).
SCALAR_FIELDS = ("title", "description", "priority", "due_at")
FIELD_CHANGES = frozenset({*SCALAR_FIELDS, "status"})
# The columns `field_changes` reads from the stored task.
FIELD_COLUMNS = (*SCALAR_FIELDS, "status", "completed_at")


def completed_at_for(
    status: TaskStatus, *, was: TaskStatus | None, completed_at: datetime | None, now: datetime
) -> datetime | None:
    """`completed_at` follows the status: set on entering `done`, kept while it stays
    `done`, cleared on leaving it (`was` is None for a new task)."""
    if status != TaskStatus.DONE:
        return None
    if was == TaskStatus.DONE:
        return completed_at
    return now


def field_changes(
    stored: Mapping[str, Any], changes: Mapping[str, Any], *, now: datetime
) -> dict[str, Any]:
    """The column values that `changes` (of FIELD_CHANGES) really change in `stored` (a
    mapping of FIELD_COLUMNS), with what follows from them; empty when nothing differs, so
    the version moves only on a real change."""
    values = {
        name: changes[name]
        for name in (*SCALAR_FIELDS, "status")
        if name in changes and changes[name] != stored[name]
    }
    if "status" in values:
        status = TaskStatus(values["status"])
        values["status"] = status
        completed_at = completed_at_for(
            status, was=TaskStatus(stored["status"]), completed_at=stored["completed_at"], now=now
        )
        if completed_at != stored["completed_at"]:
            values["completed_at"] = completed_at
    return values
