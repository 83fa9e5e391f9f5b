"""API3:2023 Broken Object Property Level Authorization.

Requests: no request body of any operation documents a server-owned field (ids, owners,
versions, timestamps, hashes; roles and activity outside the admin operations), and sending
one is a 422 that names it, never a silent write. Responses: no documented response schema,
and no actual answer of any readable operation, carries a secret (hashes, reset tokens, token
ids) or another user's data.
"""

import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, new_user, sign_in_admin
from tests.security.helpers import Operation, json_keys, operations, owned_params, walk_schema

SERVER_OWNED = {
    "id": str(uuid.uuid4()),
    "owner_id": str(uuid.uuid4()),
    "user_id": str(uuid.uuid4()),
    "version": 99,
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "deleted_at": "2000-01-01T00:00:00Z",
    "hashed_password": "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA",
    "is_inbox": True,
    "email_verified_at": "2000-01-01T00:00:00Z",
    "pending_email": "thief@example.com",
}
# Only an admin may set these, and only on the admin operations.
ADMIN_SETTABLE = {"role": "admin", "is_active": False, "email_verified": True}

# Never in any response, at any depth.
SECRET_FIELDS = {
    "hashed_password",
    "password",
    "password_hash",
    "new_password",
    "current_password",
    "refresh_jti",
    "jti",
    "secret",
    "reset_token",
    "pwh",
}
# Token endpoints hand out tokens; nothing else does.
TOKEN_FIELDS = {"access_token", "refresh_token", "token"}
TOKEN_OPERATIONS = {"auth-sign_in", "auth-refresh"}
# Server-owned names that a body may carry to *name a target*, never to write it.
NAMES_A_TARGET = {
    ("tasks-bulk_tasks", "id"): "each bulk operation names the task it acts on",
    ("sharing-transfer_project", "user_id"): "names the member who becomes the owner",
}
# A name that means something else in that body: a member's role in one project (which its
# owner sets, and which the policy reads) is not the account's role.
OTHER_MEANING = {
    ("sharing-invite_member", "role"): "the invitee's role in this project",
    ("sharing-change_member_role", "role"): "the member's role in this project",
}


def _body_operations(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if op.body_schema_ref]


def _request_properties(app: FastAPI, operation: Operation) -> set[str]:
    ref = {"$ref": f"#/components/schemas/{operation.body_schema_ref}"}
    return {name for name, _ in walk_schema(app, ref)}


def test_no_request_body_documents_a_server_owned_field(app: FastAPI) -> None:
    for operation in _body_operations(app):
        forbidden = set(SERVER_OWNED)
        if not operation.admin_only:
            forbidden |= set(ADMIN_SETTABLE)
        allowed = {
            name
            for op_id, name in [*NAMES_A_TARGET, *OTHER_MEANING]
            if op_id == operation.operation_id
        }
        writable = _request_properties(app, operation) & forbidden - allowed
        assert not writable, f"{operation} accepts {writable}"


def test_sending_a_server_owned_field_is_refused_by_every_operation(
    admin_app: FastAPI,
) -> None:
    with TestClient(admin_app) as client:
        admin = sign_in_admin(client)
        for operation in _body_operations(admin_app):
            caller = admin if operation.admin_only else new_user(client)
            if operation.form_body:
                continue  # the sign-in form: unknown form fields carry no meaning there
            fields = dict(SERVER_OWNED)
            if not operation.admin_only:
                fields |= ADMIN_SETTABLE
            url = operation.url(**owned_params(client, caller, operation))
            for name, value in fields.items():
                response = client.request(
                    operation.method, url, json={name: value}, headers=caller.headers
                )
                assert response.status_code == 422, f"{operation} took {name}: {response.text}"
                locations = [tuple(e["loc"]) for e in response.json()["errors"]]
                assert ("body", name) in locations, f"{operation}: {name} not named"


def test_a_refused_field_writes_nothing(client: TestClient) -> None:
    user = new_user(client)
    before = client.get(f"{API}/users/me", headers=user.headers).json()
    for name, value in {**SERVER_OWNED, **ADMIN_SETTABLE}.items():
        client.patch(
            f"{API}/users/me", json={"full_name": "Changed", name: value}, headers=user.headers
        )
    assert client.get(f"{API}/users/me", headers=user.headers).json() == before


def test_no_response_schema_documents_a_secret(app: FastAPI) -> None:
    for operation in operations(app):
        for status, response in operation.spec["responses"].items():
            for media in response.get("content", {}).values():
                names = {name for name, _ in walk_schema(app, media.get("schema", {}))}
                leaked = names & SECRET_FIELDS
                if operation.operation_id not in TOKEN_OPERATIONS:
                    leaked |= names & TOKEN_FIELDS
                assert not leaked, f"{operation} {status} documents {leaked}"


def test_no_answer_carries_a_secret_or_another_users_data(admin_app: FastAPI) -> None:
    """Every GET a plain user can make, on their own objects, with another user around."""
    with TestClient(admin_app) as client:
        user, other = new_user(client), new_user(client)
        seen: list[str] = []
        for operation in operations(admin_app):
            if operation.method != "GET" or operation.admin_only or not operation.secured:
                continue
            url = operation.url(**owned_params(client, user, operation))
            response = client.get(url, headers=user.headers)
            assert response.status_code == 200, f"{operation}: {response.text}"
            _assert_clean(response.json(), str(operation), other)
            seen.append(str(operation))
        assert seen
        # The admin views of accounts show no secrets either.
        admin = sign_in_admin(client)
        for url in (f"{API}/users", f"{API}/users/{user.id}"):
            body = client.get(url, headers=admin.headers).json()
            assert not set(json_keys(body)) & (SECRET_FIELDS | TOKEN_FIELDS), url


def _assert_clean(body: Any, what: str, other: Any) -> None:
    keys = set(json_keys(body))
    assert not keys & (SECRET_FIELDS | TOKEN_FIELDS), f"{what}: {keys & SECRET_FIELDS}"
    text = str(body)
    assert other.id not in text, f"{what} shows another user's id"
    assert other.email not in text, f"{what} shows another user's email"


def test_validation_errors_do_not_echo_secrets(client: TestClient) -> None:
    secret = "my-secret-password-" + "x" * 200
    response = client.post(
        f"{API}/auth/register", json={"email": "echo@example.com", "password": secret}
    )
    assert response.status_code == 422
    assert secret not in response.text
    assert "input" not in set(json_keys(response.json()))
