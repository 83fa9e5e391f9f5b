"""app/tasks/listing.py on the real database: keyset walks, filters, sort keys, statement reuse."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import ReferenceNotFound
from app.core.models import new_id
from app.core.pagination import CursorCodec, InvalidCursor, PageParams
from app.labels import service as label_service
from app.projects import service as project_service
from app.tasks import listing, position, service
from app.tasks.exceptions import ParentNotFound
from app.tasks.models import Task, TaskStatus
from app.tasks.schemas import TaskFilters
from tests.factories import make_user

CODEC = CursorCodec("test-secret")


async def _walk(
    session: AsyncSession, owner_id: uuid.UUID, *, sort: str, limit: int, **filters: object
) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await listing.list_tasks(
            session,
            owner_id=owner_id,
            filters=TaskFilters(**filters),  # type: ignore[arg-type]
            sort=sort,
            page=PageParams(limit=limit, cursor=cursor, include_total=False),
            codec=CODEC,
        )
        ids.extend(task.id for task in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


# Paging over many rows


@pytest.mark.anyio
async def test_keyset_walks_thousands_of_rows_exactly_once(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    inbox_id = await project_service.inbox_id(db_session, owner_id=owner)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    keys = position.keys_after(None, 1500)
    rng = random.Random(7)
    db_session.add_all(
        Task(
            id=new_id(),
            owner_id=owner,
            project_id=inbox_id,
            title=f"t{rng.randrange(50):02d}",
            priority=rng.randrange(5),
            status=rng.choice(list(TaskStatus)),
            due_at=None if i % 3 == 0 else base + timedelta(hours=rng.randrange(100)),
            position=keys[i],
            created_at=base + timedelta(minutes=rng.randrange(300)),
            updated_at=base,
        )
        for i in range(1500)
    )
    await db_session.commit()
    for sort in ("created_at", "-priority", "due_at", "-due_at", "position", "title"):
        ids = await _walk(db_session, owner, sort=sort, limit=200)
        assert len(ids) == 1500 == len(set(ids)), sort
    todo = await _walk(db_session, owner, sort="-due_at", limit=37, statuses=(TaskStatus.TODO,))
    expected = (
        await db_session.exec(
            select(Task.id).where(Task.owner_id == owner, Task.status == TaskStatus.TODO)
        )
    ).all()
    assert sorted(todo) == sorted(expected)
    page = await listing.list_tasks(
        db_session,
        owner_id=owner,
        filters=TaskFilters(),
        sort=None,
        page=PageParams(limit=20, cursor=None, include_total=True),
        codec=CODEC,
    )
    assert (len(page.items), page.total) == (20, 1500)
    with pytest.raises(InvalidCursor):
        await listing.list_tasks(
            db_session,
            owner_id=owner,
            filters=TaskFilters(),
            sort="title",
            page=PageParams(limit=20, cursor=page.next_cursor, include_total=False),
            codec=CODEC,
        )


# Statement reuse


@pytest.mark.anyio
async def test_list_statements_are_built_once_per_shape_and_values_stay_parameters(
    db_session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core import pagination

    builds: list[int] = []
    real_statements = pagination._page_statements

    def counting_statements(*args: object, **kwargs: object) -> list[object]:
        builds.append(1)
        return real_statements(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pagination, "_page_statements", counting_statements)
    monkeypatch.setattr(pagination, "_PREBUILT", pagination.LRUCache(maxsize=64))
    owners = [(await make_user(db_session)).id, (await make_user(db_session)).id]
    for owner in owners:
        inbox_id = await project_service.inbox_id(db_session, owner_id=owner)
        keys = position.keys_after(None, 6)
        db_session.add_all(
            Task(
                id=new_id(),
                owner_id=owner,
                project_id=inbox_id,
                title=f"{owner.hex[:4]}-{i}",
                status=[TaskStatus.TODO, TaskStatus.DONE][i % 2],
                priority=i % 5,
                position=keys[i],
            )
            for i in range(6)
        )
    await db_session.commit()

    first = await _walk(
        db_session, owners[0], sort="-priority", limit=2, statuses=(TaskStatus.TODO,)
    )
    built_for_one_walk = len(builds)
    # Same shape, other values (owner, status): nothing is rebuilt, and the values bind.
    second = await _walk(
        db_session, owners[1], sort="-priority", limit=2, statuses=(TaskStatus.DONE,)
    )
    assert len(builds) == built_for_one_walk == 2  # the first page, and pages after a cursor
    for owner, ids, status in ((owners[0], first, "todo"), (owners[1], second, "done")):
        rows = (
            await db_session.exec(
                select(Task.id).where(Task.owner_id == owner, Task.status == status)
            )
        ).all()
        assert sorted(ids) == sorted(rows)
        assert len(ids) == 3
    # Another shape (a second filter) is built on its own.
    await _walk(
        db_session,
        owners[0],
        sort="-priority",
        limit=2,
        statuses=(TaskStatus.TODO,),
        priority_min=1,
    )
    assert len(builds) > built_for_one_walk


# Sort keys and filters


def test_sort_keys_end_on_the_id_and_position_orders_by_project_first() -> None:
    keys, key_of = listing.sort_keys("position")
    assert [key.column.name for key in keys] == ["project_id", "position", "id"]
    assert not any(key.descending or key.nullable for key in keys)
    row = {"id": 3, "project_id": 1, "position": "a0", "title": "not a key"}
    assert key_of(row) == [1, "a0", 3]
    keys, key_of = listing.sort_keys("-due_at")
    assert [(key.column.name, key.descending, key.nullable) for key in keys] == [
        ("due_at", True, True),  # empty due dates come last
        ("id", True, False),
    ]
    assert key_of({"id": 3, "due_at": None}) == [None, 3]


@pytest.mark.anyio
async def test_filtering_by_someone_elses_project_label_or_parent_is_not_found(
    db_session: AsyncSession,
) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    project = await project_service.create_project(db_session, owner_id=owner, name="P")
    label = await label_service.create_label(db_session, owner_id=owner, name="l")
    parent = await service.create_task(db_session, owner_id=owner, title="parent")
    trashed = await service.create_task(db_session, owner_id=owner, title="trashed")
    await service.trash_task(db_session, trashed)
    mine = TaskFilters(project_id=project.id, label_ids=(label.id,), parent_id=parent.id)
    await listing.check_filter_owners(db_session, owner_id=owner, filters=mine)
    # The query's fault, not the URL's: a 422 naming the parameter.
    for filters, loc in (
        (TaskFilters(project_id=project.id), ["query", "project_id"]),
        (TaskFilters(label_ids=(label.id,)), ["query", "label", 0]),
        (TaskFilters(parent_id=parent.id), ["query", "parent_id"]),
    ):
        with pytest.raises(ReferenceNotFound) as raised:
            await listing.check_filter_owners(db_session, owner_id=stranger, filters=filters)
        assert raised.value.errors is not None
        assert raised.value.errors[0]["loc"] == loc
    with pytest.raises(ParentNotFound):
        await listing.check_filter_owners(
            db_session, owner_id=owner, filters=TaskFilters(parent_id=trashed.id)
        )


@pytest.mark.anyio
async def test_each_filter_keeps_only_the_tasks_that_match_it(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    red = await label_service.create_label(db_session, owner_id=owner, name="red")
    blue = await label_service.create_label(db_session, owner_id=owner, name="blue")
    late = await service.create_task(
        db_session,
        owner_id=owner,
        title="50% off",
        due_at=datetime(2000, 1, 1, tzinfo=UTC),
        label_ids=[red.id, blue.id],
    )
    done = await service.create_task(
        db_session,
        owner_id=owner,
        title="500 off",
        status=TaskStatus.DONE,
        priority=3,
        due_at=datetime(2999, 1, 1, tzinfo=UTC),
        parent_id=late.id,
        label_ids=[red.id],
    )
    undated = await service.create_task(
        db_session, owner_id=owner, title="plain", status=TaskStatus.IN_PROGRESS
    )
    await db_session.commit()
    cases: list[tuple[dict[str, object], set[uuid.UUID]]] = [
        ({}, {late.id, done.id, undated.id}),
        ({"q": "50%"}, {late.id}),  # `%` is taken literally, not as a wildcard
        ({"label_ids": (red.id, blue.id, red.id)}, {late.id}),  # every label asked for
        ({"label_ids": (red.id,)}, {late.id, done.id}),
        ({"overdue": True}, {late.id}),
        ({"overdue": False}, {done.id, undated.id}),
        ({"has_due": False}, {undated.id}),
        ({"top_level": False}, {done.id}),
        ({"parent_id": late.id}, {done.id}),
        ({"priority_min": 3}, {done.id}),
        ({"statuses": (TaskStatus.DONE, TaskStatus.IN_PROGRESS)}, {done.id, undated.id}),
        ({"due_before": datetime(2500, 1, 1, tzinfo=UTC)}, {late.id}),
        ({"due_after": datetime(2500, 1, 1, tzinfo=UTC)}, {done.id}),
        ({"completed_since": datetime(2000, 1, 1, tzinfo=UTC)}, {done.id}),
        ({"updated_since": datetime(2999, 1, 1, tzinfo=UTC)}, set()),
    ]
    for filters, expected in cases:
        ids = await _walk(db_session, owner, sort="created_at", limit=2, **filters)
        assert set(ids) == expected, filters
