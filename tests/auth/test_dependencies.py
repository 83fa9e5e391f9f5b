"""The who-is-calling dependencies: composable, enforced on every route, overridable in tests."""

import inspect
import re
import uuid
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.auth.dependencies import get_current_active_user, get_current_user, require_admin
from app.core.errors import Forbidden
from app.users.models import Role, User
from tests.auth.helpers import change_elsewhere, uuid_param
from tests.factories import API, new_user, register
from tests.helpers import assert_problem

PUBLIC = {
    ("POST", f"{API}/auth/register"),
    ("POST", f"{API}/auth/verify"),
    ("POST", f"{API}/auth/verify/resend"),
    ("POST", f"{API}/auth/token"),
    ("POST", f"{API}/auth/refresh"),
    ("POST", f"{API}/auth/password-recovery"),
    ("POST", f"{API}/auth/password-reset"),
}


def _stand_in(role: Role = Role.USER, *, active: bool = True) -> User:
    return User(
        id=uuid.uuid4(),
        email=f"stand-in-{uuid.uuid4().hex[:8]}@example.com",
        hashed_password="not-a-hash",
        role=role,
        is_active=active,
    )


class Marker(Forbidden):
    code = "dependency_marker"


def _operations(client: TestClient) -> list[tuple[str, str]]:
    """Every API operation the OpenAPI document declares, path parameters filled in."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path))
        for path, item in paths.items()
        if path.startswith(API)
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _reaches(app: FastAPI, client: TestClient, dependency: Callable[..., object]) -> set[str]:
    """The operations that call `dependency` (found by overriding it with a marker error)."""

    def marker() -> None:
        raise Marker()

    app.dependency_overrides[dependency] = marker
    try:
        reached = set()
        for method, path in _operations(client):
            response = client.request(method, path)
            if response.status_code == 403 and response.json()["code"] == "dependency_marker":
                reached.add(f"{method} {path.split(API, 1)[1]}")
        return reached
    finally:
        app.dependency_overrides.pop(dependency)


def _templates(client: TestClient) -> set[str]:
    return {
        f"{method} {re.sub(r'[0-9a-f-]{36}', '{id}', path.split(API, 1)[1])}"
        for method, path in _operations(client)
    }


def _normalise(reached: set[str]) -> set[str]:
    return {re.sub(r"[0-9a-f-]{36}", "{id}", entry) for entry in reached}


def test_every_route_but_the_public_ones_depends_on_the_user_dependencies(
    app: FastAPI, client: TestClient
) -> None:
    everything = _templates(client)
    public = {f"{method} {path.split(API, 1)[1]}" for method, path in PUBLIC}
    assert public < everything
    for dependency in (get_current_user, get_current_active_user):
        assert _normalise(_reaches(app, client, dependency)) == everything - public


def test_every_admin_route_depends_on_require_admin(app: FastAPI, client: TestClient) -> None:
    admin_routes = {
        "GET /users",
        "POST /users",
        "GET /users/{id}",
        "PATCH /users/{id}",
        "DELETE /users/{id}",
    }
    assert _normalise(_reaches(app, client, require_admin)) >= admin_routes
    assert not any("/me" in entry for entry in _reaches(app, client, require_admin))


def test_get_current_user_can_be_overridden(app: FastAPI, client: TestClient) -> None:
    stand_in = _stand_in()
    app.dependency_overrides[get_current_user] = lambda: stand_in
    response = client.get(f"{API}/users/me")  # no token at all
    assert response.status_code == 200, response.text
    assert response.json()["email"] == stand_in.email
    # The active check downstream still applies to the overridden user.
    app.dependency_overrides[get_current_user] = lambda: _stand_in(active=False)
    assert_problem(client.get(f"{API}/users/me"), 401)


def test_get_current_active_user_can_be_overridden(app: FastAPI, client: TestClient) -> None:
    stand_in = _stand_in()
    app.dependency_overrides[get_current_active_user] = lambda: stand_in
    assert client.get(f"{API}/users/me").json()["id"] == str(stand_in.id)
    # A plain user is still not an admin.
    assert_problem(client.get(f"{API}/users"), 403, "forbidden")

    def refuse() -> User:
        raise Forbidden("Suspended for the test.")

    app.dependency_overrides[get_current_active_user] = refuse
    assert_problem(client.get(f"{API}/users/me"), 403, "forbidden")


def test_require_admin_can_be_overridden(app: FastAPI, client: TestClient) -> None:
    register(client)
    app.dependency_overrides[require_admin] = lambda: _stand_in(Role.ADMIN)
    response = client.get(f"{API}/users")
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 1


def test_overrides_are_cleared_after_each_test(app: FastAPI, client: TestClient) -> None:
    assert app.dependency_overrides == {}
    assert_problem(client.get(f"{API}/users/me"), 401, "not_authenticated")


def test_a_deactivated_account_is_locked_out_even_with_open_sessions(
    client: TestClient, housekeeping_engine: Engine
) -> None:
    """Deactivated behind the API's back (sessions not revoked): every route still says 401."""
    user = new_user(client)
    sessions = client.get(f"{API}/auth/sessions", headers=user.headers).json()["items"]
    change_elsewhere(
        client,
        housekeeping_engine,
        'UPDATE "user" SET is_active = false WHERE id = :id',
        id=uuid_param(housekeeping_engine, user.id),
    )
    for method, path in [
        ("GET", f"{API}/users/me"),
        ("GET", f"{API}/auth/sessions"),
        ("POST", f"{API}/auth/logout"),
        ("DELETE", f"{API}/auth/sessions/{sessions[0]['id']}"),
        ("DELETE", f"{API}/users/me"),
    ]:
        assert_problem(client.request(method, path, headers=user.headers), 401, "invalid_token")
    response = client.post(
        f"{API}/users/me/password",
        json={"current_password": user.password, "new_password": "new-password-1"},
        headers=user.headers,
    )
    assert_problem(response, 401)


@pytest.mark.parametrize("dependency", [get_current_user, get_current_active_user, require_admin])
def test_each_dependency_is_a_small_async_step(dependency: Callable[..., object]) -> None:
    # Small and composable: each takes the previous one's result, so an override of one
    # feeds the rest of the chain.
    assert inspect.iscoroutinefunction(dependency)
    assert len(inspect.signature(dependency).parameters) == 1
