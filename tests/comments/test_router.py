"""Comments over HTTP: oldest first, their authors' to change, hidden with their task."""

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, SignedInUser, make_task, new_user
from tests.helpers import MISSING_ID, assert_problem, walk


def _comment(client: TestClient, user: SignedInUser, task_id: str, body: str) -> httpx.Response:
    return client.post(f"{API}/tasks/{task_id}/comments", headers=user.headers, json={"body": body})


def test_comments_are_listed_oldest_first_and_read_one_by_one(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user)
    made = [_comment(client, user, task["id"], f"  note {n}  ") for n in range(3)]
    assert all(response.status_code == 201 for response in made)
    first = made[0].json()
    assert (first["body"], first["author_id"], first["task_id"]) == ("note 0", user.id, task["id"])
    assert made[0].headers["location"] == f"{API}/comments/{first['id']}"
    listed = walk(client, user, f"/tasks/{task['id']}/comments", {"limit": 2})
    assert [comment["body"] for comment in listed] == ["note 0", "note 1", "note 2"]
    read = client.get(f"{API}/comments/{first['id']}", headers=user.headers)
    assert read.json() == first


@pytest.mark.parametrize(
    ("body", "status"),
    [("", 422), ("   ", 422), ("x" * 10_001, 422), ("x" * 10_000, 201), ("é\n\tok", 201)],
)
def test_the_text_follows_the_rules_of_other_text_fields(
    client: TestClient, body: str, status: int
) -> None:
    user = new_user(client)
    task = make_task(client, user)
    response = _comment(client, user, task["id"], body)
    assert response.status_code == status, response.text
    if status == 422:
        assert_problem(response, 422)


def test_editing_and_deleting(client: TestClient) -> None:
    user, stranger = new_user(client), new_user(client)
    task = make_task(client, user)
    comment = _comment(client, user, task["id"], "first").json()
    url = f"{API}/comments/{comment['id']}"
    edited = client.patch(url, headers=user.headers, json={"body": "second"})
    assert edited.status_code == 200
    assert edited.json()["body"] == "second"
    assert edited.json()["updated_at"] >= comment["updated_at"]
    for method, body in (("GET", None), ("PATCH", {"body": "mine"}), ("DELETE", None)):
        response = client.request(method, url, headers=stranger.headers, json=body)
        assert_problem(response, 404, "comment_not_found")
    assert_problem(
        client.post(
            f"{API}/tasks/{task['id']}/comments", headers=stranger.headers, json={"body": "x"}
        ),
        404,
        "task_not_found",
    )
    assert client.delete(url, headers=user.headers).status_code == 204
    assert_problem(client.get(url, headers=user.headers), 404, "comment_not_found")
    assert_problem(client.get(f"{API}/comments/{MISSING_ID}", headers=user.headers), 404)


def test_a_trashed_task_hides_its_comments_and_restoring_brings_them_back(
    client: TestClient,
) -> None:
    user = new_user(client)
    task = make_task(client, user)
    comment = _comment(client, user, task["id"], "kept").json()
    assert client.delete(f"{API}/tasks/{task['id']}", headers=user.headers).status_code == 204
    assert_problem(client.get(f"{API}/tasks/{task['id']}/comments", headers=user.headers), 404)
    assert_problem(client.get(f"{API}/comments/{comment['id']}", headers=user.headers), 404)
    assert client.post(f"{API}/tasks/{task['id']}/restore", headers=user.headers).status_code == 200
    assert [c["id"] for c in walk(client, user, f"/tasks/{task['id']}/comments")] == [comment["id"]]


def test_comments_per_task_are_capped(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(COMMENTS_PER_TASK_MAX=2)) as client:
        user = new_user(client)
        task = make_task(client, user)
        assert _comment(client, user, task["id"], "1").status_code == 201
        assert _comment(client, user, task["id"], "2").status_code == 201
        body = assert_problem(_comment(client, user, task["id"], "3"), 409, "quota_exceeded")
        assert (body["resource"], body["limit"]) == ("comments", 2)


def test_comments_are_in_the_task_s_activity(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user)
    comment = _comment(client, user, task["id"], "hello").json()
    history = client.get(f"{API}/projects/{task['project_id']}/activity", headers=user.headers)
    latest = history.json()["items"][0]
    assert (latest["entity_type"], latest["verb"], latest["entity_id"]) == (
        "comment",
        "create",
        comment["id"],
    )
    assert latest["changes"]["body"] == [None, "hello"]
