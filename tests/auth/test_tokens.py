"""Forged, unsigned, expired, tampered and wrong-kind tokens: always a 401 problem."""

import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jose import jwt

from app.core.security import TokenType
from tests.auth.helpers import b64, jwt_segments, make_token
from tests.factories import API, bearer, new_user, sign_in
from tests.helpers import assert_problem

ME = f"{API}/users/me"


def assert_rejected(client: TestClient, token: str) -> None:
    assert_problem(client.get(ME, headers=bearer(token)), 401, "invalid_token")


def test_access_token_claims(app: FastAPI, client: TestClient) -> None:
    user = new_user(client)
    header, claims, _ = jwt_segments(user.access_token)
    assert header["alg"] == "HS256"
    assert {"sub", "exp", "iat", "jti", "sid", "aud", "typ", "iss"} <= set(claims)
    assert claims["sub"] == user.id
    assert claims["typ"] == "access"
    assert claims["aud"].endswith(":access")
    assert claims["exp"] - claims["iat"] == 15 * 60
    _, refresh_claims, _ = jwt_segments(user.refresh_token)
    assert refresh_claims["typ"] == "refresh"
    assert refresh_claims["sid"] == claims["sid"]
    assert refresh_claims["exp"] - refresh_claims["iat"] == 14 * 24 * 3600
    assert refresh_claims["jti"] != claims["jti"]


def test_lifetimes_come_from_the_settings(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(ACCESS_TOKEN_EXPIRE_MINUTES=5, REFRESH_TOKEN_EXPIRE_DAYS=2)) as client:
        user = new_user(client)
        _, access, _ = jwt_segments(user.access_token)
        _, refresh, _ = jwt_segments(user.refresh_token)
        assert access["exp"] - access["iat"] == 5 * 60
        assert refresh["exp"] - refresh["iat"] == 2 * 24 * 3600


def test_missing_or_non_bearer_token_is_a_401_not_a_403(client: TestClient) -> None:
    assert_problem(client.get(ME), 401, "not_authenticated")
    response = client.get(ME, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(response, 401, "not_authenticated")
    assert_problem(client.get(ME, headers={"Authorization": "Bearer "}), 401)


def _unsigned(token: str, **changes: object) -> str:
    header, claims, _ = jwt_segments(token)
    return f"{b64({**header, 'alg': 'none'})}.{b64({**claims, **changes})}."


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(client: TestClient, alg: str) -> None:
    user = new_user(client)
    header, claims, _ = jwt_segments(user.access_token)
    forged = f"{b64({**header, 'alg': alg})}.{b64(claims)}."
    assert_rejected(client, forged)
    assert_rejected(client, forged + "c2lnbmF0dXJl")


def test_a_foreign_signature_is_refused(client: TestClient) -> None:
    user = new_user(client)
    _, claims, _ = jwt_segments(user.access_token)
    forged = jwt.encode(claims, "someone-elses-secret-that-is-long-enough", algorithm="HS256")
    assert_rejected(client, forged)


def test_another_hmac_algorithm_with_our_secret_is_refused(
    app: FastAPI, client: TestClient
) -> None:
    user = new_user(client)
    _, claims, _ = jwt_segments(user.access_token)
    secret = app.state.settings.SECRET_KEY.get_secret_value()
    assert_rejected(client, jwt.encode(claims, secret, algorithm="HS512"))
    # The same claims with HS256 and our key do work: the refusal is the algorithm's.
    assert client.get(ME, headers=bearer(jwt.encode(claims, secret))).status_code == 200


def test_an_expired_token_is_a_401_token_expired_that_says_refresh(
    app: FastAPI, client: TestClient
) -> None:
    """An app refreshes on `token_expired` and signs out on `invalid_token`: they differ."""
    user = new_user(client)
    _, claims, _ = jwt_segments(user.access_token)
    expired = make_token(
        app,
        subject=user.id,
        token_type=TokenType.ACCESS,
        session_id=claims["sid"],
        lifetime=timedelta(minutes=15),
        issued_ago=timedelta(minutes=16),
    )
    for _ in range(2):  # and again: a refusal is never remembered
        response = client.get(ME, headers=bearer(expired))
        problem = assert_problem(response, 401, "token_expired")
        assert "refresh" in problem["detail"]
        challenge = response.headers["www-authenticate"]
        assert challenge == f'Bearer error="invalid_token", error_description="{problem["detail"]}"'
    # A forged token that is also expired is not "expired": it is not ours at all.
    forged = jwt.encode({**jwt_segments(expired)[1]}, "not-our-secret", algorithm="HS256")
    assert_rejected(client, forged)
    garbage = client.get(ME, headers=bearer("garbage"))
    assert_problem(garbage, 401, "invalid_token")
    assert 'error="invalid_token"' in garbage.headers["www-authenticate"]
    fresh = make_token(app, subject=user.id, token_type=TokenType.ACCESS, session_id=claims["sid"])
    assert client.get(ME, headers=bearer(fresh)).status_code == 200


@pytest.mark.parametrize("claim", ["sub", "sid", "exp", "typ", "aud", "iss"])
def test_a_tampered_claim_is_refused(client: TestClient, claim: str) -> None:
    victim = new_user(client)
    attacker = new_user(client)
    header, claims, signature = jwt_segments(attacker.access_token)
    _, victim_claims, _ = jwt_segments(victim.access_token)
    tampered_value = {
        "sub": victim.id,
        "sid": victim_claims["sid"],
        "exp": claims["exp"] + 3600,
        "typ": "admin",
        "aud": "tasks-api:refresh",
        "iss": "evil",
    }[claim]
    tampered = f"{b64(header)}.{b64({**claims, claim: tampered_value})}.{signature}"
    assert_rejected(client, tampered)


def test_a_validly_signed_token_for_another_users_session_is_refused(
    app: FastAPI, client: TestClient
) -> None:
    victim = new_user(client)
    attacker = new_user(client)
    _, victim_claims, _ = jwt_segments(victim.access_token)
    # Even with the key, a token must match its session's user.
    mixed = make_token(
        app, subject=attacker.id, token_type=TokenType.ACCESS, session_id=victim_claims["sid"]
    )
    assert_rejected(client, mixed)


@pytest.mark.parametrize("kind", ["refresh", "reset"])
def test_a_token_of_another_kind_is_not_an_access_token(
    app: FastAPI, client: TestClient, kind: str
) -> None:
    user = new_user(client)
    _, claims, _ = jwt_segments(user.access_token)
    token = {
        "refresh": user.refresh_token,
        "reset": make_token(
            app, subject=user.id, token_type=TokenType.RESET, session_id=claims["sid"]
        ),
    }[kind]
    assert_rejected(client, token)


def test_a_typ_claim_disagreeing_with_the_audience_is_refused(
    app: FastAPI, client: TestClient
) -> None:
    user = new_user(client)
    _, claims, _ = jwt_segments(user.access_token)
    secret = app.state.settings.SECRET_KEY.get_secret_value()
    assert_rejected(client, jwt.encode({**claims, "typ": "refresh"}, secret))


@pytest.mark.parametrize("missing", ["sub", "exp", "iat", "jti", "sid"])
def test_a_token_missing_a_claim_is_refused(app: FastAPI, client: TestClient, missing: str) -> None:
    user = new_user(client)
    _, claims, _ = jwt_segments(user.access_token)
    secret = app.state.settings.SECRET_KEY.get_secret_value()
    claims.pop(missing)
    assert_rejected(client, jwt.encode(claims, secret))


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "x" * 10_000, "é"],
    ids=["word", "three-parts", "two-parts", "dots", "empty-claims", "huge", "non-ascii"],
)
def test_garbage_is_a_401_never_a_500(client: TestClient, token: str) -> None:
    response = client.get(ME, headers={"Authorization": f"Bearer {token}".encode()})
    assert_problem(response, 401)


