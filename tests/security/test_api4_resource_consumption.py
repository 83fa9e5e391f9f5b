"""API4:2023 Unrestricted Resource Consumption.

Walked from the document: every list takes a bounded page size; every string and array a
client can send (body or query) has a documented maximum, and one past it is a 422. Then the
body-size limit (declared and streamed), and the rate limits, each with its 4xx and
`Retry-After`.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.pagination import CURSOR_MAX_LENGTH, MAX_PAGE_SIZE
from app.core.schemas import PASSWORD_MAX_LENGTH
from app.labels.models import NAME_MAX_LENGTH as LABEL_NAME_MAX_LENGTH
from app.projects.models import DESCRIPTION_MAX_LENGTH as PROJECT_DESCRIPTION_MAX_LENGTH
from app.projects.models import NAME_MAX_LENGTH as PROJECT_NAME_MAX_LENGTH
from app.tasks.models import DESCRIPTION_MAX_LENGTH, MAX_LABELS_PER_TASK, TITLE_MAX_LENGTH
from app.tasks.schemas import MAX_BULK_OPERATIONS, MAX_FILTER_VALUES, Q_MAX_LENGTH
from app.users.models import FULL_NAME_MAX_LENGTH
from tests.factories import (
    API,
    SignedInUser,
    new_user,
    register,
    sign_in_admin,
    unique_email,
)
from tests.helpers import PROBLEM
from tests.security.helpers import Operation, leaf_types, operations, owned_params, resolve

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
        admin = sign_in_admin(client)
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
        admin = sign_in_admin(client)
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
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
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
        admin = sign_in_admin(client)
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
        admin = sign_in_admin(client)
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


# --- The checklist ---------------------------------------------------------------------------
#
# One row per limit: the request at the limit is served, one past it is refused with its
# status and problem `code`, and the problem names the offending input. The walks above check
# that every input is bounded; this table checks the bounds that matter most by name.


@dataclass
class Owned:
    """A signed-in user with one task, one project and MAX_LABELS_PER_TASK labels."""

    user: SignedInUser
    task_id: str
    project_id: str
    label_ids: list[str]


@pytest.fixture
def owned(client: TestClient) -> Owned:
    user = new_user(client)

    def create(path: str, body: dict[str, Any]) -> str:
        response = client.post(f"{API}{path}", json=body, headers=user.headers)
        assert response.status_code == 201, response.text
        object_id: str = response.json()["id"]
        return object_id

    return Owned(
        user=user,
        task_id=create("/tasks", {"title": "a task"}),
        project_id=create("/projects", {"name": "a project"}),
        label_ids=[create("/labels", {"name": f"label {i}"}) for i in range(MAX_LABELS_PER_TASK)],
    )


def _ids(owned: Owned, n: int) -> list[str]:
    """n label ids: the user's own (as many as there are), then unknown ones."""
    return (owned.label_ids + [str(uuid.uuid4()) for _ in range(n)])[:n]


@dataclass(frozen=True)
class Limit:
    """`request(client, owned, n)` sends `n` of something: `maximum` is served, one more is not."""

    name: str
    maximum: int
    request: Callable[[TestClient, Owned, int], Any]
    served: int
    loc: tuple[str | int, ...]
    code: str = "validation_error"


def _get(path: str, param: str, value: Callable[[Owned, int], Any]) -> Callable[..., Any]:
    def send(client: TestClient, owned: Owned, n: int) -> Any:
        url = f"{API}{path}".format(project_id=owned.project_id)
        return client.get(url, params={param: value(owned, n)}, headers=owned.user.headers)

    return send


def _json(method: str, path: str, body: Callable[[Owned, int], Any]) -> Callable[..., Any]:
    def send(client: TestClient, owned: Owned, n: int) -> Any:
        url = f"{API}{path}".format(task_id=owned.task_id, project_id=owned.project_id)
        return client.request(method, url, json=body(owned, n), headers=owned.user.headers)

    return send


