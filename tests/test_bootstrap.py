"""The first admin: from FIRST_ADMIN_* at start-up (once, never overwritten) or the CLI."""

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from tests.factories import API, bearer, register, sign_in
from tests.helpers import assert_problem

EMAIL = "First.Admin@Example.com"
PASSWORD = "first-admin-password"


def _admin_settings(password: str = PASSWORD, email: str = EMAIL) -> dict[str, str]:
    return {"FIRST_ADMIN_EMAIL": email, "FIRST_ADMIN_PASSWORD": password}


def _me(client: TestClient, email: str, password: str) -> dict[str, object]:
    tokens = sign_in(client, email, password)
    body: dict[str, object] = client.get(
        f"{API}/users/me", headers=bearer(tokens["access_token"])
    ).json()
    return body


def test_first_admin_is_created_at_start_up(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(**_admin_settings())) as client:
        me = _me(client, EMAIL.upper(), PASSWORD)
    assert me["email"] == EMAIL.lower()
    assert me["role"] == "admin"
    assert me["is_active"] is True


def test_first_admin_is_created_once_and_never_overwritten(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app(**_admin_settings())) as client:
        first = _me(client, EMAIL, PASSWORD)
        client.patch(
            f"{API}/users/me",
            json={"full_name": "Chosen Name"},
            headers=bearer(sign_in(client, EMAIL, PASSWORD)["access_token"]),
        )
    # A restart with other settings for the same email changes nothing.
    with TestClient(make_app(**_admin_settings("a-different-password"))) as client:
        again = _me(client, EMAIL, PASSWORD)
        refused = client.post(
            f"{API}/auth/token", data={"username": EMAIL, "password": "a-different-password"}
        )
        assert_problem(refused, 401, "invalid_credentials")
        tokens = sign_in(client, EMAIL, PASSWORD)
        listing = client.get(
            f"{API}/users?include_total=true", headers=bearer(tokens["access_token"])
        )
    assert again["id"] == first["id"]
    assert again["full_name"] == "Chosen Name"
    assert listing.json()["total"] == 1


def test_an_existing_plain_account_is_not_promoted(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app()) as client:
        register(client, email=EMAIL.lower(), password="their-own-password")
    with TestClient(make_app(**_admin_settings())) as client:
        me = _me(client, EMAIL, "their-own-password")
    assert me["role"] == "user"


@pytest.mark.parametrize(
    ("email", "password"),
    [(EMAIL, "short"), (EMAIL, "x" * 129), (EMAIL, EMAIL.lower())],
    ids=["short", "long", "is-email"],
)
def test_first_admin_settings_that_could_never_sign_in_stop_the_start(
    make_app: Callable[..., FastAPI], email: str, password: str
) -> None:
    app = make_app(**_admin_settings(password, email))
    with pytest.raises(ValueError, match="password"), TestClient(app):
        pass


@pytest.fixture
def admin_cli_env(cli_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cli_env`, with the admin's password where `tasks-api create-admin` reads it."""
    monkeypatch.setenv("ADMIN_PASSWORD", PASSWORD)


def test_cli_creates_an_admin_once(admin_cli_env: None, make_app: Callable[..., FastAPI]) -> None:
    created = CliRunner().invoke(cli, ["create-admin", "--email", EMAIL])
    assert (created.exit_code, created.stdout.strip()) == (0, "admin created")
    again = CliRunner().invoke(cli, ["create-admin", "--email", EMAIL.lower()])
    assert again.exit_code == 0
    assert "left unchanged" in again.stdout
    with TestClient(make_app()) as client:
        me = _me(client, EMAIL, PASSWORD)
    assert (me["email"], me["role"]) == (EMAIL.lower(), "admin")


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", PASSWORD, "email"),
        (EMAIL, "short", "8 to 128"),
        (EMAIL, EMAIL, "must not be the email"),
    ],
)
def test_cli_refuses_bad_credentials(
    admin_cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    make_app: Callable[..., FastAPI],
    email: str,
    password: str,
    message: str,
) -> None:
    monkeypatch.setenv("ADMIN_PASSWORD", password)
    refused = CliRunner().invoke(cli, ["create-admin", "--email", email])
    assert refused.exit_code == 2  # a usage error: nothing was written
    assert message in refused.stderr
    with TestClient(make_app()) as client:
        refused = client.post(f"{API}/auth/token", data={"username": email, "password": password})
    assert refused.status_code in {401, 422}
