"""/users/me for everyone, /users for admins."""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.auth.helpers import scalar, uuid_param
from tests.factories import (
    ADMIN_EMAIL,
    ADMIN_SETTINGS,
    API,
    SignedInUser,
    bearer,
    new_user,
    register,
    sign_in,
    sign_in_admin,
    unique_email,
)
from tests.helpers import assert_problem

ME = f"{API}/users/me"


@pytest.fixture
def admin_client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app(**ADMIN_SETTINGS)) as client:
        yield client


@pytest.fixture
def admin(admin_client: TestClient) -> SignedInUser:
    return sign_in_admin(admin_client)


# --- /users/me --------------------------------------------------------------------------


def test_read_me(client: TestClient) -> None:
    user = new_user(client)
    response = client.get(ME, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["id"] == user.id
    assert "hashed_password" not in response.json()
    assert_problem(client.get(ME), 401, "not_authenticated")


def test_update_me_changes_only_the_fields_sent(client: TestClient) -> None:
    user = new_user(client)
    first = client.patch(ME, json={"full_name": "Ada"}, headers=user.headers)
    assert first.status_code == 200, first.text
    new_email = unique_email("Renamed").upper()
    second = client.patch(
        ME, json={"email": new_email, "current_password": user.password}, headers=user.headers
    )
    assert second.json()["email"] == new_email.lower()
    assert second.json()["full_name"] == "Ada"
    assert second.json()["updated_at"] > first.json()["created_at"]
    cleared = client.patch(ME, json={"full_name": None}, headers=user.headers)
    assert cleared.json()["full_name"] is None
    # The email is the sign-in name from now on.
    sign_in(client, new_email.lower(), user.password)
    old = client.post(f"{API}/auth/token", data={"username": user.email, "password": user.password})
    assert_problem(old, 401, "invalid_credentials")


def test_update_me_to_a_taken_email_is_a_409(client: TestClient) -> None:
    user = new_user(client)
    other = register(client)
    response = client.patch(
        ME,
        json={"email": other["email"].upper(), "current_password": user.password},
        headers=user.headers,
    )
    assert_problem(response, 409, "email_taken")
    assert client.get(ME, headers=user.headers).json()["email"] == user.email


def test_changing_the_email_needs_the_current_password(client: TestClient) -> None:
    # Otherwise a stolen access token could move the account to the thief's mailbox and
    # take it over through password recovery.
    user = new_user(client)
    new_email = unique_email("thief")
    missing = client.patch(ME, json={"email": new_email}, headers=user.headers)
    assert_problem(missing, 422, "password_required")
    wrong = client.patch(
        ME, json={"email": new_email, "current_password": "not-my-password"}, headers=user.headers
    )
    assert_problem(wrong, 400, "wrong_password")
    assert client.get(ME, headers=user.headers).json()["email"] == user.email
    # Re-sending the same email, or changing only the name, needs no password.
    same = client.patch(ME, json={"email": user.email, "full_name": "Ada"}, headers=user.headers)
    assert same.status_code == 200


@pytest.mark.parametrize(
    "field",
    [
        {"role": "admin"},
        {"is_active": False},
        {"id": str(uuid.uuid4())},
        {"hashed_password": "x"},
        {"password": "new-password-1"},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"updated_at": "2020-01-01T00:00:00Z"},
    ],
    ids=lambda field: next(iter(field)),
)
def test_update_me_refuses_server_owned_fields(client: TestClient, field: dict[str, Any]) -> None:
    user = new_user(client)
    before = client.get(ME, headers=user.headers).json()
    response = client.patch(ME, json={"full_name": "Mallory", **field}, headers=user.headers)
    assert_problem(response, 422, "validation_error")
    assert client.get(ME, headers=user.headers).json() == before
    sign_in(client, user.email, user.password)


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email"},
        {"full_name": "x" * 201},
        {"full_name": "tab\tname"},
        {"full_name": 5},
        [],
    ],
    ids=["email", "long-name", "control-char", "type", "not-an-object"],
)
def test_update_me_bad_input_is_a_422(client: TestClient, body: Any) -> None:
    user = new_user(client)
    assert_problem(client.patch(ME, json=body, headers=user.headers), 422, "validation_error")
    assert_problem(client.patch(ME, json={"full_name": "x"}), 401)


