"""The tasks' fenced speed paths: statements built once, run as DriverQuerys, and rows
written straight to JSON. docs/performance.md maps each one: why, what it relies on, and
the test that guards it.

Invariants:
- `PUBLIC_COLUMNS` are TaskPublic's fields, in its order, read from the table (labels as one
  JSON value); `TASK_JSON` writes a row of them as TaskPublic's JSON. Both are derived from
  TaskPublic itself, and tests/tasks/test_parity.py compares that JSON with TaskPublic's
  own for generated tasks, on both databases.
- Reads only, and every write session's DriverQuery runs inside its transaction
  (app/core/db/driver_query.py); the rules of a change stay in app/tasks/rules.py.
"""

import uuid
from dataclasses import dataclass
from typing import Any, cast

from pydantic_core import from_json
from sqlalchemy import ColumnElement, Text, bindparam, func, literal_column, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import DriverQuery
from app.core.models import table_of
from app.core.rows import RowJSON
from app.labels.models import Label
from app.projects.models import Project
from app.tasks.exceptions import TaskNotFound
from app.tasks.models import Task, TaskLabel
from app.tasks.rules import FIELD_COLUMNS
from app.tasks.schemas import TaskPublic
from app.tasks.visibility import LIVE, TASK, owned_by, owned_live

_TASK_LABEL = table_of(TaskLabel).c
_LABEL = table_of(Label).c
_PROJECT = table_of(Project).c


class LabelsJSON(ColumnElement[str]):
    """The labels of the row's task as one JSON array (text), in name order; `[]` if none.

    Part of the task's own SELECT, so a page of tasks, labels included, is one statement.
    Each database spells JSON aggregation its own way (see the compilers).
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
    # SQLite keeps UUIDs as 32 hex digits: written in the canonical 8-4-4-4-12 form here, so
    # the JSON is the API's as it is.
    hex_id = ordered.c.id
    canonical_id = func.substr(hex_id, 1, 8).concat("-")
    for start, length in ((9, 4), (13, 4), (17, 4)):
        canonical_id = canonical_id.concat(func.substr(hex_id, start, length)).concat("-")
    canonical_id = canonical_id.concat(func.substr(hex_id, 21, 12))
    label = func.json_object("id", canonical_id, "name", ordered.c.name, "color", ordered.c.color)
    subquery = select(func.json_group_array(label)).select_from(ordered).scalar_subquery()
    return str(compiler.process(subquery, **kw))


# TaskPublic's fields as columns, in its order (its labels as one JSON value).
PUBLIC_COLUMNS = [
    LabelsJSON(TASK.id).label("labels") if name == "labels" else TASK[name]
    for name in TaskPublic.model_fields
]
# A row of PUBLIC_COLUMNS as TaskPublic's JSON.
TASK_JSON = RowJSON(tuple(TaskPublic.model_fields), json_columns=("labels",))


def task_from_row(row: Any) -> TaskPublic:
    """A row of PUBLIC_COLUMNS as a TaskPublic (for callers that need the model)."""
    return TaskPublic.model_validate({**row, "labels": from_json(row["labels"])})


@dataclass(frozen=True, slots=True)
class TaskDocument:
    """A task's JSON as the API sends it, and its version (the ETag)."""

    version: int
    json: bytes

    @classmethod
    def of(cls, task: TaskPublic) -> "TaskDocument":
        return cls(task.version, task.__pydantic_serializer__.to_json(task))

    @classmethod
    def of_row(cls, row: Any) -> "TaskDocument":
        return cls(int(row["version"]), TASK_JSON.dumps(TASK_JSON.item(row)))

    def public(self) -> TaskPublic:
        """The document read back as the model (for callers that need one)."""
        return TaskPublic.model_validate_json(self.json)


READ_ONE = DriverQuery(select(*PUBLIC_COLUMNS).where(*owned_live()))
# The task as the API sends it, which holds every value the field rules read (FIELD_COLUMNS
# and the version), its row locked for the write: a PATCH that changes nothing is answered
# from it, one that does from the UPDATE's RETURNING (`returning_document`).
LOCK_DOCUMENT = DriverQuery(
    select(*PUBLIC_COLUMNS).where(*owned_live()).with_for_update(of=table_of(Task))
)
assert set(FIELD_COLUMNS) <= set(TaskPublic.model_fields)  # noqa: S101 - built at import
# SQLite has no row locks: a write statement first takes its one write lock (waiting for a
# concurrent writer's commit), so what LOCK_DOCUMENT reads next is what this write replaces.
# (Its parameters are named after no column: SQLAlchemy reserves column names in an UPDATE.)
_TAKE_WRITE_LOCK = (
    update(table_of(Task))
    .where(*owned_live("the_task_id", "the_owner_id"))
    .values(version=TASK.version)
)
_OWNER = bindparam("owner_id", type_=TASK.owner_id.type)
# MAX over the (owner, project, position) index: the last entry, not a scan.
LAST_POSITION = DriverQuery(
    select(func.max(TASK.position).label("last")).where(
        owned_by(_OWNER),
        TASK.project_id == bindparam("project_id", type_=TASK.project_id.type),
        LIVE,
    )
)
# The Inbox's id and its last position, in one round trip (the common create).
INBOX_END = DriverQuery(
    select(
        _PROJECT.id,
        select(func.max(TASK.position))
        .where(owned_by(_OWNER), TASK.project_id == _PROJECT.id, LIVE)
        .scalar_subquery()
        .label("last"),
    ).where(_PROJECT.owner_id == _OWNER, _PROJECT.is_inbox)
)


async def read_task_document(
    session: AsyncSession, *, owner_id: uuid.UUID, task_id: uuid.UUID
) -> TaskDocument:
    """The caller's live task as the API sends it; TaskNotFound as `service.get_task`."""
    row = await READ_ONE.fetch_one(session, {"task_id": task_id, "owner_id": owner_id})
    if row is None:
        raise TaskNotFound()
    return TaskDocument.of_row(row)


async def lock_document(session: AsyncSession, params: dict[str, Any]) -> Any:
    """The live task's row of PUBLIC_COLUMNS, locked for the rest of the transaction."""
    if session.get_bind().dialect.name == "sqlite":
        ids = {"the_task_id": params["task_id"], "the_owner_id": params["owner_id"]}
        await session.exec(_TAKE_WRITE_LOCK, params=ids)
    return await LOCK_DOCUMENT.fetch_one(session, params)


def returning_document(statement: Any) -> Any:
    """An UPDATE of one task that returns its new row of PUBLIC_COLUMNS (no read-back)."""
    return statement.returning(*PUBLIC_COLUMNS)


async def last_position(
    session: AsyncSession, *, owner_id: uuid.UUID, project_id: uuid.UUID
) -> str | None:
    """The last order key among the project's live tasks (None: the project is empty)."""
    row = await LAST_POSITION.fetch_one(session, {"owner_id": owner_id, "project_id": project_id})
    return None if row is None else cast(str | None, row["last"])


async def inbox_end(
    session: AsyncSession, *, owner_id: uuid.UUID
) -> tuple[uuid.UUID, str | None] | None:
    """The Inbox's id and its last order key; None if the caller has no Inbox yet."""
    row = await INBOX_END.fetch_one(session, {"owner_id": owner_id})
    return None if row is None else (row["id"], cast(str | None, row["last"]))
