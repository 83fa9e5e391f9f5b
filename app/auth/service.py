"""Signing in and out: sessions, token rotation, throttling and password recovery.

Plain functions over the request's session and the process's `AuthComponents`; the routers
only parse, call and return. Sign-up and confirmed addresses are in `verification.py`.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, literal, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm.util import identity_key
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.cache import KEEPS_PRINCIPALS, PrincipalCache
from app.auth.exceptions import (
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidTokenError,
    PasswordIsEmail,
    PasswordRecoveryDisabled,
    PasswordRequired,
    SessionNotFound,
    TokenExpiredError,
)
from app.auth.models import USER_AGENT_MAX_LENGTH, AuthSession
from app.auth.schemas import SessionPublic, TokenPair
from app.core import metrics
from app.core.config import Settings
from app.core.db import end_read_only_transaction
from app.core.errors import TooManyRequests
from app.core.mail import Mail, Mailer
from app.core.models import UTCDateTime, detached_instance, table_of, utcnow
from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.core.rate_limit import RateLimiter
from app.core.schemas import EMAIL_MAX_LENGTH, canonical_email, typed_email
from app.core.security import (
    InvalidToken,
    PasswordHasher,
    TokenCodec,
    TokenExpired,
    TokenType,
    credential_fingerprint,
)
from app.users import service as user_service
from app.users.exceptions import WrongPassword
from app.users.models import User

# Touching last_used_at on every request would turn every read into a write; once a minute
# is precise enough for a "last active" column.
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class AuthComponents:
    """The process-wide pieces authentication needs, built once by the lifespan."""

    settings: Settings
    hasher: PasswordHasher
    tokens: TokenCodec
    limiter: RateLimiter
    mailer: Mailer
    principals: PrincipalCache


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user and the sign-in session their token belongs to."""

    user: User
    session_id: uuid.UUID


class InvalidUUID(ValueError):
    pass


def _uuid(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise InvalidUUID(value) from exc


# The public quotas (per client address), as the RateLimit headers name them.
REGISTER_POLICY = "register"
SIGN_IN_POLICY = "sign-in-failures"
RECOVERY_POLICY = "password-recovery"


class Budget(NamedTuple):
    """One rate-limit counter: its key, its limit, and the public policy name that the
    RateLimit headers show it under (None: never shown, as for per-account budgets)."""

    key: str
    limit: int
    policy: str | None = None
    # Which budget it is, for the throttle-hit metric (app.core.metrics.THROTTLE_KINDS).
    kind: str = "other"


async def _throttle_check(limiter: RateLimiter, budgets: list[Budget], window: int) -> None:
    # Every budget is read (so each public one is announced) before the first spent one says no.
    decisions = [
        await limiter.check(
            budget.key, limit=budget.limit, window_seconds=window, policy=budget.policy
        )
        for budget in budgets
    ]
    for budget, decision in zip(budgets, decisions, strict=True):
        if not decision.allowed:
            metrics.count_throttle_hit(budget.kind)
            raise TooManyRequests(decision.retry_after)


async def _throttle_hit(limiter: RateLimiter, budgets: list[Budget], window: int) -> None:
    for key, limit, policy, kind in budgets:
        decision = await limiter.hit(key, limit=limit, window_seconds=window, policy=policy)
        if not decision.allowed:
            metrics.count_throttle_hit(kind)
            raise TooManyRequests(decision.retry_after)


def _printable(text: str) -> str:
    # Headers come from the client: no control characters into the database (PostgreSQL
    # refuses NUL outright).
    return "".join(char for char in text if char.isprintable())


def _login_account_key(settings: Settings, email: str, client: ClientInfo) -> Budget:
    # The strict budget: one account from one client address.
    return Budget(
        f"login:account:{email}:ip:{client.ip}",
        settings.LOGIN_MAX_FAILURES_PER_ACCOUNT,
        kind="login_pair",
    )


def _login_ceiling_key(settings: Settings, email: str) -> Budget:
    # The account-wide ceiling, whatever the address: guessing spread over many addresses.
    return Budget(
        f"login:account:{email}", settings.LOGIN_MAX_ATTEMPTS_PER_ACCOUNT, kind="login_ceiling"
    )


def ensure_password_not_email(password: str, email: str) -> None:
    """PasswordIsEmail when the password is the account's email (ignoring case and spaces)."""
    if password.strip().lower() == email.strip().lower():
        raise PasswordIsEmail()


def _issue_pair(
    auth: AuthComponents,
    user: User,
    auth_session: AuthSession,
    *,
    refresh_issued_at: datetime | None = None,
) -> TokenPair:
    settings = auth.settings
    access_lifetime = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
    access, _ = auth.tokens.encode(
        subject=str(user.id),
        token_type=TokenType.ACCESS,
        lifetime=access_lifetime,
        session_id=str(auth_session.id),
    )
    refresh, _ = auth.tokens.encode(
        subject=str(user.id),
        token_type=TokenType.REFRESH,
        lifetime=timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS),
        session_id=str(auth_session.id),
        jti=auth_session.refresh_jti,
        now=refresh_issued_at,
    )
    return TokenPair(
        access_token=access,
        expires_in=int(access_lifetime.total_seconds()),
        refresh_token=refresh,
    )


