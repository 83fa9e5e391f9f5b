"""Queries and rules for tasks: plain functions, session first, keyword-only after."""

import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Required, TypedDict, Unpack, cast

from pydantic_core import from_json
from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    not_,
    or_,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.core.db import DriverQuery
from app.core.errors import AppError
from app.core.http import VersionMismatch, check_if_match, if_match_version
from app.core.models import detached_instance, new_id, table_of, utcnow
from app.core.pagination import CursorCodec, PageParams, RowPage, SortKey, paginate_prebuilt
from app.core.rows import RowJSON
from app.core.sql import LIKE_ESCAPE, contains_pattern
from app.core.versioning import flush_versioned, touch
from app.labels import service as label_service
from app.labels.models import Label
from app.projects import service as project_service
from app.projects.models import Project
from app.tasks import position as order
from app.tasks.exceptions import (
    ContainerInTrash,
    InvalidMove,
    ParentNotFound,
    SubtaskProjectMismatch,
    TaskCycle,
    TaskNotFound,
    TaskNotInTrash,
    TaskTooDeep,
    TooManyLabels,
)
from app.tasks.models import MAX_LABELS_PER_TASK, Task, TaskLabel, TaskStatus
from app.tasks.schemas import (
    BulkAddLabels,
    BulkComplete,
    BulkDelete,
    BulkMove,
    BulkOperation,
    BulkRemoveLabels,
    BulkResult,
    BulkUpdate,
    TaskFilters,
    TaskPublic,
    TaskPublicPlain,
)

# Levels of subtasks below a top-level task; bounds every walk up or down a task tree.
MAX_DEPTH = 4
# Past this length, a project's order keys are renumbered (one rare write of every row).
POSITION_REBALANCE_LENGTH = 200
SCALAR_FIELDS = ("title", "description", "priority", "due_at")

LIVE = col(Task.deleted_at).is_(None)
# Plain table columns, for the hot reads: selecting them returns rows, not ORM instances.
_TASK = table_of(Task).c
_TASK_LABEL = table_of(TaskLabel).c
_LABEL = table_of(Label).c


def to_public(task: Task) -> TaskPublic:
    """The API representation of a task (its labels are loaded with it)."""
    return TaskPublic.model_validate(task, from_attributes=True)


# Loading


async def get_task(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    include_trashed: bool = False,
    for_update: bool = False,
) -> Task:
    """The caller's task with this id, or TaskNotFound (also for anyone else's or trashed)."""
    statement = _GET_TASK[include_trashed, for_update]
    params = {"task_id": task_id, "owner_id": owner_id}
    task = (await session.exec(statement, params=params)).first()
    if task is None:
        raise TaskNotFound()
    return task


def _get_task_statement(*, include_trashed: bool, for_update: bool) -> SelectOfScalar[Task]:
    statement = select(Task).where(
        col(Task.id) == bindparam("task_id", type_=_TASK.id.type),
        col(Task.owner_id) == bindparam("owner_id", type_=_TASK.owner_id.type),
    )
    if not include_trashed:
        statement = statement.where(LIVE)
    if for_update:
        statement = statement.with_for_update()
    return statement


# Every PATCH, DELETE and move loads its task first: the four variants are built once.
_GET_TASK = {
    (trashed, locked): _get_task_statement(include_trashed=trashed, for_update=locked)
    for trashed in (False, True)
    for locked in (False, True)
}


async def _get_parent(session: AsyncSession, *, owner_id: uuid.UUID, parent_id: uuid.UUID) -> Task:
    statement = select(Task).where(Task.id == parent_id, Task.owner_id == owner_id, LIVE)
    parent = (await session.exec(statement)).first()
    if parent is None:
        raise ParentNotFound(extra={"parent_id": str(parent_id)})
    return parent


async def _ancestor_ids(session: AsyncSession, task: Task) -> list[uuid.UUID]:
    """Ids from the task's parent up to its top-level ancestor."""
    ancestors: list[uuid.UUID] = []
    current = task.parent_id
    while current is not None and len(ancestors) <= MAX_DEPTH + 1:
        ancestors.append(current)
        result = await session.exec(select(Task.parent_id).where(Task.id == current))
        current = result.first()
    return ancestors


async def _descendants(
    session: AsyncSession, root_id: uuid.UUID, *, live: bool = True
) -> list[tuple[uuid.UUID, int]]:
    """(id, depth below the root) of every descendant, by one recursive query."""
    alive = [LIVE] if live else []
    tree = (
        select(col(Task.id).label("id"), literal(1).label("depth"))
        .where(Task.parent_id == root_id, *alive)
        .cte("tree", recursive=True)
    )
    child = select(col(Task.id), tree.c.depth + 1).where(
        Task.parent_id == tree.c.id, tree.c.depth <= MAX_DEPTH, *alive
    )
    tree = tree.union_all(child)
    result = await session.exec(select(tree.c.id, tree.c.depth))
    return [(row[0], int(row[1])) for row in result.all()]


