"""app/tasks/prebuilt.py on the real database: rows written to JSON, the prebuilt reads."""

import json
from datetime import UTC, datetime

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.models import new_id
from app.core.pagination import CursorCodec, PageParams
from app.projects import service as project_service
from app.tasks import listing, prebuilt, service
from app.tasks.exceptions import TaskNotFound
from app.tasks.models import TaskStatus
from app.tasks.schemas import TaskFilters
from tests.factories import make_user

CODEC = CursorCodec("test-secret")


@pytest.mark.anyio
async def test_a_page_of_rows_serializes_exactly_as_the_page_model_does(
    db_session: AsyncSession,
) -> None:
    import json

    from app.core.pagination import Page
    from app.labels import service as label_service
    from app.tasks.schemas import TaskPublic

    owner = (await make_user(db_session)).id
    names = ['Zeta "quoted"', "ällo 🚀", "a\\b"]
    labels = [
        await label_service.create_label(db_session, owner_id=owner, name=name, color="#a0b1c2")
        for name in names
    ]
    plain = await label_service.create_label(db_session, owner_id=owner, name="no colour")
    label_ids = [label.id for label in [*labels, plain]]
    await db_session.commit()
    parent = await service.create_task(db_session, owner_id=owner, title="parent")
    await service.create_task(
        db_session,
        owner_id=owner,
        title='tab\tnewline\n quote" emoji 🚀 \u2028',
        description="line\r\nbreak \\ back",
        status=TaskStatus.DONE,
        priority=3,
        due_at=datetime(2031, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
        parent_id=parent.id,
        label_ids=label_ids,
    )
    await service.create_task(
        db_session, owner_id=owner, title="plain", due_at=datetime(2031, 1, 2, tzinfo=UTC)
    )
    await db_session.commit()
    for limit in (1, 10):
        page = await listing.list_tasks(
            db_session,
            owner_id=owner,
            filters=TaskFilters(),
            sort="created_at",
            page=PageParams(limit=limit, cursor=None, include_total=True),
            codec=CODEC,
        )
        model = Page[TaskPublic](items=page.items, next_cursor=page.next_cursor, total=page.total)
        assert json.loads(page.json()) == json.loads(model.model_dump_json())
        for row, item in zip(page.rows, page.items, strict=True):
            # One task (GET /tasks/{id}) is written the same way.
            one = prebuilt.TASK_JSON.dumps(prebuilt.TASK_JSON.item(row))
            assert json.loads(one) == json.loads(item.model_dump_json())
    assert len(page.items) == 3
    assert [label["name"] for label in json.loads(page.json())["items"][1]["labels"]] == sorted(
        [*names, "no colour"], key=str.casefold
    )


@pytest.mark.anyio
async def test_a_task_document_is_the_callers_live_task_as_read_task_shows_it(
    db_session: AsyncSession,
) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    task = await service.create_task(db_session, owner_id=owner, title="t", priority=2)
    trashed = await service.create_task(db_session, owner_id=owner, title="gone")
    await service.trash_task(db_session, trashed)
    await db_session.commit()
    document = await prebuilt.read_task_document(db_session, owner_id=owner, task_id=task.id)
    read = await service.read_task(db_session, owner_id=owner, task_id=task.id)
    assert document.version == read.version == 1
    assert json.loads(document.json) == json.loads(read.model_dump_json())
    assert document.public() == read
    for who, task_id in ((stranger, task.id), (owner, trashed.id), (owner, new_id())):
        with pytest.raises(TaskNotFound):
            await prebuilt.read_task_document(db_session, owner_id=who, task_id=task_id)


@pytest.mark.anyio
async def test_locking_a_task_reads_its_document_and_changes_nothing(
    db_session: AsyncSession,
) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    task = await service.create_task(
        db_session, owner_id=owner, title="t", status=TaskStatus.DONE, priority=2
    )
    trashed = await service.create_task(db_session, owner_id=owner, title="gone")
    await service.trash_task(db_session, trashed)
    await db_session.commit()
    row = await prebuilt.lock_document(db_session, {"task_id": task.id, "owner_id": owner})
    assert (row["version"], row["title"], row["status"], row["priority"]) == (1, "t", "done", 2)
    # The locked row is the document the API sends (a PATCH that changes nothing answers it).
    locked = prebuilt.TaskDocument.of_row(row).public()
    assert locked == await service.read_task(db_session, owner_id=owner, task_id=task.id)
    await db_session.commit()
    read = await service.read_task(db_session, owner_id=owner, task_id=task.id)
    assert (read.version, read.updated_at) == (1, task.updated_at)
    for who, task_id in ((stranger, task.id), (owner, trashed.id), (owner, new_id())):
        params = {"task_id": task_id, "owner_id": who}
        assert await prebuilt.lock_document(db_session, params) is None
        await db_session.rollback()


@pytest.mark.anyio
async def test_the_last_position_is_among_the_projects_live_tasks(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    inbox = await project_service.inbox_id(db_session, owner_id=owner)
    assert await prebuilt.last_position(db_session, owner_id=owner, project_id=inbox) is None
    assert await prebuilt.inbox_end(db_session, owner_id=owner) == (inbox, None)
    first = await service.create_task(db_session, owner_id=owner, title="first")
    last = await service.create_task(db_session, owner_id=owner, title="last")
    assert await prebuilt.last_position(db_session, owner_id=owner, project_id=inbox) == (
        last.position
    )
    await service.trash_task(db_session, last)
    assert await prebuilt.last_position(db_session, owner_id=owner, project_id=inbox) == (
        first.position
    )
    assert await prebuilt.inbox_end(db_session, owner_id=owner) == (inbox, first.position)
    assert await prebuilt.inbox_end(db_session, owner_id=new_id()) is None  # no Inbox