async def _account_for_sign_in(session: AsyncSession, email: str, typed: str) -> User | None:
    # The address as typed first: an account the stored-email migration left in its old form
    # (its canonical form is another account's) signs in with exactly what it registered.
    user = None
    if len(typed) <= EMAIL_MAX_LENGTH:
        user = await user_service.get_user_by_email(session, typed)
    if user is None and email != typed and len(email) <= EMAIL_MAX_LENGTH:
        user = await user_service.get_user_by_email(session, email)
    return user


async def sign_in(
    session: AsyncSession,
    auth: AuthComponents,
    *,
    email: str,
    password: str,
    client: ClientInfo,
) -> TokenPair:
    """Check the credentials and open a sign-in session.

    An unknown email and a wrong password give the same error after the same work (a hash
    verification). Each attempt is counted before the password is checked (so concurrent
    guesses cannot all pass one check): per account and client address (strict; a success
    clears it), per account from every address (a high ceiling), and per client address
    (its failures). Past any, the caller gets 429 until the window ends; failures elsewhere
    never lock the owner out of their own address.
    """
    settings = auth.settings
    # Found and counted by the form sign-up stores, so every spelling of an address (case,
    # punycode, fullwidth letters) reaches its account and shares its budgets.
    typed = typed_email(email)
    email = canonical_email(email) or typed
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    account_key = _login_account_key(settings, email, client)
    ceiling_key = _login_ceiling_key(settings, email)
    ip_key = Budget(
        f"login:ip:{client.ip}", settings.LOGIN_MAX_FAILURES_PER_IP, SIGN_IN_POLICY, "login_ip"
    )
    await _throttle_check(auth.limiter, [ip_key], window)
    await _throttle_hit(auth.limiter, [account_key, ceiling_key], window)

    user = await _account_for_sign_in(session, email, typed)
    await end_read_only_transaction(session)
    ok, new_hash = await auth.hasher.verify_and_update(
        password, user.hashed_password if user else None
    )
    if user is None or not ok or not user.is_active:
        await auth.limiter.hit(
            ip_key.key, limit=ip_key.limit, window_seconds=window, policy=ip_key.policy
        )
        reason = "unknown_account" if user is None else "wrong_password" if not ok else "inactive"
        metrics.count_sign_in_failure(reason)
        raise InvalidCredentials()
    await auth.limiter.clear(account_key.key, limit=account_key.limit, window_seconds=window)
    # The ceiling counts failures (and attempts in flight): a success is taken back.
    await auth.limiter.refund(ceiling_key.key, limit=ceiling_key.limit, window_seconds=window)

    if new_hash:
        # Outdated scheme (bcrypt) or parameters: upgrade while we hold the plain password.
        user.hashed_password = new_hash
        session.add(user)
    now = utcnow()
    auth_session = AuthSession(
        user_id=user.id,
        refresh_jti=uuid.uuid4().hex,
        user_agent=_printable(client.user_agent or "")[:USER_AGENT_MAX_LENGTH] or None,
        ip_address=client.ip[:64],
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS),
    )
    session.add(auth_session)
    await session.flush()
    return _issue_pair(auth, user, auth_session)


async def _repeated_refresh(
    session: AsyncSession,
    auth: AuthComponents,
    auth_session: AuthSession,
    jti: str,
    now: datetime,
) -> TokenPair | None:
    """The pair for a repeat of the refresh token just replaced, inside the grace window: the
    successor refresh token as it was issued (same claims, so the same token) and a new
    access token. None for any other reuse."""
    rotated = auth_session.rotated_at
    grace = timedelta(seconds=auth.settings.REFRESH_REUSE_GRACE_SECONDS)
    # `now` was read before this request waited for the session's lock, so a rotation that
    # happened meanwhile is "in the future" (now - rotated < 0): no grace means no repeats.
    if (
        not grace
        or auth_session.previous_refresh_jti != jti
        or rotated is None
        or now - rotated >= grace
    ):
        return None
    user = await session.get(User, auth_session.user_id)
    if user is None or not user.is_active or auth_session.expires_at <= now:
        return None
    return _issue_pair(auth, user, auth_session, refresh_issued_at=rotated)


