"""Security headers on every response, CORS for the browser app's origin only, HEAD as GET,
no redirects, and client addresses from trusted proxies only."""

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, new_user, sign_in
from tests.helpers import assert_problem

ORIGIN = "http://localhost:5173"


def test_security_headers_on_api_responses(client: TestClient) -> None:
    response = client.get("/health/live")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers  # only in production


def test_security_headers_on_errors_too(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["x-content-type-options"] == "nosniff"


def test_docs_page_is_not_blocked_by_the_api_csp(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers


def test_hsts_in_production(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(
        ENVIRONMENT="production", PASSWORD_RECOVERY_ENABLED=False, EMAIL_VERIFICATION_ENABLED=False
    )
    with TestClient(app) as client:
        assert "max-age" in client.get("/health/live").headers["strict-transport-security"]


def test_cors_preflight_for_an_allowed_origin(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(CORS_ORIGINS=ORIGIN)
    with TestClient(app) as client:
        response = client.options(
            "/api/v1/users/me",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, if-match, content-type",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ORIGIN
        allowed = response.headers["access-control-allow-headers"].lower()
        assert "if-match" in allowed
        assert "authorization" in allowed
        simple = client.get("/health/live", headers={"Origin": ORIGIN})
        exposed = simple.headers["access-control-expose-headers"].lower()
        assert "etag" in exposed
        assert "location" in exposed


def test_cors_refuses_other_origins(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(CORS_ORIGINS=ORIGIN)
    with TestClient(app) as client:
        response = client.options(
            "/api/v1/users/me",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers


def test_docs_can_be_switched_off(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(DOCS_ENABLED=False)
    with TestClient(app) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404


def test_a_routes_own_header_wins_and_is_not_repeated(app: FastAPI) -> None:
    from fastapi import Response

    @app.get("/probe/framed")
    async def framed() -> Response:
        return Response(
            b"{}", media_type="application/json", headers={"X-Frame-Options": "SAMEORIGIN"}
        )

    response = TestClient(app).get("/probe/framed")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


def test_authenticated_reads_are_private_and_vary_on_authorization(client: TestClient) -> None:
    user = new_user(client)
    for path in ("/users/me", "/tasks", "/projects"):
        response = client.get(f"{API}{path}", headers=user.headers)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "private, no-cache"
        assert "Authorization" in response.headers["vary"]
    # An expired or garbage token's 401 is not for a shared cache either.
    refused = client.get(f"{API}/users/me", headers={"Authorization": "Bearer nope"})
    assert refused.headers["cache-control"] == "private, no-cache"
    # Token responses are never stored at all; public reads are left alone.
    tokens = client.post(
        f"{API}/auth/token", data={"username": user.email, "password": user.password}
    )
    assert tokens.headers["cache-control"] == "no-store"
    assert sign_in(client, user.email, user.password)
    assert "cache-control" not in client.get("/health/live").headers


def test_cors_exposes_the_contract_headers(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(CORS_ORIGINS=[ORIGIN])
    with TestClient(app) as client:
        response = client.get("/health/live", headers={"Origin": ORIGIN})
    exposed = {
        name.strip().lower()
        for name in response.headers["access-control-expose-headers"].split(",")
    }
    assert {
        "etag",
        "location",
        "retry-after",
        "x-request-id",
        "ratelimit",
        "ratelimit-policy",
    } <= exposed


# --- HEAD, redirects, the client's address -------------------------------------------------


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/", "/openapi.json"])
def test_head_is_answered_wherever_get_is(client: TestClient, path: str) -> None:
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_of_a_protected_read_needs_the_token_like_get(client: TestClient) -> None:
    user = new_user(client)
    assert client.head(f"{API}/tasks").status_code == 401
    head = client.head(f"{API}/tasks", headers=user.headers)
    assert head.status_code == 200
    assert head.content == b""
    assert "etag" in head.headers or "content-length" in head.headers


def test_head_is_not_a_documented_operation(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert not any("head" in operations for operations in document["paths"].values())


def test_head_of_a_write_only_path_is_405(client: TestClient) -> None:
    assert client.head(f"{API}/auth/register").status_code == 405


@pytest.mark.parametrize("path", [f"{API}/tasks/", f"{API}/projects/", "/health/live/"])
def test_no_redirect_is_built_from_the_host_header(client: TestClient, path: str) -> None:
    """A trailing slash is an unknown path (a 404 problem), never a redirect to whatever host
    the request named."""
    response = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
    assert_problem(response, 404, "not_found")
    assert "location" not in response.headers


def _address_seen(app: FastAPI, peer: str, forwarded: str | None) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    with TestClient(app, client=(peer, 40000)) as client:
        user = new_user(client)
        sessions = client.get(f"{API}/auth/sessions", headers={**user.headers, **headers})
        assert sessions.status_code == 200, sessions.text
        tokens = client.post(
            f"{API}/auth/token",
            data={"username": user.email, "password": user.password},
            headers=headers,
        )
        assert tokens.status_code == 200
        listed = client.get(f"{API}/auth/sessions", headers=user.headers).json()["items"]
    newest: str = max(listed, key=lambda item: item["created_at"])["ip_address"]
    return newest


def test_forwarded_for_is_ignored_by_default(make_app: Callable[..., FastAPI]) -> None:
    """No proxy is trusted unless named: a local process cannot write its own address."""
    assert _address_seen(make_app(), "127.0.0.1", "198.51.100.9") == "127.0.0.1"


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(FORWARDED_ALLOW_IPS="10.0.0.0/8")
    assert _address_seen(app, "10.1.2.3", "198.51.100.9") == "198.51.100.9"
    untrusted = make_app(FORWARDED_ALLOW_IPS="10.0.0.0/8")
    assert _address_seen(untrusted, "192.0.2.1", "198.51.100.9") == "192.0.2.1"
