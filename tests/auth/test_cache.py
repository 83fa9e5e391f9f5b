"""Verified callers remembered per process (app/auth/cache.py), and what makes them forgotten.

On PostgreSQL the cache is on and the database announces changes; on SQLite it never serves
(no announcements), so each test states what holds on each database.
"""

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import service, verification
from app.auth.cache import CHANNEL, PrincipalCache, start_principal_cache
from app.auth.exceptions import InvalidTokenError
from app.auth.schemas import TokenPair
from app.auth.service import AuthComponents, ClientInfo
from app.core.config import Settings
from app.core.db import Database
from app.core.listener import asyncpg_dsn
from app.core.mail import MemoryMailer
from app.core.models import utcnow
from app.core.rate_limit import RateLimiter
from app.core.security import PasswordHasher, TokenCodec
from app.users.models import User
from app.users.schemas import UserRegister
from tests.auth.helpers import change_elsewhere, execute, scalar, uuid_param
from tests.factories import API, SignedInUser, new_user, sign_in
from tests.helpers import HANG_GUARD, ManualClock, assert_problem


def _is_postgres(client: TestClient) -> bool:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    return settings.is_postgres


def _cache(client: TestClient) -> PrincipalCache:
    cache: PrincipalCache = client.app.state.auth.principals  # type: ignore[attr-defined]
    return cache


