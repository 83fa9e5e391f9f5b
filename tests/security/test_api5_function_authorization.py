"""API5:2023 Broken Function Level Authorization.

The admin operations are found from the route table (every route whose dependencies include
`require_admin`), and cross-checked against the ones this API must have: each refuses a plain
user (403) and an anonymous caller (401), and works for an admin. An admin who is demoted or
deactivated loses the power at once, on the token they already hold.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import new_user, sign_in_admin
from tests.helpers import PROBLEM
from tests.security.helpers import Operation, operations, owned_params

# The operations that must be admin-only; the route table may add more, never fewer.
MUST_BE_ADMIN_ONLY = {
    "users-list_users",
    "users-create_user",
    "users-read_user",
    "users-update_user",
    "users-delete_user",
}


def _admin_operations(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if op.admin_only]


def _body(operation: Operation) -> dict[str, Any] | None:
    if operation.operation_id == "users-create_user":
        return {"email": "made-by-attacker@example.com", "password": "long-enough-pass"}
    return {} if operation.body_schema_ref else None


def test_the_admin_operations_are_gated(admin_app: FastAPI) -> None:
    gated = {op.operation_id for op in _admin_operations(admin_app)}
    assert gated >= MUST_BE_ADMIN_ONLY


def test_every_admin_operation_refuses_a_plain_user(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        user = new_user(client)
        for operation in _admin_operations(admin_app):
            target = new_user(client)
            url = operation.url(**owned_params(client, target, operation))
            for headers, status in ((user.headers, 403), ({}, 401)):
                response = client.request(
                    operation.method, url, headers=headers, json=_body(operation)
                )
                assert response.status_code == status, f"{operation}: {response.text}"
                assert response.headers["content-type"] == PROBLEM
            # The refused call changed nothing: the target is still there and still a user.
            admin = sign_in_admin(client)
            seen = client.get(f"/api/v1/users/{target.id}", headers=admin.headers).json()
            assert seen["role"] == "user"
            assert seen["is_active"] is True
        listed = client.get("/api/v1/users?limit=200", headers=admin.headers).json()["items"]
        assert "made-by-attacker@example.com" not in {u["email"] for u in listed}


def test_every_admin_operation_works_for_an_admin(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        admin = sign_in_admin(client)
        for operation in _admin_operations(admin_app):
            target = new_user(client)
            url = operation.url(**owned_params(client, target, operation))
            body = _body(operation)
            if body is not None and operation.operation_id == "users-create_user":
                body = {**body, "email": f"made-{operation.method.lower()}@example.com"}
            response = client.request(operation.method, url, headers=admin.headers, json=body)
            assert response.status_code < 300, f"{operation}: {response.text}"


def test_a_demoted_admin_loses_the_power_at_once(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        root = sign_in_admin(client)
        made = client.post(
            "/api/v1/users",
            json={
                "email": "second-admin@example.com",
                "password": "second-admin-pw",
                "role": "admin",
            },
            headers=root.headers,
        )
        assert made.status_code == 201, made.text
        second = sign_in_admin(client, email="second-admin@example.com", password="second-admin-pw")
        assert client.get("/api/v1/users", headers=second.headers).status_code == 200
        demoted = client.patch(
            f"/api/v1/users/{second.id}", json={"role": "user"}, headers=root.headers
        )
        assert demoted.status_code == 200
        assert client.get("/api/v1/users", headers=second.headers).status_code == 403


def test_a_deactivated_admin_is_refused(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        root = sign_in_admin(client)
        client.post(
            "/api/v1/users",
            json={
                "email": "other-admin@example.com",
                "password": "other-admin-pw",
                "role": "admin",
            },
            headers=root.headers,
        )
        other = sign_in_admin(client, email="other-admin@example.com", password="other-admin-pw")
        off = client.patch(
            f"/api/v1/users/{other.id}", json={"is_active": False}, headers=root.headers
        )
        assert off.status_code == 200
        assert client.get("/api/v1/users", headers=other.headers).status_code == 401


def test_a_user_cannot_make_themselves_admin(client: TestClient) -> None:
    user = new_user(client)
    response = client.patch("/api/v1/users/me", json={"role": "admin"}, headers=user.headers)
    assert response.status_code == 422
    assert client.get("/api/v1/users/me", headers=user.headers).json()["role"] == "user"
    registered = client.post(
        "/api/v1/auth/register",
        json={"email": "sneaky@example.com", "password": "long-enough-pw", "role": "admin"},
    )
    assert registered.status_code == 422
