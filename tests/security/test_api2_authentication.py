"""API2:2023 Broken Authentication.

Every operation the document marks as secured refuses every kind of bad token with a 401
problem and a `WWW-Authenticate: Bearer` challenge (naming `invalid_token` when a token was
sent); the public operations are exactly the allow-listed
ones. Then the token life cycle (refresh replay, revocation, deactivation), brute-force
throttling, and enumeration: unknown and known accounts get the same answer after the same
work.
"""

import base64
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jose import jwt

from app.core.config import Settings
from app.core.security import TokenCodec, TokenType
from tests.conftest import TEST_SECRET
from tests.factories import (
    API,
    DEFAULT_PASSWORD,
    SignedInUser,
    bearer,
    new_user,
    register,
    sign_in,
    sign_in_admin,
)
from tests.helpers import PROBLEM
from tests.security.helpers import Operation, operations

# Operations anyone may call. A new route missing from here must declare its security.
PUBLIC = {
    "health-index",
    "health-live",
    "health-ready",
    "auth-register",
    "auth-verify_email",
    "auth-resend_verification",
    "auth-sign_in",
    "auth-refresh",
    "auth-password_recovery",
    "auth-password_reset",
}


def _codec(**overrides: Any) -> TokenCodec:
    return TokenCodec(Settings(ENVIRONMENT="test", SECRET_KEY=TEST_SECRET, **overrides))


def _claims(user: SignedInUser) -> dict[str, Any]:
    return jwt.get_unverified_claims(user.access_token)