def test_delete_me_removes_the_account_and_everything_it_owns(
    client: TestClient, housekeeping_engine: Engine
) -> None:
    user = new_user(client)
    other = new_user(client)
    owner = uuid_param(housekeeping_engine, user.id)
    counts = [
        "SELECT count(*) FROM project WHERE owner_id = :id",
        "SELECT count(*) FROM auth_session WHERE user_id = :id",
        'SELECT count(*) FROM "user" WHERE id = :id',
    ]
    assert [scalar(housekeeping_engine, sql, id=owner) for sql in counts] == [1, 1, 1]
    response = client.delete(ME, headers=user.headers)
    assert response.status_code == 204
    assert [scalar(housekeeping_engine, sql, id=owner) for sql in counts] == [0, 0, 0]
    assert_problem(client.get(ME, headers=user.headers), 401)
    gone = client.post(
        f"{API}/auth/token", data={"username": user.email, "password": user.password}
    )
    assert_problem(gone, 401, "invalid_credentials")
    assert client.get(ME, headers=other.headers).status_code == 200
    assert_problem(client.delete(ME), 401)


def test_the_last_admin_cannot_delete_themselves(
    admin_client: TestClient, admin: SignedInUser
) -> None:
    assert_problem(admin_client.delete(ME, headers=admin.headers), 409, "last_admin")
    assert admin_client.get(ME, headers=admin.headers).status_code == 200


# --- /users/me/password ----------------------------------------------------------------


def test_change_password_signs_out_every_other_session(client: TestClient) -> None:
    user = new_user(client)
    laptop = sign_in(client, user.email, user.password)
    response = client.post(
        f"{ME}/password",
        json={"current_password": user.password, "new_password": "brand-new-password"},
        headers=user.headers,
    )
    assert response.status_code == 204
    assert_problem(client.get(ME, headers=bearer(laptop["access_token"])), 401)
    refresh = client.post(f"{API}/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    assert_problem(refresh, 401)
    assert client.get(ME, headers=user.headers).status_code == 200
    old = client.post(f"{API}/auth/token", data={"username": user.email, "password": user.password})
    assert_problem(old, 401, "invalid_credentials")
    sign_in(client, user.email, "brand-new-password")


def test_change_password_with_a_wrong_current_password_is_a_400(client: TestClient) -> None:
    user = new_user(client)
    other = sign_in(client, user.email, user.password)
    response = client.post(
        f"{ME}/password",
        json={"current_password": "not-my-password", "new_password": "brand-new-password"},
        headers=user.headers,
    )
    assert_problem(response, 400, "wrong_password")
    assert client.get(ME, headers=bearer(other["access_token"])).status_code == 200
    sign_in(client, user.email, user.password)


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": "p", "new_password": "short"},
        {"current_password": "p", "new_password": "x" * 129},
        {"current_password": "x" * 129, "new_password": "long-enough"},
        {"new_password": "long-enough"},
        {"current_password": "p", "new_password": "long-enough", "role": "admin"},
    ],
    ids=["short", "long", "long-current", "missing", "extra"],
)
def test_change_password_bad_input_is_a_422(client: TestClient, body: dict[str, Any]) -> None:
    user = new_user(client)
    response = client.post(f"{ME}/password", json=body, headers=user.headers)
    assert_problem(response, 422, "validation_error")


