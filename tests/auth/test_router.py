"""The /auth routes end to end: sign-up, sign-in, refresh, sign-out, sessions, recovery."""

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.auth.verification import SIGN_UP_ACCEPTED
from app.core.models import utcnow
from app.core.security import TokenType
from tests.auth.helpers import (
    auth_of,
    comparable,
    execute,
    make_token,
    outbox,
    reset_token_from,
    scalar,
    uuid_param,
)
from tests.factories import (
    ADMIN_SETTINGS,
    API,
    DEFAULT_PASSWORD,
    bearer,
    fullwidth,
    new_user,
    register,
    sign_in,
    sign_in_admin,
    unique_email,
)
from tests.helpers import assert_problem, together

# --- register ---------------------------------------------------------------------------


def test_register_accepts_and_the_account_reads_back_with_a_normalised_email(
    client: TestClient,
) -> None:
    email = unique_email("Ada").upper()
    response = client.post(
        f"{API}/auth/register",
        json={"email": email, "password": DEFAULT_PASSWORD, "full_name": "Ada Lovelace"},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"detail": SIGN_UP_ACCEPTED}
    tokens = sign_in(client, email)
    body = client.get(f"{API}/users/me", headers=bearer(tokens["access_token"])).json()
    assert set(body) == {
        "id",
        "email",
        "full_name",
        "role",
        "is_active",
        "email_verified",
        "pending_email",
        "created_at",
        "updated_at",
    }
    assert body["email"] == email.lower()
    assert body["full_name"] == "Ada Lovelace"
    assert body["role"] == "user"
    assert body["is_active"] is True
    # Verification is off in the test environment: the account counts as confirmed at once.
    assert (body["email_verified"], body["pending_email"]) == (True, None)
    assert "hash" not in response.text
    assert DEFAULT_PASSWORD not in response.text


def test_register_a_taken_email_in_other_case_changes_nothing(client: TestClient) -> None:
    email = unique_email()
    first = register(client, email=email)
    response = client.post(
        f"{API}/auth/register", json={"email": email.upper(), "password": "another-password"}
    )
    assert response.status_code == 202
    # The account keeps its password; the stranger's is thrown away.
    assert sign_in(client, email)["token_type"] == "bearer"
    refused = client.post(
        f"{API}/auth/token", data={"username": email, "password": "another-password"}
    )
    assert refused.status_code == 401
    me = client.get(f"{API}/users/me", headers=bearer(sign_in(client, email)["access_token"]))
    assert me.json()["id"] == first["id"]


@pytest.mark.parametrize(
    "password",
    ["a" * 8, "b" * 128, "é" * 128, "🔑" * 128, "spaces  in it"],
    ids=["8-chars", "128-ascii", "128-two-byte", "128-four-byte", "spaces"],
)
def test_register_accepts_passwords_of_8_to_128_characters(
    client: TestClient, password: str
) -> None:
    user = register(client, password=password)
    tokens = sign_in(client, user["email"], password)
    assert tokens["token_type"] == "bearer"


@pytest.mark.parametrize(
    "password", ["", "a" * 7, "b" * 129, "é" * 129, "x" * 10_000], ids=str.__len__
)
def test_register_refuses_passwords_out_of_bounds_with_a_clear_422(
    client: TestClient, password: str
) -> None:
    response = client.post(
        f"{API}/auth/register", json={"email": unique_email(), "password": password}
    )
    assert_problem(response, 422, "validation_error")
    assert response.json()["errors"][0]["loc"] == ["body", "password"]


def test_register_refuses_a_password_equal_to_the_email(client: TestClient) -> None:
    email = unique_email()
    response = client.post(
        f"{API}/auth/register", json={"email": email, "password": f" {email.upper()} "}
    )
    assert_problem(response, 422, "validation_error")
    assert "email" in response.json()["errors"][0]["msg"]


