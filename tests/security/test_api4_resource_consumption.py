"""API4:2023 Unrestricted Resource Consumption.

Walked from the document: every list takes a bounded page size; every string and array a
client can send (body or query) has a documented maximum, and one past it is a 422. Then the
body-size limit (declared and streamed), and the rate limits, each with its 4xx and
`Retry-After`.
"""

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.pagination import MAX_PAGE_SIZE
from tests.factories import API, new_user, register
from tests.security.helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PROBLEM,
    Operation,
    leaf_types,
    make_admin,
    operations,
    owned_params,
    resolve,
)

# Strings whose length is bounded by something other than maxLength.
BOUNDED_OTHERWISE = {
    "email": "format: email is at most 254 characters",
}


def _list_operations(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if "limit" in op.query_params]


def _body_properties(app: FastAPI, operation: Operation) -> Iterator[tuple[str, dict[str, Any]]]:
    if not operation.body_schema_ref:
        return
    schema = resolve(app, {"$ref": f"#/components/schemas/{operation.body_schema_ref}"})
    for name, prop in schema.get("properties", {}).items():
        for leaf in leaf_types(app, prop):
            yield name, leaf


def test_every_list_bounds_its_page_size(app: FastAPI) -> None:
    lists = _list_operations(app)
    assert lists
    for operation in lists:
        limit = operation.query_params["limit"]
        assert limit.get("maximum") == MAX_PAGE_SIZE, operation
        assert limit.get("minimum", limit.get("exclusiveMinimum", 0)) >= 0, operation


def test_every_string_and_array_input_is_bounded(app: FastAPI) -> None:
    for operation in operations(app):
        inputs = list(_body_properties(app, operation))
        for name, schema in operation.query_params.items():
            inputs.extend((name, leaf) for leaf in leaf_types(app, schema))
        for name, leaf in inputs:
            if leaf.get("type") == "string" and "enum" not in leaf and "format" not in leaf:
                assert "maxLength" in leaf or name in BOUNDED_OTHERWISE, f"{operation}: {name}"
            if leaf.get("type") == "array":
                assert "maxItems" in leaf, f"{operation}: {name} has no maxItems"
            if leaf.get("type") == "integer" and name in {"limit"}:
                assert "maximum" in leaf, f"{operation}: {name}"


