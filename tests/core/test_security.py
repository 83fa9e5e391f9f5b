"""Password hashing (argon2id, legacy bcrypt, off the event loop) and the token codec."""

import os
import sys
import threading
import uuid
from datetime import timedelta
from typing import Any

import anyio
import bcrypt as bcrypt_module
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from passlib.hash import bcrypt
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core import security
from app.core.config import Settings
from app.core.security import (
    HASH_THREAD_NICENESS,
    InvalidToken,
    PasswordHasher,
    TokenCodec,
    TokenType,
    credential_fingerprint,
)
from app.users import service as user_service
from tests.auth.helpers import in_session
from tests.factories import API, new_user, register, sign_in
from tests.helpers import HANG_GUARD, assert_problem

DEFAULTS = Settings(SECRET_KEY="x" * 40)


def test_default_settings_hash_with_argon2id_and_owasp_parameters() -> None:
    hashed = PasswordHasher(DEFAULTS).hash_sync("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_the_parameters_come_from_the_settings() -> None:
    settings = Settings(ARGON2_MEMORY_KIB=1024, ARGON2_TIME_COST=1, ARGON2_PARALLELISM=2)
    assert (
        PasswordHasher(settings)
        .hash_sync("pw-pw-pw-pw")
        .startswith("$argon2id$v=19$m=1024,t=1,p=2$")
    )


def test_building_a_hasher_does_not_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built in the lifespan, on the event loop: it must not hash there (not even a dummy)."""
    calls: list[str] = []
    hasher = PasswordHasher(DEFAULTS)
    real = hasher.context.hash
    monkeypatch.setattr(hasher.context, "hash", lambda secret: calls.append(secret) or real(secret))
    assert calls == []
    assert hasher.verify_and_update_sync("anything", None) == (False, None)
    assert len(calls) == 1  # the dummy hash, made on first use, in the caller's thread
    hasher.verify_and_update_sync("anything", None)
    assert len(calls) == 1


def test_a_128_character_multibyte_password_counts_every_byte(settings: Settings) -> None:
    hasher = PasswordHasher(settings)
    password = "密码🔑é" * 32
    assert len(password) == 128
    assert len(password.encode()) > 72 * 4  # far past bcrypt's silent 72-byte cut
    hashed = hasher.hash_sync(password)
    assert hasher.verify_and_update_sync(password, hashed) == (True, None)
    for changed in (password[:-1] + "x", "x" + password[1:], password[:64] + "x" + password[65:]):
        assert hasher.verify_and_update_sync(changed, hashed) == (False, None)


def test_a_128_character_multibyte_password_signs_in(client: TestClient) -> None:
    password = "密码🔑é" * 32
    user = register(client, password=password)
    sign_in(client, user["email"], password)
    wrong = client.post(
        f"{API}/auth/token", data={"username": user["email"], "password": password[:-1] + "x"}
    )
    assert_problem(wrong, 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("password", "stored"),
    [
        ("x" * 5000, None),  # passlib refuses over 4 KiB: still just a mismatch
        ("x" * 5000, "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"),
        ("password", "not-a-hash"),
        ("password", ""),
        ("password", "$2b$12$short"),
    ],
    ids=["huge-unknown", "huge-known", "garbage", "empty", "truncated-bcrypt"],
)
def test_verify_never_raises(settings: Settings, password: str, stored: str | None) -> None:
    assert PasswordHasher(settings).verify_and_update_sync(password, stored) == (False, None)


def test_outdated_argon2_parameters_are_flagged_for_upgrade(settings: Settings) -> None:
    old = PasswordHasher(settings).hash_sync("pw-pw-pw-pw")
    ok, new_hash = PasswordHasher(DEFAULTS).verify_and_update_sync("pw-pw-pw-pw", old)
    assert ok
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_a_legacy_bcrypt_hash_verifies_and_is_upgraded_on_sign_in(
    app: FastAPI, client: TestClient
) -> None:
    password = "legacy-password-1"
    user = register(client)
    legacy = bcrypt.using(rounds=4).hash(password)
    assert legacy.startswith("$2b$04$")

    async def store_legacy_hash(session: AsyncSession) -> None:
        row = await user_service.get_user(session, uuid.UUID(user["id"]))
        await user_service.update_user(session, row, {}, hashed_password=legacy)

    async def stored_hash(session: AsyncSession) -> str:
        row = await user_service.get_user_by_email(session, user["email"])
        assert row is not None
        return row.hashed_password

    in_session(app, store_legacy_hash)
    assert in_session(app, stored_hash) == legacy

    wrong = client.post(
        f"{API}/auth/token", data={"username": user["email"], "password": "not-the-password"}
    )
    assert_problem(wrong, 401, "invalid_credentials")
    assert in_session(app, stored_hash) == legacy  # no upgrade without the right password

    sign_in(client, user["email"], password)
    upgraded = in_session(app, stored_hash)
    assert upgraded.startswith("$argon2id$")
    sign_in(client, user["email"], password)
    assert in_session(app, stored_hash) == upgraded  # upgraded once, then left alone


def test_the_bcrypt_backend_is_one_passlib_works_with() -> None:
    major, minor = (int(part) for part in bcrypt_module.__version__.split(".")[:2])
    assert (major, minor) < (4, 1)  # passlib 1.7.4 breaks from bcrypt 4.1 on
    assert bcrypt.verify("pw", bcrypt.using(rounds=4).hash("pw"))


@pytest.mark.anyio
async def test_hashing_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four hashes at once: two run on worker threads while the loop serves other tasks, and
    two wait their turn (PASSWORD_HASH_CONCURRENCY=2).

    Each hash is held (a threading.Event) until the test has seen that; a hash called on the
    loop's own thread fails at once instead, since holding it there would hold the loop.
    """
    concurrency = 2
    hasher = PasswordHasher(
        Settings(ARGON2_MEMORY_KIB=1024, ARGON2_TIME_COST=1, PASSWORD_HASH_CONCURRENCY=concurrency)
    )
    loop_thread = threading.get_ident()
    real_hash = hasher.context.hash
    counting = threading.Lock()
    threads: list[int] = []
    running = peak = 0
    let_go = threading.Event()

    def held_hash(secret: str) -> str:
        nonlocal running, peak
        if threading.get_ident() == loop_thread:
            raise AssertionError("a hash ran on the event loop's thread")
        with counting:
            threads.append(threading.get_ident())
            running += 1
            peak = max(peak, running)
        try:
            if not let_go.wait(timeout=HANG_GUARD):
                raise AssertionError("the test never let the hash go")
            return str(real_hash(secret))
        finally:
            with counting:
                running -= 1

    monkeypatch.setattr(hasher.context, "hash", held_hash)
    results: list[str] = []
    loop_ran = anyio.Event()

    async def one(index: int) -> None:
        results.append(await hasher.hash(f"password-{index}"))

    async def other_work() -> None:
        loop_ran.set()

    def settled() -> bool:
        waiting = hasher.limiter.statistics().tasks_waiting
        if peak > concurrency or hasher.limiter.borrowed_tokens > concurrency:
            return True  # over the cap: the asserts below say so
        if waiting > 4 - concurrency:
            return True  # under it: likewise
        return running == concurrency and waiting == 4 - concurrency

    try:
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                for index in range(4):
                    group.start_soon(one, index)
                while not settled():  # the hashing threads start, the others queue
                    await anyio.lowlevel.checkpoint()
                # Two hashes are held in their threads: the loop still runs another task.
                group.start_soon(other_work)
                await loop_ran.wait()
                assert running == peak == concurrency  # worker threads, no more than the cap
                assert hasher.limiter.borrowed_tokens == concurrency
                assert hasher.limiter.statistics().tasks_waiting == 4 - concurrency  # in turn
                let_go.set()
    finally:
        let_go.set()
        hasher.close()
    assert len(results) == 4
    assert all(hashed.startswith("$argon2id$") for hashed in results)
    assert peak == concurrency  # the last two ran only as places came free
    assert loop_thread not in threads
    assert len(set(threads)) == concurrency  # the hasher's own threads, as many as the cap


@pytest.mark.anyio
async def test_verify_runs_in_a_worker_thread(settings: Settings) -> None:

    hasher = PasswordHasher(settings)
    hashed = await hasher.hash("pw-pw-pw-pw")
    threads: list[int] = []
    real = hasher.verify_and_update_sync

    def spy(password: str, stored: str | None) -> Any:
        threads.append(threading.get_ident())
        return real(password, stored)

    hasher.verify_and_update_sync = spy  # type: ignore[method-assign]
    assert await hasher.verify("pw-pw-pw-pw", hashed)
    assert threads
    assert threads[0] != threading.get_ident()


@pytest.mark.anyio
@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's")
async def test_hashes_run_on_their_own_threads_at_a_lower_priority(settings: Settings) -> None:
    """A hash must yield the CPU to the event loop that serves every other request."""
    hasher = PasswordHasher(settings)
    try:

        def probe() -> tuple[str, int]:
            thread = threading.current_thread()
            return thread.name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        name, niceness = await hasher.run_in_hash_thread(probe)
        ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert name.startswith("password-hash")
        assert niceness == min(ours + HASH_THREAD_NICENESS, 19)
        assert niceness > ours
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ours  # ours stays
    finally:
        hasher.close()


def test_the_credential_fingerprint_follows_the_hash_and_the_email(settings: Settings) -> None:
    hasher = PasswordHasher(settings)
    first, second = hasher.hash_sync("same-password"), hasher.hash_sync("same-password")
    email = "ada@example.com"
    assert credential_fingerprint(first, email) == credential_fingerprint(first, email)
    assert credential_fingerprint(first, email) != credential_fingerprint(second, email)
    assert credential_fingerprint(first, email) != credential_fingerprint(first, "b@example.com")
    assert "same-password" not in credential_fingerprint(first, email)


@pytest.mark.parametrize("token_type", list(TokenType))
def test_tokens_decode_only_as_their_own_type(settings: Settings, token_type: TokenType) -> None:
    codec = TokenCodec(settings)
    token, claims = codec.encode(
        subject="someone", token_type=token_type, lifetime=timedelta(minutes=1), session_id="s"
    )
    decoded = codec.decode(token, token_type)
    assert (decoded.subject, decoded.jti, decoded.session_id) == ("someone", claims.jti, "s")
    for other in set(TokenType) - {token_type}:
        with pytest.raises(InvalidToken):
            codec.decode(token, other)


def test_tokens_from_another_issuer_are_refused(settings: Settings) -> None:
    ours = TokenCodec(settings)
    theirs = TokenCodec(settings.model_copy(update={"JWT_ISSUER": "someone-else"}))
    token, _ = theirs.encode(
        subject="x", token_type=TokenType.ACCESS, lifetime=timedelta(minutes=1)
    )
    with pytest.raises(InvalidToken):
        ours.decode(token, TokenType.ACCESS)


def test_rs256_without_keys_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="RS256"):
        TokenCodec(settings.model_copy(update={"JWT_ALGORITHM": "RS256"}))