@pytest.mark.parametrize(
    "field",
    [
        {"role": "admin"},
        {"is_active": False},
        {"id": str(uuid.uuid4())},
        {"hashed_password": "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA"},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"updated_at": "2020-01-01T00:00:00Z"},
    ],
    ids=lambda field: next(iter(field)),
)
def test_register_refuses_server_owned_fields(client: TestClient, field: dict[str, Any]) -> None:
    email = unique_email()
    response = client.post(
        f"{API}/auth/register", json={"email": email, "password": DEFAULT_PASSWORD, **field}
    )
    assert_problem(response, 422, "validation_error")
    assert response.json()["errors"][0]["loc"] == ["body", next(iter(field))]
    # Nothing was created: the same email registers normally, as a plain active user.
    user = register(client, email=email)
    assert (user["role"], user["is_active"]) == ("user", True)


@pytest.mark.parametrize(
    "body",
    [
        {"password": DEFAULT_PASSWORD},
        {"email": "not-an-email", "password": DEFAULT_PASSWORD},
        {"email": "a" * 10_000 + "@example.com", "password": DEFAULT_PASSWORD},
        {"email": unique_email(), "password": DEFAULT_PASSWORD, "full_name": "x" * 201},
        {"email": unique_email(), "password": 12345678},
        {"email": unique_email(), "password": DEFAULT_PASSWORD, "full_name": "nul\x00name"},
        {"email": "nul\x00@example.com", "password": DEFAULT_PASSWORD},
    ],
    ids=["no-email", "bad-email", "huge-email", "long-name", "number-password", "nul-name", "nul"],
)
def test_register_bad_input_is_a_422(client: TestClient, body: dict[str, Any]) -> None:
    assert_problem(client.post(f"{API}/auth/register", json=body), 422, "validation_error")


# --- token ------------------------------------------------------------------------------


