"""Liveness and readiness: ready follows the database, without a restart."""

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from tests.health.proxy import TcpForwarder


def test_live_is_200(client: TestClient) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_is_200_when_the_database_answers(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_follows_the_database_down_and_up(
    make_app: Callable[..., FastAPI], database_url: str, tmp_path: Path
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        # A forwarder in front of the real server plays the database going down and up.
        proxy = TcpForwarder(url.host or "127.0.0.1", url.port or 5432)
        app_url = url.set(port=proxy.port).render_as_string(hide_password=False)
        bring_up, take_down = proxy.start, proxy.stop
    else:
        # SQLite's counterpart of an unreachable server: a directory that is not there yet.
        missing = tmp_path / "not-yet"
        app_url = f"sqlite:///{missing / 'tasks.db'}"

        def bring_up() -> None:
            missing.mkdir()

        def take_down() -> None:
            for path in missing.iterdir():
                path.unlink()
            missing.rmdir()

    app = make_app(DATABASE_URL=app_url)
    with TestClient(app) as client:
        down = client.get("/health/ready")
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert down.json()["code"] == "database_unavailable"
        assert client.get("/health/live").status_code == 200

        bring_up()
        assert client.get("/health/ready").status_code == 200

        if url.get_backend_name() == "postgresql":
            # And down again while connections sit in the pool, then back.
            take_down()
            assert client.get("/health/ready").status_code == 503
            bring_up()
            assert client.get("/health/ready").status_code == 200
            take_down()


def test_the_root_is_a_small_index_of_the_service(client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200
    body = index.json()
    assert body["name"] == "Tasks API"
    assert body["version"]
    assert body["links"] == {
        "api": "/api/v1",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "live": "/health/live",
        "ready": "/health/ready",
    }
    for link in body["links"].values():
        if link != "/api/v1":
            assert client.get(link).status_code == 200, link


def test_the_index_links_no_docs_where_they_are_off(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(DOCS_ENABLED=False)) as client:
        links = client.get("/").json()["links"]
        assert (links["docs"], links["openapi"]) == (None, None)
        assert client.get("/docs").status_code == 404
