"""API8:2023 Security Misconfiguration.

CORS only for configured origins; the security headers on every kind of answer (success,
each error, the docs); docs switchable off; debug off (a crash is a bare 500 problem, no
traceback, no exception text); production refuses the example secret.
"""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.auth.dependencies import get_auth
from app.core.config import EXAMPLE_SECRET_KEY, Settings
from tests.factories import API, new_user
from tests.helpers import PROBLEM, assert_problem
from tests.security.helpers import operations

ALLOWED = "https://app.example.com"
EVIL = "https://evil.example.net"


def _preflight(client: TestClient, origin: str) -> object:
    return client.options(
        f"{API}/users/me",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )


def test_cors_answers_only_the_configured_origins(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(CORS_ORIGINS=ALLOWED)) as client:
        ok = _preflight(client, ALLOWED)
        assert ok.status_code == 200  # type: ignore[attr-defined]
        assert ok.headers["access-control-allow-origin"] == ALLOWED  # type: ignore[attr-defined]
        evil = _preflight(client, EVIL)
        assert "access-control-allow-origin" not in evil.headers  # type: ignore[attr-defined]
        simple = client.get("/health/live", headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in simple.headers
        allowed_simple = client.get("/health/live", headers={"Origin": ALLOWED})
        assert allowed_simple.headers["access-control-allow-origin"] == ALLOWED
        # Credentials are allowed, so the origin must never be the wildcard.
        assert allowed_simple.headers["access-control-allow-origin"] != "*"
        null_origin = client.get("/health/live", headers={"Origin": "null"})
        assert "access-control-allow-origin" not in null_origin.headers


def test_no_cors_without_configured_origins(client: TestClient) -> None:
    response = client.get("/health/live", headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in _preflight(client, EVIL).headers  # type: ignore[attr-defined]


HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _assert_security_headers(response: object, what: str, *, api: bool = True) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in HEADERS.items():
        assert headers.get(name) == value, f"{what}: {name}"
    if api:
        assert "default-src 'none'" in headers["content-security-policy"], what


def test_security_headers_on_every_kind_of_answer(app: FastAPI, client: TestClient) -> None:
    user = new_user(client)
    answers = {
        "200": client.get(f"{API}/users/me", headers=user.headers),
        "401": client.get(f"{API}/users/me"),
        "404": client.get(f"{API}/no-such-thing"),
        "405": client.put(f"{API}/users/me", headers=user.headers),
        "422": client.get(f"{API}/users/me/../../users?limit=0", headers=user.headers),
        "413": client.post(f"{API}/auth/refresh", content=b"x" * 2_000_000),
    }
    for what, response in answers.items():
        _assert_security_headers(response, what)
    # Every GET operation anyone can reach without ids.
    for operation in operations(app):
        if operation.method == "GET" and not operation.path_params:
            _assert_security_headers(
                client.get(operation.path, headers=user.headers), str(operation)
            )
    _assert_security_headers(client.get("/docs"), "docs", api=False)


def test_tokens_are_never_cached(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert response.headers["cache-control"] == "no-store"


# Production without a mail transport: both features that mail secret links switched off.
MAIL_LINKS_OFF = {"PASSWORD_RECOVERY_ENABLED": False, "EMAIL_VERIFICATION_ENABLED": False}
PRODUCTION_WITHOUT_MAIL = {"ENVIRONMENT": "production", **MAIL_LINKS_OFF}


def test_hsts_in_production(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(**PRODUCTION_WITHOUT_MAIL)) as client:
        assert "max-age=" in client.get("/health/live").headers["strict-transport-security"]


def test_docs_can_be_switched_off(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(DOCS_ENABLED=False)) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == PROBLEM


def test_a_crash_is_a_bare_500_without_traceback(app: FastAPI) -> None:
    def boom() -> None:
        raise RuntimeError("secret internal detail /srv/app/db.py password=hunter2")

    app.dependency_overrides[get_auth] = boom
    assert app.debug is False
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(f"{API}/auth/refresh", json={"refresh_token": "x"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "internal_error"
    for leak in ("Traceback", "RuntimeError", "secret internal detail", "hunter2", ".py"):
        assert leak not in response.text
    assert response.headers["x-request-id"] == body["request_id"]
    _assert_security_headers(response, "500")


@pytest.mark.parametrize(
    "secret",
    [None, EXAMPLE_SECRET_KEY, "short-secret"],
    ids=["default", "example", "short"],
)
def test_production_refuses_a_weak_or_example_secret(secret: str | None) -> None:
    settings = {"ENVIRONMENT": "production", "DATABASE_URL": "sqlite://"}
    if secret is not None:
        settings["SECRET_KEY"] = secret
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(**settings)  # type: ignore[arg-type]


def test_production_accepts_a_real_secret() -> None:
    Settings(
        ENVIRONMENT="production",
        SECRET_KEY="r" * 48,
        DATABASE_URL="sqlite://",
        PASSWORD_RECOVERY_ENABLED=False,
        EMAIL_VERIFICATION_ENABLED=False,
    )


PRODUCTION = {"ENVIRONMENT": "production", "SECRET_KEY": "r" * 48, "DATABASE_URL": "sqlite://"}


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "MAIL_BACKEND=smtp"),  # no mail transport: the links would go to the log
        ({"MAIL_BACKEND": "console"}, "MAIL_BACKEND=smtp"),
        ({"MAIL_BACKEND": "smtp", "SMTP_HOST": "smtp.example.com"}, "FRONTEND_URL"),
    ],
)
def test_production_recovery_needs_mail_and_a_real_frontend(
    settings: dict[str, str], named: str
) -> None:
    """Reset links are never written to a log: production with recovery on needs SMTP and a
    frontend address of its own, or recovery switched off, and says which."""
    with pytest.raises(ValidationError, match=named) as raised:
        Settings(**PRODUCTION, **settings)  # type: ignore[arg-type]
    assert "PASSWORD_RECOVERY_ENABLED=false" in str(raised.value)
    ready = {"MAIL_BACKEND": "smtp", "SMTP_HOST": "smtp.example.com"}
    Settings(**PRODUCTION, **ready, FRONTEND_URL="https://app.example.com")  # type: ignore[arg-type]
    Settings(**PRODUCTION, **MAIL_LINKS_OFF)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "MAIL_BACKEND=smtp"),
        ({"MAIL_BACKEND": "console"}, "MAIL_BACKEND=smtp"),
        ({"MAIL_BACKEND": "smtp", "SMTP_HOST": "smtp.example.com"}, "FRONTEND_URL"),
    ],
)
def test_production_verification_is_on_and_needs_mail_and_a_real_frontend(
    settings: dict[str, str], named: str
) -> None:
    """Confirmation links are never written to a log either: with recovery off, production
    still needs SMTP and a frontend of its own, or verification switched off, and says so."""
    recovery_off: dict[str, Any] = {**PRODUCTION, "PASSWORD_RECOVERY_ENABLED": False}
    off = Settings(**recovery_off, EMAIL_VERIFICATION_ENABLED=False)
    assert off.email_verification_enabled is False
    with pytest.raises(ValidationError, match=named) as raised:
        Settings(**recovery_off, **settings)
    assert "EMAIL_VERIFICATION_ENABLED=false" in str(raised.value)
    assert "PASSWORD_RECOVERY_ENABLED=false" not in str(raised.value)
    ready = Settings(
        **recovery_off,
        MAIL_BACKEND="smtp",
        SMTP_HOST="smtp.example.com",
        FRONTEND_URL="https://app.example.com",
    )
    assert ready.email_verification_enabled is True


def test_switched_off_recovery_is_a_403(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(PASSWORD_RECOVERY_ENABLED=False)) as client:
        asked = client.post(f"{API}/auth/password-recovery", json={"email": "a@example.com"})
        assert_problem(asked, 403, "password_recovery_disabled")
        reset = client.post(
            f"{API}/auth/password-reset", json={"token": "x" * 40, "new_password": "n" * 12}
        )
        assert_problem(reset, 403, "password_recovery_disabled")


def test_unknown_methods_are_refused(client: TestClient) -> None:
    for method in ("TRACE", "CONNECT", "PROPFIND"):
        response = client.request(method, f"{API}/users/me")
        assert response.status_code in {400, 405}, method
