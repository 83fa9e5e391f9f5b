"""GET /trash: what the caller deleted, and when each item goes for good."""

from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, new_user
from tests.tasks.helpers import make_task, walk


def test_purge_after_follows_the_apps_retention_setting(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(TRASH_RETENTION_DAYS=7)) as client:
        user = new_user(client)
        task = make_task(client, user, title="gone")
        assert client.delete(f"{API}/tasks/{task['id']}", headers=user.headers).status_code == 204
        (item,) = walk(client, user, "/trash")
    deleted_at = datetime.fromisoformat(item["deleted_at"])
    assert datetime.fromisoformat(item["purge_after"]) == deleted_at + timedelta(days=7)
