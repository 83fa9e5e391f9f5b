"""`tasks-api check-emails`: accounts whose stored emails collide, and an admin resolving them."""

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.cli import main
from tests.auth.helpers import execute, uuid_param
from tests.factories import (
    ADMIN_SETTINGS,
    API,
    DEFAULT_PASSWORD,
    bearer,
    register,
    sign_in,
    sign_in_admin,
)

# Written in these forms by an older release (or by hand): they are not sign-up's form.
LEGACY = "bob@xn--bcher-kva.example"
LONE_LEGACY = "carol@xn--bcher-kva.example"


def _store_as(engine: Engine, account_id: str, email: str) -> None:
    execute(
        engine,
        'UPDATE "user" SET email = :email WHERE id = :id',
        email=email,
        id=uuid_param(engine, account_id),
    )


def _check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0), capsys.readouterr().out
    return 0, capsys.readouterr().out


def test_colliding_accounts_are_reported_until_an_admin_resolves_them(
    cli_env: None,
    make_app: Callable[..., FastAPI],
    housekeeping_engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with TestClient(make_app(**ADMIN_SETTINGS)) as client:
        canonical = register(client, email="bob@bücher.example")
        legacy = register(client, email="bob-legacy@example.com", password="legacy-password")
        lone = register(client, email="carol-legacy@example.com")
        _store_as(housekeeping_engine, legacy["id"], LEGACY)
        _store_as(housekeeping_engine, lone["id"], LONE_LEGACY)

        # Both colliders sign in with what they registered with: the typed form wins.
        assert sign_in(client, "bob@bücher.example")
        assert sign_in(client, LEGACY, "legacy-password")

        code, out = _check(["check-emails"], capsys)
        assert code == 1
        assert "collision as 'bob@bücher.example': 'bob@bücher.example' (account" in out
        assert f"'{LEGACY}' (account {legacy['id']})" in out
        assert f"would rewrite '{LONE_LEGACY}' -> 'carol@bücher.example'" in out

        # The admin gives the legacy account another address; nothing collides any more.
        admin = sign_in_admin(client)
        changed = client.patch(
            f"{API}/users/{legacy['id']}",
            json={"email": "bob.two@example.com"},
            headers=admin.headers,
        )
        assert changed.status_code == 200, changed.text

        code, out = _check(["check-emails", "--apply"], capsys)
        assert code == 0, out
        assert f"rewrote '{LONE_LEGACY}' -> 'carol@bücher.example'" in out
        assert "1 to rewrite (done), 0 collision(s), 0 unparsed" in out

        tokens = sign_in(client, "carol@bücher.example", DEFAULT_PASSWORD)
        me = client.get(f"{API}/users/me", headers=bearer(tokens["access_token"])).json()
        assert (me["id"], me["email"]) == (lone["id"], "carol@bücher.example")
        assert sign_in(client, "bob.two@example.com", "legacy-password")
        assert canonical["email"] == "bob@bücher.example"
        code, _ = _check(["check-emails"], capsys)
        assert code == 0
