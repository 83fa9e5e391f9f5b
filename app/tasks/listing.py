"""The task list: sort keys, filters, and one keyset page of the caller's live tasks.

The list is the hottest path of the API: its statements read the plain table columns
(rows, not ORM instances) and are built once per statement key (sort, which filters are
present, where the cursor points), every value bound as a parameter (`paginate_prebuilt`).
"""

import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, String, and_, bindparam, not_, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import referring
from app.core.models import table_of, utcnow
from app.core.pagination import CursorCodec, PageParams, RowPage, SortKey, paginate_prebuilt
from app.core.sql import LIKE_ESCAPE, contains_pattern
from app.labels import service as label_service
from app.projects import service as project_service
from app.tasks import tree
from app.tasks.exceptions import ParentNotFound
from app.tasks.models import TaskLabel, TaskStatus
from app.tasks.prebuilt import PUBLIC_COLUMNS, TASK_JSON, task_from_row
from app.tasks.schemas import TaskFilters, TaskPublic
from app.tasks.visibility import LIVE, TASK, owned_by

TASK_LABEL = table_of(TaskLabel).c


def sort_keys(sort: str) -> tuple[list[SortKey], Callable[[Any], list[Any]]]:
    """The keyset for a `sort` value (`-` prefix: descending) and the row's values for it.

    The id always ends the keyset, in the same direction, so the order is total and one
    index serves it. `position` orders by project first: positions compare within a project.
    """
    descending = sort.startswith("-")
    name = sort.removeprefix("-")
    names = ["project_id", "position"] if name == "position" else [name]
    keys = [
        SortKey(TASK[field], descending=descending, nullable=field == "due_at") for field in names
    ]
    keys.append(SortKey(TASK.id, descending=descending))
    fields = [*names, "id"]
    return keys, lambda row: [row[field] for field in fields]


async def check_filter_owners(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    filters: TaskFilters,
    within_project: bool = False,
) -> None:
    # Filtering by a project, label or task the caller does not have is the query's fault (a
    # 422 naming the parameter), whether it is someone else's or does not exist.
    if filters.project_id is not None:
        with referring("query", "project_id", detail="You have no such project."):
            await project_service.get_project(
                session, owner_id=owner_id, project_id=filters.project_id
            )
    if filters.label_ids:
        await label_service.get_labels(
            session, owner_id=owner_id, label_ids=filters.label_ids, loc=("query", "label")
        )
    if filters.parent_id is not None:
        parent = await tree.get_parent(
            session, owner_id=owner_id, parent_id=filters.parent_id, loc=("query", "parent_id")
        )
        # A member lists one project of its owner's: a parent elsewhere is not one they see.
        if within_project and parent.project_id != filters.project_id:
            raise ParentNotFound(
                loc=("query", "parent_id"), extra={"parent_id": str(filters.parent_id)}
            )


@dataclass(frozen=True, slots=True)
class FilterTerm:
    """One list filter: what its SQL depends on, its parameter values, and the SQL itself."""

    statement_key: Hashable
    params: dict[str, Any]
    clause: Callable[[], ColumnElement[bool]]


def _param(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _overdue(overdue: bool) -> ColumnElement[bool]:
    due_at = TASK.due_at
    late = and_(due_at < _param("now", due_at), TASK.status != TaskStatus.DONE.value)
    return late if overdue else not_(late) | due_at.is_(None)


def _carries(index: int) -> ColumnElement[bool]:
    # One semi-join per label: a task must carry every label asked for.
    label_id = TASK_LABEL.label_id
    carriers = select(TASK_LABEL.task_id).where(label_id == _param(f"label_{index}", label_id))
    return TASK.id.in_(carriers)


def _text_contains() -> ColumnElement[bool]:
    pattern = bindparam("q", type_=String)
    return or_(
        TASK.title.ilike(pattern, escape=LIKE_ESCAPE),
        TASK.description.ilike(pattern, escape=LIKE_ESCAPE),
    )


def filter_terms(filters: TaskFilters, *, now: datetime) -> list[FilterTerm]:
    """The WHERE terms for the list filters (ownership and liveness are added by the caller)."""
    t = TASK
    terms: list[FilterTerm] = []

    def add(statement_key: Hashable, params: dict[str, Any], clause: Callable[[], Any]) -> None:
        terms.append(FilterTerm(statement_key, params, clause))

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


async def list_tasks(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    filters: TaskFilters,
    sort: str | None,
    page: PageParams,
    codec: CursorCodec,
    now: datetime | None = None,
    within_project: bool = False,
) -> RowPage[TaskPublic]:
    """The caller's live tasks matching every filter, one keyset page in the chosen order.

    Without `sort`, a project's list is in manual order (`position`), any other list in
    creation order. Filters are not part of the cursor: send the same ones with it.
    `within_project` (a member's list of one project): references must be in that project.
    """
    await check_filter_owners(
        session, owner_id=owner_id, filters=filters, within_project=within_project
    )
    sort = sort or ("position" if filters.project_id is not None else "created_at")
    keys, key_of = sort_keys(sort)
    terms = filter_terms(filters, now=now or utcnow())
    params: dict[str, Any] = {"owner_id": owner_id}
    for term in terms:
        params.update(term.params)

    def statement() -> Any:
        return select(*PUBLIC_COLUMNS).where(
            owned_by(_param("owner_id", TASK.owner_id)),
            LIVE,
            *(term.clause() for term in terms),
        )

    return await paginate_prebuilt(
        session,
        statement,
        statement_key=tuple(term.statement_key for term in terms),
        params=params,
        keys=keys,
        page=page,
        codec=codec,
        scope=f"tasks:{sort}",
        key_of=key_of,
        to_item=task_from_row,
        serializer=TASK_JSON,
    )