# Positions


async def _last_position(
    session: AsyncSession, *, owner_id: uuid.UUID, project_id: uuid.UUID
) -> str | None:
    params = {"owner_id": owner_id, "project_id": project_id}
    row = await _LAST_POSITION.fetch_one(session, params)
    return None if row is None else cast(str | None, row["last"])


# MAX over the (owner, project, position) index: the last entry, not a scan. Built once: every
# create and every move to another project runs it.
_LAST_POSITION = DriverQuery(
    select(func.max(_TASK.position).label("last")).where(
        _TASK.owner_id == bindparam("owner_id", type_=_TASK.owner_id.type),
        _TASK.project_id == bindparam("project_id", type_=_TASK.project_id.type),
        _TASK.deleted_at.is_(None),
    )
)


async def _rebalance(session: AsyncSession, *, owner_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """Give every live task of the project a short key again, keeping their order."""
    statement = (
        select(Task)
        .where(Task.owner_id == owner_id, Task.project_id == project_id, LIVE)
        .order_by(col(Task.position), col(Task.id))
    )
    tasks = list((await session.exec(statement)).all())
    now = utcnow()
    for task, key in zip(tasks, order.keys_after(None, len(tasks)), strict=True):
        task.position = key
        touch(task, now=now)
        session.add(task)
    await session.flush()


async def _key_at_end(session: AsyncSession, *, owner_id: uuid.UUID, project_id: uuid.UUID) -> str:
    last = await _last_position(session, owner_id=owner_id, project_id=project_id)
    return await _key_after(session, last, owner_id=owner_id, project_id=project_id)


async def _key_after(
    session: AsyncSession, last: str | None, *, owner_id: uuid.UUID, project_id: uuid.UUID
) -> str:
    """The key after `last`, the project's last one (renumbering the project if it is long)."""
    key = order.key_between(last, None)
    if len(key) > POSITION_REBALANCE_LENGTH:
        await _rebalance(session, owner_id=owner_id, project_id=project_id)
        key = order.key_between(
            await _last_position(session, owner_id=owner_id, project_id=project_id), None
        )
    return key


async def _neighbour_key(
    session: AsyncSession, task: Task, *, after: bool, pivot: str | None
) -> str | None:
    """The key of the first task (other than `task`) strictly past `pivot` in its project."""
    statement = select(Task.position).where(
        Task.owner_id == task.owner_id, Task.project_id == task.project_id, LIVE, Task.id != task.id
    )
    if after:
        if pivot is not None:
            statement = statement.where(col(Task.position) > pivot)
        statement = statement.order_by(col(Task.position))
    else:
        if pivot is not None:
            statement = statement.where(col(Task.position) < pivot)
        statement = statement.order_by(col(Task.position).desc())
    return (await session.exec(statement.limit(1))).first()


async def _move_next_to(
    session: AsyncSession, task: Task, *, anchor_id: uuid.UUID | None, after: bool
) -> None:
    """Give `task` a key right after (or before) the anchor; no anchor: first (or last).

    Only the moved row changes: its new key lies between the anchor's and the neighbour's.
    """
    low: str | None
    high: str | None
    if anchor_id is None:
        # "After nothing" is the top of the list, "before nothing" the bottom.
        if after:
            low, high = None, await _neighbour_key(session, task, after=True, pivot=None)
        else:
            low, high = await _neighbour_key(session, task, after=False, pivot=None), None
    elif anchor_id == task.id:
        raise InvalidMove()
    else:
        anchor = await _get_anchor(session, task, anchor_id)
        if after:
            low = anchor.position
            high = await _neighbour_key(session, task, after=True, pivot=low)
        else:
            high = anchor.position
            low = await _neighbour_key(session, task, after=False, pivot=high)
    key = order.key_between(low, high)
    if len(key) > POSITION_REBALANCE_LENGTH:
        await _rebalance(session, owner_id=task.owner_id, project_id=task.project_id)
        await _move_next_to(session, task, anchor_id=anchor_id, after=after)
        return
    task.position = key


async def _get_anchor(session: AsyncSession, task: Task, anchor_id: uuid.UUID) -> Task:
    statement = select(Task).where(Task.id == anchor_id, Task.owner_id == task.owner_id, LIVE)
    anchor = (await session.exec(statement)).first()
    if anchor is None:
        raise TaskNotFound(extra={"anchor_id": str(anchor_id)})
    if anchor.project_id != task.project_id:
        raise InvalidMove()
    return anchor


# Writing


def _set_status(task: Task, status: TaskStatus, now: datetime) -> None:
    # completed_at follows the status: set on entering `done`, cleared on leaving it.
    if status == TaskStatus.DONE and task.status != TaskStatus.DONE:
        task.completed_at = now
    elif status != TaskStatus.DONE:
        task.completed_at = None
    task.status = status


async def _labels_for(
    session: AsyncSession, *, owner_id: uuid.UUID, label_ids: Sequence[uuid.UUID]
) -> list[Label]:
    unique = list(dict.fromkeys(label_ids))
    if len(unique) > MAX_LABELS_PER_TASK:
        raise TooManyLabels(extra={"max_labels": MAX_LABELS_PER_TASK})
    labels = await label_service.get_labels(session, owner_id=owner_id, label_ids=unique)
    return sorted(labels, key=lambda label: label.name_key)


class NewTask(TypedDict, total=False):
    """A new task's fields, as `create_task` and `create_task_public` take them."""

    title: Required[str]
    description: str | None
    status: TaskStatus
    priority: int
    due_at: datetime | None
    project_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    label_ids: Sequence[uuid.UUID]
    now: datetime | None


async def create_task(
    session: AsyncSession, *, owner_id: uuid.UUID, **fields: Unpack[NewTask]
) -> Task:
    """Insert a task at the end of its project (the Inbox by default).

    A subtask goes into its parent's project; naming another project is a 422. Projects,
    parents and labels that are not the caller's are 404s.
    """
    row, labels = await _insert_task(session, owner_id=owner_id, whole_write=False, **fields)
    # The session's own instance, as if it had just loaded the row: later changes in this
    # session (moves, label changes, If-Match updates) work on it as on any loaded task.
    task = detached_instance(Task, row)
    set_committed_value(task, "labels", labels)
    session.add(task)
    return task


async def create_task_public(
    session: AsyncSession, *, owner_id: uuid.UUID, **fields: Unpack[NewTask]
) -> TaskPublicPlain:
    """`create_task` for a request whose whole write it is (POST): no ORM instance."""
    row, labels = await _insert_task(session, owner_id=owner_id, whole_write=True, **fields)
    public = {name: row[name] for name in _PUBLIC_TASK_FIELDS}
    public["labels"] = [
        {"id": label.id, "name": label.name, "color": label.color} for label in labels
    ]
    return cast(TaskPublicPlain, _PUBLIC_VALIDATOR.validate_python(public))


async def _insert_task(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    whole_write: bool,
    title: str,
    description: str | None = None,
    status: TaskStatus = TaskStatus.TODO,
    priority: int = 0,
    due_at: datetime | None = None,
    project_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    label_ids: Sequence[uuid.UUID] = (),
    now: datetime | None = None,
) -> tuple[dict[str, Any], list[Label]]:
    """The checks and INSERTs of a new task: its stored row and its labels (by name)."""
    now = now or utcnow()
    last: str | None = None
    known_end = False
    if parent_id is not None:
        parent = await _get_parent(session, owner_id=owner_id, parent_id=parent_id)
        if project_id is not None and project_id != parent.project_id:
            raise SubtaskProjectMismatch()
        if len(await _ancestor_ids(session, parent)) + 1 > MAX_DEPTH:
            raise TaskTooDeep(extra={"max_depth": MAX_DEPTH})
        project_id = parent.project_id
    elif project_id is not None:
        await project_service.get_project(session, owner_id=owner_id, project_id=project_id)
    else:
        # The common case, the Inbox: its id and its last position in one round trip.
        inbox = await _INBOX_END.fetch_one(session, {"owner_id": owner_id})
        if inbox is None:
            project_id = await project_service.inbox_id(session, owner_id=owner_id)
        else:
            project_id, last, known_end = inbox["id"], inbox["last"], True
    labels = await _labels_for(session, owner_id=owner_id, label_ids=label_ids)
    if known_end:
        position = await _key_after(session, last, owner_id=owner_id, project_id=project_id)
    else:
        position = await _key_at_end(session, owner_id=owner_id, project_id=project_id)
    row = {
        **_NEW_TASK_ROW,
        "id": new_id(),
        "owner_id": owner_id,
        "project_id": project_id,
        "parent_id": parent_id,
        "title": title,
        "description": description,
        "status": TaskStatus(status),
        "completed_at": now if status == TaskStatus.DONE else None,
        "priority": priority,
        "due_at": due_at,
        "position": position,
        "created_at": now,
        "updated_at": now,
    }
    # Plain INSERTs instead of the unit of work's flush (a third of a create's CPU); the row's
    # values were validated on the way in (TaskCreate) or computed here.
    await session.exec(_INSERT_TASK, params=row)
    if labels:
        links = [{"task_id": row["id"], "label_id": label.id} for label in labels]
        await session.exec(_INSERT_TASK_LABELS, params=links)
    return row, labels


# A new task: every column, None unless create_task sets it (version 1, not in the trash).
_NEW_TASK_ROW: dict[str, Any] = {**dict.fromkeys(_TASK.keys()), "version": 1}
_INSERT_TASK = insert(table_of(Task))
_INSERT_TASK_LABELS = insert(table_of(TaskLabel))
_PROJECT = table_of(Project).c
_OWNER = bindparam("owner_id", type_=_TASK.owner_id.type)
# The Inbox's id and its last position (MAX over the (owner, project, position) index).
_INBOX_END = DriverQuery(
    select(
        _PROJECT.id,
        select(func.max(_TASK.position))
        .where(
            _TASK.owner_id == _OWNER, _TASK.project_id == _PROJECT.id, _TASK.deleted_at.is_(None)
        )
        .scalar_subquery()
        .label("last"),
    ).where(_PROJECT.owner_id == _OWNER, _PROJECT.is_inbox)
)


async def _move_to_project(
    session: AsyncSession, task: Task, project_id: uuid.UUID, now: datetime
) -> None:
    """Put the task at the end of another project, its subtree right after it."""
    await project_service.get_project(session, owner_id=task.owner_id, project_id=project_id)
    descendant_ids = [task_id for task_id, _ in await _descendants(session, task.id)]
    subtree: list[Task] = [task]
    if descendant_ids:
        statement = (
            select(Task)
            .where(col(Task.id).in_(descendant_ids))
            .order_by(col(Task.position), col(Task.id))
        )
        subtree.extend((await session.exec(statement)).all())
    last = await _last_position(session, owner_id=task.owner_id, project_id=project_id)
    for row, key in zip(subtree, order.keys_after(last, len(subtree)), strict=True):
        row.project_id = project_id
        row.position = key
        if row is not task:
            touch(row, now=now)
            session.add(row)


async def update_task(
    session: AsyncSession,
    task: Task,
    changes: Mapping[str, Any],
    *,
    if_match: str | None = None,
    now: datetime | None = None,
) -> Task:
    """Apply validated field changes (see TaskUpdate); 412 if `if_match` is stale.

    Setting `parent_id` moves the task (and its subtree) into the parent's project; changing
    `project_id` moves the subtree along. A cycle or a too-deep tree is a 422.
    """
    check_if_match(if_match, task.version)
    now = now or utcnow()
    changed = False
    for field in SCALAR_FIELDS:
        if field in changes and getattr(task, field) != changes[field]:
            setattr(task, field, changes[field])
            changed = True
    if "status" in changes and changes["status"] != task.status:
        _set_status(task, changes["status"], now)
        changed = True

    target_project = changes.get("project_id", task.project_id)
    if "parent_id" in changes and changes["parent_id"] != task.parent_id:
        parent_id = changes["parent_id"]
        if parent_id is not None:
            parent = await _get_parent(session, owner_id=task.owner_id, parent_id=parent_id)
            ancestors = await _ancestor_ids(session, parent)
            if parent.id == task.id or task.id in ancestors:
                raise TaskCycle()
            height = max((depth for _, depth in await _descendants(session, task.id)), default=0)
            if len(ancestors) + 1 + height > MAX_DEPTH:
                raise TaskTooDeep(extra={"max_depth": MAX_DEPTH})
            if "project_id" in changes and changes["project_id"] != parent.project_id:
                raise SubtaskProjectMismatch()
            target_project = parent.project_id
        task.parent_id = parent_id
        changed = True
    elif task.parent_id is not None and target_project != task.project_id:
        raise SubtaskProjectMismatch()
    if target_project != task.project_id:
        await _move_to_project(session, task, target_project, now)
        changed = True

    if "label_ids" in changes:
        labels = await _labels_for(session, owner_id=task.owner_id, label_ids=changes["label_ids"])
        if [label.id for label in labels] != [label.id for label in task.labels]:
            task.labels = labels
            changed = True
    for field, after in (("after_id", True), ("before_id", False)):
        if field in changes:
            await _move_next_to(session, task, anchor_id=changes[field], after=after)
            changed = True
    if changed:
        touch(task, now=now)
        session.add(task)
        await flush_versioned(session, task)
    return task


async def change_labels(
    session: AsyncSession,
    task: Task,
    *,
    add: Sequence[uuid.UUID] = (),
    remove: Sequence[uuid.UUID] = (),
) -> Task:
    """Attach and detach labels by id; the labels must be the caller's (404 otherwise)."""
    current = [label.id for label in task.labels]
    # Removing must name the caller's labels too, so a foreign id is a 404 either way.
    await label_service.get_labels(session, owner_id=task.owner_id, label_ids=remove)
    wanted = [label_id for label_id in [*current, *add] if label_id not in set(remove)]
    return await update_task(session, task, {"label_ids": wanted})


async def trash_task(
    session: AsyncSession,
    task: Task,
    *,
    if_match: str | None = None,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Move the task and its live subtasks to the trash; returns the subtasks' ids."""
    check_if_match(if_match, task.version)
    now = now or utcnow()
    descendant_ids = [task_id for task_id, _ in await _descendants(session, task.id)]
    task.deleted_at = now
    touch(task, now=now)
    session.add(task)
    await flush_versioned(session, task)
    if descendant_ids:
        await session.exec(
            update(Task)
            .where(col(Task.id).in_(descendant_ids))
            .values(deleted_at=now, trashed_with=task.id, version=Task.version + 1, updated_at=now)
            # A bulk request may hold some of these rows: keep their versions in step.
            .execution_options(synchronize_session="fetch")
        )
    return descendant_ids


async def restore_task(session: AsyncSession, task: Task, *, now: datetime | None = None) -> Task:
    """Take a task out of the trash with the subtasks deleted along with it.

    Its project and parent must be live: restore those first (409 otherwise), so a restored
    task never hides inside a trashed container.
    """
    if task.deleted_at is None:
        raise TaskNotInTrash()
    project = await session.get(Project, task.project_id)
    parent_trashed = False
    if task.parent_id is not None:
        trashed_parent = select(Task.id).where(
            Task.id == task.parent_id, col(Task.deleted_at).is_not(None)
        )
        parent_trashed = (await session.exec(trashed_parent)).first() is not None
    if project is None or project.deleted_at is not None or parent_trashed:
        raise ContainerInTrash()
    now = now or utcnow()
    task.deleted_at = None
    task.trashed_with = None
    touch(task, now=now)
    session.add(task)
    await flush_versioned(session, task)
    await session.exec(
        update(Task)
        .where(col(Task.trashed_with) == task.id, col(Task.deleted_at).is_not(None))
        .values(deleted_at=None, trashed_with=None, version=Task.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return task


# Listing
#
# The list is the hottest path of the API: its statements use the plain table columns (rows,
# not ORM instances, come back) and are built once per shape (sort, filters present, cursor),
# with every value bound as a parameter (see `paginate_prebuilt`).


def sort_keys(sort: str) -> tuple[list[SortKey], Callable[[Any], list[Any]]]:
    """The keyset for a `sort` value (`-` prefix: descending) and the row's values for it.

    The id always ends the keyset, in the same direction, so the order is total and one
    index serves it. `position` orders by project first: positions compare within a project.
    """
    descending = sort.startswith("-")
    name = sort.removeprefix("-")
    names = ["project_id", "position"] if name == "position" else [name]
    keys = [
        SortKey(_TASK[field], descending=descending, nullable=field == "due_at") for field in names
    ]
    keys.append(SortKey(_TASK.id, descending=descending))
    fields = [*names, "id"]
    return keys, lambda row: [row[field] for field in fields]


async def _check_filter_owners(
    session: AsyncSession, *, owner_id: uuid.UUID, filters: TaskFilters
) -> None:
    # Filtering by someone else's project, label or task is a 404, like reading it.
    if filters.project_id is not None:
        await project_service.get_project(session, owner_id=owner_id, project_id=filters.project_id)
    if filters.label_ids:
        await label_service.get_labels(session, owner_id=owner_id, label_ids=filters.label_ids)
    if filters.parent_id is not None:
        await _get_parent(session, owner_id=owner_id, parent_id=filters.parent_id)


@dataclass(frozen=True, slots=True)
class FilterTerm:
    """One list filter: what its SQL depends on, its parameter values, and the SQL itself."""

    shape: Hashable
    params: dict[str, Any]
    clause: Callable[[], ColumnElement[bool]]


def _param(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _overdue(overdue: bool) -> ColumnElement[bool]:
    due_at = _TASK.due_at
    late = and_(due_at < _param("now", due_at), _TASK.status != TaskStatus.DONE.value)
    return late if overdue else not_(late) | due_at.is_(None)


def _carries(index: int) -> ColumnElement[bool]:
    # One semi-join per label: a task must carry every label asked for.
    label_id = _TASK_LABEL.label_id
    carriers = select(_TASK_LABEL.task_id).where(label_id == _param(f"label_{index}", label_id))
    return _TASK.id.in_(carriers)


def _text_contains() -> ColumnElement[bool]:
    pattern = bindparam("q", type_=String)
    return or_(
        _TASK.title.ilike(pattern, escape=LIKE_ESCAPE),
        _TASK.description.ilike(pattern, escape=LIKE_ESCAPE),
    )


def filter_terms(filters: TaskFilters, *, now: datetime) -> list[FilterTerm]:
    """The WHERE terms for the list filters (ownership and liveness are added by the caller)."""
    t = _TASK
    terms: list[FilterTerm] = []

    def add(shape: Hashable, params: dict[str, Any], clause: Callable[[], Any]) -> None:
        terms.append(FilterTerm(shape, params, clause))

    if filters.project_id is not None:
        add(
            "project",
            {"project_id": filters.project_id},
            lambda: t.project_id == _param("project_id", t.project_id),
        )
    if filters.statuses:
        statuses = [str(status) for status in filters.statuses]
        add(
            "status",
            {"statuses": statuses},
            lambda: t.status.in_(bindparam("statuses", expanding=True)),
        )
    if filters.priority_min is not None:
        add(
            "priority",
            {"priority_min": filters.priority_min},
            lambda: t.priority >= _param("priority_min", t.priority),
        )
    for index, label_id in enumerate(dict.fromkeys(filters.label_ids)):
        add(("label", index), {f"label_{index}": label_id}, partial(_carries, index))
    if filters.due_before is not None:
        add(
            "due_before",
            {"due_before": filters.due_before},
            lambda: t.due_at < _param("due_before", t.due_at),
        )
    if filters.due_after is not None:
        add(
            "due_after",
            {"due_after": filters.due_after},
            lambda: t.due_at >= _param("due_after", t.due_at),
        )
    if filters.overdue is not None:
        add(("overdue", filters.overdue), {"now": now}, partial(_overdue, filters.overdue))
    if filters.has_due is not None:
        dated = filters.has_due
        add(("has_due", dated), {}, lambda: t.due_at.is_not(None) if dated else t.due_at.is_(None))
    if filters.parent_id is not None:
        add(
            "parent",
            {"parent_id": filters.parent_id},
            lambda: t.parent_id == _param("parent_id", t.parent_id),
        )
    if filters.top_level is not None:
        top = filters.top_level
        add(
            ("top_level", top),
            {},
            lambda: t.parent_id.is_(None) if top else t.parent_id.is_not(None),
        )
    if filters.q:
        add("q", {"q": contains_pattern(filters.q)}, _text_contains)
    if filters.updated_since is not None:
        add(
            "updated",
            {"updated_since": filters.updated_since},
            lambda: t.updated_at >= _param("updated_since", t.updated_at),
        )
    if filters.completed_since is not None:
        add(
            "completed",
            {"completed_since": filters.completed_since},
            lambda: t.completed_at >= _param("completed_since", t.completed_at),
        )
    return terms


class LabelsJSON(ColumnElement[str]):
    """The labels of the row's task as one JSON array (text), in name order; `[]` if none.

    Part of the task's own SELECT, so a page of tasks, labels included, is one statement and
    one round trip. Each database spells JSON aggregation its own way (see the compilers).
    """

    inherit_cache = True
    type = Text()
    # SQLAlchemy reads this class-level list to build cache keys (its own convention).
    _traverse_internals = [("task_id", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, task_id: ColumnElement[Any]) -> None:
        self.task_id = task_id


def _labels_of_task(task_id: ColumnElement[Any], *columns: Any) -> Any:
    return (
        select(*columns)
        .select_from(table_of(TaskLabel).join(table_of(Label)))
        .where(_TASK_LABEL.task_id == task_id)
    )


@compiles(LabelsJSON, "postgresql")
def _labels_json_postgresql(element: LabelsJSON, compiler: Any, **kw: Any) -> str:
    label = func.json_build_object("id", _LABEL.id, "name", _LABEL.name, "color", _LABEL.color)
    aggregated = func.json_agg(aggregate_order_by(label, _LABEL.name_key))
    subquery = _labels_of_task(element.task_id, aggregated).scalar_subquery()
    # As text, like SQLite's: the driver would otherwise decode `json` values itself.
    labels = sql_cast(func.coalesce(subquery, literal_column("'[]'::json")), Text)
    return str(compiler.process(labels, **kw))


@compiles(LabelsJSON, "sqlite")
def _labels_json_sqlite(element: LabelsJSON, compiler: Any, **kw: Any) -> str:
    # SQLite before 3.44 has no ORDER BY inside an aggregate: json_group_array takes the rows
    # in the order of the ordered subquery it reads.
    ordered = (
        _labels_of_task(element.task_id, _LABEL.id, _LABEL.name, _LABEL.color)
        .order_by(_LABEL.name_key)
        .correlate(table_of(Task))
        .subquery()
    )
    # SQLite keeps UUIDs as 32 hex digits: written here in the canonical 8-4-4-4-12 form, so the
    # JSON is the API's as it is (RowPage embeds it).
    hex_id = ordered.c.id
    canonical_id = func.substr(hex_id, 1, 8).concat("-")
    for start, length in ((9, 4), (13, 4), (17, 4)):
        canonical_id = canonical_id.concat(func.substr(hex_id, start, length)).concat("-")
    canonical_id = canonical_id.concat(func.substr(hex_id, 21, 12))
    label = func.json_object("id", canonical_id, "name", ordered.c.name, "color", ordered.c.color)
    subquery = select(func.json_group_array(label)).select_from(ordered).scalar_subquery()
    return str(compiler.process(subquery, **kw))


def _public_from_row(row: Mapping[str, Any]) -> TaskPublicPlain:
    """A task as the API shows it, from a row of `_PUBLIC_COLUMNS` (as a mapping)."""
    fields = dict(row)
    fields["labels"] = from_json(fields["labels"])
    return cast(TaskPublicPlain, _PUBLIC_VALIDATOR.validate_python(fields))


async def list_tasks(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    filters: TaskFilters,
    sort: str | None,
    page: PageParams,
    codec: CursorCodec,
    now: datetime | None = None,
) -> RowPage[TaskPublic]:
    """The caller's live tasks matching every filter, one keyset page in the chosen order.

    Without `sort`, a project's list is in manual order (`position`), any other list in
    creation order. Filters are not part of the cursor: send the same ones with it.
    """
    await _check_filter_owners(session, owner_id=owner_id, filters=filters)
    sort = sort or ("position" if filters.project_id is not None else "created_at")
    keys, key_of = sort_keys(sort)
    terms = filter_terms(filters, now=now or utcnow())
    params: dict[str, Any] = {"owner_id": owner_id}
    for term in terms:
        params.update(term.params)

    def statement() -> Any:
        return select(*_PUBLIC_COLUMNS).where(
            _TASK.owner_id == _param("owner_id", _TASK.owner_id),
            _TASK.deleted_at.is_(None),
            *(term.clause() for term in terms),
        )

    return await paginate_prebuilt(
        session,
        statement,
        statement_key=tuple(term.shape for term in terms),
        params=params,
        keys=keys,
        page=page,
        codec=codec,
        scope=f"tasks:{sort}",
        key_of=key_of,
        to_item=_public_from_row,
        serializer=TASK_JSON,
    )


def _owned_live(task_id: str, owner_id: str) -> list[ColumnElement[bool]]:
    """The task named by the `task_id` parameter, if it is `owner_id`'s and not in the trash."""
    return [
        _TASK.id == bindparam(task_id, type_=_TASK.id.type),
        _TASK.owner_id == bindparam(owner_id, type_=_TASK.owner_id.type),
        _TASK.deleted_at.is_(None),
    ]


# The columns of TaskPublic (its labels as one JSON value); the list and GET read only these.
_PUBLIC_COLUMNS = [
    LabelsJSON(_TASK.id).label("labels") if name == "labels" else _TASK[name]
    for name in TaskPublic.model_fields
]
# A row of _PUBLIC_COLUMNS as TaskPublic's JSON (app/core/rows.py).
TASK_JSON = RowJSON(tuple(TaskPublic.model_fields), json_columns=("labels",))
_PUBLIC_TASK_FIELDS = tuple(name for name in TASK_JSON.fields if name != "labels")
# Validates a row's fields into TaskPublicPlain: SQLModel's own __init__ would validate twice.
_PUBLIC_VALIDATOR = TaskPublicPlain.__pydantic_validator__
_READ_ONE = DriverQuery(
    select(*_PUBLIC_COLUMNS).where(
        *_owned_live("task_id", "owner_id"),
    )
)


async def read_task(
    session: AsyncSession, *, owner_id: uuid.UUID, task_id: uuid.UUID
) -> TaskPublicPlain:
    """The caller's live task as the API shows it, read as columns (no ORM instance).

    TaskNotFound for a missing, trashed or someone else's task, exactly as `get_task`.
    """
    return _public_from_row(await read_task_row(session, owner_id=owner_id, task_id=task_id))


async def read_task_row(
    session: AsyncSession, *, owner_id: uuid.UUID, task_id: uuid.UUID
) -> Mapping[str, Any]:
    """`read_task`'s row of _PUBLIC_COLUMNS, for a response written with TASK_JSON."""
    row = await _READ_ONE.fetch_one(session, {"task_id": task_id, "owner_id": owner_id})
    if row is None:
        raise TaskNotFound()
    return row


# PATCH


# The fields a PATCH can change with one UPDATE: neither the tree, the project, the labels nor
# the order (those need the rows around the task, so they take the ORM path of update_task).
FIELD_CHANGES = frozenset({*SCALAR_FIELDS, "status"})
_FIELD_UPDATES: dict[tuple[tuple[str, ...], bool], Any] = {}
_CURRENT_VERSION = DriverQuery(
    select(_TASK.version).where(
        *_owned_live("task_id", "owner_id"),
    )
)


def _field_update(fields: tuple[str, ...], *, checks_version: bool) -> Any:
    """`UPDATE task SET <fields> ... RETURNING id`, built once per shape (the row is read after).

    The rules of `update_task`, in SQL: the version and `updated_at` move only when a value
    really differs (`IS DISTINCT FROM`, so NULLs compare as values); `completed_at` is set on
    entering `done` and cleared on leaving it. With `checks_version`, the row must still be at
    the version If-Match names: PostgreSQL re-checks that after waiting for a concurrent
    writer's lock, so two writers at one version cannot both pass.
    """
    key = (fields, checks_version)
    built = _FIELD_UPDATES.get(key)
    if built is not None:
        return built
    # Parameters named after no column: SQLAlchemy reserves column names in an UPDATE.
    sent = {name: bindparam(f"new_{name}", type_=_TASK[name].type) for name in fields}
    changed = or_(*(_TASK[name].is_distinct_from(value) for name, value in sent.items()))
    now = bindparam("now", type_=_TASK.updated_at.type)
    values: dict[str, Any] = dict(sent)
    if "status" in sent:
        done = sent["status"] == literal(TaskStatus.DONE.value)
        kept_or_now = case((_TASK.status == TaskStatus.DONE.value, _TASK.completed_at), else_=now)
        values["completed_at"] = case((done, kept_or_now), else_=None)
    values["version"] = _TASK.version + case((changed, 1), else_=0)
    values["updated_at"] = case((changed, now), else_=_TASK.updated_at)
    conditions = [
        *_owned_live("the_task_id", "the_owner_id"),
    ]
    if checks_version:
        conditions.append(_TASK.version == bindparam("expected_version", type_=Integer))
    statement = update(table_of(Task)).where(*conditions).values(values)
    built = _FIELD_UPDATES[key] = statement.returning(_TASK.id)
    return built


async def patch_task(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    changes: Mapping[str, Any],
    if_match: str | None = None,
    now: datetime | None = None,
) -> TaskPublicPlain:
    """Apply a PATCH's validated changes (see TaskUpdate) to the caller's live task.

    Changes of plain fields (FIELD_CHANGES) are one UPDATE statement that also checks the
    owner, the trash and If-Match; anything else loads the task and goes through
    `update_task`. Both give the same result, the same 404s and the same 412s.
    """
    try:
        expected = if_match_version(if_match)
    except ValueError:
        expected, simple = None, False
    else:
        simple = bool(changes) and set(changes) <= FIELD_CHANGES
    if not simple:
        task = await get_task(session, owner_id=owner_id, task_id=task_id, for_update=True)
        task = await update_task(session, task, changes, if_match=if_match, now=now)
        return to_public(task)
    fields = tuple(sorted(changes))
    params: dict[str, Any] = {
        f"new_{name}": value.value if name == "status" else value for name, value in changes.items()
    }
    params.update(the_task_id=task_id, the_owner_id=owner_id, now=now or utcnow())
    if expected is not None:
        params["expected_version"] = expected
    statement = _field_update(fields, checks_version=expected is not None)
    if (await session.exec(statement, params=params)).first() is not None:
        row = await _READ_ONE.fetch_one(session, {"task_id": task_id, "owner_id": owner_id})
    else:
        row = None
    if row is not None:
        return _public_from_row(row)
    current = await _CURRENT_VERSION.fetch_one(session, {"task_id": task_id, "owner_id": owner_id})
    if current is None:
        raise TaskNotFound()
    raise VersionMismatch(int(current["version"]))


# Bulk


async def _apply(
    session: AsyncSession, operation: BulkOperation, *, owner_id: uuid.UUID, now: datetime
) -> tuple[Task, bool]:
    task = await get_task(session, owner_id=owner_id, task_id=operation.id, for_update=True)
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


async def bulk(
    session: AsyncSession, *, owner_id: uuid.UUID, operations: Sequence[BulkOperation]
) -> BulkResult:
    """Apply the operations in order, all or none (the caller's transaction rolls back).

    The first failing operation's problem carries its `operation_index`.
    """
    now = utcnow()
    touched: dict[uuid.UUID, Task] = {}
    deleted: list[uuid.UUID] = []
    for index, operation in enumerate(operations):
        try:
            task, was_deleted = await _apply(session, operation, owner_id=owner_id, now=now)
        except AppError as exc:
            exc.extra["operation_index"] = index
            exc.message = f"Operation {index}: {exc.message}"
            raise
        if was_deleted:
            deleted.append(task.id)
            touched.pop(task.id, None)
        else:
            touched[task.id] = task
    return BulkResult(
        tasks=[to_public(task) for task in touched.values() if task.deleted_at is None],
        deleted_ids=deleted,
    )