def test_a_token_of_a_deleted_user_is_refused(client: TestClient) -> None:
    user = new_user(client)
    assert client.delete(ME, headers=user.headers).status_code == 204
    assert_rejected(client, user.access_token)


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def rs256_client(
    make_app: Callable[..., FastAPI], rsa_keys: tuple[str, str]
) -> Iterator[TestClient]:
    private, public = rsa_keys
    app = make_app(JWT_ALGORITHM="RS256", JWT_PRIVATE_KEY=private, JWT_PUBLIC_KEY=public)
    with TestClient(app) as client:
        yield client


def test_rs256_tokens_work_end_to_end(rs256_client: TestClient) -> None:
    user = new_user(rs256_client)
    header, _, _ = jwt_segments(user.access_token)
    assert header["alg"] == "RS256"
    assert rs256_client.get(ME, headers=user.headers).status_code == 200
    refreshed = rs256_client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200
    assert jwt_segments(refreshed.json()["access_token"])[0]["alg"] == "RS256"


def test_rs256_refuses_hs256_signed_with_the_public_key(
    rs256_client: TestClient, rsa_keys: tuple[str, str]
) -> None:
    """The classic key-confusion attack: the public key used as an HMAC secret."""
    _, public = rsa_keys
    user = new_user(rs256_client)
    header, claims, _ = jwt_segments(user.access_token)
    signing_input = f"{b64({**header, 'alg': 'HS256'})}.{b64(claims)}"
    signature = hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert_rejected(rs256_client, f"{signing_input}.{b64(signature)}")


def test_rs256_refuses_another_key_pair_and_hs256_tokens(
    make_app: Callable[..., FastAPI], rs256_client: TestClient
) -> None:
    user = new_user(rs256_client)
    _, claims, _ = jwt_segments(user.access_token)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger_pem = stranger.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert_rejected(rs256_client, jwt.encode(claims, stranger_pem, algorithm="RS256"))
    # An HS256 app on the same database issues tokens the RS256 app must not accept.
    with TestClient(make_app()) as hs256_client:
        hs256_tokens = sign_in(hs256_client, user.email, user.password)
    assert_rejected(rs256_client, hs256_tokens["access_token"])
    assert rs256_client.get(ME, headers=user.headers).status_code == 200


def test_subject_that_is_not_a_uuid_is_refused(app: FastAPI, client: TestClient) -> None:
    user = new_user(client)
    _, claims, _ = jwt_segments(user.access_token)
    token = make_token(
        app, subject="not-a-uuid", token_type=TokenType.ACCESS, session_id=claims["sid"]
    )
    assert_rejected(client, token)
    token = make_token(app, subject=user.id, token_type=TokenType.ACCESS, session_id="1")
    assert_rejected(client, token)
    token = make_token(
        app, subject=str(uuid.uuid4()), token_type=TokenType.ACCESS, session_id=claims["sid"]
    )
    assert_rejected(client, token)
