"""app/tasks/visibility.py on the real database: which tasks a caller sees."""

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.models import new_id
from app.tasks import service, visibility
from app.tasks.models import Task
from tests.factories import make_user


@pytest.mark.anyio
async def test_owned_live_is_the_named_task_if_it_is_the_owners_and_not_in_the_trash(
    db_session: AsyncSession,
) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    task = await service.create_task(db_session, owner_id=owner, title="mine")
    trashed = await service.create_task(db_session, owner_id=owner, title="gone")
    await service.trash_task(db_session, trashed)
    await db_session.commit()
    statement = select(Task.id).where(*visibility.owned_live())
    seen = {"task_id": task.id, "owner_id": owner}
    assert (await db_session.exec(statement, params=seen)).all() == [task.id]
    for who, task_id in ((stranger, task.id), (owner, trashed.id), (owner, new_id())):
        params = {"task_id": task_id, "owner_id": who}
        assert (await db_session.exec(statement, params=params)).all() == []
    # The parameters can take other names (an UPDATE may not reuse its columns' names).
    renamed = select(Task.id).where(*visibility.owned_live("the_task", "the_owner"))
    params = {"the_task": task.id, "the_owner": owner}
    assert (await db_session.exec(renamed, params=params)).all() == [task.id]
