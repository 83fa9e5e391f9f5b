"""The rules of tasks, on the ORM: read one, create, update, move, label, trash, restore.

Plain functions, session first, keyword-only after. Each operation has this one
implementation; the field rules themselves are in app/tasks/rules.py, the tree in tree.py,
order keys in ordering.py, the list in listing.py, bulk in bulk.py, and the fenced speed
paths (prebuilt reads, rows straight to JSON) in prebuilt.py.
"""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.activity import service as activity
from app.activity.models import EntityType, Verb
from app.core.errors import referring
from app.core.http import check_if_match
from app.core.models import detached_instance, new_id, table_of, utcnow
from app.core.versioning import bumped, flush_versioned, touch
from app.labels import service as label_service
from app.labels.models import Label
from app.projects import service as project_service
from app.projects.models import Project
from app.quotas import service as quota_service
from app.quotas.models import Resource
from app.quotas.service import DEFAULT_QUOTAS, Quotas
from app.tasks import ordering, prebuilt, rules, tree
from app.tasks.exceptions import (
    NO_SUCH_PROJECT,
    ContainerInTrash,
    ParentNotFound,
    SubtaskProjectMismatch,
    TaskNotFound,
    TaskNotInTrash,
    TooManyLabels,
)
from app.tasks.models import MAX_LABELS_PER_TASK, Task, TaskLabel, TaskStatus
from app.tasks.position import jitter
from app.tasks.prebuilt import TaskDocument
from app.tasks.schemas import TaskPublic
from app.tasks.visibility import LIVE, TASK


def to_public(task: Task) -> TaskPublic:
    """The API representation of a task (its labels are loaded with it)."""
    return TaskPublic.model_validate(task, from_attributes=True)


# Reading


