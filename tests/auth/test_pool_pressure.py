"""A sign-in storm must queue, not fail: no request holds a pooled connection while hashing."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, DEFAULT_PASSWORD, register


def test_concurrent_sign_ins_with_a_tiny_pool_all_succeed(
    make_app: Callable[..., FastAPI],
) -> None:
    # Real argon2id cost (19 MiB, t=2, ~tens of ms), one pooled connection, and a pool wait
    # shorter than eight hashes in a row: holding the connection through the hash would make
    # requests time out waiting for it (500), releasing it lets them all through.
    app = make_app(
        ARGON2_MEMORY_KIB=19456,
        ARGON2_TIME_COST=2,
        DB_POOL_SIZE=1,
        DB_MAX_OVERFLOW=0,
        DB_POOL_TIMEOUT_SECONDS=0.25,
    )
    with TestClient(app) as client:
        emails = [register(client)["email"] for _ in range(8)]

        def sign_in(email: str) -> int:
            response = client.post(
                f"{API}/auth/token", data={"username": email, "password": DEFAULT_PASSWORD}
            )
            return response.status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(sign_in, emails))
    assert statuses == [200] * 8
