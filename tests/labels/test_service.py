"""Label services on the real database."""

import uuid

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from app.labels import service
from app.labels.exceptions import LabelNameTaken, LabelNotFound
from app.labels.models import Label
from app.users import service as user_service


async def _user(session: AsyncSession) -> uuid.UUID:
    user = await user_service.create_user(
        session, email=f"{uuid.uuid4().hex[:10]}@example.com", hashed_password="x"
    )
    return user.id


@pytest.mark.anyio
async def test_names_compare_case_folded(db_session: AsyncSession) -> None:
    owner = await _user(db_session)
    label = await service.create_label(db_session, owner_id=owner, name="Straße")
    assert label.name_key == "strasse"
    with pytest.raises(LabelNameTaken):
        await service.create_label(db_session, owner_id=owner, name="STRASSE")


@pytest.mark.anyio
async def test_the_database_enforces_uniqueness(db_session: AsyncSession) -> None:
    owner = await _user(db_session)
    await service.create_label(db_session, owner_id=owner, name="work")
    # Bypassing the service's check, as a racing request would: the unique index refuses it.
    duplicate = Label(owner_id=owner, name="Work", name_key="work")
    db_session.add(duplicate)
    with pytest.raises(LabelNameTaken):
        await service._flush_unique_name(db_session, duplicate)


@pytest.mark.anyio
async def test_get_labels_names_a_missing_one(db_session: AsyncSession) -> None:
    owner, stranger = await _user(db_session), await _user(db_session)
    mine = await service.create_label(db_session, owner_id=owner, name="mine")
    theirs = await service.create_label(db_session, owner_id=stranger, name="theirs")
    assert await service.get_labels(db_session, owner_id=owner, label_ids=[mine.id]) == [mine]
    with pytest.raises(LabelNotFound) as raised:
        await service.get_labels(db_session, owner_id=owner, label_ids=[mine.id, theirs.id])
    assert raised.value.extra == {"label_id": str(theirs.id)}
