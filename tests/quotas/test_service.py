"""Quotas (app/quotas): each account holds at most so many tasks, projects and labels,
counted by usage counters kept in the transaction of every change."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel.ext.asyncio.session import AsyncSession

from app.quotas import service
from app.quotas.exceptions import QuotaExceeded
from app.quotas.models import Resource
from app.quotas.service import Quotas
from app.tasks import service as task_service
from app.trash import service as trash_service
from tests.factories import API, make_label, make_project, make_task, make_user, new_user
from tests.helpers import assert_problem


def test_each_quota_is_a_409_quota_exceeded_and_writes_nothing(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(QUOTA_TASKS=2, QUOTA_PROJECTS=2, QUOTA_LABELS=1)
    with TestClient(app) as client:
        user = new_user(client)
        for _ in range(2):
            make_task(client, user)
        refused = client.post(f"{API}/tasks", headers=user.headers, json={"title": "3"})
        body = assert_problem(refused, 409, "quota_exceeded")
        assert (body["resource"], body["limit"]) == ("tasks", 2)
        project = make_project(client, user)  # the Inbox is the first of two
        refused = client.post(f"{API}/projects", headers=user.headers, json={"name": "3"})
        assert assert_problem(refused, 409, "quota_exceeded")["resource"] == "projects"
        shortcut = client.post(
            f"{API}/projects/{project['id']}/tasks", headers=user.headers, json={"title": "3"}
        )
        assert_problem(shortcut, 409, "quota_exceeded")
        make_label(client, user, "one")
        refused = client.post(f"{API}/labels", headers=user.headers, json={"name": "two"})
        assert assert_problem(refused, 409, "quota_exceeded")["resource"] == "labels"
        listed = client.get(f"{API}/tasks", headers=user.headers).json()["items"]
        assert len(listed) == 2  # the refused creates left nothing behind
        # Another account has quotas of its own.
        make_task(client, new_user(client))


def test_deleting_a_label_gives_its_place_back(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(QUOTA_LABELS=1)
    with TestClient(app) as client:
        user = new_user(client)
        label = make_label(client, user, "one")
        deleted = client.delete(f"{API}/labels/{label['id']}", headers=user.headers)
        assert deleted.status_code == 204
        make_label(client, user, "two")


@pytest.mark.anyio
async def test_counters_follow_creates_and_purges(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    assert await service.usage(db_session, owner, Resource.PROJECTS) == 1  # the Inbox
    tasks = [
        await task_service.create_task(db_session, owner_id=owner, title=f"t{n}") for n in range(3)
    ]
    child = await task_service.create_task(
        db_session, owner_id=owner, title="c", parent_id=tasks[0].id
    )
    assert child.parent_id == tasks[0].id
    assert await service.usage(db_session, owner, Resource.TASKS) == 4
    now = datetime.now(UTC)
    # Trashed rows still count; purged ones do not.
    await task_service.trash_task(db_session, tasks[0], now=now - timedelta(days=40))
    await db_session.commit()
    assert await service.usage(db_session, owner, Resource.TASKS) == 4
    await trash_service.purge_expired_trash(db_session, now=now, retention=timedelta(days=30))
    await db_session.commit()
    assert await service.usage(db_session, owner, Resource.TASKS) == 2


@pytest.mark.anyio
async def test_charge_past_the_limit_raises_and_counts_nothing_once_rolled_back(
    db_session: AsyncSession,
) -> None:
    owner = (await make_user(db_session)).id
    await db_session.commit()
    tight = Quotas(tasks=1, projects=1, labels=1)
    with pytest.raises(QuotaExceeded) as raised:
        await service.charge(db_session, owner_id=owner, resource=Resource.PROJECTS, quotas=tight)
    assert raised.value.extra == {"resource": "projects", "limit": 1}
    await db_session.rollback()
    assert await service.usage(db_session, owner, Resource.PROJECTS) == 1
