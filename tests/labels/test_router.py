"""Labels over HTTP: CRUD, case-insensitive names, limits, ETags, tasks carrying them, ownership."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import API, make_label, make_task, new_user
from tests.helpers import MISSING_ID, assert_problem, walk


def test_create_read_update_delete(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(
        f"{API}/labels", headers=user.headers, json={"name": "Work", "color": "#AABBCC"}
    )
    assert response.status_code == 201
    label = response.json()
    assert response.headers["Location"] == f"/api/v1/labels/{label['id']}"
    assert response.headers["ETag"] == '"v1"'
    url = f"{API}/labels/{label['id']}"
    assert client.get(url, headers=user.headers).json() == label
    patched = client.patch(url, headers=user.headers, json={"color": None}).json()
    assert (patched["name"], patched["color"], patched["version"]) == ("Work", None, 2)
    assert_problem(client.patch(url, headers=user.headers, json={"name": None}), 422)
    assert client.delete(url, headers=user.headers).status_code == 204
    assert_problem(client.get(url, headers=user.headers), 404, "label_not_found")


def test_names_are_unique_per_user_ignoring_case(client: TestClient) -> None:
    user, other = new_user(client), new_user(client)
    work = make_label(client, user, "Work")
    duplicate = client.post(f"{API}/labels", headers=user.headers, json={"name": " WORK "})
    assert_problem(duplicate, 409, "label_name_taken")
    make_label(client, other, "work")  # another user's namespace
    home = make_label(client, user, "home")
    rename = client.patch(f"{API}/labels/{home['id']}", headers=user.headers, json={"name": "wOrk"})
    assert_problem(rename, 409, "label_name_taken")
    recase = client.patch(f"{API}/labels/{work['id']}", headers=user.headers, json={"name": "WORK"})
    assert recase.json()["name"] == "WORK"
    assert [label["name"] for label in walk(client, user, "/labels")] == ["home", "WORK"]


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x" * 51}, {"name": "ok", "color": "blue"}, {"name": "ok", "id": 1}],
)
def test_limits_are_422(client: TestClient, body: dict[str, Any]) -> None:
    user = new_user(client)
    assert_problem(client.post(f"{API}/labels", headers=user.headers, json=body), 422)


def test_list_pages_in_name_order(client: TestClient) -> None:
    user = new_user(client)
    names = ["delta", "Alpha", "charlie", "Bravo", "echo"]
    for name in names:
        make_label(client, user, name)
    listed = walk(client, user, "/labels", {"limit": 2})
    assert [label["name"] for label in listed] == sorted(names, key=str.lower)
    total = client.get(f"{API}/labels", headers=user.headers, params={"include_total": "true"})
    assert total.json()["total"] == 5


def test_renaming_or_deleting_a_label_changes_its_tasks(client: TestClient) -> None:
    user = new_user(client)
    label = make_label(client, user, "old")
    task = make_task(client, user, label_ids=[label["id"]])
    client.patch(f"{API}/labels/{label['id']}", headers=user.headers, json={"name": "new"})
    after_rename = client.get(f"{API}/tasks/{task['id']}", headers=user.headers)
    assert after_rename.json()["labels"][0]["name"] == "new"
    assert after_rename.headers["ETag"] == '"v2"'
    client.delete(f"{API}/labels/{label['id']}", headers=user.headers)
    after_delete = client.get(f"{API}/tasks/{task['id']}", headers=user.headers).json()
    assert (after_delete["labels"], after_delete["version"]) == ([], 3)


def test_etags(client: TestClient) -> None:
    user = new_user(client)
    label = make_label(client, user, "x")
    url = f"{API}/labels/{label['id']}"
    assert client.get(url, headers={**user.headers, "If-None-Match": '"v1"'}).status_code == 304
    assert client.patch(
        url, headers={**user.headers, "If-Match": '"v1"'}, json={"name": "y"}
    ).is_success
    stale = client.patch(url, headers={**user.headers, "If-Match": '"v1"'}, json={"name": "z"})
    assert assert_problem(stale, 412, "version_mismatch")["current_version"] == 2
    assert_problem(client.delete(url, headers={**user.headers, "If-Match": '"v1"'}), 412)
    assert client.get(url, headers=user.headers).json()["name"] == "y"


def test_other_users_labels_are_404_on_every_verb(client: TestClient) -> None:
    owner, other = new_user(client), new_user(client)
    theirs = make_label(client, owner, "theirs")
    mine = make_task(client, other)
    missing = client.get(f"{API}/labels/{MISSING_ID}", headers=other.headers).json()
    for method, body in [("GET", None), ("PATCH", {"name": "mine"}), ("DELETE", None)]:
        response = client.request(
            method, f"{API}/labels/{theirs['id']}", headers=other.headers, json=body
        )
        assert assert_problem(response, 404, "label_not_found")["detail"] == missing["detail"]
    attach = client.patch(
        f"{API}/tasks/{mine['id']}", headers=other.headers, json={"label_ids": [theirs["id"]]}
    )
    assert assert_problem(attach, 422, "reference_not_found")["errors"][0]["loc"] == [
        "body",
        "label_ids",
        0,
    ]
    bulk = client.post(
        f"{API}/tasks/bulk",
        headers=other.headers,
        json={
            "operations": [{"op": "remove_labels", "id": mine["id"], "label_ids": [theirs["id"]]}]
        },
    )
    assert assert_problem(bulk, 422, "reference_not_found")["operation_index"] == 0
    assert walk(client, other, "/labels") == []
    assert client.get(f"{API}/labels/{theirs['id']}", headers=owner.headers).json() == theirs


def test_malformed_ids_and_anonymous(client: TestClient) -> None:
    user = new_user(client)
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, f"{API}/labels/1", headers=user.headers, json={})
        assert_problem(response, 422, "validation_error")
    assert_problem(client.get(f"{API}/labels"), 401)
