"""The activity history over HTTP: every change recorded, none for a failed request."""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.factories import (
    ADMIN_SETTINGS,
    API,
    make_label,
    make_project,
    make_task,
    new_user,
    sign_in_admin,
)
from tests.helpers import assert_problem, walk
from tests.sharing.helpers import share


def _records(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM change_record")).scalar_one())


def test_a_task_s_history_shows_each_change_newest_first(client: TestClient) -> None:
    user = new_user(client)
    label = make_label(client, user, "Home")
    task = make_task(client, user, title="Buy milk", label_ids=[label["id"]])
    url = f"{API}/tasks/{task['id']}"
    assert client.patch(url, headers=user.headers, json={"status": "done"}).status_code == 200
    assert client.patch(url, headers=user.headers, json={"label_ids": []}).status_code == 200
    assert client.delete(url, headers=user.headers).status_code == 204
    assert client.post(f"{url}/restore", headers=user.headers).status_code == 200

    history = walk(client, user, f"/tasks/{task['id']}/activity")
    assert [change["verb"] for change in history] == [
        "restore",
        "delete",
        "update",
        "update",
        "create",
    ]
    restore, delete, labels, done, create = history
    assert all(change["actor"]["id"] == user.id for change in history)
    assert all(change["entity_id"] == task["id"] for change in history)
    assert create["changes"]["title"] == [None, "Buy milk"]
    assert create["changes"]["label_ids"] == [None, [label["id"]]]
    assert done["changes"]["status"] == ["todo", "done"]
    assert done["changes"]["completed_at"][0] is None
    assert labels["changes"] == {"label_ids": [[label["id"]], []]}
    assert delete["changes"]["deleted_at"][0] is None
    assert restore["changes"]["deleted_at"][1] is None
    seqs = [change["seq"] for change in history]
    assert seqs == sorted(seqs, reverse=True)


def test_a_project_s_history_shows_its_tasks_and_members_to_members_only(
    app: FastAPI, client: TestClient
) -> None:
    owner, member, stranger = new_user(client), new_user(client), new_user(client)
    project = make_project(client, owner, name="Garden")
    url = f"{API}/projects/{project['id']}"
    client.patch(url, headers=owner.headers, json={"name": "Allotment"})
    task = make_task(client, owner, project_id=project["id"])
    share(client, app, owner, project["id"], member, "viewer")
    client.patch(f"{url}/members/{member.id}", headers=owner.headers, json={"role": "editor"})

    history = walk(client, member, f"/projects/{project['id']}/activity")
    kinds = [(change["entity_type"], change["verb"]) for change in history]
    assert kinds == [
        ("membership", "update"),
        ("membership", "create"),
        ("invitation", "create"),
        ("task", "create"),
        ("project", "update"),
        ("project", "create"),
    ]
    assert history[0]["changes"] == {"role": ["viewer", "editor"]}
    assert history[1]["actor"]["id"] == member.id
    assert history[3]["entity_id"] == task["id"]
    assert history[4]["changes"] == {"name": ["Garden", "Allotment"]}
    assert_problem(
        client.get(f"{url}/activity", headers=stranger.headers), 404, "project_not_found"
    )


def test_a_failed_request_writes_no_change_record(
    make_app: Callable[..., FastAPI], housekeeping_engine: Engine
) -> None:
    with TestClient(make_app(QUOTA_LABELS=1)) as client:
        user = new_user(client)
        task = make_task(client, user)
        url = f"{API}/tasks/{task['id']}"
        before = _records(housekeeping_engine)
        stale = client.patch(
            url, headers={**user.headers, "If-Match": '"999"'}, json={"title": "x"}
        )
        assert_problem(stale, 412)
        unknown_label = client.patch(url, headers=user.headers, json={"label_ids": [user.id]})
        assert_problem(unknown_label, 422)
        make_label(client, user, "one")
        after_label = _records(housekeeping_engine)
        assert after_label == before + 1
        over = client.post(f"{API}/labels", headers=user.headers, json={"name": "two"})
        assert_problem(over, 409, "quota_exceeded")
        assert _records(housekeeping_engine) == after_label


def test_admin_actions_are_audited_but_never_served(
    make_app: Callable[..., FastAPI], housekeeping_engine: Engine
) -> None:
    with TestClient(make_app(**ADMIN_SETTINGS)) as client:
        admin = sign_in_admin(client)
        user = new_user(client)
        task = make_task(client, user)
        before = _records(housekeeping_engine)
        changed = client.patch(
            f"{API}/users/{user.id}", headers=admin.headers, json={"is_active": False}
        )
        assert changed.status_code == 200
        assert _records(housekeeping_engine) == before + 1
        with housekeeping_engine.connect() as connection:
            row: Any = connection.execute(
                text(
                    "SELECT entity_type, verb, changes FROM change_record ORDER BY seq DESC LIMIT 1"
                )
            ).one()
        assert (row[0], row[1]) == ("account", "update")
        client.patch(f"{API}/users/{user.id}", headers=admin.headers, json={"is_active": True})
        again = client.post(
            f"{API}/auth/token", data={"username": user.email, "password": user.password}
        )
        headers = {"Authorization": f"Bearer {again.json()['access_token']}"}
        history = client.get(f"{API}/tasks/{task['id']}/activity", headers=headers).json()
        assert [change["entity_type"] for change in history["items"]] == ["task"]