@pytest.fixture
def token_checks() -> Iterator[list[str]]:
    """The token-check queries any engine sends while the test runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = args[2]
        if "FROM auth_session" in statement or "JOIN auth_session" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_a_known_caller_is_served_from_memory_on_postgres_only(
    client: TestClient, token_checks: list[str]
) -> None:
    user = new_user(client)
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    token_checks.clear()
    for _ in range(3):
        assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
        assert client.get(f"{API}/tasks", headers=user.headers).status_code == 200
    if _is_postgres(client):
        assert _cache(client).enabled
        assert token_checks == []
    else:
        assert not _cache(client).enabled
        assert len(token_checks) == 6


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE auth_session SET revoked_at = CURRENT_TIMESTAMP WHERE user_id = :id",
        "UPDATE auth_session SET expires_at = CURRENT_TIMESTAMP WHERE user_id = :id",
        "DELETE FROM auth_session WHERE user_id = :id",
        'UPDATE "user" SET is_active = false WHERE id = :id',
        'DELETE FROM "user" WHERE id = :id',
    ],
)
def test_a_change_made_elsewhere_ends_the_remembered_caller(
    client: TestClient, housekeeping_engine: Engine, sql: str
) -> None:
    user = new_user(client)
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    change_elsewhere(client, housekeeping_engine, sql, id=uuid_param(housekeeping_engine, user.id))
    assert_problem(client.get(f"{API}/users/me", headers=user.headers), 401, "invalid_token")


def test_a_profile_change_made_elsewhere_is_served_fresh(
    client: TestClient, housekeeping_engine: Engine
) -> None:
    user = new_user(client)
    assert client.get(f"{API}/users/me", headers=user.headers).json()["full_name"] is None
    change_elsewhere(
        client,
        housekeeping_engine,
        "UPDATE \"user\" SET full_name = 'Changed Elsewhere' WHERE id = :id",
        id=uuid_param(housekeeping_engine, user.id),
    )
    me = client.get(f"{API}/users/me", headers=user.headers).json()
    assert me["full_name"] == "Changed Elsewhere"


def test_own_changes_apply_before_the_response(client: TestClient) -> None:
    """Logout, revoking another session, role and profile changes: the next request knows."""
    user = new_user(client)
    second = sign_in(client, user.email, user.password)
    second_headers = {"Authorization": f"Bearer {second['access_token']}"}
    assert client.get(f"{API}/users/me", headers=second_headers).status_code == 200
    assert client.post(f"{API}/auth/logout", headers=second_headers).status_code == 204
    assert_problem(client.get(f"{API}/users/me", headers=second_headers), 401)

    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    reply = client.patch(f"{API}/users/me", json={"full_name": "New"}, headers=user.headers)
    assert reply.status_code == 200, reply.text
    assert client.get(f"{API}/users/me", headers=user.headers).json()["full_name"] == "New"


@pytest.mark.anyio
async def test_a_commit_of_this_process_empties_the_cache_without_any_announcement(
    settings: Settings, db_session: AsyncSession, housekeeping_engine: Engine
) -> None:
    """The session events alone (no listener here): a revocation is applied at commit."""
    database = Database(settings)
    cache = start_principal_cache(settings, database)
    cache.listening(True)  # as if heard; this test runs no listener
    auth = _auth(settings, cache, database)
    try:
        async with database.sessionmaker() as session:
            user, pair = await _signed_in(session, auth)
            principal = await service.authenticate(session, auth, pair.access_token)
            await session.commit()
        assert len(cache) == 1
        async with database.sessionmaker() as session:
            await service.authenticate(session, auth, pair.access_token)  # served from memory
            await service.revoke_session(session, user_id=user.id, session_id=principal.session_id)
            assert len(cache) == 1  # not before the commit: a rollback would keep it valid
            await session.commit()
        assert len(cache) == 0
        async with database.sessionmaker() as session:
            with pytest.raises(InvalidTokenError):
                await service.authenticate(session, auth, pair.access_token)
    finally:
        await database.dispose()


@pytest.mark.anyio
async def test_marking_a_session_used_keeps_the_cache(
    settings: Settings, db_session: AsyncSession
) -> None:
    database = Database(settings)
    cache = start_principal_cache(settings, database)
    cache.listening(True)
    auth = _auth(settings, cache, database)
    try:
        async with database.sessionmaker() as session:
            _, pair = await _signed_in(session, auth)
            principal = await service.authenticate(session, auth, pair.access_token)
            await session.commit()
        # Last used an hour ago: the next check marks the session used (an UPDATE).
        cache.touched(principal.user.id, principal.session_id, utcnow() - timedelta(hours=1))
        async with database.sessionmaker() as session:
            await service.authenticate(session, auth, pair.access_token)
            await session.commit()
        assert len(cache) == 1
        known = cache.lookup(principal.user.id, principal.session_id, utcnow())
        assert known is not None
        assert utcnow() - known[1] < timedelta(minutes=1)  # ... and the cache knows it
    finally:
        await database.dispose()


def _auth(settings: Settings, cache: PrincipalCache, database: Database) -> AuthComponents:
    return AuthComponents(
        settings=settings,
        hasher=PasswordHasher(settings),
        tokens=TokenCodec(settings),
        limiter=RateLimiter(settings, database.counter_engine),
        mailer=MemoryMailer(),
        principals=cache,
    )


async def _signed_in(session: AsyncSession, auth: AuthComponents) -> tuple[User, TokenPair]:
    email = f"cache-{uuid.uuid4().hex[:8]}@example.com"
    password = "cache-password-1234"
    client = ClientInfo("192.0.2.1", "pytest")
    data = UserRegister(email=email, password=password)
    user = (await verification.register(session, auth, data=data, client=client)).user
    assert user is not None
    # Two requests, as over HTTP: on SQLite an uncommitted registration would hold the write
    # lock that sign-in's throttle counter (its own connection) needs.
    await session.commit()
    pair = await service.sign_in(session, auth, email=email, password=password, client=client)
    await session.commit()
    return user, pair


def test_an_answer_read_while_a_change_was_announced_is_not_kept() -> None:
    cache = PrincipalCache(seconds=30, max_users=10)
    cache.listening(True)
    user = {"id": uuid.uuid4(), "email": "a@example.com"}
    session_id = uuid.uuid4()
    expires = utcnow() + timedelta(days=1)
    generation = cache.generation  # taken before the query
    cache.forget(str(user["id"]))  # ... an announcement arrives while it runs
    cache.store(generation, user, session_id, expires_at=expires, last_used_at=utcnow())
    assert cache.lookup(user["id"], session_id, utcnow()) is None
    cache.store(cache.generation, user, session_id, expires_at=expires, last_used_at=utcnow())
    assert cache.lookup(user["id"], session_id, utcnow()) is not None


def test_the_cache_serves_nothing_expired_unknown_or_while_deaf() -> None:
    cache = PrincipalCache(seconds=30, max_users=10)
    user = {"id": uuid.uuid4()}
    session_id = uuid.uuid4()
    now = utcnow()
    cache.store(
        cache.generation, user, session_id, expires_at=now + timedelta(days=1), last_used_at=now
    )
    assert cache.lookup(user["id"], session_id, now) is None  # not listening: nothing kept
    cache.listening(True)
    cache.store(
        cache.generation, user, session_id, expires_at=now + timedelta(seconds=1), last_used_at=now
    )
    assert cache.lookup(user["id"], session_id, now) is not None
    assert cache.lookup(user["id"], uuid.uuid4(), now) is None  # another session of theirs
    assert cache.lookup(user["id"], session_id, now + timedelta(seconds=2)) is None  # expired
    cache.listening(False)  # connection lost: forget all, serve nothing
    assert len(cache) == 0
    assert cache.lookup(user["id"], session_id, now) is None
    cache.listening(True)
    for payload in ["*", "not-a-uuid"]:
        cache.store(
            cache.generation, user, session_id, expires_at=now + timedelta(days=1), last_used_at=now
        )
        cache.forget(payload)
        assert len(cache) == 0, payload
    off = PrincipalCache(seconds=0, max_users=10)
    off.listening(True)
    assert not off.enabled  # AUTH_CACHE_SECONDS=0 turns it off


def test_the_cache_is_bounded_and_entries_expire() -> None:
    clock = ManualClock()
    cache = PrincipalCache(seconds=1, max_users=3, clock=clock)
    cache.listening(True)
    now = utcnow()
    users = [{"id": uuid.uuid4()} for _ in range(5)]
    session_ids = [uuid.uuid4() for _ in users]
    for user, session_id in zip(users, session_ids, strict=True):
        cache.store(
            cache.generation,
            user,
            session_id,
            expires_at=now + timedelta(days=1),
            last_used_at=now,
        )
    assert len(cache) == 3
    clock.advance(0.9)
    assert cache.lookup(users[-1]["id"], session_ids[-1], now) is not None
    clock.advance(0.2)
    assert cache.lookup(users[-1]["id"], session_ids[-1], now) is None
    assert len(cache) == 0


def _listener_backends(engine: Engine) -> int:
    return int(
        scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name",
            name=f"listen:{CHANNEL}",
        )
    )


def test_losing_the_listener_stops_the_cache_until_it_is_back(
    client: TestClient, housekeeping_engine: Engine
) -> None:
    cache = _cache(client)
    if not _is_postgres(client):
        assert not cache.enabled  # SQLite: nothing announces changes, nothing is served
        return
    user = new_user(client)
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    assert cache.enabled
    assert len(cache) == 1
    execute(
        housekeeping_engine,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name",
        name=f"listen:{CHANNEL}",
    )
    assert cache.wait_for(lambda: not cache.enabled, HANG_GUARD), "the loss went unnoticed"
    assert len(cache) == 0
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    assert len(cache) == 0  # deaf: nothing is kept
    assert cache.wait_for(lambda: cache.enabled, HANG_GUARD), "never reconnected"
    assert _listener_backends(housekeeping_engine) >= 1
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    assert len(cache) == 1


@pytest.mark.postgres
def test_the_database_announces_exactly_the_changes_that_matter(
    client: TestClient, housekeeping_engine: Engine
) -> None:
    """PostgreSQL's triggers: revocations, deactivations and deletions are announced;
    marking a session used and extending it (a refresh) are not."""
    user = new_user(client)
    other = new_user(client)
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]

    async def heard(sql: str, **params: Any) -> list[str]:
        """What `sql` announced: everything heard before a marker sent after it commits
        (PostgreSQL delivers notifications in commit order)."""
        payloads: list[str] = []
        marker = f"marker-{uuid.uuid4()}"
        marker_heard = asyncio.Event()

        def on_notification(*args: Any) -> None:
            if args[3] == marker:
                marker_heard.set()
            elif not marker_heard.is_set():
                payloads.append(args[3])

        connection = await asyncpg.connect(asyncpg_dsn(settings.async_database_url))
        try:
            await connection.add_listener(CHANNEL, on_notification)
            await asyncio.to_thread(execute, housekeeping_engine, sql, **params)
            await asyncio.to_thread(
                execute,
                housekeeping_engine,
                "SELECT pg_notify(:channel, :marker)",
                channel=CHANNEL,
                marker=marker,
            )
            async with asyncio.timeout(HANG_GUARD):
                await marker_heard.wait()
        finally:
            await connection.close()
        return payloads

    def run(sql: str, who: SignedInUser = user) -> list[str]:
        return asyncio.run(heard(sql, id=who.id))

    base = "UPDATE auth_session SET "
    where = " WHERE user_id = :id"
    assert run(base + "last_used_at = CURRENT_TIMESTAMP" + where) == []
    assert run(base + "expires_at = expires_at + interval '1 day'" + where) == []
    assert run(base + "refresh_jti = 'x'" + where) == []
    assert run(base + "expires_at = expires_at - interval '1 second'" + where) == [user.id]
    assert run(base + "revoked_at = CURRENT_TIMESTAMP" + where) == [user.id]
    assert run("UPDATE \"user\" SET full_name = 'x' WHERE id = :id") == [user.id]
    assert run("DELETE FROM auth_session WHERE user_id = :id", other) == [other.id]
    assert run('DELETE FROM "user" WHERE id = :id', other) == [other.id]
    assert run("TRUNCATE auth_session") == ["*"]
