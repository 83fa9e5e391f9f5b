"""The users service called directly, on a real database session."""

import pytest
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.projects.models import Project
from app.users import service
from app.users.exceptions import EmailTaken, LastAdmin, UserNotFound
from app.users.models import Role, User

pytestmark = pytest.mark.anyio


async def _create(session: AsyncSession, email: str, role: Role = Role.USER) -> User:
    user = await service.create_user(session, email=email, hashed_password="hash", role=role)
    await session.commit()
    return user


async def test_create_user_lower_cases_the_email_and_gives_an_inbox(
    db_session: AsyncSession,
) -> None:
    user = await _create(db_session, "Ada@Example.COM")
    assert user.email == "ada@example.com"
    inboxes = await db_session.exec(
        select(Project).where(Project.owner_id == user.id, Project.is_inbox)
    )
    assert len(inboxes.all()) == 1
    with pytest.raises(EmailTaken):
        await service.create_user(db_session, email="ADA@example.com", hashed_password="h")


async def test_get_user_by_email_is_case_insensitive(db_session: AsyncSession) -> None:
    user = await _create(db_session, "bob@example.com")
    found = await service.get_user_by_email(db_session, "BOB@Example.com")
    assert found is not None
    assert found.id == user.id
    assert await service.get_user_by_email(db_session, "nobody@example.com") is None


async def test_get_user_raises_for_an_unknown_id(db_session: AsyncSession) -> None:
    import uuid

    with pytest.raises(UserNotFound):
        await service.get_user(db_session, uuid.uuid4())


async def test_update_user_applies_allowed_fields_only(db_session: AsyncSession) -> None:
    user = await _create(db_session, "carol@example.com")
    before = user.updated_at
    await service.update_user(
        db_session,
        user,
        {"full_name": "Carol", "email": None, "is_active": None, "id": "ignored"},
        hashed_password=None,
    )
    await db_session.commit()
    assert (user.full_name, user.email, user.is_active) == ("Carol", "carol@example.com", True)
    assert user.updated_at > before
    other = await _create(db_session, "dave@example.com")
    with pytest.raises(EmailTaken):
        await service.update_user(
            db_session, other, {"email": "carol@example.com"}, hashed_password=None
        )


async def test_the_last_active_admin_is_guarded(db_session: AsyncSession) -> None:
    admin = await _create(db_session, "admin@example.com", Role.ADMIN)
    for changes in ({"role": Role.USER}, {"is_active": False}):
        with pytest.raises(LastAdmin):
            await service.update_user(db_session, admin, changes, hashed_password=None)
    with pytest.raises(LastAdmin):
        await service.delete_user(db_session, admin)
    # Changing anything else is fine.
    await service.update_user(db_session, admin, {"full_name": "Root"}, hashed_password=None)
    second = await _create(db_session, "second@example.com", Role.ADMIN)
    await service.update_user(db_session, admin, {"role": Role.USER}, hashed_password=None)
    await db_session.commit()
    with pytest.raises(LastAdmin):
        await service.delete_user(db_session, second)


async def test_delete_user_cascades_to_what_it_owns(db_session: AsyncSession) -> None:
    user = await _create(db_session, "erin@example.com")
    await service.delete_user(db_session, user)
    await db_session.commit()
    count = await db_session.exec(
        select(func.count()).select_from(Project).where(Project.owner_id == user.id)
    )
    assert count.one() == 0
