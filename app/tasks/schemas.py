"""Request and response models for tasks: no client can set a server-owned field."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, Self

from fastapi import Body, Query
from pydantic import StringConstraints, model_validator
from sqlmodel import Field

from app.core.pagination import PageParams
from app.core.schemas import (
    NUMBER_ONLY,
    InputModel,
    Instant,
    InstantIn,
    PublicModel,
    examples,
    name_constraints,
)
from app.labels.schemas import LabelBrief
from app.tasks.models import (
    DESCRIPTION_MAX_LENGTH,
    MAX_LABELS_PER_TASK,
    PRIORITY_MAX,
    PRIORITY_MIN,
    TITLE_MAX_LENGTH,
    TaskStatus,
)

MAX_BULK_OPERATIONS = 100

# Like names: trimmed, and never blank.
Title = Annotated[str, name_constraints(TITLE_MAX_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH)]
Priority = Annotated[int, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX), NUMBER_ONLY]
LabelIds = Annotated[list[uuid.UUID], Field(max_length=MAX_LABELS_PER_TASK)]

TaskSort = Literal[
    "due_at",
    "-due_at",
    "priority",
    "-priority",
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "position",
    "-position",
    "title",
    "-title",
]


class ProjectTaskCreate(InputModel):
    """A new task in the project named by the path; it goes to the end of that project.

    A subtask (`parent_id`) always lives in its parent's project.
    """

    title: Title = Field(schema_extra={"examples": ["Water the tomatoes"]})
    description: Description | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: Priority = 0
    due_at: InstantIn | None = Field(
        default=None, schema_extra={"examples": ["2026-05-01T17:00:00+02:00"]}
    )
    parent_id: uuid.UUID | None = None
    label_ids: LabelIds = Field(default_factory=list)


class TaskCreate(ProjectTaskCreate):
    """A new task; it goes to the end of its project (the Inbox unless `project_id` is given).

    A subtask (`parent_id`) always lives in its parent's project.
    """

    project_id: uuid.UUID | None = None


class TaskUpdate(InputModel):
    """A partial update: only the fields sent change; `null` clears a nullable field.

    `title`, `status`, `priority`, `project_id` and `label_ids` cannot be null (their default
    here only means "not sent"). To reorder, send `after_id` (place right after that task;
    `null` means first) or `before_id` (right before it; `null` means last), never both.
    """

    title: Title = Field(default=None)
    description: Description | None = None
    status: TaskStatus = Field(default=None)
    priority: Priority = Field(default=None)
    due_at: InstantIn | None = None
    project_id: uuid.UUID = Field(default=None)
    parent_id: uuid.UUID | None = None
    label_ids: LabelIds = Field(default=None)
    after_id: uuid.UUID | None = None
    before_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one_placement(self) -> Self:
        if {"after_id", "before_id"} <= self.model_fields_set:
            raise ValueError("send `after_id` or `before_id`, not both")
        return self


TaskCreateBody = Annotated[
    TaskCreate,
    Body(
        openapi_examples=examples(
            inbox=("Into the Inbox", {"title": "Water the tomatoes"}),
            planned=(
                "With a project, a due time, a priority and labels",
                {
                    "title": "File the tax return",
                    "description": "Scan the receipts first.",
                    "priority": 3,
                    "due_at": "2026-05-01T17:00:00+02:00",
                    "project_id": "0b6e5f4a-3c2d-4e1f-9a8b-7c6d5e4f3a2b",
                    "label_ids": ["5f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"],
                },
            ),
            subtask=(
                "A subtask",
                {"title": "Buy seeds", "parent_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"},
            ),
        )
    ),
]
ProjectTaskCreateBody = Annotated[
    ProjectTaskCreate,
    Body(
        openapi_examples=examples(
            simple=("A task at the end of the project", {"title": "Prune the roses"}),
            due=(
                "Due on a date, high priority",
                {"title": "Order compost", "due_at": "2026-04-10T09:00:00Z", "priority": 4},
            ),
        )
    ),
]
TaskUpdateBody = Annotated[
    TaskUpdate,
    Body(
        openapi_examples=examples(
            complete=("Mark it done", {"status": "done"}),
            reschedule=("Move the due time", {"due_at": "2026-05-02T09:00:00+02:00"}),
            undated=("Clear the due time", {"due_at": None}),
            first=("Move it to the top of its project", {"after_id": None}),
            after=(
                "Place it right after another task",
                {"after_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"},
            ),
            elsewhere=(
                "Move it to another project",
                {"project_id": "0b6e5f4a-3c2d-4e1f-9a8b-7c6d5e4f3a2b"},
            ),
        )
    ),
]


class TaskPublic(PublicModel):
    """A task as the API shows it; instants are ISO 8601 with their UTC offset."""

    id: uuid.UUID
    owner_id: uuid.UUID = Field(description="The owner of the task's project.")
    created_by_id: uuid.UUID | None = Field(
        description="Who made the task (an account that may since have been deleted)."
    )
    project_id: uuid.UUID
    parent_id: uuid.UUID | None
    title: str
    description: str | None
    status: TaskStatus
    priority: int
    due_at: Instant | None
    completed_at: Instant | None
    position: str = Field(description="Order key within the project; compare as byte strings.")
    labels: list[LabelBrief]
    version: int
    created_at: Instant
    updated_at: Instant


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """The list filters, already validated; None means "do not filter on this"."""

    project_id: uuid.UUID | None = None
    statuses: tuple[TaskStatus, ...] = ()
    priority_min: int | None = None
    label_ids: tuple[uuid.UUID, ...] = ()
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool | None = None
    has_due: bool | None = None
    parent_id: uuid.UUID | None = None
    top_level: bool | None = None
    q: str | None = None
    updated_since: datetime | None = None
    completed_since: datetime | None = None


# The list's query string, read as one model (see app.core.query).

MAX_FILTER_VALUES = 20
Q_MAX_LENGTH = 200


class ProjectTaskListQuery(PageParams):
    """`GET /projects/{id}/tasks`: paging, order and every filter; instants need an offset.

    A naive instant would be guessed against some zone, so it is a 422 instead.
    """

    sort: Annotated[
        TaskSort | None,
        Query(
            description="Order: a field, `-` first for descending (`-priority`). Ties break on "
            "the id; empty due dates come last. Default: `position` for one project, else "
            "`created_at`."
        ),
    ] = None
    status: Annotated[
        list[TaskStatus] | None,
        Query(max_length=MAX_FILTER_VALUES, description="Any of these statuses (repeatable)."),
    ] = None
    priority_min: Annotated[
        int | None, Query(ge=PRIORITY_MIN, le=PRIORITY_MAX, description="At least this priority.")
    ] = None
    label: Annotated[
        list[uuid.UUID] | None,
        Query(max_length=MAX_FILTER_VALUES, description="Carrying every one of these labels."),
    ] = None
    due_before: Annotated[
        InstantIn | None, Query(description="Due strictly before this instant (with offset).")
    ] = None
    due_after: Annotated[
        InstantIn | None, Query(description="Due at or after this instant (with offset).")
    ] = None
    overdue: Annotated[
        bool | None, Query(description="Due in the past and not done (or the opposite).")
    ] = None
    has_due: Annotated[bool | None, Query(description="With (or without) a due date.")] = None
    parent_id: Annotated[uuid.UUID | None, Query(description="Subtasks of this task.")] = None
    top_level: Annotated[
        bool | None, Query(description="Only tasks without a parent (or only subtasks).")
    ] = None
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=Q_MAX_LENGTH,
            description="Text in the title or description (case-insensitive).",
        ),
    ] = None
    updated_since: Annotated[
        InstantIn | None, Query(description="Changed at or after this instant.")
    ] = None
    completed_since: Annotated[
        InstantIn | None, Query(description="Completed at or after this instant.")
    ] = None

    def filters(self, *, project_id: uuid.UUID | None) -> "TaskFilters":
        """The filters of this query, for the tasks of `project_id` (None: every project)."""
        return TaskFilters(
            project_id=project_id,
            statuses=tuple(self.status or ()),
            priority_min=self.priority_min,
            label_ids=tuple(self.label or ()),
            due_before=self.due_before,
            due_after=self.due_after,
            overdue=self.overdue,
            has_due=self.has_due,
            parent_id=self.parent_id,
            top_level=self.top_level,
            q=self.q,
            updated_since=self.updated_since,
            completed_since=self.completed_since,
        )


class TaskListQuery(ProjectTaskListQuery):
    """`GET /tasks`: the same, and optionally one project."""

    project_id: Annotated[uuid.UUID | None, Query(description="Tasks of this project.")] = None


# Bulk operations: `op` picks the shape.


class BulkUpdate(InputModel):
    op: Literal["update"]
    id: uuid.UUID
    fields: TaskUpdate


class BulkComplete(InputModel):
    op: Literal["complete"]
    id: uuid.UUID


class BulkMove(InputModel):
    op: Literal["move"]
    id: uuid.UUID
    project_id: uuid.UUID


class BulkAddLabels(InputModel):
    op: Literal["add_labels"]
    id: uuid.UUID
    label_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_LABELS_PER_TASK)]


class BulkRemoveLabels(InputModel):
    op: Literal["remove_labels"]
    id: uuid.UUID
    label_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_LABELS_PER_TASK)]


class BulkDelete(InputModel):
    op: Literal["delete"]
    id: uuid.UUID


BulkOperation = Annotated[
    BulkUpdate | BulkComplete | BulkMove | BulkAddLabels | BulkRemoveLabels | BulkDelete,
    Field(discriminator="op"),
]


class BulkRequest(InputModel):
    """Up to 100 operations, applied in order, all or none."""

    operations: list[BulkOperation] = Field(min_length=1, max_length=MAX_BULK_OPERATIONS)


BulkRequestBody = Annotated[
    BulkRequest,
    Body(
        openapi_examples=examples(
            tidy=(
                "Complete one task, label another, trash a third",
                {
                    "operations": [
                        {"op": "complete", "id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"},
                        {
                            "op": "add_labels",
                            "id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                            "label_ids": ["5f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"],
                        },
                        {"op": "delete", "id": "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"},
                    ]
                },
            ),
            reschedule=(
                "Change fields of a task",
                {
                    "operations": [
                        {
                            "op": "update",
                            "id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
                            "fields": {"priority": 2},
                        }
                    ]
                },
            ),
        )
    ),
]


class BulkResult(PublicModel):
    """The tasks as they are after every operation, and the ids that went to the trash."""

    tasks: list[TaskPublic]
    deleted_ids: list[uuid.UUID]