def test_a_page_too_large_or_empty_is_refused(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        admin = make_admin(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        for operation in _list_operations(admin_app):
            url = operation.url(**owned_params(client, admin, operation))
            for limit, status in (
                (MAX_PAGE_SIZE + 1, 422),
                (0, 422),
                (-1, 422),
                (MAX_PAGE_SIZE, 200),
            ):
                response = client.get(url, params={"limit": limit}, headers=admin.headers)
                assert response.status_code == status, f"{operation} limit={limit}"


def test_one_character_too_many_is_refused_everywhere(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        admin = make_admin(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        checked = 0
        for operation in operations(admin_app):
            if operation.form_body:
                continue
            caller = admin if operation.admin_only or not operation.secured else new_user(client)
            url = operation.url(**owned_params(client, caller, operation))
            for name, leaf in _body_properties(admin_app, operation):
                if leaf.get("type") == "string" and "maxLength" in leaf:
                    value = "a" * (leaf["maxLength"] + 1)
                    response = client.request(
                        operation.method, url, json={name: value}, headers=caller.headers
                    )
                    assert response.status_code == 422, f"{operation}: {name}"
                    assert ["body", name] in [e["loc"] for e in response.json()["errors"]]
                    checked += 1
            for name, schema in operation.query_params.items():
                for leaf in leaf_types(admin_app, schema):
                    if leaf.get("type") == "string" and "maxLength" in leaf:
                        value = "a" * (leaf["maxLength"] + 1)
                        response = client.request(
                            operation.method, url, params={name: value}, headers=caller.headers
                        )
                        assert response.status_code == 422, f"{operation}: ?{name}"
                        checked += 1
        assert checked


def test_the_sign_in_form_is_bounded(client: TestClient) -> None:
    for field in ("username", "password"):
        form = {"username": "a@example.com", "password": "pw-pw-pw-pw"}
        form[field] = "a" * 5000
        assert client.post(f"{API}/auth/token", data=form).status_code == 422


def test_an_oversized_body_is_a_413_problem(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(MAX_REQUEST_BODY_BYTES=2048)) as client:
        user = new_user(client)
        big = {"full_name": "a" * 4096}
        declared = client.patch(f"{API}/users/me", json=big, headers=user.headers)
        assert declared.status_code == 413
        assert declared.headers["content-type"] == PROBLEM

        def chunks() -> Iterator[bytes]:
            yield b'{"full_name": "'
            for _ in range(8):
                yield b"a" * 512
            yield b'"}'

        streamed = client.patch(
            f"{API}/users/me",
            content=chunks(),
            headers={**user.headers, "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413
        bogus = client.post(
            f"{API}/auth/refresh",
            content=b"{}",
            headers={"Content-Type": "application/json", "Content-Length": "x1"},
        )
        assert bogus.status_code == 400


def _statuses(calls: int, call: Callable[[int], Any]) -> list[Any]:
    return [call(i) for i in range(calls)]


def test_sign_ups_are_rate_limited(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(REGISTER_MAX_PER_IP=3)) as client:
        answers = _statuses(
            4,
            lambda i: client.post(
                f"{API}/auth/register",
                json={"email": f"rl-{i}@example.com", "password": "long-enough-pw"},
            ),
        )
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        assert int(answers[-1].headers["retry-after"]) > 0
        assert answers[-1].headers["content-type"] == PROBLEM


def test_password_recovery_is_rate_limited(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(RECOVERY_MAX_PER_EMAIL=2, RECOVERY_MAX_PER_IP=4)) as client:
        user = register(client)
        per_email = _statuses(
            3,
            lambda _i: (
                client.post(
                    f"{API}/auth/password-recovery", json={"email": user["email"]}
                ).status_code
            ),
        )
        assert per_email == [202, 202, 429]
        per_ip = _statuses(
            3,
            lambda i: (
                client.post(
                    f"{API}/auth/password-recovery", json={"email": f"x{i}@example.com"}
                ).status_code
            ),
        )
        assert per_ip[-1] == 429


def test_a_cursor_is_bounded_and_signed(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        admin = make_admin(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        for operation in _list_operations(admin_app):
            url = operation.url(**owned_params(client, admin, operation))
            huge = client.get(url, params={"cursor": "a" * 5000}, headers=admin.headers)
            assert huge.status_code == 422
            forged = client.get(
                url, params={"cursor": "eyJzIjoidXNlcnMifQ.x"}, headers=admin.headers
            )
            assert forged.status_code == 422


def test_nul_characters_are_refused_everywhere(admin_app: FastAPI) -> None:
    """PostgreSQL cannot store NUL in text (it was a 500 there) and SQLite would store it: the
    edge refuses it in query strings, JSON and forms alike, on every database."""
    with TestClient(admin_app) as client:
        admin = make_admin(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        user = new_user(client)
        answers = {
            "json": client.patch(
                f"{API}/users/me", json={"full_name": "a\x00b"}, headers=user.headers
            ),
            "form": client.post(
                f"{API}/auth/token", data={"username": "a\x00@example.com", "password": "pw-pw-pw"}
            ),
            "query": client.get(f"{API}/users", params={"email": "a\x00"}, headers=admin.headers),
            "escaped in a refresh token": client.post(
                f"{API}/auth/refresh",
                content=b'{"refresh_token": "x\\u0000"}',
                headers={"Content-Type": "application/json"},
            ),
        }
        for where, response in answers.items():
            assert response.status_code == 422, f"{where}: {response.text}"
            assert response.headers["content-type"] == PROBLEM
        # The six characters `\u0000` are ordinary text.
        literal = client.patch(
            f"{API}/users/me", json={"full_name": "a\\u0000b %00"}, headers=user.headers
        )
        assert literal.status_code == 200
        assert literal.json()["full_name"] == "a\\u0000b %00"