def test_token_returns_a_bearer_pair_that_is_never_cached(client: TestClient) -> None:
    user = register(client)
    response = client.post(
        f"{API}/auth/token",
        data={"username": user["email"], "password": DEFAULT_PASSWORD, "grant_type": "password"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert response.headers["cache-control"] == "no-store"
    me = client.get(f"{API}/users/me", headers=bearer(body["access_token"]))
    assert me.json()["id"] == user["id"]


def test_token_email_is_case_insensitive_and_trimmed(client: TestClient) -> None:
    user = register(client)
    tokens = sign_in(client, f"  {user['email'].upper()} ", DEFAULT_PASSWORD)
    me = client.get(f"{API}/users/me", headers=bearer(tokens["access_token"]))
    assert me.json()["email"] == user["email"]


def _spellings(local: str) -> dict[str, str]:
    """One address in the spellings people type, each with the form sign-up stores."""
    return {
        f"{local}@xn--bcher-kva.example": f"{local}@bücher.example",  # punycode domain
        f"{local}@{fullwidth('example.com')}": f"{local}@example.com",  # fullwidth domain
        f"{local.upper()}@BÜCHER.EXAMPLE": f"{local}@bücher.example",
        f"{local}@bu\u0308cher.example": f"{local}@bücher.example",  # decomposed umlaut
    }


@pytest.mark.parametrize("index", range(4))
def test_sign_in_finds_the_account_by_every_spelling_sign_up_accepts(
    client: TestClient, index: int
) -> None:
    """Sign-in normalises exactly as sign-up: an address registered with a punycode or
    fullwidth domain signs in as typed, and in every other spelling of the same address."""
    local = f"ada-{uuid.uuid4().hex[:8]}"
    spellings = _spellings(local)
    typed, stored = list(spellings.items())[index]
    user = register(client, email=typed)
    assert user["email"] == stored
    for spelling, form in spellings.items():
        if form == stored:
            tokens = sign_in(client, spelling, DEFAULT_PASSWORD)
            me = client.get(f"{API}/users/me", headers=bearer(tokens["access_token"]))
            assert me.json()["id"] == user["id"], spelling


def test_every_spelling_of_an_address_spends_one_sign_in_budget(
    make_app: Callable[..., FastAPI],
) -> None:
    """Guesses cannot dodge the account's budget by respelling its address."""
    with TestClient(make_app(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)) as client:
        local = f"ada-{uuid.uuid4().hex[:8]}"
        register(client, email=f"{local}@bücher.example")
        respelt = [typed for typed, form in _spellings(local).items() if "bücher" in form]
        assert len(respelt) == 3
        for spelling in respelt:
            wrong = client.post(
                f"{API}/auth/token", data={"username": spelling, "password": "wrong-pass"}
            )
            assert_problem(wrong, 401, "invalid_credentials")
        blocked = client.post(
            f"{API}/auth/token",
            data={"username": f"{local}@bücher.example", "password": DEFAULT_PASSWORD},
        )
        assert_problem(blocked, 429, "rate_limited")


def test_unknown_email_and_wrong_password_get_the_same_401(client: TestClient) -> None:
    user = register(client)
    wrong_password = client.post(
        f"{API}/auth/token", data={"username": user["email"], "password": "wrong-password"}
    )
    unknown_email = client.post(
        f"{API}/auth/token", data={"username": unique_email(), "password": "wrong-password"}
    )
    assert_problem(wrong_password, 401, "invalid_credentials")
    assert comparable(wrong_password) == comparable(unknown_email)
    assert wrong_password.headers["www-authenticate"] == unknown_email.headers["www-authenticate"]


def test_an_inactive_user_cannot_sign_in(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(**ADMIN_SETTINGS)) as client:
        admin = sign_in_admin(client)
        user = register(client)
        client.patch(f"{API}/users/{user['id']}", json={"is_active": False}, headers=admin.headers)
        response = client.post(
            f"{API}/auth/token", data={"username": user["email"], "password": DEFAULT_PASSWORD}
        )
        unknown = client.post(
            f"{API}/auth/token", data={"username": unique_email(), "password": DEFAULT_PASSWORD}
        )
        assert_problem(response, 401, "invalid_credentials")
        assert comparable(response) == comparable(unknown)


@pytest.mark.parametrize(
    "form",
    [
        {"username": "x" * 10_000, "password": DEFAULT_PASSWORD},
        {"username": "someone@example.com", "password": "x" * 10_000},
        {"username": "someone@example.com", "password": "é" * 129},
        {"username": "someone@example.com"},
        {"password": DEFAULT_PASSWORD},
        {"username": "someone@example.com", "password": "p" * 8, "grant_type": "client"},
        {"username": "nul\x00@example.com", "password": DEFAULT_PASSWORD},
        {"username": "line\nbreak@example.com", "password": DEFAULT_PASSWORD},
    ],
    ids=[
        "huge-username",
        "huge-password",
        "long-password",
        "no-password",
        "no-user",
        "grant",
        "nul",
        "newline",
    ],
)
def test_token_bad_form_is_a_422_never_a_500(client: TestClient, form: dict[str, str]) -> None:
    assert_problem(client.post(f"{API}/auth/token", data=form), 422, "validation_error")


def test_token_huge_password_for_a_real_account_is_a_422_too(client: TestClient) -> None:
    user = register(client)
    response = client.post(
        f"{API}/auth/token", data={"username": user["email"], "password": "x" * 10_000}
    )
    assert_problem(response, 422, "validation_error")


def test_token_garbage_username_is_a_plain_401(client: TestClient) -> None:
    for username in ["not an email", "' OR 1=1 --", "%", "a" * 254, "ü@例え.テスト"]:
        response = client.post(
            f"{API}/auth/token", data={"username": username, "password": DEFAULT_PASSWORD}
        )
        assert_problem(response, 401, "invalid_credentials")


def test_openapi_token_url_is_what_swagger_authorize_calls(client: TestClient) -> None:
    user = register(client)
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    flows = [scheme["flows"]["password"] for scheme in schemes.values() if "flows" in scheme]
    assert len(flows) == 1
    token_url = flows[0]["tokenUrl"]
    # What Swagger UI posts: a form with grant_type, username and password (and maybe scope).
    response = client.post(
        token_url,
        data={
            "grant_type": "password",
            "username": user["email"],
            "password": DEFAULT_PASSWORD,
            "scope": "",
        },
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "bearer"
    me = client.get(f"{API}/users/me", headers=bearer(response.json()["access_token"]))
    assert me.status_code == 200
    # Every protected operation declares that scheme, so Authorize applies to it.
    operation = client.get("/openapi.json").json()["paths"][f"{API}/users/me"]["get"]
    assert operation["security"] == [{name: []} for name in schemes]


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text


# --- refresh ----------------------------------------------------------------------------


def test_refresh_returns_a_new_pair_that_works(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["refresh_token"] != user.refresh_token
    assert pair["access_token"] != user.access_token
    assert response.headers["cache-control"] == "no-store"
    me = client.get(f"{API}/users/me", headers=bearer(pair["access_token"]))
    assert me.json()["id"] == user.id
    again = client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 200


@pytest.fixture
def no_grace_client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    """A client of an app where a refresh token's reuse is never a repeat of a refresh."""
    with TestClient(make_app(REFRESH_REUSE_GRACE_SECONDS=0)) as client:
        yield client


def test_a_reused_refresh_token_revokes_the_whole_session(no_grace_client: TestClient) -> None:
    client = no_grace_client
    user = new_user(client)
    other = sign_in(client, user.email)  # a second session of the same user
    first = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    new_pair = first.json()

    replay = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(replay, 401, "invalid_refresh_token")

    # The thief's replay ended the session: the legitimate new pair is dead too.
    me = client.get(f"{API}/users/me", headers=bearer(new_pair["access_token"]))
    assert_problem(me, 401, "invalid_token")
    later = client.post(f"{API}/auth/refresh", json={"refresh_token": new_pair["refresh_token"]})
    assert_problem(later, 401, "invalid_refresh_token")
    # ... but only that session.
    other_me = client.get(f"{API}/users/me", headers=bearer(other["access_token"]))
    assert other_me.status_code == 200


def test_concurrent_refreshes_with_one_token_only_one_wins(no_grace_client: TestClient) -> None:
    client = no_grace_client
    user = new_user(client)

    def use() -> int:
        response = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
        return response.status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(lambda _: use(), range(4)))
    assert statuses == [200, 401, 401, 401]


def test_a_reuse_that_waited_for_the_rotation_is_no_repeat_without_grace(
    make_app: Callable[..., FastAPI], housekeeping_engine: Engine
) -> None:
    """A request reads the time before it waits for the session's lock, so the rotation it
    waited for can be later than its own `now`; with no grace window that is still a reuse
    (the race CI's PostgreSQL lane saw, made deterministic by dating the rotation ahead)."""
    with TestClient(make_app(REFRESH_REUSE_GRACE_SECONDS=0)) as client:
        user = new_user(client)
        rotated = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
        assert rotated.status_code == 200
        later = (utcnow() + timedelta(seconds=5)).isoformat()
        execute(housekeeping_engine, "UPDATE auth_session SET rotated_at = :later", later=later)
        reused = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
        assert_problem(reused, 401, "invalid_refresh_token")


def test_two_tabs_refreshing_at_once_both_stay_signed_in_with_one_successor(
    client: TestClient,
) -> None:
    """Within the grace window a repeat of the token just replaced gets the same successor
    refresh token (so both tabs hold one token) and a working access token."""
    user = new_user(client)
    refresh = partial(
        client.post, f"{API}/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    answers = together(*[refresh for _ in range(4)])
    assert [answer.status_code for answer in answers] == [200] * 4, [a.text for a in answers]
    successors = {answer.json()["refresh_token"] for answer in answers}
    assert len(successors) == 1
    for answer in answers:
        me = client.get(f"{API}/users/me", headers=bearer(answer.json()["access_token"]))
        assert me.status_code == 200
    (successor,) = successors
    # The successor works once, as any refresh token does; the token two steps back is a
    # stolen one and ends the session.
    assert client.post(f"{API}/auth/refresh", json={"refresh_token": successor}).status_code == 200
    replay = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(replay, 401, "invalid_refresh_token")
    me = client.get(f"{API}/users/me", headers=bearer(answers[0].json()["access_token"]))
    assert_problem(me, 401, "invalid_token")


@pytest.mark.parametrize("kind", ["access", "reset", "garbage", "other-user"])
def test_refresh_with_anything_but_a_refresh_token_is_a_401(
    app: FastAPI, client: TestClient, kind: str
) -> None:
    user = new_user(client)
    tokens = {
        "access": user.access_token,
        "reset": make_token(app, subject=user.id, token_type=TokenType.RESET),
        "garbage": "not.a.token",
        # A refresh token naming a session that is not this subject's.
        "other-user": make_token(
            app,
            subject=new_user(client).id,
            token_type=TokenType.REFRESH,
            session_id=str(uuid.uuid4()),
        ),
    }
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": tokens[kind]})
    assert_problem(response, 401, "invalid_refresh_token")
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"refresh_token": ""}, {"refresh_token": "x" * 5000}, {"refresh_token": "a", "x": 1}],
    ids=["missing", "empty", "huge", "extra"],
)
def test_refresh_bad_input_is_a_422(client: TestClient, body: dict[str, Any]) -> None:
    assert_problem(client.post(f"{API}/auth/refresh", json=body), 422, "validation_error")


def test_refresh_of_a_deactivated_user_is_a_401(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(**ADMIN_SETTINGS)) as client:
        admin = sign_in_admin(client)
        user = new_user(client)
        client.patch(f"{API}/users/{user.id}", json={"is_active": False}, headers=admin.headers)
        response = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
        assert_problem(response, 401, "invalid_refresh_token")


# --- logout -----------------------------------------------------------------------------


def test_logout_kills_the_access_and_refresh_token_at_once(client: TestClient) -> None:
    user = new_user(client)
    other = sign_in(client, user.email)
    response = client.post(f"{API}/auth/logout", headers=user.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get(f"{API}/users/me", headers=user.headers), 401, "invalid_token")
    refresh = client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(refresh, 401, "invalid_refresh_token")
    assert_problem(client.post(f"{API}/auth/logout", headers=user.headers), 401)
    # Other sessions of the account are not affected.
    assert client.get(f"{API}/users/me", headers=bearer(other["access_token"])).is_success


def test_logout_holds_in_another_process_on_the_same_database(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app()) as first, TestClient(make_app()) as second:
        user = new_user(first)
        assert second.get(f"{API}/users/me", headers=user.headers).status_code == 200
        assert first.post(f"{API}/auth/logout", headers=user.headers).status_code == 204
        assert_problem(second.get(f"{API}/users/me", headers=user.headers), 401, "invalid_token")
        refresh = second.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
        assert_problem(refresh, 401, "invalid_refresh_token")


def test_logout_without_a_token_is_a_401_not_a_403(client: TestClient) -> None:
    response = client.post(f"{API}/auth/logout")
    assert_problem(response, 401, "not_authenticated")


# --- sessions ---------------------------------------------------------------------------


def test_sessions_lists_the_callers_open_sessions(client: TestClient) -> None:
    user = new_user(client)
    phone = sign_in(client, user.email, **{"User-Agent": "Phone/1.0\x7f"})
    stranger = new_user(client)
    revoked = sign_in(client, user.email)
    client.post(f"{API}/auth/logout", headers=bearer(revoked["access_token"]))

    response = client.get(f"{API}/auth/sessions", headers=user.headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert len(items) == 2
    assert {"id", "created_at", "last_used_at", "expires_at", "user_agent", "current"} <= set(
        items[0]
    )
    assert items[0]["user_agent"] == "Phone/1.0"  # newest first
    assert [item["current"] for item in items] == [False, True]
    # A session id never leaks to another user.
    theirs = client.get(f"{API}/auth/sessions", headers=stranger.headers).json()["items"]
    assert {item["id"] for item in theirs}.isdisjoint(item["id"] for item in items)
    assert phone["access_token"] not in response.text


def test_sessions_requires_a_token(client: TestClient) -> None:
    assert_problem(client.get(f"{API}/auth/sessions"), 401, "not_authenticated")


def test_sessions_bad_paging_input_is_a_422(client: TestClient) -> None:
    user = new_user(client)
    for query in ["limit=0", "limit=1000", "cursor=forged"]:
        response = client.get(f"{API}/auth/sessions?{query}", headers=user.headers)
        assert_problem(response, 422)


def test_delete_session_ends_that_session_only(client: TestClient) -> None:
    user = new_user(client)
    lost_phone = sign_in(client, user.email)
    sessions = client.get(f"{API}/auth/sessions", headers=user.headers).json()["items"]
    phone_session = next(item["id"] for item in sessions if not item["current"])

    response = client.delete(f"{API}/auth/sessions/{phone_session}", headers=user.headers)
    assert response.status_code == 204
    phone_me = client.get(f"{API}/users/me", headers=bearer(lost_phone["access_token"]))
    assert_problem(phone_me, 401, "invalid_token")
    refresh = client.post(
        f"{API}/auth/refresh", json={"refresh_token": lost_phone["refresh_token"]}
    )
    assert_problem(refresh, 401)
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    again = client.delete(f"{API}/auth/sessions/{phone_session}", headers=user.headers)
    assert_problem(again, 404, "session_not_found")


def test_delete_someone_elses_session_is_a_404_and_changes_nothing(client: TestClient) -> None:
    owner = new_user(client)
    attacker = new_user(client)
    owner_session = client.get(f"{API}/auth/sessions", headers=owner.headers).json()["items"][0]
    response = client.delete(f"{API}/auth/sessions/{owner_session['id']}", headers=attacker.headers)
    assert_problem(response, 404, "session_not_found")
    unknown = client.delete(f"{API}/auth/sessions/{uuid.uuid4()}", headers=attacker.headers)
    assert comparable(unknown) == comparable(response)
    assert client.get(f"{API}/users/me", headers=owner.headers).status_code == 200


def test_delete_session_bad_id_is_a_422_and_no_token_a_401(client: TestClient) -> None:
    user = new_user(client)
    malformed = client.delete(f"{API}/auth/sessions/not-a-uuid", headers=user.headers)
    assert_problem(malformed, 422, "validation_error")
    assert_problem(client.delete(f"{API}/auth/sessions/{uuid.uuid4()}"), 401)


# --- password recovery ------------------------------------------------------------------


def test_recovery_answers_the_same_for_known_and_unknown_emails(
    app: FastAPI, client: TestClient
) -> None:
    user = new_user(client)
    signed_up = len(outbox(app))  # the sign-up's own mail
    known = client.post(f"{API}/auth/password-recovery", json={"email": user.email.upper()})
    unknown = client.post(f"{API}/auth/password-recovery", json={"email": unique_email()})
    assert known.status_code == 202
    assert comparable(known) == comparable(unknown)
    assert known.headers.keys() - {"x-request-id"} == unknown.headers.keys() - {"x-request-id"}
    mails = outbox(app)[signed_up:]
    assert [mail.to for mail in mails] == [user.email]
    assert "30 minutes" in mails[0].body


def test_reset_token_works_once_and_ends_every_session(app: FastAPI, client: TestClient) -> None:
    user = new_user(client)
    second = sign_in(client, user.email)
    client.post(f"{API}/auth/password-recovery", json={"email": user.email})
    token = reset_token_from(outbox(app)[-1])
    claims = auth_of(app).tokens.decode(token, TokenType.RESET)
    assert claims.expires_at - claims.issued_at == timedelta(minutes=30)

    reset = client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": "a-new-password"}
    )
    assert reset.status_code == 204
    for access in (user.access_token, second["access_token"]):
        assert_problem(client.get(f"{API}/users/me", headers=bearer(access)), 401)
    assert_problem(
        client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token}), 401
    )
    old = client.post(f"{API}/auth/token", data={"username": user.email, "password": user.password})
    assert_problem(old, 401, "invalid_credentials")
    sign_in(client, user.email, "a-new-password")

    reused = client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": "another-password"}
    )
    assert_problem(reused, 400, "invalid_reset_token")
    sign_in(client, user.email, "a-new-password")