def test_change_password_to_the_email_is_a_422_and_needs_a_token(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(
        f"{ME}/password",
        json={"current_password": user.password, "new_password": user.email},
        headers=user.headers,
    )
    assert_problem(response, 422, "password_is_email")
    body = {"current_password": user.password, "new_password": "brand-new-password"}
    assert_problem(client.post(f"{ME}/password", json=body), 401)
    sign_in(client, user.email, user.password)


# --- admin ------------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/users", None),
    ("POST", "/users", {"email": "x@example.com", "password": "long-enough"}),
    ("GET", "/users/{id}", None),
    ("PATCH", "/users/{id}", {"role": "admin"}),
    ("DELETE", "/users/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_routes_are_403_for_a_plain_user_and_401_without_a_token(
    admin_client: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    user = new_user(admin_client)
    url = API + path.replace("{id}", user.id)
    assert_problem(
        admin_client.request(method, url, json=body, headers=user.headers), 403, "forbidden"
    )
    assert_problem(admin_client.request(method, url, json=body), 401)
    # Nothing changed: the user is still a plain, active user.
    me = admin_client.get(ME, headers=user.headers).json()
    assert (me["role"], me["is_active"]) == ("user", True)


def test_admin_reads_any_user_and_404s_unknown_ones(
    admin_client: TestClient, admin: SignedInUser
) -> None:
    user = register(admin_client)
    response = admin_client.get(f"{API}/users/{user['id']}", headers=admin.headers)
    assert response.json() == user
    missing = admin_client.get(f"{API}/users/{uuid.uuid4()}", headers=admin.headers)
    assert_problem(missing, 404, "user_not_found")
    for method in ("GET", "PATCH", "DELETE"):
        unknown = admin_client.request(
            method, f"{API}/users/{uuid.uuid4()}", json={}, headers=admin.headers
        )
        assert_problem(unknown, 404, "user_not_found")
        malformed = admin_client.request(
            method, f"{API}/users/not-a-uuid", json={}, headers=admin.headers
        )
        assert_problem(malformed, 422, "validation_error")


def test_admin_creates_users_with_any_role(admin_client: TestClient, admin: SignedInUser) -> None:
    email = unique_email("Staff").upper()
    response = admin_client.post(
        f"{API}/users",
        json={"email": email, "password": "staff-password", "role": "admin", "is_active": True},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    assert (response.json()["email"], response.json()["role"]) == (email.lower(), "admin")
    staff = sign_in(admin_client, email, "staff-password")
    listing = admin_client.get(f"{API}/users", headers=bearer(staff["access_token"]))
    assert listing.status_code == 200
    taken = admin_client.post(
        f"{API}/users", json={"email": email, "password": "whatever-1"}, headers=admin.headers
    )
    assert_problem(taken, 409, "email_taken")


@pytest.mark.parametrize(
    "extra",
    [
        {"id": str(uuid.uuid4())},
        {"hashed_password": "x"},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"role": "superuser"},
        {"password": "short"},
        {"email": "bad"},
    ],
    ids=["id", "hash", "timestamp", "unknown-role", "short-password", "bad-email"],
)
def test_admin_create_bad_input_is_a_422(
    admin_client: TestClient, admin: SignedInUser, extra: dict[str, Any]
) -> None:
    body = {"email": unique_email(), "password": "long-enough", **extra}
    response = admin_client.post(f"{API}/users", json=body, headers=admin.headers)
    assert_problem(response, 422, "validation_error")
    total = admin_client.get(f"{API}/users?include_total=true", headers=admin.headers)
    assert total.json()["total"] == 1


def test_admin_create_refuses_a_password_equal_to_the_email(
    admin_client: TestClient, admin: SignedInUser
) -> None:
    email = unique_email()
    response = admin_client.post(
        f"{API}/users", json={"email": email, "password": email}, headers=admin.headers
    )
    assert_problem(response, 422)


def test_admin_deactivation_kills_the_users_tokens(
    admin_client: TestClient, admin: SignedInUser
) -> None:
    user = new_user(admin_client)
    response = admin_client.patch(
        f"{API}/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert_problem(admin_client.get(ME, headers=user.headers), 401, "invalid_token")
    refresh = admin_client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(refresh, 401)
    # Reactivation does not resurrect old tokens; a new sign-in works.
    admin_client.patch(f"{API}/users/{user.id}", json={"is_active": True}, headers=admin.headers)
    assert_problem(admin_client.get(ME, headers=user.headers), 401)
    fresh = sign_in(admin_client, user.email, user.password)
    assert admin_client.get(ME, headers=bearer(fresh["access_token"])).is_success


def test_admin_update_changes_role_email_and_password(
    admin_client: TestClient, admin: SignedInUser
) -> None:
    user = new_user(admin_client)
    url = f"{API}/users/{user.id}"
    promoted = admin_client.patch(url, json={"role": "admin"}, headers=admin.headers)
    assert promoted.json()["role"] == "admin"
    # The role takes effect on the user's existing token.
    assert admin_client.get(f"{API}/users", headers=user.headers).status_code == 200
    demoted = admin_client.patch(url, json={"role": "user"}, headers=admin.headers)
    assert demoted.json()["role"] == "user"
    assert_problem(admin_client.get(f"{API}/users", headers=user.headers), 403)

    reset = admin_client.patch(url, json={"password": "set-by-admin"}, headers=admin.headers)
    assert reset.status_code == 200
    assert_problem(admin_client.get(ME, headers=user.headers), 401)  # signed out
    sign_in(admin_client, user.email, "set-by-admin")

    taken = admin_client.patch(url, json={"email": ADMIN_EMAIL.upper()}, headers=admin.headers)
    assert_problem(taken, 409, "email_taken")
    same_as_email = admin_client.patch(url, json={"password": user.email}, headers=admin.headers)
    assert_problem(same_as_email, 422, "password_is_email")
    new_email = unique_email()
    both = admin_client.patch(
        url, json={"email": new_email, "password": new_email.upper()}, headers=admin.headers
    )
    assert_problem(both, 422, "password_is_email")
    sign_in(admin_client, user.email, "set-by-admin")


@pytest.mark.parametrize(
    "body",
    [{"hashed_password": "x"}, {"id": str(uuid.uuid4())}, {"role": "root"}, {"password": "short"}],
    ids=["hash", "id", "role", "password"],
)
def test_admin_update_bad_input_is_a_422(
    admin_client: TestClient, admin: SignedInUser, body: dict[str, Any]
) -> None:
    user = register(admin_client)
    url = f"{API}/users/{user['id']}"
    assert_problem(admin_client.patch(url, json=body, headers=admin.headers), 422)
    assert admin_client.get(url, headers=admin.headers).json() == user


def test_admin_deletes_a_user(admin_client: TestClient, admin: SignedInUser) -> None:
    user = new_user(admin_client)
    url = f"{API}/users/{user.id}"
    assert admin_client.delete(url, headers=admin.headers).status_code == 204
    assert_problem(admin_client.get(url, headers=admin.headers), 404, "user_not_found")
    assert_problem(admin_client.get(ME, headers=user.headers), 401)
    assert_problem(admin_client.delete(url, headers=admin.headers), 404)


@pytest.mark.parametrize(
    ("method", "body"),
    [("PATCH", {"role": "user"}), ("PATCH", {"is_active": False}), ("DELETE", None)],
    ids=["demote", "deactivate", "delete"],
)
def test_the_last_admin_is_kept(
    admin_client: TestClient, admin: SignedInUser, method: str, body: dict[str, Any] | None
) -> None:
    url = f"{API}/users/{admin.id}"
    response = admin_client.request(method, url, json=body, headers=admin.headers)
    assert_problem(response, 409, "last_admin")
    me = admin_client.get(ME, headers=admin.headers).json()
    assert (me["role"], me["is_active"]) == ("admin", True)
    # With a second admin, the first may step down.
    second = admin_client.post(
        f"{API}/users",
        json={"email": unique_email(), "password": "second-admin", "role": "admin"},
        headers=admin.headers,
    )
    assert second.status_code == 201
    response = admin_client.request(method, url, json=body, headers=admin.headers)
    assert response.status_code in {200, 204}


def test_list_users_walks_every_page_with_filters(
    admin_client: TestClient, admin: SignedInUser
) -> None:
    team = [register(admin_client, email=unique_email("team")) for _ in range(5)]
    outsiders = [register(admin_client, email=unique_email("other")) for _ in range(2)]
    admin_client.patch(
        f"{API}/users/{team[1]['id']}", json={"is_active": False}, headers=admin.headers
    )

    def walk(query: str) -> list[str]:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params = f"{query}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            response = admin_client.get(f"{API}/users?{params}", headers=admin.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= 2
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    everyone = walk("include_total=false")
    assert everyone == [admin.id] + [u["id"] for u in team + outsiders]  # sign-up order
    assert walk("email=TEAM-") == [u["id"] for u in team]
    assert walk("email=team-&is_active=true") == [u["id"] for u in team if u is not team[1]]
    assert walk("is_active=false") == [team[1]["id"]]
    assert walk("email=%25") == []  # a LIKE wildcard is matched literally
    assert walk("email=_") == []
    total = admin_client.get(f"{API}/users?email=team&include_total=true", headers=admin.headers)
    assert total.json()["total"] == 5


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "cursor=forged", "is_active=maybe", "email=" + "a" * 300, "email=%00"],
)
def test_list_users_bad_query_is_a_422(
    admin_client: TestClient, admin: SignedInUser, query: str
) -> None:
    assert_problem(admin_client.get(f"{API}/users?{query}", headers=admin.headers), 422)