def _forge(claims: dict[str, Any], key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _alg_none(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BadToken = Callable[[SignedInUser], str]

BAD_TOKENS: dict[str, BadToken] = {
    "garbage": lambda _u: "not-a-jwt",
    "empty segments": lambda _u: "..",
    "too long": lambda _u: "a" * 5000,
    "forged (other key)": lambda u: _forge(_claims(u), key="another-secret-key-0123456789-abcdef"),
    "alg none": lambda u: _alg_none(_claims(u)),
    "alg HS512": lambda u: _forge(_claims(u), algorithm="HS512"),
    "expired": lambda u: _forge({**_claims(u), "exp": int(time.time()) - 60}),
    "no exp": lambda u: _forge({k: v for k, v in _claims(u).items() if k != "exp"}),
    "wrong audience": lambda u: _forge({**_claims(u), "aud": "tasks-api:refresh"}),
    "wrong issuer": lambda u: _forge({**_claims(u), "iss": "someone-else"}),
    "wrong type (refresh)": lambda u: u.refresh_token,
    "wrong type (reset)": lambda u: _codec().encode(
        subject=u.id, token_type=TokenType.RESET, lifetime=timedelta(minutes=5)
    )[0],
    "unknown session": lambda u: _forge({**_claims(u), "sid": str(uuid.uuid4())}),
    "other subject": lambda u: _forge({**_claims(u), "sub": str(uuid.uuid4())}),
    "tampered payload": lambda u: (
        u.access_token[:-4] + ("AAAA" if not u.access_token.endswith("AAAA") else "BBBB")
    ),
}


def _secured(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if op.secured]


def _call(client: TestClient, operation: Operation, headers: dict[str, str]) -> Any:
    params = {name: str(uuid.uuid4()) for name in operation.path_params}
    body = {} if operation.body_schema_ref else None
    return client.request(operation.method, operation.url(**params), headers=headers, json=body)


def _assert_refused(response: Any, what: str) -> None:
    assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == PROBLEM, what
    challenge = response.headers["www-authenticate"]
    if response.json()["code"] == "not_authenticated":
        assert challenge == "Bearer", what  # no token sent: no error to name (RFC 6750 3.1)
    else:
        assert challenge.startswith('Bearer error="invalid_token"'), what


def test_public_operations_are_exactly_the_allow_list(app: FastAPI) -> None:
    public = {op.operation_id for op in operations(app) if not op.secured}
    assert public == PUBLIC


def test_every_secured_operation_refuses_a_missing_or_bad_token(
    app: FastAPI, client: TestClient
) -> None:
    user = new_user(client)
    tokens = {name: make(user) for name, make in BAD_TOKENS.items()}
    for operation in _secured(app):
        _assert_refused(_call(client, operation, {}), f"{operation} without a token")
        _assert_refused(
            _call(client, operation, {"Authorization": "Basic dXNlcjpwdw=="}),
            f"{operation} with basic auth",
        )
        for name, token in tokens.items():
            _assert_refused(_call(client, operation, bearer(token)), f"{operation}: {name}")


def test_the_good_token_still_works(client: TestClient) -> None:
    """Guards the test above: its tokens fail for their flaw, not for the user."""
    user = new_user(client)
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    resigned = _forge(_claims(user))
    assert client.get(f"{API}/users/me", headers=bearer(resigned)).status_code == 200


def test_revoked_deleted_and_deactivated_users_tokens_die(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        admin = sign_in_admin(client)
        logged_out, deleted, deactivated, other_session = (new_user(client) for _ in range(4))

        assert client.post(f"{API}/auth/logout", headers=logged_out.headers).status_code == 204
        assert client.delete(f"{API}/users/me", headers=deleted.headers).status_code == 204
        off = client.patch(
            f"{API}/users/{deactivated.id}", json={"is_active": False}, headers=admin.headers
        )
        assert off.status_code == 200
        second = sign_in(client, other_session.email)
        sessions = client.get(f"{API}/auth/sessions", headers=other_session.headers).json()
        ended = next(s["id"] for s in sessions["items"] if not s["current"])
        assert (
            client.delete(f"{API}/auth/sessions/{ended}", headers=other_session.headers)
        ).status_code == 204

        for name, token in (
            ("logged out", logged_out.access_token),
            ("deleted user", deleted.access_token),
            ("deactivated user", deactivated.access_token),
            ("ended session", second["access_token"]),
        ):
            _assert_refused(client.get(f"{API}/users/me", headers=bearer(token)), name)
        for name, refresh in (
            ("logged out", logged_out.refresh_token),
            ("deleted user", deleted.refresh_token),
            ("deactivated user", deactivated.refresh_token),
            ("ended session", second["refresh_token"]),
        ):
            response = client.post(f"{API}/auth/refresh", json={"refresh_token": refresh})
            assert response.status_code == 401, name
        # A deactivated account cannot sign in again either.
        refused = client.post(
            f"{API}/auth/token",
            data={"username": deactivated.email, "password": DEFAULT_PASSWORD},
        )
        assert refused.status_code == 401


def test_a_replayed_refresh_token_revokes_the_session(make_app: Callable[..., FastAPI]) -> None:
    """A replay after the grace window (REFRESH_REUSE_GRACE_SECONDS; 0 here) ends the
    session. Inside the window a repeat gets the same successor as the first use: the price
    of two tabs refreshing at once, bounded to seconds (tests/auth/test_router.py)."""
    with TestClient(make_app(REFRESH_REUSE_GRACE_SECONDS=0)) as client:
        _replay_revokes(client)


def _replay_revokes(client: TestClient) -> None:
    user = new_user(client)
    first = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    replay = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert replay.status_code == 401
    # The thief's replay ends the session: the legitimate rotated pair dies too.
    _assert_refused(
        client.get(f"{API}/users/me", headers=bearer(rotated["access_token"])), "after replay"
    )
    again = client.post(f"{API}/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 401


def test_an_access_token_is_not_a_refresh_token(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": user.access_token})
    assert response.status_code == 401


def test_a_password_change_signs_out_other_sessions(client: TestClient) -> None:
    user = new_user(client)
    other = sign_in(client, user.email)
    changed = client.post(
        f"{API}/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a-brand-new-password"},
        headers=user.headers,
    )
    assert changed.status_code == 204
    _assert_refused(
        client.get(f"{API}/users/me", headers=bearer(other["access_token"])), "other session"
    )
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200


THROTTLED = {"LOGIN_MAX_FAILURES_PER_ACCOUNT": 3, "LOGIN_MAX_FAILURES_PER_IP": 6}


def test_password_guessing_on_one_account_is_throttled(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(**THROTTLED)) as client:
        user = register(client)
        form = {"username": user["email"], "password": "wrong-password"}
        statuses = [client.post(f"{API}/auth/token", data=form).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        # Even the right password waits until the window ends: guessing gains nothing.
        right = client.post(
            f"{API}/auth/token", data={"username": user["email"], "password": DEFAULT_PASSWORD}
        )
        assert right.status_code == 429
        assert int(right.headers["retry-after"]) > 0
        assert right.headers["content-type"] == PROBLEM


def test_spraying_many_accounts_from_one_address_is_throttled(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app(**THROTTLED)) as client:
        statuses = [
            client.post(
                f"{API}/auth/token",
                data={"username": f"nobody-{i}@example.com", "password": "guess-guess"},
            ).status_code
            for i in range(7)
        ]
        assert statuses[:6] == [401] * 6
        assert statuses[6] == 429


def test_a_stolen_access_token_cannot_guess_the_password(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(**THROTTLED)) as client:
        user = new_user(client)
        body = {"current_password": "wrong-guess", "new_password": "whatever-new-pw"}
        statuses = [
            client.post(f"{API}/users/me/password", json=body, headers=user.headers).status_code
            for _ in range(4)
        ]
        assert statuses[-1] == 429


def _without_request_id(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    body.pop("request_id", None)
    return body


def test_sign_in_does_not_say_whether_the_account_exists(admin_app: FastAPI) -> None:
    with TestClient(admin_app) as client:
        admin = sign_in_admin(client)
        known = register(client)
        inactive = new_user(client)
        client.patch(f"{API}/users/{inactive.id}", json={"is_active": False}, headers=admin.headers)
        answers = [
            client.post(f"{API}/auth/token", data={"username": email, "password": "wrong-pw-1"})
            for email in (known["email"], "nobody-here@example.com", inactive.email)
        ]
        answers.append(
            client.post(
                f"{API}/auth/token",
                data={"username": inactive.email, "password": DEFAULT_PASSWORD},
            )
        )
        assert {a.status_code for a in answers} == {401}
        assert len({str(_without_request_id(a)) for a in answers}) == 1
        assert len({a.headers.get("www-authenticate") for a in answers}) == 1


def test_password_recovery_does_not_say_whether_the_account_exists(client: TestClient) -> None:
    known = register(client)
    answers = [
        client.post(f"{API}/auth/password-recovery", json={"email": email})
        for email in (known["email"], "nobody-here@example.com")
    ]
    assert {a.status_code for a in answers} == {202}
    assert answers[0].json() == answers[1].json()


def test_sign_up_does_not_say_whether_the_account_exists(client: TestClient) -> None:
    """The same answer for a taken address (in any case) and a new one; the headers and the
    work done are compared in tests/auth/test_verification.py."""
    known = register(client)
    answers = [
        client.post(f"{API}/auth/register", json={"email": email, "password": "guess-guess-1"})
        for email in (known["email"], known["email"].upper(), "nobody-here@example.com")
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1


def test_confirmation_resend_does_not_say_whether_the_account_exists(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app(EMAIL_VERIFICATION_ENABLED=True)) as client:
        waiting = register(client)  # has a link due; the other address has no account
        answers = [
            client.post(f"{API}/auth/verify/resend", json={"email": email})
            for email in (waiting["email"], "nobody-here@example.com")
        ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1


@pytest.mark.parametrize("account", ["unknown", "wrong password", "deactivated"])
def test_every_failed_sign_in_costs_one_hash_verification(admin_app: FastAPI, account: str) -> None:
    """No timing oracle: an unknown or inactive account takes the same path as a wrong
    password, one full hash verification (against a dummy hash when there is no account)."""
    with TestClient(admin_app) as client:
        admin = sign_in_admin(client)
        user = new_user(client)
        if account == "deactivated":
            client.patch(f"{API}/users/{user.id}", json={"is_active": False}, headers=admin.headers)
        email = "nobody-here@example.com" if account == "unknown" else user.email
        password = DEFAULT_PASSWORD if account == "deactivated" else "wrong-password"

        hasher = admin_app.state.auth.hasher
        context = hasher.context
        calls: list[str] = []

        class Spy:
            def __getattr__(self, name: str) -> Any:
                return getattr(context, name)

            def verify(self, *args: Any, **kwargs: Any) -> Any:
                calls.append("verify")
                return context.verify(*args, **kwargs)

            def verify_and_update(self, *args: Any, **kwargs: Any) -> Any:
                calls.append("verify")
                return context.verify_and_update(*args, **kwargs)

        _ = hasher.dummy_hash  # made once per process, outside the measured request
        hasher.context = Spy()
        try:
            response = client.post(
                f"{API}/auth/token", data={"username": email, "password": password}
            )
        finally:
            hasher.context = context
        assert response.status_code == 401
        assert calls == ["verify"]


def test_tokens_expire(client: TestClient) -> None:
    user = new_user(client)
    claims = _claims(user)
    lifetime = claims["exp"] - claims["iat"]
    assert 0 < lifetime <= 15 * 60
    assert datetime.fromtimestamp(claims["exp"], UTC) > datetime.now(UTC)
