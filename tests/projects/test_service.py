"""Project services on the real database."""

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.pagination import CursorCodec, PageParams
from app.projects import service
from app.projects.exceptions import InboxUndeletable, ProjectNotFound
from app.tasks import service as task_service
from app.tasks.models import Task
from tests.factories import make_user


@pytest.mark.anyio
async def test_inbox_is_made_with_the_account_and_stays(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    inbox_id = await service.inbox_id(db_session, owner_id=owner)
    inbox = await service.get_project(db_session, owner_id=owner, project_id=inbox_id)
    assert (inbox.name, inbox.is_inbox) == ("Inbox", True)
    with pytest.raises(InboxUndeletable):
        await service.trash_project(db_session, inbox)
    assert inbox.deleted_at is None


@pytest.mark.anyio
async def test_trash_and_restore_take_the_tasks_along(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    project = await service.create_project(db_session, owner_id=owner, name="p")
    tasks = [
        await task_service.create_task(
            db_session, owner_id=owner, title=f"{i}", project_id=project.id
        )
        for i in range(3)
    ]
    await service.trash_project(db_session, project)
    with pytest.raises(ProjectNotFound):
        await service.get_project(db_session, owner_id=owner, project_id=project.id)
    trashed = await db_session.exec(
        select(Task.trashed_with).where(col(Task.id).in_([t.id for t in tasks]))
    )
    assert set(trashed.all()) == {project.id}
    restored = await service.restore_project(db_session, project)
    assert restored.version == 3
    live = await db_session.exec(select(Task.id).where(col(Task.deleted_at).is_(None)))
    assert set(live.all()) == {t.id for t in tasks}


@pytest.mark.anyio
async def test_list_hides_trash_and_filters_archived(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    archived = await service.create_project(db_session, owner_id=owner, name="a", is_archived=True)
    gone = await service.create_project(db_session, owner_id=owner, name="g")
    await service.trash_project(db_session, gone)
    codec = CursorCodec("s")
    page = PageParams(limit=10, cursor=None, include_total=True)
    everything = await service.list_projects(db_session, user_id=owner, page=page, codec=codec)
    assert (everything.total, [p.name for p in everything.items]) == (2, ["Inbox", "a"])
    only = await service.list_projects(
        db_session, user_id=owner, page=page, codec=codec, is_archived=True
    )
    assert [p.id for p in only.items] == [archived.id]
