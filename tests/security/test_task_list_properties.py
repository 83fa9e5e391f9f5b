"""Property-based test of the task list: every filter, every sort, every page size.

For random tasks (titles and descriptions over a small mixed-case alphabet holding LIKE's
wildcards, random status, priority, due date, labels, projects, subtasks, later updates and
trashing) and a random combination of filters, the pages the API returns, walked through
`next_cursor` and concatenated, equal a reference computed in Python over the same rows:
nothing lost, nothing repeated, in exactly the order asked (ties broken on the id, in the
sort's direction; empty due dates last either way).

The rows are written through the service layer (`app.tasks.service`), on the app's own
event loop, with the `now` of each write chosen by the test: creation and update instants
tie often, so the id must break the ties. The reference is computed from the rows as
stored (read back once, after the writes), and follows the filters' documentation
(`app/tasks/dependencies.py`):

- `status` (repeatable): any of; `label` (repeatable): carries every one;
- `due_before`: strictly before; `due_after`: at or after; both exclude tasks without one;
- `overdue=true`: due in the past and not done; `overdue=false`: the opposite, including
  tasks without a due date. Due dates are decades away from the server's clock, so the
  server's "now" and the test's agree on which are past;
- `q`: case-insensitive substring of the title or of the description (a missing one never
  matches), with `%`, `_` and `\\` taken literally;
- `updated_since` / `completed_since`: at or after (a task never completed never matches).

Titles sort in the database's collation. On SQLite (BINARY) and on a PostgreSQL database
whose collation is C, that is Python's code-point order; on any other PostgreSQL collation
the test asks the database to rank the titles (`ORDER BY` over the same strings) and uses
that rank as the reference's title key.
"""

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlmodel import col, select

from app.core.config import Settings
from app.core.db import Database
from app.labels import service as label_service
from app.projects import service as project_service
from app.tasks import service as task_service
from app.tasks.models import Task, TaskStatus
from app.tasks.schemas import TaskSort
from tests.factories import API, SignedInUser, new_user
from tests.security.helpers import walk_pages

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ALPHABET = "aAbB_%\\"
STATUSES = [status.value for status in TaskStatus]
SORTS: list[str] = list(TaskSort.__args__)  # type: ignore[attr-defined]
MAX_TASKS = 30
MAX_PROJECTS = 3  # the Inbox and up to two more
MAX_LABELS = 4
SUBTASK_MAX_PARENT_DEPTH = 2  # keeps every tree within the service's MAX_DEPTH

# Instants of the writes: a few minutes, so created_at / updated_at / completed_at tie.
T0 = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
TRASH_TICK = 9
# Due dates decades before and after the server's clock (overdue compares with it).
PAST = datetime(2001, 3, 1, 9, 0, tzinfo=UTC)
FUTURE = datetime(2099, 3, 1, 9, 0, tzinfo=UTC)
DUE_DATES = [PAST + timedelta(days=d) for d in range(3)] + [
    FUTURE + timedelta(days=d) for d in range(3)
]
# Bounds for due_before / due_after: the due dates themselves (to hit the inclusive and
# exclusive edges), points between and around them.
DUE_BOUNDS = [
    *DUE_DATES,
    PAST - timedelta(days=1),
    PAST + timedelta(hours=12),
    datetime(2050, 1, 1, tzinfo=UTC),
    FUTURE + timedelta(days=1, hours=1),
    FUTURE + timedelta(days=9),
]
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-7))]