def test_the_api_never_shows_a_hash(client: TestClient) -> None:
    user = new_user(client)
    body = client.get(f"{API}/users/me", headers=user.headers).text
    assert "argon2" not in body
    assert "hashed_password" not in body


def test_a_verified_token_is_not_verified_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = TokenCodec(settings)
    token, _ = codec.encode(subject="x", token_type=TokenType.ACCESS, lifetime=timedelta(minutes=5))
    calls = []
    real_decode = security.jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(security.jwt, "decode", counting_decode)
    for _ in range(3):
        assert codec.decode(token, TokenType.ACCESS).subject == "x"
    assert len(calls) == 1
    # The same string as another type is verified (and refused) on its own.
    with pytest.raises(InvalidToken):
        codec.decode(token, TokenType.REFRESH)
    assert len(calls) == 2


def test_a_remembered_token_still_expires(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = TokenCodec(settings)
    token, claims = codec.encode(
        subject="x", token_type=TokenType.ACCESS, lifetime=timedelta(minutes=5)
    )
    codec.decode(token, TokenType.ACCESS)
    later = claims.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(security, "utcnow", lambda: later)
    with pytest.raises(InvalidToken):
        codec.decode(token, TokenType.ACCESS)


def test_a_tampered_copy_of_a_remembered_token_is_refused(settings: Settings) -> None:
    codec = TokenCodec(settings)
    token, _ = codec.encode(subject="x", token_type=TokenType.ACCESS, lifetime=timedelta(minutes=5))
    codec.decode(token, TokenType.ACCESS)
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{header}.{payload}.{flipped}", f"{header}.{payload}.", token + "x"):
        with pytest.raises(InvalidToken):
            codec.decode(forged, TokenType.ACCESS)


def test_remembered_tokens_are_bounded(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "VERIFIED_TOKENS_REMEMBERED", 3)
    codec = TokenCodec(settings)
    for n in range(10):
        token, _ = codec.encode(
            subject=str(n), token_type=TokenType.ACCESS, lifetime=timedelta(minutes=5)
        )
        codec.decode(token, TokenType.ACCESS)
    assert len(codec._verified) == 3
