"""A sign-in storm must queue, not fail: no request holds a pooled connection while hashing."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, DEFAULT_PASSWORD, unique_email
from tests.helpers import HANG_GUARD


def _signed_up(client: TestClient) -> str:
    # Sign-up alone, without the reference client's read of /users/me: on PostgreSQL a read
    # keeps a held read session's connection (app/core/db/sessions.py), which is the whole
    # pool of one these tests build.
    email = unique_email()
    response = client.post(
        f"{API}/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 202, response.text
    return email


def _sign_in(client: TestClient, email: str) -> int:
    response = client.post(
        f"{API}/auth/token", data={"username": email, "password": DEFAULT_PASSWORD}
    )
    return response.status_code


def test_a_sign_in_holds_no_pooled_connection_while_it_hashes(
    make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen from inside the hash: the pool has every connection back (one pooled connection,
    nothing else running), so a storm of sign-ins waits for hashes, never for connections."""
    app = make_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0)
    with TestClient(app) as client:
        email = _signed_up(client)
        hasher = app.state.auth.hasher
        pool = app.state.database.engine.pool
        checked_out: list[int] = []
        verify = hasher.verify_and_update_sync

        def watched(password: str, hashed: str | None) -> Any:
            checked_out.append(pool.checkedout())
            return verify(password, hashed)

        monkeypatch.setattr(hasher, "verify_and_update_sync", watched)
        assert _sign_in(client, email) == 200
    assert checked_out == [0]


def test_concurrent_sign_ins_with_a_tiny_pool_all_succeed(
    make_app: Callable[..., FastAPI],
) -> None:
    # Real argon2id cost, one pooled connection, eight sign-ins at once: they queue for the
    # connection and the hashing threads, and every one succeeds.
    app = make_app(
        ARGON2_MEMORY_KIB=19456,
        ARGON2_TIME_COST=2,
        DB_POOL_SIZE=1,
        DB_MAX_OVERFLOW=0,
        DB_POOL_TIMEOUT_SECONDS=HANG_GUARD,
    )
    with TestClient(app) as client:
        emails = [_signed_up(client) for _ in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda email: _sign_in(client, email), emails))
    assert statuses == [200] * 8
