"""Label services on the real database."""

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import ReferenceNotFound
from app.labels import service
from app.labels.exceptions import LabelNameTaken
from app.labels.models import Label
from tests.factories import make_user


@pytest.mark.anyio
async def test_names_compare_case_folded(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    label = await service.create_label(db_session, owner_id=owner, name="Straße")
    assert label.name_key == "strasse"
    with pytest.raises(LabelNameTaken):
        await service.create_label(db_session, owner_id=owner, name="STRASSE")


@pytest.mark.anyio
async def test_the_database_enforces_uniqueness(db_session: AsyncSession) -> None:
    owner = (await make_user(db_session)).id
    await service.create_label(db_session, owner_id=owner, name="work")
    # Bypassing the service's check, as a racing request would: the unique index refuses it.
    duplicate = Label(owner_id=owner, name="Work", name_key="work")
    db_session.add(duplicate)
    with pytest.raises(LabelNameTaken):
        await service._flush_unique_name(db_session, duplicate)


@pytest.mark.anyio
async def test_get_labels_names_a_missing_one(db_session: AsyncSession) -> None:
    owner, stranger = (await make_user(db_session)).id, (await make_user(db_session)).id
    mine = await service.create_label(db_session, owner_id=owner, name="mine")
    theirs = await service.create_label(db_session, owner_id=stranger, name="theirs")
    assert await service.get_labels(db_session, owner_id=owner, label_ids=[mine.id]) == [mine]
    # Label ids always come from a request (a body or a filter): the request's fault, a 422
    # naming the index of the first one that is not the caller's.
    with pytest.raises(ReferenceNotFound) as raised:
        await service.get_labels(db_session, owner_id=owner, label_ids=[mine.id, theirs.id])
    assert raised.value.extra == {"label_id": str(theirs.id)}
    assert raised.value.errors is not None
    assert raised.value.errors[0]["loc"] == ["body", "label_ids", 1]
