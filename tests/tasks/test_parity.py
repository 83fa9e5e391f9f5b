"""Every way a task reaches JSON, and both PATCH paths, agree on generated tasks.

The serializers: TaskPublic from the ORM instance (create, restore, bulk, the ORM PATCH),
rows straight to JSON (GET one, the list, the field PATCH: app/tasks/prebuilt.py). The
write paths: `patch_task`'s field path against `update_task` on the ORM. Run on both
databases (each lane).
"""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.pagination import CursorCodec, PageParams
from app.labels import service as label_service
from app.tasks import listing, service
from app.tasks.models import TaskStatus
from app.tasks.prebuilt import TaskDocument
from app.tasks.schemas import TaskFilters
from tests.factories import make_user

pytestmark = pytest.mark.anyio

PARITY = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CODEC = CursorCodec("parity-secret")
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)
TITLE = TEXT.filter(lambda value: value.strip() != "")
INSTANT = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
).map(lambda value: value.astimezone(timezone(timedelta(hours=-5))))
TASK_FIELDS = st.fixed_dictionaries(
    {
        "title": TITLE,
        "description": st.none() | TEXT,
        "status": st.sampled_from(list(TaskStatus)),
        "priority": st.integers(0, 4),
        "due_at": st.none() | INSTANT,
    }
)
LABELS = st.lists(
    st.tuples(TITLE.map(lambda name: name.strip()[:40] or "x"), st.none() | st.just("#a0b1c2")),
    max_size=3,
    unique_by=lambda label: label[0].casefold(),
)
CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "title": TITLE,
        "description": st.none() | TEXT,
        "status": st.sampled_from(list(TaskStatus)),
        "priority": st.integers(0, 4),
        "due_at": st.none() | INSTANT,
    },
)
# What differs between two tasks made alike.
_PER_TASK = {"id", "owner_id", "created_by_id", "project_id", "position", "created_at"}
NOW = datetime(2031, 3, 4, 5, 6, 7, 890, tzinfo=UTC)


async def _new_task(
    session: AsyncSession, fields: dict[str, Any], labels: list[tuple[str, str | None]]
) -> tuple[uuid.UUID, uuid.UUID]:
    owner = (await make_user(session)).id
    label_ids = [
        (await label_service.create_label(session, owner_id=owner, name=name, color=color)).id
        for name, color in labels
    ]
    task = await service.create_task(session, owner_id=owner, label_ids=label_ids, **fields)
    await session.commit()
    return owner, task.id


@PARITY
@given(fields=TASK_FIELDS, labels=LABELS)
async def test_every_serializer_writes_the_same_json(
    db_session: AsyncSession, fields: dict[str, Any], labels: list[tuple[str, str | None]]
) -> None:
    owner, task_id = await _new_task(db_session, fields, labels)
    from_model = json.loads(
        TaskDocument.of(await service.read_task(db_session, owner_id=owner, task_id=task_id)).json
    )
    from_row = json.loads(
        (await service.read_task_document(db_session, owner_id=owner, task_id=task_id)).json
    )
    page = await listing.list_tasks(
        db_session,
        owner_id=owner,
        filters=TaskFilters(),
        sort=None,
        page=PageParams(limit=5, cursor=None, include_total=False),
        codec=CODEC,
    )
    from_list = json.loads(page.json())["items"]
    assert from_row == from_model
    assert from_list == [from_model]
    assert [item.model_dump(mode="json") for item in page.items] == [from_model]


@PARITY
@given(fields=TASK_FIELDS, changes=CHANGES)
async def test_the_field_patch_is_the_orm_update(
    db_session: AsyncSession, fields: dict[str, Any], changes: dict[str, Any]
) -> None:
    results = []
    for way in ("fields", "orm"):
        owner, task_id = await _new_task(db_session, {**fields, "now": NOW - timedelta(days=1)}, [])
        if way == "fields":
            document = await service.patch_task(
                db_session, owner_id=owner, task_id=task_id, changes=changes, now=NOW
            )
        else:
            task = await service.get_task(db_session, owner_id=owner, task_id=task_id)
            document = TaskDocument.of(
                service.to_public(await service.update_task(db_session, task, changes, now=NOW))
            )
        await db_session.commit()
        stored = await service.read_task_document(db_session, owner_id=owner, task_id=task_id)
        assert json.loads(stored.json) == json.loads(document.json)  # what was answered is stored
        result = json.loads(document.json)
        results.append({k: v for k, v in result.items() if k not in _PER_TASK})
    assert results[0] == results[1]