def test_concurrent_resets_with_one_token_only_one_wins(app: FastAPI, client: TestClient) -> None:
    user = new_user(client)
    client.post(f"{API}/auth/password-recovery", json={"email": user.email})
    token = reset_token_from(outbox(app)[-1])

    def use(index: int) -> int:
        body = {"token": token, "new_password": f"racing-password-{index}"}
        return client.post(f"{API}/auth/password-reset", json=body).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(use, range(4)))
    assert sorted(statuses) == [204, 400, 400, 400]
    sign_in(client, user.email, f"racing-password-{statuses.index(204)}")


def test_an_expired_reset_token_is_a_400(app: FastAPI, client: TestClient) -> None:
    user = new_user(client)
    client.post(f"{API}/auth/password-recovery", json={"email": user.email})
    fingerprint = auth_of(app).tokens.decode(reset_token_from(outbox(app)[-1]), TokenType.RESET)
    expired = make_token(
        app,
        subject=user.id,
        token_type=TokenType.RESET,
        lifetime=timedelta(minutes=30),
        issued_ago=timedelta(minutes=31),
        extra=fingerprint.extra,
    )
    response = client.post(
        f"{API}/auth/password-reset", json={"token": expired, "new_password": "a-new-password"}
    )
    assert_problem(response, 400, "invalid_reset_token")
    sign_in(client, user.email, user.password)


