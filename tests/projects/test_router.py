"""Projects over HTTP: the Inbox, CRUD, limits, ETags, trash with its tasks, ownership."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import API, inbox_id, make_project, make_task, new_user
from tests.helpers import MISSING_ID, assert_problem, walk


def test_every_account_gets_an_undeletable_inbox(client: TestClient) -> None:
    user = new_user(client)
    projects = walk(client, user, "/projects")
    assert [(p["name"], p["is_inbox"]) for p in projects] == [("Inbox", True)]
    inbox = projects[0]
    assert inbox["owner_id"] == user.id
    response = client.delete(f"{API}/projects/{inbox['id']}", headers=user.headers)
    assert_problem(response, 409, "inbox_undeletable")
    archive = client.patch(
        f"{API}/projects/{inbox['id']}", headers=user.headers, json={"is_archived": True}
    )
    assert_problem(archive, 409, "inbox_unarchivable")
    renamed = client.patch(
        f"{API}/projects/{inbox['id']}", headers=user.headers, json={"name": "Eingang"}
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Eingang"
    assert make_task(client, user)["project_id"] == inbox["id"]


def test_create_read_update_delete(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(
        f"{API}/projects",
        headers=user.headers,
        json={"name": "  Garden  ", "description": "veg", "color": "#00aa00"},
    )
    assert response.status_code == 201
    project = response.json()
    assert project["name"] == "Garden"
    assert response.headers["Location"] == f"/api/v1/projects/{project['id']}"
    assert response.headers["ETag"] == '"v1"'
    url = f"{API}/projects/{project['id']}"
    assert client.get(url, headers=user.headers).json() == project
    patched = client.patch(url, headers=user.headers, json={"description": None, "color": None})
    body = patched.json()
    assert (body["description"], body["color"], body["name"]) == (None, None, "Garden")
    assert body["version"] == 2
    assert patched.headers["ETag"] == '"v2"'
    assert_problem(client.patch(url, headers=user.headers, json={"name": None}), 422)
    assert client.delete(url, headers=user.headers).status_code == 204
    assert_problem(client.get(url, headers=user.headers), 404, "project_not_found")
    assert [p["id"] for p in walk(client, user, "/projects")] == [inbox_id(client, user)]


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 201},
        {"name": "ok", "color": "red"},
        {"name": "ok", "color": "#12345"},
        {"name": "ok", "description": "x" * 5001},
        {"name": "ok", "is_inbox": True},
        {"name": "ok", "owner_id": MISSING_ID},
    ],
)
def test_limits_are_422(client: TestClient, body: dict[str, Any]) -> None:
    user = new_user(client)
    assert_problem(client.post(f"{API}/projects", headers=user.headers, json=body), 422)


def test_archived_filter_and_paging(client: TestClient) -> None:
    user = new_user(client)
    made = [make_project(client, user, name=f"p{i}", is_archived=i % 2 == 0) for i in range(5)]
    everything = walk(client, user, "/projects", {"limit": 2})
    assert [p["id"] for p in everything][1:] == [p["id"] for p in made]
    archived = walk(client, user, "/projects", {"is_archived": "true"})
    assert {p["id"] for p in archived} == {p["id"] for p in made if p["is_archived"]}
    active = walk(client, user, "/projects", {"is_archived": "false"})
    assert len(active) == 3
    total = client.get(
        f"{API}/projects", headers=user.headers, params={"include_total": "true", "limit": 1}
    ).json()
    assert total["total"] == 6
    assert_problem(
        client.get(f"{API}/projects", headers=user.headers, params={"cursor": "x"}),
        422,
        "invalid_cursor",
    )
    assert_problem(client.get(f"{API}/projects", headers=user.headers, params={"limit": 201}), 422)


def test_etags(client: TestClient) -> None:
    user = new_user(client)
    project = make_project(client, user)
    url = f"{API}/projects/{project['id']}"
    assert client.get(url, headers={**user.headers, "If-None-Match": '"v1"'}).status_code == 304
    ok = client.patch(url, headers={**user.headers, "If-Match": '"v1"'}, json={"name": "a"})
    assert ok.status_code == 200
    stale = client.patch(url, headers={**user.headers, "If-Match": '"v1"'}, json={"name": "b"})
    assert assert_problem(stale, 412, "version_mismatch")["current_version"] == 2
    stale_delete = client.delete(url, headers={**user.headers, "If-Match": '"v1"'})
    assert_problem(stale_delete, 412)
    assert client.get(url, headers=user.headers).json()["name"] == "a"
    assert client.delete(url, headers={**user.headers, "If-Match": '"v2"'}).status_code == 204


def test_project_tasks_shortcut(client: TestClient) -> None:
    user = new_user(client)
    project = make_project(client, user)
    response = client.post(
        f"{API}/projects/{project['id']}/tasks", headers=user.headers, json={"title": "here"}
    )
    assert response.status_code == 201
    task = response.json()
    assert task["project_id"] == project["id"]
    assert response.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    make_task(client, user, title="elsewhere")
    listed = walk(client, user, f"/projects/{project['id']}/tasks", {"status": "todo"})
    assert [t["id"] for t in listed] == [task["id"]]
    other = client.post(
        f"{API}/projects/{project['id']}/tasks",
        headers=user.headers,
        json={"title": "x", "project_id": inbox_id(client, user)},
    )
    assert_problem(other, 422)


def test_deleting_a_project_trashes_its_tasks_and_restore_brings_back_exactly_those(
    client: TestClient,
) -> None:
    user = new_user(client)
    project = make_project(client, user, name="Moving")
    kept = [make_task(client, user, project_id=project["id"]) for _ in range(3)]
    subtask = make_task(client, user, parent_id=kept[0]["id"])
    earlier = make_task(client, user, project_id=project["id"], title="deleted before")
    client.delete(f"{API}/tasks/{earlier['id']}", headers=user.headers)
    url = f"{API}/projects/{project['id']}"
    assert client.delete(url, headers=user.headers).status_code == 204
    assert_problem(client.get(url, headers=user.headers), 404)
    assert_problem(client.get(f"{url}/tasks", headers=user.headers), 404)
    assert walk(client, user, "/tasks") == []
    for task in [*kept, subtask]:
        assert_problem(client.get(f"{API}/tasks/{task['id']}", headers=user.headers), 404)
    trash = walk(client, user, "/trash")
    assert [(i["kind"], i["id"]) for i in trash] == [
        ("project", project["id"]),
        ("task", earlier["id"]),
    ]
    # A task cannot come back into a trashed project.
    blocked = client.post(f"{API}/tasks/{earlier['id']}/restore", headers=user.headers)
    assert_problem(blocked, 409, "container_in_trash")
    assert_problem(client.post(f"{API}/tasks/{kept[0]['id']}/restore", headers=user.headers), 409)
    moving_in = client.post(
        f"{API}/tasks", headers=user.headers, json={"title": "x", "project_id": project["id"]}
    )
    assert_problem(moving_in, 422, "reference_not_found")  # a body naming a trashed project

    restored = client.post(f"{url}/restore", headers=user.headers)
    assert restored.status_code == 200
    assert restored.headers["ETag"] == '"v3"'
    live = {t["id"] for t in walk(client, user, f"/projects/{project['id']}/tasks")}
    assert live == {t["id"] for t in [*kept, subtask]}
    assert [i["id"] for i in walk(client, user, "/trash")] == [earlier["id"]]
    again = client.post(f"{url}/restore", headers=user.headers)
    assert_problem(again, 409, "project_not_in_trash")


def test_other_users_projects_are_404_on_every_verb(client: TestClient) -> None:
    owner, other = new_user(client), new_user(client)
    theirs = make_project(client, owner)
    trashed = make_project(client, owner)
    client.delete(f"{API}/projects/{trashed['id']}", headers=owner.headers)
    missing = client.get(f"{API}/projects/{MISSING_ID}", headers=other.headers).json()
    calls = [
        ("GET", f"/projects/{theirs['id']}", None),
        ("PATCH", f"/projects/{theirs['id']}", {"name": "mine"}),
        ("DELETE", f"/projects/{theirs['id']}", None),
        ("POST", f"/projects/{trashed['id']}/restore", None),
        ("GET", f"/projects/{theirs['id']}/tasks", None),
        ("POST", f"/projects/{theirs['id']}/tasks", {"title": "x"}),
        ("GET", f"/projects/{inbox_id(client, owner)}", None),
    ]
    for method, path, body in calls:
        response = client.request(method, f"{API}{path}", headers=other.headers, json=body)
        problem = assert_problem(response, 404, "project_not_found")
        assert problem["detail"] == missing["detail"]
    assert len(walk(client, other, "/projects")) == 1
    assert client.get(f"{API}/projects/{theirs['id']}", headers=owner.headers).json() == theirs


def test_malformed_ids_and_anonymous(client: TestClient) -> None:
    user = new_user(client)
    for method, path in [
        ("GET", "/projects/xyz"),
        ("PATCH", "/projects/xyz"),
        ("DELETE", "/projects/xyz"),
        ("POST", "/projects/xyz/restore"),
        ("GET", "/projects/xyz/tasks"),
    ]:
        response = client.request(method, f"{API}{path}", headers=user.headers, json={})
        assert_problem(response, 422, "validation_error")
    assert_problem(client.get(f"{API}/projects"), 401)
