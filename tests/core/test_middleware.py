"""Security headers on every response, CORS for the browser app's origin only."""

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, new_user, sign_in

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
    app = make_app(ENVIRONMENT="production", PASSWORD_RECOVERY_ENABLED=False)
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
