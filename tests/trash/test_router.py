"""GET /trash: what the caller deleted, and when each item goes for good."""

from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.pagination import MAX_PAGE_SIZE
from tests.factories import API, make_project, make_task, new_user
from tests.helpers import assert_problem, walk


def test_purge_after_follows_the_apps_retention_setting(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(TRASH_RETENTION_DAYS=7)) as client:
        user = new_user(client)
        task = make_task(client, user, title="gone")
        assert client.delete(f"{API}/tasks/{task['id']}", headers=user.headers).status_code == 204
        (item,) = walk(client, user, "/trash")
    deleted_at = datetime.fromisoformat(item["deleted_at"])
    assert datetime.fromisoformat(item["purge_after"]) == deleted_at + timedelta(days=7)


def test_trash_pages(client: TestClient) -> None:
    user = new_user(client)
    for _ in range(5):
        task = make_task(client, user)
        client.delete(f"{API}/tasks/{task['id']}", headers=user.headers)
    project = make_project(client, user)
    client.delete(f"{API}/projects/{project['id']}", headers=user.headers)
    items = walk(client, user, "/trash", {"limit": 2})
    assert len(items) == 6
    assert items[0]["kind"] == "project"
    assert [i["deleted_at"] for i in items] == sorted(
        (i["deleted_at"] for i in items), reverse=True
    )
    total = client.get(f"{API}/trash", headers=user.headers, params={"include_total": "true"})
    assert total.json()["total"] == 6


def test_anonymous_is_401(client: TestClient) -> None:
    assert_problem(client.get(f"{API}/trash"), 401)


def test_someone_elses_trash_is_never_shown(client: TestClient) -> None:
    owner, other = new_user(client), new_user(client)
    task, project = make_task(client, owner), make_project(client, owner)
    assert client.delete(f"{API}/tasks/{task['id']}", headers=owner.headers).status_code == 204
    url = f"{API}/projects/{project['id']}"
    assert client.delete(url, headers=owner.headers).status_code == 204
    assert walk(client, other, "/trash") == []
    assert {item["id"] for item in walk(client, owner, "/trash")} == {task["id"], project["id"]}


def test_bad_paging_is_422(client: TestClient) -> None:
    user = new_user(client)
    for _ in range(2):
        make_task(client, user)
    tasks_cursor = client.get(f"{API}/tasks", headers=user.headers, params={"limit": 1})
    refused = [
        ({"limit": 0}, "validation_error"),
        ({"limit": MAX_PAGE_SIZE + 1}, "validation_error"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": tasks_cursor.json()["next_cursor"]}, "invalid_cursor"),  # another list's
    ]
    for params, code in refused:
        assert_problem(client.get(f"{API}/trash", headers=user.headers, params=params), 422, code)