LIMITS = [
    Limit(
        "page size",
        MAX_PAGE_SIZE,
        _get("/tasks", "limit", lambda _o, n: n),
        200,
        ("query", "limit"),
    ),
    Limit(
        "page size of a project's tasks",
        MAX_PAGE_SIZE,
        _get("/projects/{project_id}/tasks", "limit", lambda _o, n: n),
        200,
        ("query", "limit"),
    ),
    Limit(
        "cursor length",
        CURSOR_MAX_LENGTH,
        _get("/tasks", "cursor", lambda _o, n: "a" * n),
        422,
        ("query", "cursor"),
    ),
    Limit(
        "q length", Q_MAX_LENGTH, _get("/tasks", "q", lambda _o, n: "a" * n), 200, ("query", "q")
    ),
    Limit(
        "repeated status filter",
        MAX_FILTER_VALUES,
        _get("/tasks", "status", lambda _o, n: ["todo"] * n),
        200,
        ("query", "status"),
    ),
    Limit(
        "repeated label filter",
        MAX_FILTER_VALUES,
        _get("/tasks", "label", lambda o, n: _ids(o, n)),
        200,
        ("query", "label"),
    ),
    Limit(
        "task title",
        TITLE_MAX_LENGTH,
        _json("POST", "/tasks", lambda _o, n: {"title": "a" * n}),
        201,
        ("body", "title"),
    ),
    Limit(
        "task title on update",
        TITLE_MAX_LENGTH,
        _json("PATCH", "/tasks/{task_id}", lambda _o, n: {"title": "a" * n}),
        200,
        ("body", "title"),
    ),
    Limit(
        "task description",
        DESCRIPTION_MAX_LENGTH,
        _json("POST", "/tasks", lambda _o, n: {"title": "t", "description": "a" * n}),
        201,
        ("body", "description"),
    ),
    Limit(
        "labels on a new task",
        MAX_LABELS_PER_TASK,
        _json("POST", "/tasks", lambda o, n: {"title": "t", "label_ids": _ids(o, n)}),
        201,
        ("body", "label_ids"),
    ),
    Limit(
        "labels on an updated task",
        MAX_LABELS_PER_TASK,
        _json("PATCH", "/tasks/{task_id}", lambda o, n: {"label_ids": _ids(o, n)}),
        200,
        ("body", "label_ids"),
    ),
    Limit(
        "bulk operations",
        MAX_BULK_OPERATIONS,
        _json(
            "POST",
            "/tasks/bulk",
            lambda o, n: {"operations": [{"op": "complete", "id": o.task_id}] * n},
        ),
        200,
        ("body", "operations"),
    ),
    Limit(
        "labels in one bulk add_labels",
        MAX_LABELS_PER_TASK,
        _json(
            "POST",
            "/tasks/bulk",
            lambda o, n: {
                "operations": [{"op": "add_labels", "id": o.task_id, "label_ids": _ids(o, n)}]
            },
        ),
        200,
        ("body", "operations", 0, "add_labels", "label_ids"),
    ),
    Limit(
        "project name",
        PROJECT_NAME_MAX_LENGTH,
        _json("POST", "/projects", lambda _o, n: {"name": "a" * n}),
        201,
        ("body", "name"),
    ),
    Limit(
        "project description",
        PROJECT_DESCRIPTION_MAX_LENGTH,
        _json("PATCH", "/projects/{project_id}", lambda _o, n: {"description": "a" * n}),
        200,
        ("body", "description"),
    ),
    Limit(
        "label name",
        LABEL_NAME_MAX_LENGTH,
        _json("POST", "/labels", lambda _o, n: {"name": "a" * n}),
        201,
        ("body", "name"),
    ),
    Limit(
        "full name",
        FULL_NAME_MAX_LENGTH,
        _json("PATCH", "/users/me", lambda _o, n: {"full_name": "a" * n}),
        200,
        ("body", "full_name"),
    ),
    Limit(
        "password",
        PASSWORD_MAX_LENGTH,
        _json(
            "POST", "/auth/register", lambda _o, n: {"email": unique_email(), "password": "a" * n}
        ),
        202,
        ("body", "password"),
    ),
]


