"""Plain functions that make projects, labels and tasks through the API."""

from typing import Any

from fastapi.testclient import TestClient

from tests.factories import API, SignedInUser

MISSING_ID = "01900000-0000-7000-8000-000000000000"


def make_project(client: TestClient, user: SignedInUser, **fields: Any) -> dict[str, Any]:
    response = client.post(f"{API}/projects", headers=user.headers, json={"name": "P", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_label(client: TestClient, user: SignedInUser, name: str, **fields: Any) -> dict[str, Any]:
    response = client.post(f"{API}/labels", headers=user.headers, json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_task(client: TestClient, user: SignedInUser, **fields: Any) -> dict[str, Any]:
    response = client.post(f"{API}/tasks", headers=user.headers, json={"title": "T", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def inbox_id(client: TestClient, user: SignedInUser) -> str:
    response = client.get(f"{API}/projects", headers=user.headers)
    (inbox,) = [p for p in response.json()["items"] if p["is_inbox"]]
    return str(inbox["id"])


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


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body
