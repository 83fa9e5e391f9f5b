"""API1:2023 Broken Object Level Authorization.

Every operation that takes an object id in its path, at every verb, is called by one user with
the id of an object another user owns: the answer is 404 (exactly as for a missing row, so ids
cannot be probed), and the owner's object is unchanged afterwards. Admin-only operations
answer 403 to anyone who is not an admin (API5 covers them in depth). Operations come from the
OpenAPI document, objects from `helpers.OWNED`: a new id-taking route is attacked the day it
is mounted.
"""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import new_user
from tests.helpers import PROBLEM
from tests.security.helpers import OWNED, Operation, operations, owned_params


def _id_operations(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if op.path_params]


def test_every_id_parameter_has_a_factory(app: FastAPI) -> None:
    names = {name for op in _id_operations(app) for name in op.path_params}
    assert names, "no id-taking operation found: is the API mounted?"
    assert names <= set(OWNED), f"teach tests/security/helpers.OWNED {names - set(OWNED)}"


def test_another_users_object_is_not_found_at_every_verb(app: FastAPI, client: TestClient) -> None:
    attacker = new_user(client)
    checked = []
    for operation in _id_operations(app):
        victim = new_user(client)
        params = owned_params(client, victim, operation)
        body = {} if operation.body_schema_ref else None
        response = client.request(
            operation.method, operation.url(**params), headers=attacker.headers, json=body
        )
        expected = 403 if operation.admin_only else 404
        assert response.status_code == expected, f"{operation}: {response.text}"
        assert response.headers["content-type"] == PROBLEM
        # Nothing of the victim's object leaks into the refusal.
        for value in params.values():
            assert value not in response.text, operation
        _assert_untouched(app, client, victim, operation, params)
        checked.append(str(operation))
    assert checked


def _assert_untouched(
    app: FastAPI, client: TestClient, victim: object, operation: Operation, params: dict[str, str]
) -> None:
    """The owner still reads the object (when the path has a GET) after the attack."""
    readers = [
        op
        for op in operations(app)
        if op.path == operation.path and op.method == "GET" and not op.admin_only
    ]
    for reader in readers:
        response = client.get(reader.url(**params), headers=victim.headers)  # type: ignore[attr-defined]
        assert response.status_code == 200, f"{operation} changed the victim's object"


def test_a_session_of_another_user_cannot_be_ended(client: TestClient) -> None:
    attacker, victim = new_user(client), new_user(client)
    sessions = client.get("/api/v1/auth/sessions", headers=victim.headers).json()["items"]
    response = client.delete(f"/api/v1/auth/sessions/{sessions[0]['id']}", headers=attacker.headers)
    assert response.status_code == 404
    assert client.get("/api/v1/users/me", headers=victim.headers).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/users/me", "/api/v1/auth/sessions"])
def test_my_resources_are_mine_only(client: TestClient, path: str) -> None:
    """`/me` style routes answer with the caller's data, never anyone else's."""
    first, second = new_user(client), new_user(client)
    body = client.get(path, headers=first.headers).text
    assert second.id not in body
    assert second.email not in body