@pytest.mark.parametrize("limit", LIMITS, ids=lambda limit: limit.name)
def test_each_limit_serves_its_maximum_and_refuses_one_more(
    client: TestClient, owned: Owned, limit: Limit
) -> None:
    at_limit = limit.request(client, owned, limit.maximum)
    assert at_limit.status_code == limit.served, at_limit.text
    over = limit.request(client, owned, limit.maximum + 1)
    assert over.status_code == 422, over.text
    assert over.headers["content-type"] == PROBLEM
    problem = over.json()
    assert problem["code"] == limit.code
    assert list(limit.loc) in [error["loc"] for error in problem["errors"]], problem["errors"]


def test_an_empty_page_is_refused(client: TestClient, owned: Owned) -> None:
    for limit in (0, -1):
        response = client.get(f"{API}/tasks", params={"limit": limit}, headers=owned.user.headers)
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"


def test_a_cursor_at_its_maximum_length_is_still_checked(client: TestClient, owned: Owned) -> None:
    """Up to the bound the cursor is read, and a forged one is `invalid_cursor`."""
    response = client.get(
        f"{API}/tasks", params={"cursor": "a" * CURSOR_MAX_LENGTH}, headers=owned.user.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


def test_labels_added_past_the_per_task_maximum_are_refused(
    client: TestClient, owned: Owned
) -> None:
    """Each request within its own bound, the sum over the limit: the service counts."""
    headers = owned.user.headers
    full = client.post(
        f"{API}/tasks", json={"title": "full", "label_ids": owned.label_ids}, headers=headers
    )
    assert full.status_code == 201, full.text
    extra = client.post(f"{API}/labels", json={"name": "one more"}, headers=headers).json()["id"]
    response = client.post(
        f"{API}/tasks/bulk",
        json={"operations": [{"op": "add_labels", "id": full.json()["id"], "label_ids": [extra]}]},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "too_many_labels"
    assert response.json()["operation_index"] == 0
    labels = client.get(f"{API}/tasks/{full.json()['id']}", headers=headers).json()["labels"]
    assert len(labels) == MAX_LABELS_PER_TASK


# --- Body size at the default limit ----------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid JSON body of exactly `size` bytes (whitespace is JSON)."""
    head, tail = b'{"full_name": "padded"', b"}"
    return head + b" " * (size - len(head) - len(tail)) + tail


def _in_chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_the_default_body_limit_serves_its_maximum_and_refuses_one_byte_more(
    client: TestClient, settings: Any
) -> None:
    limit = settings.MAX_REQUEST_BODY_BYTES
    user = new_user(client)
    headers = {**user.headers, "Content-Type": "application/json"}
    url = f"{API}/users/me"
    answers = {
        "declared, at the limit": (client.patch(url, content=_padded(limit), headers=headers), 200),
        "streamed, at the limit": (
            client.patch(url, content=_in_chunks(_padded(limit)), headers=headers),
            200,
        ),
        "declared, one byte over": (
            client.patch(url, content=_padded(limit + 1), headers=headers),
            413,
        ),
        "streamed, one byte over": (
            client.patch(url, content=_in_chunks(_padded(limit + 1)), headers=headers),
            413,
        ),
    }
    for where, (response, status) in answers.items():
        assert response.status_code == status, f"{where}: {response.text[:200]}"
        if status == 413:
            assert response.headers["content-type"] == PROBLEM, where
            assert response.json()["code"] == "payload_too_large", where


def test_the_body_limit_comes_before_authentication_and_parsing(
    make_app: Callable[..., FastAPI],
) -> None:
    """Anonymous endpoints, forms and bulk alike: the size is refused before anything reads it."""
    with TestClient(make_app(MAX_REQUEST_BODY_BYTES=1024)) as client:
        big = "a" * 2048
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        streamed_form = f"username=a%40example.com&password={big}".encode()
        answers = {
            "register (anonymous JSON)": client.post(
                f"{API}/auth/register", json={"email": "a@example.com", "password": big}
            ),
            "sign-in (anonymous form)": client.post(
                f"{API}/auth/token", data={"username": "a@example.com", "password": big}
            ),
            "bulk without a token": client.post(f"{API}/tasks/bulk", json={"operations": [big]}),
            "streamed form": client.post(
                f"{API}/auth/token", content=_in_chunks(streamed_form, 256), headers=form
            ),
        }
        for where, response in answers.items():
            assert response.status_code == 413, f"{where}: {response.status_code}"
            assert response.json()["code"] == "payload_too_large", where


# --- Rate limits -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    """`attempt(client, i)` is the i-th try; the first `allowed` pass, the next is a 429."""

    name: str
    settings: dict[str, int]
    allowed: int
    attempt: Callable[[TestClient, int], Any]
    passing: int
    window_setting: str


def _register(client: TestClient, i: int) -> Any:
    return client.post(
        f"{API}/auth/register", json={"email": f"rl-{i}@example.com", "password": "long-enough-pw"}
    )


def _wrong_password_for(email: str) -> Callable[[TestClient, int], Any]:
    def attempt(client: TestClient, i: int) -> Any:
        if i == 0:
            register(client, email=email)
        return client.post(f"{API}/auth/token", data={"username": email, "password": "wrong-pw-pw"})

    return attempt


def _wrong_password_anyone(client: TestClient, i: int) -> Any:
    return client.post(
        f"{API}/auth/token", data={"username": f"nobody-{i}@example.com", "password": "wrong-pw"}
    )


def _resend(email: Callable[[int], str]) -> Callable[[TestClient, int], Any]:
    def attempt(client: TestClient, i: int) -> Any:
        return client.post(f"{API}/auth/verify/resend", json={"email": email(i)})

    return attempt


def _recover(email: Callable[[int], str]) -> Callable[[TestClient, int], Any]:
    def attempt(client: TestClient, i: int) -> Any:
        return client.post(f"{API}/auth/password-recovery", json={"email": email(i)})

    return attempt


THROTTLES = [
    Throttle(
        "sign-up per address",
        {"REGISTER_MAX_PER_IP": 2},
        2,
        _register,
        202,
        "REGISTER_WINDOW_SECONDS",
    ),
    Throttle(
        "sign-in failures per account",
        {"LOGIN_MAX_FAILURES_PER_ACCOUNT": 2},
        2,
        _wrong_password_for("victim@example.com"),
        401,
        "LOGIN_FAILURE_WINDOW_SECONDS",
    ),
    Throttle(
        "sign-in failures per address",
        {"LOGIN_MAX_FAILURES_PER_IP": 2},
        2,
        _wrong_password_anyone,
        401,
        "LOGIN_FAILURE_WINDOW_SECONDS",
    ),
    Throttle(
        "password recovery per email",
        {"RECOVERY_MAX_PER_EMAIL": 2},
        2,
        _recover(lambda _i: "someone@example.com"),
        202,
        "RECOVERY_WINDOW_SECONDS",
    ),
    Throttle(
        "password recovery per address",
        {"RECOVERY_MAX_PER_IP": 2},
        2,
        _recover(lambda i: f"someone-{i}@example.com"),
        202,
        "RECOVERY_WINDOW_SECONDS",
    ),
    Throttle(
        "confirmation links per email",
        {"VERIFY_RESEND_MAX_PER_EMAIL": 2},
        2,
        _resend(lambda _i: "someone@example.com"),
        202,
        "VERIFY_RESEND_WINDOW_SECONDS",
    ),
    Throttle(
        "confirmation links per address",
        {"VERIFY_RESEND_MAX_PER_IP": 2},
        2,
        _resend(lambda i: f"someone-{i}@example.com"),
        202,
        "VERIFY_RESEND_WINDOW_SECONDS",
    ),
]


@pytest.mark.parametrize("throttle", THROTTLES, ids=lambda throttle: throttle.name)
def test_each_rate_limit_answers_429_with_retry_after(
    make_app: Callable[..., FastAPI], throttle: Throttle
) -> None:
    app = make_app(**throttle.settings)
    window = getattr(app.state.settings, throttle.window_setting)
    with TestClient(app) as client:
        for i in range(throttle.allowed):
            assert throttle.attempt(client, i).status_code == throttle.passing, i
        refused = throttle.attempt(client, throttle.allowed)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= window