def _get_task_statement(*, include_trashed: bool, for_update: bool) -> SelectOfScalar[Task]:
    statement = select(Task).where(
        col(Task.id) == bindparam("task_id", type_=TASK.id.type),
        col(Task.owner_id) == bindparam("owner_id", type_=TASK.owner_id.type),
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


async def read_task(
    session: AsyncSession, *, owner_id: uuid.UUID, task_id: uuid.UUID
) -> TaskPublic:
    """The caller's live task as the API shows it; TaskNotFound as `get_task`."""
    return to_public(await get_task(session, owner_id=owner_id, task_id=task_id))


async def read_task_document(
    session: AsyncSession, *, owner_id: uuid.UUID, task_id: uuid.UUID
) -> TaskDocument:
    """`read_task` as the JSON the API sends, read without an ORM instance (prebuilt.py)."""
    return await prebuilt.read_task_document(session, owner_id=owner_id, task_id=task_id)


# Creating


async def _labels_for(
    session: AsyncSession, *, owner_id: uuid.UUID, label_ids: Sequence[uuid.UUID]
) -> list[Label]:
    unique = list(dict.fromkeys(label_ids))
    if len(unique) > MAX_LABELS_PER_TASK:
        raise TooManyLabels(extra={"max_labels": MAX_LABELS_PER_TASK})
    labels = await label_service.get_labels(session, owner_id=owner_id, label_ids=unique, lock=True)
    return sorted(labels, key=lambda label: label.name_key)


class NewTask(TypedDict, total=False):
    """A new task's fields, as `create_task` takes them."""

    title: Required[str]
    description: str | None
    status: TaskStatus
    priority: int
    due_at: datetime | None
    project_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    label_ids: Sequence[uuid.UUID]
    now: datetime | None
    quotas: Quotas


# A new task: every column, None unless create_task sets it (version 1, not in the trash).
_NEW_TASK_ROW: dict[str, Any] = {**dict.fromkeys(TASK.keys()), "version": 1}
_INSERT_TASK = insert(table_of(Task))
_INSERT_TASK_LABELS = insert(table_of(TaskLabel))


async def create_task(
    session: AsyncSession, *, owner_id: uuid.UUID, **fields: Unpack[NewTask]
) -> Task:
    """Insert a task at the end of its project (the Inbox by default).

    A subtask goes into its parent's project; naming another project is a 422. Projects,
    parents and labels that are not the caller's are 404s.
    """
    row, labels = await _insert_task(session, owner_id=owner_id, **fields)
    # The session's own instance, as if it had just loaded the row: later changes in this
    # session (moves, label changes, If-Match updates) work on it as on any loaded task.
    task = detached_instance(Task, row)
    set_committed_value(task, "labels", labels)
    session.add(task)
    return task


async def _insert_task(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    title: str,
    description: str | None = None,
    status: TaskStatus = TaskStatus.TODO,
    priority: int = 0,
    due_at: datetime | None = None,
    project_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    label_ids: Sequence[uuid.UUID] = (),
    now: datetime | None = None,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> tuple[dict[str, Any], list[Label]]:
    """The checks and INSERTs of a new task: its stored row and its labels (by name)."""
    now = now or utcnow()
    last: str | None = None
    known_end = False
    if parent_id is not None:
        parent = await tree.get_parent(session, owner_id=owner_id, parent_id=parent_id, lock=True)
        if project_id is not None and project_id != parent.project_id:
            raise SubtaskProjectMismatch()
        await tree.check_new_child(session, parent)
        project_id = parent.project_id
    elif project_id is not None:
        with referring("body", "project_id", detail=NO_SUCH_PROJECT):
            await project_service.get_project(
                session, owner_id=owner_id, project_id=project_id, for_share=True
            )
    else:
        # The common case, the Inbox: its id and its last position in one round trip.
        inbox = await prebuilt.inbox_end(session, owner_id=owner_id)
        if inbox is None:
            project_id = await project_service.inbox_id(session, owner_id=owner_id)
        else:
            (project_id, last), known_end = inbox, True
    labels = await _labels_for(session, owner_id=owner_id, label_ids=label_ids)
    if known_end:
        position = await ordering.key_after(
            session, last, owner_id=owner_id, project_id=project_id, now=now
        )
    else:
        position = await ordering.key_at_end(
            session, owner_id=owner_id, project_id=project_id, now=now
        )
    # Random digits at the end: two creates at the end of one project at once get two keys.
    position = jitter(position)
    status = TaskStatus(status)
    row = {
        **_NEW_TASK_ROW,
        "id": new_id(),
        "owner_id": owner_id,
        "created_by_id": owner_id,  # the creator: the owner while only owners write tasks
        "project_id": project_id,
        "parent_id": parent_id,
        "title": title,
        "description": description,
        "status": status,
        "completed_at": rules.completed_at_for(status, was=None, completed_at=None, now=now),
        "priority": priority,
        "due_at": due_at,
        "position": position,
        "created_at": now,
        "updated_at": now,
    }
    # A plain INSERT (in the session's transaction) instead of the unit of work's flush: the
    # values were validated on the way in (TaskCreate) or computed here.
    await session.exec(_INSERT_TASK, params=row)
    # A task counts against its project's owner (the same account until projects are shared).
    await quota_service.charge(session, owner_id=owner_id, resource=Resource.TASKS, quotas=quotas)
    if labels:
        links = [{"task_id": row["id"], "label_id": label.id} for label in labels]
        await session.exec(_INSERT_TASK_LABELS, params=links)
    # The actor is the owner while only owners write tasks.
    fields = {name: row[name] for name in LOGGED_FIELDS if name != "label_ids"}
    await activity.record(
        session,
        actor_id=owner_id,
        verb=Verb.CREATE,
        entity_type=EntityType.TASK,
        entity_id=row["id"],
        project_id=project_id,
        changes=activity.created({**fields, "label_ids": [label.id for label in labels]}),
        now=now,
    )
    return row, labels


# Changing

# The fields a task's change records show (old and new values).
LOGGED_FIELDS = (
    *rules.FIELD_COLUMNS,
    "project_id",
    "parent_id",
    "position",
    "label_ids",
)


def _logged(task: Task) -> dict[str, Any]:
    values = {name: getattr(task, name) for name in LOGGED_FIELDS if name != "label_ids"}
    values["label_ids"] = [label.id for label in task.labels]
    return values


async def _record_task(
    session: AsyncSession,
    task_id: uuid.UUID,
    *,
    actor_id: uuid.UUID,
    verb: Verb,
    project_id: uuid.UUID,
    changes: Mapping[str, Any],
    now: datetime,
) -> None:
    await activity.record(
        session,
        actor_id=actor_id,
        verb=verb,
        entity_type=EntityType.TASK,
        entity_id=task_id,
        project_id=project_id,
        changes=changes,
        now=now,
    )


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
    before = _logged(task)
    stored = {name: getattr(task, name) for name in rules.FIELD_COLUMNS}
    values = rules.field_changes(stored, changes, now=now)
    for name, value in values.items():
        setattr(task, name, value)
    changed = bool(values)

    target_project = changes.get("project_id", task.project_id)
    if "parent_id" in changes and changes["parent_id"] != task.parent_id:
        parent_id = changes["parent_id"]
        if parent_id is not None:
            parent = await tree.get_parent(
                session, owner_id=task.owner_id, parent_id=parent_id, lock=True
            )
            await tree.check_reparent(session, task, parent)
            if "project_id" in changes and changes["project_id"] != parent.project_id:
                raise SubtaskProjectMismatch()
            target_project = parent.project_id
        task.parent_id = parent_id
        changed = True
    elif task.parent_id is not None and target_project != task.project_id:
        raise SubtaskProjectMismatch()
    if target_project != task.project_id:
        await ordering.move_to_project(session, task, target_project, now)
        changed = True

    if "label_ids" in changes:
        labels = await _labels_for(session, owner_id=task.owner_id, label_ids=changes["label_ids"])
        if [label.id for label in labels] != [label.id for label in task.labels]:
            task.labels = labels
            changed = True
    for field, after in (("after_id", True), ("before_id", False)):
        if field in changes:
            await ordering.move_next_to(
                session, task, anchor_id=changes[field], after=after, now=now
            )
            changed = True
    if changed:
        touch(task, now=now)
        session.add(task)
        await flush_versioned(session, task)
        await _record_task(
            session,
            task.id,
            actor_id=task.owner_id,
            verb=Verb.UPDATE,
            project_id=task.project_id,
            changes=activity.diff(before, _logged(task)),
            now=now,
        )
    return task


async def patch_task(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    changes: Mapping[str, Any],
    if_match: str | None = None,
    now: datetime | None = None,
) -> TaskDocument:
    """Apply a PATCH's validated changes (see TaskUpdate) to the caller's live task.

    Changes of the task's own fields only (rules.FIELD_CHANGES) lock the row, apply the
    field rules and write the values they give, without an ORM instance (prebuilt.py);
    anything else goes through `update_task`. Both take the same rules, 404s and 412s.
    """
    if not changes or not set(changes) <= rules.FIELD_CHANGES:
        task = await get_task(session, owner_id=owner_id, task_id=task_id, for_update=True)
        task = await update_task(session, task, changes, if_match=if_match, now=now)
        return TaskDocument.of(to_public(task))
    params = {"task_id": task_id, "owner_id": owner_id}
    stored = await prebuilt.lock_document(session, params)
    if stored is None:
        raise TaskNotFound()
    check_if_match(if_match, stored["version"])
    now = now or utcnow()
    values = rules.field_changes(stored, changes, now=now)
    if not values:
        return TaskDocument.of_row(stored)
    values.update(bumped(stored["version"], now))
    # A Core UPDATE: the ORM's own (synchronize_session="evaluate") cost a sixth of a PATCH.
    written = update(table_of(Task)).where(TASK.id == task_id).values(values)
    result = await session.exec(prebuilt.returning_document(written))
    document = TaskDocument.of_row(result.mappings().one())
    await _record_task(
        session,
        task_id,
        actor_id=owner_id,
        verb=Verb.UPDATE,
        project_id=stored["project_id"],
        changes=activity.diff(stored, {k: v for k, v in values.items() if k in LOGGED_FIELDS}),
        now=now,
    )
    # So an instance of this task the session already holds does not keep the old values.
    held = session.sync_session.identity_map.get(identity_key(Task, task_id))
    if held is not None:
        await session.refresh(held)
    return document


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


# The trash


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
    descendant_ids = [task_id for task_id, _ in await tree.descendants(session, task.id)]
    await tree.lock_in_order(session, descendant_ids, owner_id=task.owner_id)
    task.deleted_at = now
    touch(task, now=now)
    session.add(task)
    await flush_versioned(session, task)
    if descendant_ids:
        await session.exec(
            update(Task)
            .where(col(Task.id).in_(descendant_ids))
            .values(deleted_at=now, trashed_with=task.id, **bumped(Task.version, now))
            # A bulk request may hold some of these rows: keep their versions in step.
            .execution_options(synchronize_session="fetch")
        )
    # One record for the subtree: its subtasks went with it (`trashed_with`).
    await _record_task(
        session,
        task.id,
        actor_id=task.owner_id,
        verb=Verb.DELETE,
        project_id=task.project_id,
        changes={**activity.diff({}, {"deleted_at": now}), "subtasks": [None, len(descendant_ids)]},
        now=now,
    )
    return descendant_ids


async def restore_task(session: AsyncSession, task: Task, *, now: datetime | None = None) -> Task:
    """Take a task out of the trash with the subtasks deleted along with it.

    Its project and parent must be live: restore those first (409 otherwise), so a restored
    task never hides inside a trashed container. Back under its parent the tree must keep
    to the depth limit (409 otherwise), and a parent that moved to another project since
    takes the restored subtree with it.
    """
    if task.deleted_at is None:
        raise TaskNotInTrash()
    project = await session.get(Project, task.project_id, with_for_update={"read": True})
    parent: Task | None = None
    if task.parent_id is not None:
        try:
            parent = await tree.get_parent(
                session, owner_id=task.owner_id, parent_id=task.parent_id, lock=True
            )
        except ParentNotFound:
            raise ContainerInTrash() from None
    if project is None or project.deleted_at is not None:
        raise ContainerInTrash()
    subtree = await tree.trashed_with(session, task)
    await tree.check_restore(session, task, subtree)
    now = now or utcnow()
    restored_ids = [task.id, *(task_id for task_id, _ in subtree)]
    trashed_at = task.deleted_at
    await tree.lock_in_order(session, restored_ids, owner_id=task.owner_id)
    await ordering.free_keys(session, restored_ids, project_id=task.project_id, now=now)
    task.deleted_at = None
    task.trashed_with = None
    touch(task, now=now)
    session.add(task)
    await flush_versioned(session, task)
    await session.exec(
        update(Task)
        .where(col(Task.trashed_with) == task.id, col(Task.deleted_at).is_not(None))
        .values(deleted_at=None, trashed_with=None, **bumped(Task.version, now))
        # The move below may load these rows: instances the session holds must be current.
        .execution_options(synchronize_session="fetch")
    )
    if parent is not None and parent.project_id != task.project_id:
        await ordering.move_to_project(session, task, parent.project_id, now)
        await flush_versioned(session, task)
    await _record_task(
        session,
        task.id,
        actor_id=task.owner_id,
        verb=Verb.RESTORE,
        project_id=task.project_id,
        changes={
            **activity.diff({"deleted_at": trashed_at}, {"deleted_at": None}),
            "subtasks": [None, len(subtree)],
        },
        now=now,
    )
    return task
