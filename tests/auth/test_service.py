"""The auth service called directly, on a real database session."""

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import argon2
import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import service, verification
from app.auth.cache import PrincipalCache
from app.auth.exceptions import (
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidTokenError,
    InvalidVerificationToken,
    PasswordIsEmail,
    SessionNotFound,
)
from app.auth.models import AuthSession
from app.auth.service import AuthComponents, ClientInfo, RefreshTokenReused
from app.core.config import Settings
from app.core.db import Database
from app.core.errors import TooManyRequests
from app.core.mail import MemoryMailer
from app.core.pagination import CursorCodec, PageParams
from app.core.rate_limit import RateLimiter
from app.core.security import PasswordHasher, TokenCodec, TokenType
from app.users import service as user_service
from app.users.exceptions import EmailTaken, WrongPassword
from app.users.models import User
from app.users.schemas import UserRegister
from tests.auth.helpers import reset_token_from, verification_token_from

pytestmark = pytest.mark.anyio

CLIENT = ClientInfo(ip="192.0.2.1", user_agent="pytest")
PASSWORD = "correct-horse-battery"


@pytest.fixture
async def auth(settings: Settings) -> AsyncIterator[AuthComponents]:
    database = Database(settings)
    yield AuthComponents(
        settings=settings,
        hasher=PasswordHasher(settings),
        tokens=TokenCodec(settings),
        limiter=RateLimiter(settings, database.counter_engine),
        mailer=MemoryMailer(),
        principals=PrincipalCache(seconds=0, max_users=1),
    )
    await database.dispose()


async def _registered(
    session: AsyncSession, auth: AuthComponents, email: str = "ada@example.com"
) -> User:
    """An account made by `verification.register` (committed), which signs in with PASSWORD:
    the accounts' own path, not `tests.factories.make_user`, since these tests are about it."""
    data = UserRegister(email=email, password=PASSWORD)
    signed_up = await verification.register(session, auth, data=data, client=CLIENT)
    await session.commit()
    assert signed_up.user is not None
    return signed_up.user


async def _principal(
    session: AsyncSession, auth: AuthComponents, email: str
) -> tuple[service.Principal, Any]:
    pair = await service.sign_in(session, auth, email=email, password=PASSWORD, client=CLIENT)
    await session.commit()
    return await service.authenticate(session, auth, pair.access_token), pair