def tick(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


SINCE_BOUNDS = [tick(n) for n in range(8)] + [tick(n) + timedelta(seconds=30) for n in range(7)]

TEXT = st.text(alphabet=ALPHABET, min_size=1, max_size=4)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """None or a value, about half and half (`st.none() | ...` mostly gives None)."""
    return st.booleans().flatmap(lambda present: strategy if present else st.none())


TASK = st.fixed_dictionaries(
    {
        "title": TEXT,
        "description": maybe(st.text(alphabet=ALPHABET, max_size=5)),
        "status": st.sampled_from(STATUSES),
        "priority": st.integers(min_value=0, max_value=4),
        "due": st.sampled_from([None, None, *DUE_DATES]),
        "project": st.integers(min_value=0, max_value=MAX_PROJECTS - 1),
        "parent": maybe(st.integers(min_value=0, max_value=MAX_TASKS)),
        "labels": st.sets(st.integers(min_value=0, max_value=MAX_LABELS - 1), max_size=3),
        "created": st.integers(min_value=0, max_value=3),
        "update": maybe(
            st.fixed_dictionaries(
                {
                    "later": st.integers(min_value=0, max_value=3),
                    "status": maybe(st.sampled_from(STATUSES)),
                    "priority": maybe(st.integers(min_value=0, max_value=4)),
                }
            )
        ),
        "trash": st.integers(min_value=0, max_value=9).map(lambda n: n == 7),
    }
)
FILTER_NAMES = [
    "status",
    "priority_min",
    "label",
    "due_before",
    "due_after",
    "overdue",
    "has_due",
    "parent_id",
    "top_level",
    "q",
    "updated_since",
    "completed_since",
    "project_id",
]


@dataclasses.dataclass(frozen=True)
class Row:
    """A task as stored, with what the filters and sorts read."""

    id: uuid.UUID
    project_id: uuid.UUID
    parent_id: uuid.UUID | None
    title: str
    description: str | None
    status: str
    priority: int
    due_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    position: str
    deleted_at: datetime | None
    label_ids: frozenset[uuid.UUID]


@dataclasses.dataclass
class World:
    owner: SignedInUser
    projects: list[uuid.UUID]
    labels: list[uuid.UUID]
    rows: list[Row]
    meant_for_trash: set[uuid.UUID]


class Writer:
    """Runs service-layer writes on the test client's event loop, with its own engine."""

    def __init__(self, client: TestClient, app_settings: Settings) -> None:
        assert client.portal is not None
        self.portal = client.portal
        self.database = Database(app_settings)

    def close(self) -> None:
        self.portal.call(self.database.dispose)

    def build(self, owner: SignedInUser, spec: dict[str, Any]) -> World:
        return self.portal.call(self._build, owner, spec)

    async def _build(self, owner: SignedInUser, spec: dict[str, Any]) -> World:
        owner_id = uuid.UUID(owner.id)
        async with self.database.sessionmaker() as session:
            projects = [await project_service.inbox_id(session, owner_id=owner_id)]
            for index in range(spec["projects"] - 1):
                project = await project_service.create_project(
                    session, owner_id=owner_id, name=f"project {index}"
                )
                projects.append(project.id)
            labels = []
            for index in range(spec["labels"]):
                label = await label_service.create_label(
                    session, owner_id=owner_id, name=f"label {index}"
                )
                labels.append(label.id)

            tasks: list[Task] = []
            depth: list[int] = []
            for index, item in enumerate(spec["tasks"]):
                parent = None
                if item["parent"] is not None and index:
                    candidate = item["parent"] % index
                    if depth[candidate] <= SUBTASK_MAX_PARENT_DEPTH:
                        parent = candidate
                task = await task_service.create_task(
                    session,
                    owner_id=owner_id,
                    title=item["title"],
                    description=item["description"],
                    status=TaskStatus(item["status"]),
                    priority=item["priority"],
                    due_at=item["due"],
                    project_id=None
                    if parent is not None
                    else projects[item["project"] % len(projects)],
                    parent_id=None if parent is None else tasks[parent].id,
                    label_ids=[labels[i % len(labels)] for i in item["labels"]] if labels else [],
                    now=tick(item["created"]),
                )
                tasks.append(task)
                depth.append(0 if parent is None else depth[parent] + 1)

            for task, item in zip(tasks, spec["tasks"], strict=True):
                update = item["update"]
                if update is None:
                    continue
                changes: dict[str, Any] = {}
                if update["status"] is not None:
                    changes["status"] = TaskStatus(update["status"])
                if update["priority"] is not None:
                    changes["priority"] = update["priority"]
                await task_service.update_task(
                    session, task, changes, now=tick(item["created"] + update["later"])
                )

            # Trashing a task trashes its subtasks too: the reference must lose them all.
            meant_for_trash: set[uuid.UUID] = set()
            children: dict[uuid.UUID, list[uuid.UUID]] = {}
            for task in tasks:
                if task.parent_id is not None:
                    children.setdefault(task.parent_id, []).append(task.id)
            for task, item in zip(tasks, spec["tasks"], strict=True):
                if item["trash"] and task.id not in meant_for_trash:
                    await task_service.trash_task(session, task, now=tick(TRASH_TICK))
                    stack = [task.id]
                    while stack:
                        current = stack.pop()
                        meant_for_trash.add(current)
                        stack.extend(children.get(current, []))
            await session.commit()

            stored = await session.exec(
                select(Task)
                .where(col(Task.owner_id) == owner_id)
                .execution_options(populate_existing=True)
            )
            rows = [
                Row(
                    id=task.id,
                    project_id=task.project_id,
                    parent_id=task.parent_id,
                    title=task.title,
                    description=task.description,
                    status=str(task.status),
                    priority=task.priority,
                    due_at=task.due_at,
                    completed_at=task.completed_at,
                    created_at=task.created_at,
                    updated_at=task.updated_at,
                    position=task.position,
                    deleted_at=task.deleted_at,
                    label_ids=frozenset(label.id for label in task.labels),
                )
                for task in stored.all()
            ]
        return World(owner, projects, labels, rows, meant_for_trash)


@pytest.fixture
def writer(client: TestClient, settings: Settings) -> Iterator[Writer]:
    writer = Writer(client, settings)
    yield writer
    writer.close()


@pytest.fixture
def stranger(client: TestClient) -> SignedInUser:
    """Someone else, with tasks that no list of the owner's may ever show."""
    user = new_user(client)
    label = client.post(f"{API}/labels", json={"name": "label 0"}, headers=user.headers)
    assert label.status_code == 201, label.text
    for title in ("a", "A", "_", "%"):
        response = client.post(
            f"{API}/tasks",
            json={
                "title": title,
                "description": "ab",
                "due_at": PAST.isoformat(),
                "label_ids": [label.json()["id"]],
            },
            headers=user.headers,
        )
        assert response.status_code == 201, response.text
    return user


@pytest.fixture
def title_rank(housekeeping_engine: Engine) -> Callable[[list[str]], dict[str, int]]:
    """Each title's rank in the order the database sorts titles (see the module docstring)."""
    by_code_point = housekeeping_engine.dialect.name == "sqlite"
    if not by_code_point:
        with housekeeping_engine.connect() as connection:
            collation = connection.execute(
                text("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            ).scalar_one()
        by_code_point = collation in {"C", "POSIX", "C.UTF-8", "C.utf8"}

    def rank(titles: list[str]) -> dict[str, int]:
        distinct = sorted(set(titles))
        if not by_code_point and distinct:
            with housekeeping_engine.connect() as connection:
                distinct = list(
                    connection.execute(
                        text("SELECT t FROM unnest(CAST(:titles AS text[])) AS t ORDER BY t"),
                        {"titles": distinct},
                    ).scalars()
                )
        return {title: index for index, title in enumerate(distinct)}

    return rank


# The reference


def matches(row: Row, chosen: dict[str, Any], now: datetime) -> bool:
    if "project_id" in chosen and row.project_id != chosen["project_id"]:
        return False
    if "status" in chosen and row.status not in chosen["status"]:
        return False
    if "priority_min" in chosen and row.priority < chosen["priority_min"]:
        return False
    if "label" in chosen and not set(chosen["label"]) <= row.label_ids:
        return False
    if "due_before" in chosen and (row.due_at is None or row.due_at >= chosen["due_before"]):
        return False
    if "due_after" in chosen and (row.due_at is None or row.due_at < chosen["due_after"]):
        return False
    if "overdue" in chosen:
        overdue = row.due_at is not None and row.due_at < now and row.status != "done"
        if overdue != chosen["overdue"]:
            return False
    if "has_due" in chosen and (row.due_at is not None) != chosen["has_due"]:
        return False
    if "parent_id" in chosen and row.parent_id != chosen["parent_id"]:
        return False
    if "top_level" in chosen and (row.parent_id is None) != chosen["top_level"]:
        return False
    if "q" in chosen:
        needle = chosen["q"].lower()
        texts = [row.title] + ([row.description] if row.description is not None else [])
        if not any(needle in value.lower() for value in texts):
            return False
    if "updated_since" in chosen and row.updated_at < chosen["updated_since"]:
        return False
    return "completed_since" not in chosen or (
        row.completed_at is not None and row.completed_at >= chosen["completed_since"]
    )


def ordered(rows: list[Row], sort: str, title_rank: dict[str, int]) -> list[Row]:
    descending = sort.startswith("-")
    name = sort.removeprefix("-")
    if name == "due_at":
        dated = [row for row in rows if row.due_at is not None]
        undated = [row for row in rows if row.due_at is None]
        return sorted(dated, key=lambda r: (r.due_at, r.id), reverse=descending) + sorted(
            undated, key=lambda r: r.id, reverse=descending
        )
    keys: dict[str, Callable[[Row], Any]] = {
        "position": lambda r: (r.project_id, r.position, r.id),
        "title": lambda r: (title_rank[r.title], r.id),
    }
    key = keys.get(name, lambda r: (getattr(r, name), r.id))
    return sorted(rows, key=key, reverse=descending)


# Talking to the API


def as_query(chosen: dict[str, Any], offset: timezone) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in chosen.items():
        if isinstance(value, datetime):
            params[name] = value.astimezone(offset).isoformat()
        elif isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, list):
            params[name] = [str(item) for item in value]
        else:
            params[name] = str(value)
    return params


def draw_value(data: st.DataObject, world: World, name: str) -> Any:
    """A value for filter `name` (None when this world has nothing to name)."""
    live = [row for row in world.rows if row.deleted_at is None]
    if name == "project_id":
        return data.draw(st.sampled_from(world.projects), label=name)
    if name == "status":
        return data.draw(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=4), label=name)
    if name == "priority_min":
        return data.draw(st.integers(min_value=0, max_value=4), label=name)
    if name == "label":
        if not world.labels:
            return None
        labels = st.lists(st.sampled_from(world.labels), min_size=1, max_size=2)
        return data.draw(labels, label=name)
    if name in {"due_before", "due_after"}:
        return data.draw(st.sampled_from(DUE_BOUNDS), label=name)
    if name in {"overdue", "has_due", "top_level"}:
        return data.draw(st.booleans(), label=name)
    if name == "parent_id":
        # A parent that has subtasks, mostly; a trashed one would be a 404.
        parents = [row.parent_id for row in live if row.parent_id] or [row.id for row in live]
        return data.draw(st.sampled_from(parents), label=name) if parents else None
    if name == "q":
        return data.draw(draw_q(live), label=name)
    assert name in {"updated_since", "completed_since"}, name
    return data.draw(st.sampled_from(SINCE_BOUNDS), label=name)


def draw_filters(data: st.DataObject, world: World, names: list[str]) -> dict[str, Any]:
    if {"parent_id", "top_level"} <= set(names):
        names = [name for name in names if name != "top_level"]  # both at once: a 422
    values = {name: draw_value(data, world, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def draw_q(live: list[Row]) -> st.SearchStrategy[str]:
    """Random text, or a piece of a stored title or description with its case swapped."""
    texts = [value for row in live for value in (row.title, row.description) if value]
    random_text = st.text(alphabet=ALPHABET, min_size=1, max_size=3)
    if not texts:
        return random_text

    def piece(value: str, start: int, length: int) -> str:
        start %= len(value)
        return value[start : start + length].swapcase()

    pieces = st.builds(
        piece,
        st.sampled_from(texts),
        st.integers(min_value=0, max_value=4),
        st.integers(min_value=1, max_value=3),
    )
    return random_text | pieces


WORLD = st.fixed_dictionaries(
    {
        "projects": st.integers(min_value=1, max_value=MAX_PROJECTS),
        "labels": st.integers(min_value=0, max_value=MAX_LABELS),
        # Hypothesis favours short lists: pick the length first.
        "tasks": st.integers(min_value=6, max_value=MAX_TASKS).flatmap(
            lambda n: st.lists(TASK, min_size=n, max_size=n)
        ),
    }
)


@given(spec=WORLD, data=st.data())
@PROPERTY_SETTINGS
def test_task_pages_equal_the_reference(
    client: TestClient,
    writer: Writer,
    stranger: SignedInUser,
    title_rank: Callable[[list[str]], dict[str, int]],
    spec: dict[str, Any],
    data: st.DataObject,
) -> None:
    world = writer.build(new_user(client), spec)
    assert {row.id for row in world.rows if row.deleted_at is not None} == world.meant_for_trash

    # Each filter alone, then a few combinations; each with its own sort and page size.
    combinations = st.lists(st.sampled_from(FILTER_NAMES), min_size=2, max_size=4, unique=True)
    queries = [[name] for name in FILTER_NAMES] + [
        data.draw(combinations, label="filters") for _ in range(4)
    ]
    for names in queries:
        check(client, world, data, title_rank, draw_filters(data, world, names))


def check(
    client: TestClient,
    world: World,
    data: st.DataObject,
    title_rank: Callable[[list[str]], dict[str, int]],
    chosen: dict[str, Any],
) -> None:
    """Walk every page of one query and compare with the reference."""
    sort = data.draw(st.sampled_from([*SORTS, None]), label="sort")
    limit = data.draw(st.integers(min_value=1, max_value=7), label="limit")
    offset = data.draw(st.sampled_from(OFFSETS), label="offset of the instants sent")
    url = f"{API}/tasks"
    params = as_query(chosen, offset)
    if "project_id" in chosen and data.draw(st.booleans(), label="project path"):
        url = f"{API}/projects/{chosen['project_id']}/tasks"
        del params["project_id"]
    if sort is not None:
        params["sort"] = sort

    now = datetime.now(UTC)
    live = [row for row in world.rows if row.deleted_at is None]
    default = "position" if "project_id" in chosen else "created_at"
    expected = ordered(
        [row for row in live if matches(row, chosen, now)],
        sort or default,
        title_rank([row.title for row in live]),
    )
    event(f"{len(expected)} matched" if len(expected) < 3 else "3+ matched")
    items = walk_pages(
        client, url, world.owner.headers, {**params, "limit": limit}, max_pages=MAX_TASKS + 5
    )
    got = [item["id"] for item in items]
    assert len(got) == len(set(got)), "a task was repeated"
    assert got == [str(row.id) for row in expected], (chosen, sort, limit)
    by_id = {str(row.id): row for row in expected}
    for item in items:
        assert {uuid.UUID(label["id"]) for label in item["labels"]} == by_id[item["id"]].label_ids

    counted = client.get(
        url, params={**params, "limit": 1, "include_total": "true"}, headers=world.owner.headers
    )
    assert counted.status_code == 200, counted.text
    assert counted.json()["total"] == len(expected)