class RefreshTokenReused(InvalidRefreshToken):
    """A refresh token was presented again: the session is revoked, and that must persist."""

    keeps_writes = True


async def refresh(session: AsyncSession, auth: AuthComponents, *, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; each refresh token works once.

    The swap is a compare-and-set on the session's current refresh token id, so two racing
    uses of one token cannot both win. The token just replaced, presented again within
    REFRESH_REUSE_GRACE_SECONDS (two tabs, a retry), gets the same successor refresh token
    (re-minted with identical claims) and a new access token; the session's life is not
    extended. Any other token that was already exchanged leaked: the session is revoked.
    """
    try:
        claims = auth.tokens.decode(refresh_token, TokenType.REFRESH)
        session_id = _uuid(claims.session_id)
        user_id = _uuid(claims.subject)
    except (InvalidToken, InvalidUUID) as exc:
        raise InvalidRefreshToken() from exc
    now = utcnow()
    new_jti = uuid.uuid4().hex
    swapped = await session.exec(
        update(AuthSession)
        .where(
            col(AuthSession.id) == session_id,
            col(AuthSession.user_id) == user_id,
            col(AuthSession.refresh_jti) == claims.jti,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > now,
        )
        .values(
            refresh_jti=new_jti,
            previous_refresh_jti=claims.jti,
            rotated_at=now,
            last_used_at=now,
            expires_at=now + timedelta(days=auth.settings.REFRESH_TOKEN_EXPIRE_DAYS),
        )
        .returning(col(AuthSession.id))
        # A later expiry and a new refresh token id: no cached answer becomes wrong.
        .execution_options(synchronize_session=False, **{KEEPS_PRINCIPALS: True})
    )
    if swapped.first() is None:
        auth_session = await session.get(AuthSession, session_id)
        if (
            auth_session is not None
            and auth_session.user_id == user_id
            and auth_session.revoked_at is None
        ):
            repeat = await _repeated_refresh(session, auth, auth_session, claims.jti, now)
            if repeat is not None:
                return repeat
            auth_session.revoked_at = now
            session.add(auth_session)
            await session.flush()
            raise RefreshTokenReused()
        raise InvalidRefreshToken()
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise InvalidRefreshToken()
    auth_session = await session.get(AuthSession, session_id, populate_existing=True)
    assert auth_session is not None  # noqa: S101 - the update above just matched it
    return _issue_pair(auth, user, auth_session)


async def authenticate(session: AsyncSession, auth: AuthComponents, token: str) -> Principal:
    """Resolve an access token to its user, honouring revocation: one indexed query at most.

    The token must verify (signature, algorithm, audience, expiry) and its session must still
    be open, so logging out, a password change or a revoked session stop it at once, in every
    process. A deactivated user's tokens stop working too. On PostgreSQL the answer usually
    comes from `auth.principals`, which the database keeps current (app/auth/cache.py).
    """
    try:
        claims = auth.tokens.decode(token, TokenType.ACCESS)
        session_id = _uuid(claims.session_id)
        user_id = _uuid(claims.subject)
    except TokenExpired as exc:
        raise TokenExpiredError() from exc
    except (InvalidToken, InvalidUUID) as exc:
        raise InvalidTokenError() from exc
    now = utcnow()
    principals = auth.principals
    known = principals.lookup(user_id, session_id, now)
    if known is None:
        generation = principals.generation
        result = await session.exec(
            _PRINCIPAL_QUERY, params={"session_id": session_id, "user_id": user_id, "now": now}
        )
        row = result.first()
        if row is None:
            raise InvalidTokenError()
        *user_values, last_used_at, expires_at = row
        values = dict(zip(_USER_COLUMN_NAMES, user_values, strict=True))
        principals.store(
            generation, values, session_id, expires_at=expires_at, last_used_at=last_used_at
        )
    else:
        values, last_used_at = known
    if now - last_used_at > LAST_USED_GRANULARITY:
        await session.exec(_TOUCH_SESSION, params={"session_id": session_id, "now": now})
        principals.touched(user_id, session_id, now)
    return Principal(user=_as_loaded(session, values), session_id=session_id)


def _as_loaded(session: AsyncSession, values: dict[str, Any]) -> User:
    """The user as stored, a fresh instance per request (never shared between requests).

    Detached: the services that change a user `session.add()` it first, which makes it the
    session's own, unchanged, so only what they change is written. Attaching it here would
    cost every request (a tenth of `GET /users/me`) for the few that write.
    """
    loaded = session.identity_map.get(identity_key(User, values["id"]))
    if isinstance(loaded, User):
        if not sa_inspect(loaded).unloaded:
            return loaded  # what a query would have returned too
        session.expunge(loaded)  # expired (a rollback): a query would have reloaded it
    return detached_instance(User, values)


# The token check runs on every request: its statements are built once, with bound
# parameters, so SQLAlchemy neither rebuilds the expression nor recomputes its cache key
# (both are per statement object) on each call. Columns, not an entity: the row is cached.
_USER_COLUMNS = list(table_of(User).columns)
_USER_COLUMN_NAMES = tuple(column.key for column in _USER_COLUMNS)
_SESSION_COLUMNS = table_of(AuthSession).c
_PRINCIPAL_QUERY = (
    select(*[*_USER_COLUMNS, _SESSION_COLUMNS.last_used_at, _SESSION_COLUMNS.expires_at])
    .join(AuthSession, col(AuthSession.user_id) == col(User.id))
    .where(
        col(AuthSession.id) == bindparam("session_id"),
        col(User.id) == bindparam("user_id"),
        col(AuthSession.revoked_at).is_(None),
        col(AuthSession.expires_at) > bindparam("now"),
    )
)
_TOUCH_SESSION = (
    update(AuthSession)
    .where(col(AuthSession.id) == bindparam("session_id"))
    .values(last_used_at=bindparam("now"))
    .execution_options(synchronize_session=False, **{KEEPS_PRINCIPALS: True})
)


async def revoke_session(
    session: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID
) -> None:
    """End one of the user's sessions; SessionNotFound if it is not theirs or already ended."""
    result = await session.exec(
        update(AuthSession)
        .where(
            col(AuthSession.id) == session_id,
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
        )
        .values(revoked_at=utcnow())
        .returning(col(AuthSession.id))
        .execution_options(synchronize_session=False)
    )
    if result.first() is None:
        raise SessionNotFound()


async def revoke_all_sessions(
    session: AsyncSession, *, user_id: uuid.UUID, except_session_id: uuid.UUID | None = None
) -> None:
    """End every open session of the user (but the one given, if any)."""
    statement = (
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if except_session_id is not None:
        statement = statement.where(col(AuthSession.id) != except_session_id)
    await session.exec(statement)


SESSION_KEYS = [SortKey(col(AuthSession.created_at), descending=True), SortKey(col(AuthSession.id))]


async def list_sessions(
    session: AsyncSession, *, principal: Principal, page: PageParams, codec: CursorCodec
) -> Page[SessionPublic]:
    """The caller's open sessions, newest first."""
    statement = select(AuthSession).where(
        col(AuthSession.user_id) == principal.user.id,
        col(AuthSession.revoked_at).is_(None),
        col(AuthSession.expires_at) > utcnow(),
    )
    return await paginate(
        session,
        statement,
        keys=SESSION_KEYS,
        page=page,
        codec=codec,
        scope="sessions",
        key_of=lambda row: [row.created_at, row.id],
        to_item=lambda row: SessionPublic.model_validate(
            {**row.model_dump(), "current": row.id == principal.session_id}
        ),
    )


async def confirm_password(
    session: AsyncSession, auth: AuthComponents, *, user: User, password: str | None
) -> None:
    """Check the signed-in user's password before a sensitive change.

    A wrong password counts as a failed sign-in of the account: a stolen access token must
    not become an unthrottled oracle for guessing the password.
    """
    if password is None:
        raise PasswordRequired()
    settings = auth.settings
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    # Only the holder of a valid token for this account can spend this budget.
    account_key = Budget(
        f"confirm:account:{user.email}", settings.LOGIN_MAX_FAILURES_PER_ACCOUNT, kind="confirm"
    )
    await _throttle_check(auth.limiter, [account_key], window)
    if not await auth.hasher.verify(password, user.hashed_password):
        # Undo this request's writes first (authenticate may have touched last_used_at): on
        # SQLite an open write transaction would lock out the limiter's own connection.
        await session.rollback()
        await auth.limiter.hit(account_key.key, limit=account_key.limit, window_seconds=window)
        raise WrongPassword()


async def change_password(
    session: AsyncSession,
    auth: AuthComponents,
    *,
    principal: Principal,
    current_password: str,
    new_password: str,
) -> None:
    """Replace the caller's password and sign out every other session."""
    user = principal.user
    await confirm_password(session, auth, user=user, password=current_password)
    ensure_password_not_email(new_password, user.email)
    user.hashed_password = await auth.hasher.hash(new_password)
    user.updated_at = utcnow()
    session.add(user)
    await revoke_all_sessions(session, user_id=user.id, except_session_id=principal.session_id)


async def request_password_reset(
    session: AsyncSession, auth: AuthComponents, *, email: str, client: ClientInfo
) -> Mail | None:
    """Make the reset mail for an active account; None (and the same answer) otherwise.

    The token is bound to the current password hash, so it works once: the reset changes the
    hash and every token issued before it dies with it.
    """
    settings = auth.settings
    if not settings.PASSWORD_RECOVERY_ENABLED:
        raise PasswordRecoveryDisabled()
    await _throttle_hit(
        auth.limiter,
        [
            Budget(
                f"recovery:ip:{client.ip}",
                settings.RECOVERY_MAX_PER_IP,
                RECOVERY_POLICY,
                kind="recovery_ip",
            ),
            # Per email and address: requests from elsewhere never block the owner's reset.
            Budget(
                f"recovery:email:{email}:ip:{client.ip}",
                settings.RECOVERY_MAX_PER_EMAIL,
                kind="recovery_email_ip",
            ),
            Budget(
                f"recovery:email:{email}",
                settings.RECOVERY_MAX_PER_EMAIL_ALL_ADDRESSES,
                kind="recovery_email",
            ),
        ],
        settings.RECOVERY_WINDOW_SECONDS,
    )
    user = await user_service.get_user_by_email(session, email)
    if user is None or not user.is_active:
        return None
    token, _ = auth.tokens.encode(
        subject=str(user.id),
        token_type=TokenType.RESET,
        lifetime=timedelta(minutes=settings.PASSWORD_RESET_EXPIRE_MINUTES),
        extra={"pwh": credential_fingerprint(user.hashed_password, user.email)},
    )
    link = f"{str(settings.FRONTEND_URL).rstrip('/')}/reset-password#token={token}"
    body = (
        "Someone asked to reset the password of your account.\n\n"
        f"Open this link within {settings.PASSWORD_RESET_EXPIRE_MINUTES} minutes:\n{link}\n\n"
        f"Or send this token to POST /api/v1/auth/password-reset:\n{token}\n\n"
        "If it was not you, ignore this mail; your password stays as it is."
    )
    return Mail(to=user.email, subject="Reset your password", body=body)


async def send_mail(mailer: Mailer, mail: Mail) -> None:
    await mailer.send(mail)


async def reset_password(
    session: AsyncSession, auth: AuthComponents, *, token: str, new_password: str
) -> None:
    """Set a new password from a reset token, then end every session of that user; the
    account's address counts as confirmed from then on (the token was mailed to it).

    The token is bound to the password hash it was issued for; the hash is swapped with a
    compare-and-set on that old hash, so two requests racing with one token cannot both win.
    """
    if not auth.settings.PASSWORD_RECOVERY_ENABLED:
        raise PasswordRecoveryDisabled()
    try:
        claims = auth.tokens.decode(token, TokenType.RESET)
        user_id = _uuid(claims.subject)
    except (InvalidToken, InvalidUUID) as exc:
        raise InvalidResetToken() from exc
    user = await session.get(User, user_id)
    if (
        user is None
        or not user.is_active
        or claims.extra.get("pwh") != credential_fingerprint(user.hashed_password, user.email)
    ):
        raise InvalidResetToken()
    ensure_password_not_email(new_password, user.email)
    old_hash = user.hashed_password
    await end_read_only_transaction(session)
    new_hash = await auth.hasher.hash(new_password)
    now = utcnow()
    swapped = await session.exec(
        update(User)
        .where(
            col(User.id) == user.id,
            col(User.hashed_password) == old_hash,
            col(User.email) == user.email,
        )
        .values(
            hashed_password=new_hash,
            updated_at=now,
            # The reset link reached the address: that proves it as a confirmation link does.
            email_verified_at=func.coalesce(
                col(User.email_verified_at), literal(now, type_=UTCDateTime())
            ),
        )
        .returning(col(User.id))
        .execution_options(synchronize_session=False)
    )
    if swapped.first() is None:
        raise InvalidResetToken()
    await revoke_all_sessions(session, user_id=user.id)
