"""The users service called directly, on a real database session."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.cache import PrincipalCache
from app.auth.exceptions import PasswordIsEmail, PasswordRequired
from app.auth.models import AuthSession
from app.auth.service import AuthComponents
from app.core.config import Settings
from app.core.db import Database
from app.core.mail import MemoryMailer
from app.core.models import utcnow
from app.core.rate_limit import RateLimiter
from app.core.security import PasswordHasher, TokenCodec
from app.projects.models import Project
from app.users import service
from app.users.exceptions import EmailTaken, LastAdmin, UserNotFound, WrongPassword
from app.users.models import Role, User
from app.users.schemas import UserCreate, UserUpdate, UserUpdateMe
from tests.factories import fullwidth

pytestmark = pytest.mark.anyio

PASSWORD = "correct-horse-battery"


@pytest.fixture
async def auth(settings: Settings) -> AsyncIterator[AuthComponents]:
    database = Database(settings)
    components = AuthComponents(
        settings=settings,
        hasher=PasswordHasher(settings),
        tokens=TokenCodec(settings),
        limiter=RateLimiter(settings, database.counter_engine),
        mailer=MemoryMailer(),
        principals=PrincipalCache(seconds=0, max_users=1),
    )
    yield components
    components.hasher.close()
    await database.dispose()


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


# The account routes' workflows


async def _with_password(session: AsyncSession, hasher: PasswordHasher, email: str) -> User:
    user = await service.create_user(
        session, email=email, hashed_password=await hasher.hash(PASSWORD)
    )
    await session.commit()
    return user


async def _open_sessions(session: AsyncSession, user: User, count: int) -> None:
    session.add_all(
        AuthSession(user_id=user.id, refresh_jti=f"jti-{i}", expires_at=utcnow() + timedelta(1))
        for i in range(count)
    )
    await session.commit()


async def _open_session_count(session: AsyncSession, user: User) -> int:
    statement = select(func.count()).where(
        AuthSession.user_id == user.id, col(AuthSession.revoked_at).is_(None)
    )
    return (await session.exec(statement)).one()


async def test_update_own_account_changes_the_name_without_a_password(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _with_password(db_session, auth.hasher, "fay@example.com")
    data = UserUpdateMe(full_name="Fay", email="fay@example.com")
    updated = await service.update_own_account(db_session, auth, user=user, data=data)
    assert (updated.user.full_name, updated.user.email) == ("Fay", "fay@example.com")
    assert updated.mails == []


async def test_update_own_account_needs_the_password_for_a_new_email(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _with_password(db_session, auth.hasher, "gus@example.com")
    with pytest.raises(PasswordRequired):
        await service.update_own_account(
            db_session, auth, user=user, data=UserUpdateMe(email="gus2@example.com")
        )
    wrong = UserUpdateMe(email="gus2@example.com", current_password="not-the-password")
    with pytest.raises(WrongPassword):
        await service.update_own_account(db_session, auth, user=user, data=wrong)
    await db_session.refresh(user)
    assert user.email == "gus@example.com"
    right = UserUpdateMe(email="gus2@example.com", current_password=PASSWORD)
    updated = await service.update_own_account(db_session, auth, user=user, data=right)
    # Verification is off here: the address changes at once, and the old one is told.
    assert (updated.user.email, updated.user.email_verified) == ("gus2@example.com", True)
    assert [mail.to for mail in updated.mails] == ["gus@example.com"]


async def test_admin_create_user_hashes_the_password_and_takes_role_and_state(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    data = UserCreate(email="Hal@Example.com", password=PASSWORD, role=Role.ADMIN, is_active=False)
    user = await service.admin_create_user(db_session, auth.hasher, data=data)
    assert (user.email, user.role, user.is_active) == ("hal@example.com", Role.ADMIN, False)
    assert user.hashed_password != PASSWORD
    assert await auth.hasher.verify(PASSWORD, user.hashed_password)
    with pytest.raises(EmailTaken):
        await service.admin_create_user(db_session, auth.hasher, data=data)


async def test_admin_update_user_refuses_the_email_as_password(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _with_password(db_session, auth.hasher, "ida@example.com")
    # The account's email, or the new one sent with it.
    for data in (
        UserUpdate(password=" IDA@example.com "),
        UserUpdate(email="ida2@example.com", password="ida2@example.com"),
    ):
        with pytest.raises(PasswordIsEmail):
            await service.admin_update_user(db_session, auth.hasher, user=user, data=data)
    assert user.email == "ida@example.com"


async def test_admin_update_user_signs_out_on_a_new_password_or_deactivation_only(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _with_password(db_session, auth.hasher, "jon@example.com")
    await _open_sessions(db_session, user, 2)
    renamed = UserUpdate(full_name="Jon")
    await service.admin_update_user(db_session, auth.hasher, user=user, data=renamed)
    assert await _open_session_count(db_session, user) == 2

    new_password = UserUpdate(password="another-long-password")
    updated = await service.admin_update_user(db_session, auth.hasher, user=user, data=new_password)
    assert await auth.hasher.verify("another-long-password", updated.hashed_password)
    assert await _open_session_count(db_session, user) == 0

    await _open_sessions(db_session, user, 1)
    deactivated = UserUpdate(is_active=False)
    await service.admin_update_user(db_session, auth.hasher, user=user, data=deactivated)
    assert (user.is_active, await _open_session_count(db_session, user)) == (False, 0)


# --- stored emails to canonical form (the migration and `tasks-api check-emails`) ----------


def test_email_plan_rewrites_lone_spellings_and_leaves_collisions_and_unparsed() -> None:
    plan = service.plan_email_normalisation(
        [
            (1, "ada@xn--bcher-kva.example"),
            (2, "bob@xn--bcher-kva.example"),
            (3, "bob@bücher.example"),
            (4, "carol@example.com"),
            (5, "not an address"),
            (6, f"dan@{fullwidth('example')}.com"),
        ]
    )
    assert plan.changes == [
        (1, "ada@xn--bcher-kva.example", "ada@bücher.example"),
        (6, f"dan@{fullwidth('example')}.com", "dan@example.com"),
    ]
    assert plan.collisions == {
        "bob@bücher.example": [(3, "bob@bücher.example"), (2, "bob@xn--bcher-kva.example")]
    }
    assert plan.unparsed == [(5, "not an address")]


def test_email_plan_of_canonical_emails_is_empty() -> None:
    plan = service.plan_email_normalisation([(1, "ada@example.com"), (2, "käthe@bücher.example")])
    assert (plan.changes, plan.collisions, plan.unparsed) == ([], {}, [])


async def test_normalising_stored_emails_applies_only_when_asked(db_session: AsyncSession) -> None:
    lone = await service.create_user(
        db_session, email="lone@xn--bcher-kva.example", hashed_password="x"
    )
    lone_id = lone.id
    await db_session.commit()
    planned = await service.normalise_stored_emails(db_session, apply=False)
    assert planned.changes == [(lone_id, "lone@xn--bcher-kva.example", "lone@bücher.example")]
    await db_session.commit()
    db_session.expire_all()
    assert (await service.get_user(db_session, lone_id)).email == "lone@xn--bcher-kva.example"

    await service.normalise_stored_emails(db_session, apply=True)
    await db_session.commit()
    db_session.expire_all()
    assert (await service.get_user(db_session, lone_id)).email == "lone@bücher.example"
    assert (await service.normalise_stored_emails(db_session, apply=False)).changes == []