def test_a_reset_token_dies_when_the_password_changes_otherwise(
    app: FastAPI, client: TestClient
) -> None:
    user = new_user(client)
    client.post(f"{API}/auth/password-recovery", json={"email": user.email})
    token = reset_token_from(outbox(app)[-1])
    client.post(
        f"{API}/users/me/password",
        json={"current_password": user.password, "new_password": "changed-password"},
        headers=user.headers,
    )
    response = client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": "a-new-password"}
    )
    assert_problem(response, 400, "invalid_reset_token")


def test_a_reset_token_dies_when_the_email_changes_and_other_sessions_end(
    app: FastAPI, client: TestClient
) -> None:
    """A reset mailed to the old address must not work once the account has a new one, and
    a new email signs out every other session (the one that made the change stays)."""
    user = new_user(client)
    other = sign_in(client, user.email)
    client.post(f"{API}/auth/password-recovery", json={"email": user.email})
    token = reset_token_from(outbox(app)[-1])
    changed = client.patch(
        f"{API}/users/me",
        json={"email": unique_email("moved"), "current_password": user.password},
        headers=user.headers,
    )
    assert changed.status_code == 200, changed.text
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    assert_problem(
        client.get(f"{API}/users/me", headers=bearer(other["access_token"])), 401, "invalid_token"
    )
    response = client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": "a-new-password"}
    )
    assert_problem(response, 400, "invalid_reset_token")


