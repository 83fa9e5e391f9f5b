"""A failing database (app/core/db): every wait is bounded, a failure is a fast 503
`database_unavailable` with one log line, connections are not stormed, and the app recovers
by itself.

On PostgreSQL the app reaches the database through a TCP proxy the test controls
(tests/proxy.py): it refuses, drops or stalls traffic on command. Time is the app's injected
clock; the only wall-clock bound is the hang guard (pytest-timeout), ten times the bounds.
"""

import logging
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from app.main import create_app
from tests.conftest import settings_for
from tests.factories import API, SignedInUser, make_task, new_user
from tests.helpers import POSTGRES_ONLY_REASON, ManualClock, assert_problem, is_postgres
from tests.proxy import Mode, TcpProxy, proxy_to

BOUND = 0.5  # seconds: every database bound of the app under test
FAST = {
    "DB_STATEMENT_TIMEOUT_SECONDS": BOUND,
    "DB_CONNECT_TIMEOUT_SECONDS": BOUND,
    "DB_POOL_TIMEOUT_SECONDS": BOUND,
}


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    if not is_postgres(database_url):
        pytest.skip(POSTGRES_ONLY_REASON)
    url = make_url(database_url)
    with proxy_to(url.host or "127.0.0.1", url.port or 5432) as running:
        yield running


@pytest.fixture
def proxied_app(
    database_url: str,
    proxy: TcpProxy,
    make_app: Callable[..., FastAPI],  # empties the tables afterwards
) -> tuple[FastAPI, ManualClock]:
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    clock = ManualClock()
    settings = settings_for(url.render_as_string(hide_password=False), **FAST)
    return create_app(settings, clock=clock), clock


@pytest.fixture
def seeded(make_app: Callable[..., FastAPI]) -> tuple[SignedInUser, dict[str, Any]]:
    """A user and a task, made through an app with the usual bounds: the tight ones of the
    app under test are for the failure, not for setting up on a loaded CI machine. (A
    fixture: building an app configures logging, which must happen before caplog starts.)"""
    with TestClient(make_app()) as setup:
        user = new_user(setup)
        return user, make_task(setup, user, title="before")


def _unavailable(response: object) -> None:
    body = assert_problem(response, 503, "database_unavailable")  # type: ignore[arg-type]
    assert "nothing was changed" in body["detail"]
    assert int(response.headers["retry-after"]) >= 1  # type: ignore[attr-defined]


@pytest.mark.timeout(10 * 20 * BOUND)
def test_a_stalled_database_is_a_503_within_the_bound_and_the_app_recovers(
    proxied_app: tuple[FastAPI, ManualClock],
    proxy: TcpProxy,
    caplog: pytest.LogCaptureFixture,
    seeded: tuple[SignedInUser, dict[str, Any]],
) -> None:
    app, clock = proxied_app
    user, task = seeded
    with TestClient(app) as client:
        # A pooled connection first, so the stall meets a statement (the bound under test).
        assert client.get(f"{API}/tasks/{task['id']}", headers=user.headers).status_code == 200
        proxy.set_mode(Mode.STALL)
        with caplog.at_level(logging.WARNING, logger="app.core.db.transaction"):
            _unavailable(client.get(f"{API}/tasks/{task['id']}", headers=user.headers))
        # The statement's own bound fired (client side), and said so in one line.
        lines = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
        assert lines, caplog.records
        assert "timed out" in lines[0], lines
        assert all(record.exc_info is None for record in caplog.records)
        # While the wait after the failure runs, requests fail fast without the database.
        _unavailable(client.post(f"{API}/tasks", headers=user.headers, json={"title": "t"}))
        ready = client.get("/health/ready")
        assert_problem(ready, 503, "database_unavailable")
        proxy.set_mode(Mode.PASS)
        clock.advance(60)  # past the back-off: the next request tries the database again
        recovered = client.get(f"{API}/tasks/{task['id']}", headers=user.headers)
        assert recovered.status_code == 200, recovered.text
        assert client.get("/health/ready").status_code == 200
        created = client.post(f"{API}/tasks", headers=user.headers, json={"title": "after"})
        assert created.status_code == 201, created.text


@pytest.mark.timeout(10 * 20 * BOUND)
def test_an_unreachable_database_is_a_503_and_is_not_stormed_with_connections(
    proxied_app: tuple[FastAPI, ManualClock],
    proxy: TcpProxy,
    seeded: tuple[SignedInUser, dict[str, Any]],
) -> None:
    app, clock = proxied_app
    user, task = seeded
    with TestClient(app) as client:
        proxy.set_mode(Mode.REFUSE)
        proxy.drop_all()
        before = proxy.accepted
        for _ in range(20):
            _unavailable(
                client.patch(f"{API}/tasks/{task['id']}", headers=user.headers, json={"title": "x"})
            )
        # One attempt (a connection or two: the pool's and a held read one's), then waits:
        # not one attempt a request.
        assert proxy.accepted - before <= 3, proxy.accepted - before
        proxy.set_mode(Mode.PASS)
        clock.advance(60)
        answered = client.patch(
            f"{API}/tasks/{task['id']}", headers=user.headers, json={"title": "back"}
        )
        assert answered.status_code == 200, answered.text


def test_a_lock_wait_past_the_statement_bound_is_a_503(
    make_app: Callable[..., FastAPI],
    database_url: str,
    housekeeping_engine: Engine,
    seeded: tuple[SignedInUser, dict[str, Any]],
) -> None:
    """A write waiting for a lock another transaction holds: on SQLite the busy timeout, on
    PostgreSQL the client-side statement bound; either way a 503, and the row is unchanged."""
    user, task = seeded
    app = make_app(**FAST)
    with TestClient(app) as client:
        if is_postgres(database_url):
            with housekeeping_engine.connect() as holder:
                holder.execute(text("SELECT id FROM task WHERE title = 'before' FOR UPDATE"))
                waited = client.patch(
                    f"{API}/tasks/{task['id']}", headers=user.headers, json={"title": "after"}
                )
                holder.rollback()
        else:
            path = make_url(database_url).database
            assert path is not None
            holder = sqlite3.connect(path, isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")
                waited = client.patch(
                    f"{API}/tasks/{task['id']}", headers=user.headers, json={"title": "after"}
                )
            finally:
                holder.execute("ROLLBACK")
                holder.close()
        _unavailable(waited)
        app.state.database.availability.succeeded()  # no wait for the next request
        read = client.get(f"{API}/tasks/{task['id']}", headers=user.headers)
        assert read.json()["title"] == "before"
