"""Helpers every test area shares: the problem-document check, a list walk, a clock tests
move by hand, and the outside services some tests need.

A test that needs Redis or PostgreSQL and does not find it skips with the reason where it
runs on a developer's machine, and fails in CI (`CI` set), where every service is there and a
skipped test would be a test that silently stopped running.
"""

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from threading import Barrier
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from tests.factories import API, SignedInUser

IN_CI = bool(os.environ.get("CI"))
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
# How long a test waits for an event that should come at once before it calls it lost: long
# enough never to be reached on a loaded machine, short enough to end a hung run.
HANG_GUARD = 30.0
POSTGRES_ONLY_REASON = (
    "PostgreSQL behaviour: runs in the PostgreSQL lane (set TEST_DATABASE_URL, README)"
)
PROBLEM = "application/problem+json"
# An id no row has: what a missing row's 404 is compared with.
MISSING_ID = "01900000-0000-7000-8000-000000000000"


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is a problem document with this status (and stable code); its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    if status == 401:
        challenge = response.headers["www-authenticate"]
        if body["code"] in ("invalid_token", "token_expired"):
            # RFC 6750 3.1: the bearer challenge names the error (and says why).
            assert challenge.startswith('Bearer error="invalid_token", error_description="')
        else:
            assert challenge == "Bearer"
    # Every 422 names the fields at fault, whether pydantic or a rule of the domain refused it.
    if status == 422:
        assert body["errors"], body
        assert all(error["loc"] and error["msg"] and error["type"] for error in body["errors"])
    else:
        assert "errors" not in body, body
    return body


def walk(
    client: TestClient, user: SignedInUser, path: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every item of a list, following `next_cursor` to the end."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = dict(params or {})
    while True:
        response = client.get(f"{API}{path}", headers=user.headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        if body["next_cursor"] is None:
            return items
        query["cursor"] = body["next_cursor"]


@dataclass
class ManualClock:
    """A clock that stands still until the test moves it: `clock()` reads, `advance()` moves."""

    now: float = 1_900_000_000.0  # a wall-clock-like epoch second, in 2030

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def require(service: str, problem: str | None) -> None:
    """Go on if `problem` is None; otherwise skip with the reason, or fail in CI."""
    if problem is None:
        return
    message = f"needs {service}: {problem}"
    if IN_CI:
        pytest.fail(f"{message} (CI provides every service: nothing may skip there)")
    pytest.skip(message)


def redis_problem(url: str = REDIS_URL) -> str | None:
    """Why Redis at `url` cannot be used, or None when it answers."""
    connection = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        connection.ping()
    except redis.RedisError as exc:
        return f"no Redis at {url} ({exc.__class__.__name__}); set TEST_REDIS_URL or start one"
    finally:
        connection.close()
    return None


def require_redis(url: str = REDIS_URL) -> str:
    """The Redis URL for this test, once it answers (skip or, in CI, fail otherwise)."""
    require("Redis", redis_problem(url))
    return url


def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def together(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the calls at the same moment, each on its own thread; their responses in order."""
    start = Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        start.wait(HANG_GUARD)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(HANG_GUARD) for future in futures]