@pytest.mark.parametrize("kind", ["access", "refresh", "unbound", "garbage"])
def test_only_a_mailed_reset_token_resets(client: TestClient, app: FastAPI, kind: str) -> None:
    user = new_user(client)
    token = {
        "access": user.access_token,
        "refresh": user.refresh_token,
        # Signed with our key but not bound to the current password hash.
        "unbound": make_token(app, subject=user.id, token_type=TokenType.RESET),
        "garbage": "x.y.z",
    }[kind]
    response = client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": "a-new-password"}
    )
    assert_problem(response, 400, "invalid_reset_token")
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200


def test_reset_to_the_email_itself_is_a_422(app: FastAPI, client: TestClient) -> None:
    user = new_user(client)
    client.post(f"{API}/auth/password-recovery", json={"email": user.email})
    token = reset_token_from(outbox(app)[-1])
    response = client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": user.email.upper()}
    )
    assert_problem(response, 422, "password_is_email")
    # The token was not spent on the refusal.
    ok = client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": "a-new-password"}
    )
    assert ok.status_code == 204


def test_recovery_sends_nothing_for_an_inactive_account(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(**ADMIN_SETTINGS)
    with TestClient(app) as client:
        admin = sign_in_admin(client)
        user = register(client)
        client.patch(f"{API}/users/{user['id']}", json={"is_active": False}, headers=admin.headers)
        signed_up = len(outbox(app))  # the sign-up's own mail
        response = client.post(f"{API}/auth/password-recovery", json={"email": user["email"]})
        assert response.status_code == 202
        assert outbox(app)[signed_up:] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("password-recovery", {"email": "nope"}),
        ("password-recovery", {}),
        ("password-recovery", {"email": unique_email(), "extra": 1}),
        ("password-reset", {"token": "t", "new_password": "short"}),
        ("password-reset", {"token": "", "new_password": "long-enough"}),
        ("password-reset", {"token": "t" * 5000, "new_password": "long-enough"}),
        ("password-reset", {"token": "t", "new_password": "x" * 129}),
    ],
)
def test_recovery_and_reset_bad_input_is_a_422(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    assert_problem(client.post(f"{API}/auth/{path}", json=body), 422, "validation_error")


def test_session_rows_persist_in_the_database(
    client: TestClient, housekeeping_engine: Engine
) -> None:
    user = new_user(client)
    client.post(f"{API}/auth/logout", headers=user.headers)
    revoked = scalar(
        housekeeping_engine,
        "SELECT count(*) FROM auth_session WHERE user_id = :id AND revoked_at IS NOT NULL",
        id=uuid_param(housekeeping_engine, user.id),
    )
    assert revoked == 1
