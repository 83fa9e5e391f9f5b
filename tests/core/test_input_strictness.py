"""Request bodies mean what the published schema says: no lax coercions, no stray fields."""

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, new_user
from tests.helpers import assert_problem


@pytest.mark.parametrize("priority", ["2", True, 2.5, -1, 5])
def test_task_priority_must_be_a_whole_json_number_in_range(
    client: TestClient, priority: object
) -> None:
    user = new_user(client)
    response = client.post(
        f"{API}/tasks", json={"title": "x", "priority": priority}, headers=user.headers
    )
    assert response.status_code == 422, response.text


def test_task_priority_accepts_an_integral_float(client: TestClient) -> None:
    # JSON Schema's "integer" includes 2.0; the API accepts what its document allows.
    user = new_user(client)
    response = client.post(
        f"{API}/tasks", json={"title": "x", "priority": 2.0}, headers=user.headers
    )
    assert response.status_code == 201
    assert response.json()["priority"] == 2


@pytest.mark.parametrize("value", [0, 1, "true", "yes"])
def test_booleans_must_be_json_booleans(client: TestClient, value: object) -> None:
    user = new_user(client)
    response = client.post(
        f"{API}/projects", json={"name": "p", "is_archived": value}, headers=user.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "is_archived"]


def test_admin_is_active_must_be_a_boolean(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(FIRST_ADMIN_EMAIL="root@example.com", FIRST_ADMIN_PASSWORD="root-password-1")
    with TestClient(app) as client:
        token = client.post(
            f"{API}/auth/token",
            data={"username": "root@example.com", "password": "root-password-1"},
        ).json()["access_token"]
        response = client.post(
            f"{API}/users",
            json={"email": "someone@example.com", "password": "long-enough-pw", "is_active": 0},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 422


def test_the_project_task_shortcut_takes_no_project_id(client: TestClient) -> None:
    user = new_user(client)
    project = client.post(f"{API}/projects", json={"name": "p"}, headers=user.headers).json()
    url = f"{API}/projects/{project['id']}/tasks"
    stray = client.post(url, json={"title": "x", "project_id": project["id"]}, headers=user.headers)
    assert stray.status_code == 422
    created = client.post(url, json={"title": "x"}, headers=user.headers)
    assert created.status_code == 201
    assert created.json()["project_id"] == project["id"]


def test_other_methods_on_bulk_are_405_with_an_honest_allow(client: TestClient) -> None:
    user = new_user(client)
    for method in ("GET", "PATCH", "DELETE", "PUT"):
        response = client.request(method, f"{API}/tasks/bulk", headers=user.headers)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"
    one_task = client.request("PUT", f"{API}/tasks/01a200c0-1ae6-7423-b001-be292f7cd679")
    assert one_task.status_code == 405
    assert one_task.headers["allow"] == "DELETE, GET, PATCH"


@pytest.mark.parametrize("name", ["\r", "   ", "\x1c\t", "a\x00b"])
@pytest.mark.parametrize("resource", ["projects", "labels"])
def test_blank_names_are_refused_and_the_schema_says_so(
    client: TestClient, resource: str, name: str
) -> None:
    user = new_user(client)
    response = client.post(f"{API}/{resource}", json={"name": name}, headers=user.headers)
    assert response.status_code == 422
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    create = "ProjectCreate" if resource == "projects" else "LabelCreate"
    assert schemas[create]["properties"]["name"]["pattern"]


def test_names_are_trimmed(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(f"{API}/projects", json={"name": "  Garden \n"}, headers=user.headers)
    assert response.json()["name"] == "Garden"


@pytest.mark.parametrize(
    "instant",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"],
)
def test_an_instant_outside_years_1_to_9999_in_utc_is_a_422(
    client: TestClient, instant: str
) -> None:
    """The instant exists with its offset but has no UTC datetime: a 422 at the field, in a
    body and in a filter, never an OverflowError's 500."""
    user = new_user(client)
    created = client.post(
        f"{API}/tasks", headers=user.headers, json={"title": "t", "due_at": instant}
    )
    body = assert_problem(created, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "due_at"]
    assert "years 1 to 9999" in body["errors"][0]["msg"]
    for name in ("due_before", "due_after", "updated_since", "completed_since"):
        listed = client.get(f"{API}/tasks", headers=user.headers, params={name: instant})
        body = assert_problem(listed, 422, "validation_error")
        assert body["errors"][0]["loc"] == ["query", name]


def test_an_instant_at_the_edge_of_the_range_is_taken_in_utc(client: TestClient) -> None:
    user = new_user(client)
    created = client.post(
        f"{API}/tasks",
        headers=user.headers,
        json={"title": "t", "due_at": "9999-12-31T22:59:59-01:00"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["due_at"] == "9999-12-31T23:59:59+00:00"