async def test_register_stores_an_argon2id_hash_and_a_lower_case_email(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _registered(db_session, auth, "Mixed.Case@Example.COM")
    assert user.email == "mixed.case@example.com"
    assert user.hashed_password.startswith("$argon2id$")
    assert PASSWORD not in user.hashed_password
    # The address has an account: nothing is made, and the mail says so.
    again = await verification.register(
        db_session,
        auth,
        data=UserRegister(email="MIXED.case@example.com", password="x" * 12),
        client=CLIENT,
    )
    assert again.user is None
    assert (again.mail.to, again.mail.subject) == (user.email, "You already have an account")


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Spies on argon2's real verification (passlib calls it through the module)."""
    calls: list[bytes] = []
    real = argon2.low_level.verify_secret

    def spy(hash: bytes, secret: bytes, type: Any) -> Any:
        calls.append(hash)
        return real(hash, secret, type)

    monkeypatch.setattr(argon2.low_level, "verify_secret", spy)
    return calls


async def test_unknown_email_and_wrong_password_do_the_same_work(
    db_session: AsyncSession, auth: AuthComponents, verify_calls: list[bytes]
) -> None:
    user = await _registered(db_session, auth)
    outcomes: list[tuple[type[Exception], int]] = []
    for email in (user.email, "nobody@example.com"):
        verify_calls.clear()
        with pytest.raises(InvalidCredentials) as caught:
            await service.sign_in(
                db_session, auth, email=email, password="wrong-password", client=CLIENT
            )
        outcomes.append((type(caught.value), len(verify_calls)))
    assert outcomes == [(InvalidCredentials, 1), (InvalidCredentials, 1)]
    # The unknown email was checked against a hash of the same cost as a real one.
    params = auth.hasher.dummy_hash.split("$")[3]
    assert params == user.hashed_password.split("$")[3]


async def test_an_inactive_user_gets_invalid_credentials_after_one_verify(
    db_session: AsyncSession, auth: AuthComponents, verify_calls: list[bytes]
) -> None:
    user = await _registered(db_session, auth)
    user.is_active = False
    db_session.add(user)
    await db_session.commit()
    with pytest.raises(InvalidCredentials):
        await service.sign_in(db_session, auth, email=user.email, password=PASSWORD, client=CLIENT)
    assert len(verify_calls) == 1


async def test_sign_in_opens_a_session_with_the_client_details(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _registered(db_session, auth)
    principal, pair = await _principal(db_session, auth, user.email)
    row = await db_session.get(AuthSession, principal.session_id)
    assert row is not None
    assert (row.user_id, row.user_agent, row.ip_address) == (user.id, "pytest", "192.0.2.1")
    assert row.revoked_at is None
    claims = auth.tokens.decode(pair.refresh_token, TokenType.REFRESH)
    assert claims.jti == row.refresh_jti


async def test_refresh_rotates_and_a_replay_revokes_the_session(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    # No grace window: any reuse is a stolen token's (tests/auth/test_router.py has the window).
    auth = dataclasses.replace(
        auth, settings=auth.settings.model_copy(update={"REFRESH_REUSE_GRACE_SECONDS": 0})
    )
    user = await _registered(db_session, auth)
    principal, pair = await _principal(db_session, auth, user.email)
    new_pair = await service.refresh(db_session, auth, refresh_token=pair.refresh_token)
    await db_session.commit()
    assert new_pair.refresh_token != pair.refresh_token

    with pytest.raises(RefreshTokenReused) as caught:
        await service.refresh(db_session, auth, refresh_token=pair.refresh_token)
    assert caught.value.keeps_writes is True
    await db_session.commit()  # what the request does for an error that keeps its writes
    row = await db_session.get(AuthSession, principal.session_id, populate_existing=True)
    assert row is not None
    assert row.revoked_at is not None
    with pytest.raises(InvalidRefreshToken):
        await service.refresh(db_session, auth, refresh_token=new_pair.refresh_token)
    with pytest.raises(InvalidTokenError):
        await service.authenticate(db_session, auth, new_pair.access_token)


async def test_revoke_session_only_ends_the_owners_open_session(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    ada = await _registered(db_session, auth, "ada@example.com")
    bob = await _registered(db_session, auth, "bob@example.com")
    ada_principal, _ = await _principal(db_session, auth, ada.email)
    with pytest.raises(SessionNotFound):
        await service.revoke_session(
            db_session, user_id=bob.id, session_id=ada_principal.session_id
        )
    await service.revoke_session(db_session, user_id=ada.id, session_id=ada_principal.session_id)
    with pytest.raises(SessionNotFound):
        await service.revoke_session(
            db_session, user_id=ada.id, session_id=ada_principal.session_id
        )


async def test_list_sessions_shows_open_sessions_only(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _registered(db_session, auth)
    first, _ = await _principal(db_session, auth, user.email)
    second, _ = await _principal(db_session, auth, user.email)
    third, _ = await _principal(db_session, auth, user.email)
    await service.revoke_session(db_session, user_id=user.id, session_id=second.session_id)
    codec = CursorCodec(auth.settings.SECRET_KEY.get_secret_value())
    page = await service.list_sessions(
        db_session,
        principal=first,
        page=PageParams(limit=1, cursor=None, include_total=True),
        codec=codec,
    )
    assert page.total == 2
    assert [item.id for item in page.items] == [third.session_id]
    assert page.next_cursor is not None
    rest = await service.list_sessions(
        db_session,
        principal=first,
        page=PageParams(limit=5, cursor=page.next_cursor, include_total=False),
        codec=codec,
    )
    assert [(item.id, item.current) for item in rest.items] == [(first.session_id, True)]


async def test_change_password_keeps_only_the_current_session(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _registered(db_session, auth)
    user_id, email = user.id, user.email
    current, current_pair = await _principal(db_session, auth, email)
    _, other_pair = await _principal(db_session, auth, email)
    with pytest.raises(WrongPassword):
        await service.change_password(
            db_session,
            auth,
            principal=current,
            current_password="not-it-at-all",
            new_password="new-password-1",
        )
    # A refusal undoes the request's writes (and expires what the session held).
    current = await service.authenticate(db_session, auth, current_pair.access_token)
    with pytest.raises(PasswordIsEmail):
        await service.change_password(
            db_session,
            auth,
            principal=current,
            current_password=PASSWORD,
            new_password=email.upper(),
        )
    await service.change_password(
        db_session,
        auth,
        principal=current,
        current_password=PASSWORD,
        new_password="new-password-1",
    )
    await db_session.commit()
    with pytest.raises(InvalidTokenError):
        await service.authenticate(db_session, auth, other_pair.access_token)
    still = await service.authenticate(db_session, auth, current_pair.access_token)
    assert still.user.id == user_id
    assert await auth.hasher.verify("new-password-1", still.user.hashed_password)


async def test_request_password_reset_makes_mail_for_active_accounts_only(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _registered(db_session, auth)
    assert (
        await service.request_password_reset(
            db_session, auth, email="nobody@example.com", client=CLIENT
        )
        is None
    )
    mail = await service.request_password_reset(db_session, auth, email=user.email, client=CLIENT)
    assert mail is not None
    assert mail.to == user.email
    await service.send_mail(auth.mailer, mail)
    assert isinstance(auth.mailer, MemoryMailer)
    assert auth.mailer.outbox == [mail]
    user.is_active = False
    db_session.add(user)
    await db_session.commit()
    assert (
        await service.request_password_reset(db_session, auth, email=user.email, client=CLIENT)
        is None
    )


async def test_reset_password_works_once(db_session: AsyncSession, auth: AuthComponents) -> None:
    user = await _registered(db_session, auth)
    _, pair = await _principal(db_session, auth, user.email)
    mail = await service.request_password_reset(db_session, auth, email=user.email, client=CLIENT)
    assert mail is not None
    token = reset_token_from(mail)
    await service.reset_password(db_session, auth, token=token, new_password="brand-new-pass")
    await db_session.commit()
    with pytest.raises(InvalidTokenError):
        await service.authenticate(db_session, auth, pair.access_token)
    with pytest.raises(InvalidResetToken):
        await service.reset_password(db_session, auth, token=token, new_password="again-new-pass")
    for wrong_kind in (pair.access_token, pair.refresh_token):
        with pytest.raises(InvalidResetToken):
            await service.reset_password(
                db_session, auth, token=wrong_kind, new_password="again-new-pass"
            )


async def test_sessions_of_a_deleted_user_disappear(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    user = await _registered(db_session, auth)
    principal, pair = await _principal(db_session, auth, user.email)
    await user_service.delete_user(db_session, principal.user)
    await db_session.commit()
    rows = (await db_session.exec(select(AuthSession).where(AuthSession.user_id == user.id))).all()
    assert rows == []
    with pytest.raises(InvalidTokenError):
        await service.authenticate(db_session, auth, pair.access_token)


@pytest.mark.parametrize(
    ("password", "email"),
    [("ada@example.com", "ada@example.com"), (" ADA@example.com ", "ada@example.com")],
)
async def test_ensure_password_not_email(password: str, email: str) -> None:
    with pytest.raises(PasswordIsEmail):
        service.ensure_password_not_email(password, email)
    service.ensure_password_not_email("something-else", email)


async def test_throttled_sign_in_raises_429_with_retry_after(
    db_session: AsyncSession, settings: Settings
) -> None:
    strict = settings.model_copy(update={"LOGIN_MAX_FAILURES_PER_ACCOUNT": 1})
    database = Database(strict)
    auth = AuthComponents(
        settings=strict,
        hasher=PasswordHasher(strict),
        tokens=TokenCodec(strict),
        limiter=RateLimiter(strict, database.counter_engine),
        mailer=MemoryMailer(),
        principals=PrincipalCache(seconds=0, max_users=1),
    )
    try:
        with pytest.raises(InvalidCredentials):
            await service.sign_in(
                db_session, auth, email="x@example.com", password="nope-nope", client=CLIENT
            )
        with pytest.raises(TooManyRequests) as caught:
            await service.sign_in(
                db_session, auth, email="x@example.com", password="nope-nope", client=CLIENT
            )
        assert int(caught.value.headers["Retry-After"]) >= 1
    finally:
        await database.dispose()


# --- sign-up and confirmed addresses (app/auth/verification.py) ---------------------------


def _verifying(auth: AuthComponents) -> AuthComponents:
    on = auth.settings.model_copy(update={"EMAIL_VERIFICATION_ENABLED": True})
    return dataclasses.replace(auth, settings=on)


async def test_register_with_verification_makes_an_unconfirmed_account_and_a_link(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    on = _verifying(auth)
    data = UserRegister(email="vera@example.com", password=PASSWORD)
    signed_up = await verification.register(db_session, on, data=data, client=CLIENT)
    await db_session.commit()
    user = signed_up.user
    assert user is not None
    assert (user.email_verified, user.pending_email) == (False, None)
    token = verification_token_from(signed_up.mail)
    confirmed = await verification.verify_email(db_session, on, token=token)
    await db_session.commit()
    assert confirmed.email_verified
    with pytest.raises(InvalidVerificationToken):
        await verification.verify_email(db_session, on, token=token)


async def test_a_pending_address_another_account_took_is_email_taken_at_verify_time(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    on = _verifying(auth)
    user = await _registered(db_session, auth, "walt@example.com")
    await _registered(db_session, auth, "olga@example.com")
    user.pending_email = "olga@example.com"
    db_session.add(user)
    await db_session.commit()
    mail = verification.verification_mail(on, user, address="olga@example.com")
    with pytest.raises(EmailTaken):
        await verification.verify_email(db_session, on, token=verification_token_from(mail))


async def test_resend_mails_only_an_active_unconfirmed_account(
    db_session: AsyncSession, auth: AuthComponents
) -> None:
    on = _verifying(auth)
    data = UserRegister(email="rhea@example.com", password=PASSWORD)
    assert (await verification.register(db_session, on, data=data, client=CLIENT)).user
    await db_session.commit()
    confirmed = await _registered(db_session, auth, "cleo@example.com")  # verification off
    assert confirmed.email_verified

    async def resend(email: str, components: AuthComponents = on) -> Any:
        return await verification.request_verification(
            db_session, components, email=email, client=CLIENT
        )

    mail = await resend("rhea@example.com")
    assert mail is not None
    assert mail.to == "rhea@example.com"
    assert await resend("cleo@example.com") is None
    assert await resend("nobody@example.com") is None
    assert await resend("rhea@example.com", auth) is None  # verification off
