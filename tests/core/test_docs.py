"""/docs and /redoc: served from installed files, and the sign-in kept without the password."""

import re

from fastapi.testclient import TestClient

from app.core.docs import SECURITY_SCHEME, TOKEN_STORAGE_KEY


def test_redoc_is_served_from_local_files(client: TestClient) -> None:
    page = client.get("/redoc")
    assert page.status_code == 200
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    assert scripts == ["/redoc/static/redoc.standalone.js"]
    assert "fonts.googleapis" not in page.text
    bundle = client.get(scripts[0])
    assert bundle.status_code == 200
    assert len(bundle.content) > 100_000


def test_swagger_ui_is_served_from_local_files(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    for source in sources:
        assert source.startswith("/docs/static/"), source
        assert client.get(source).status_code == 200


def test_swagger_ui_keeps_the_token_and_never_the_password(client: TestClient) -> None:
    page = client.get("/docs").text
    # Swagger UI's own persistence stores the whole Authorize form, password included.
    assert "persistAuthorization: false" in page
    assert "plugins: [TokenOnlyPersistence]" in page
    assert f"const TOKEN_KEY = {TOKEN_STORAGE_KEY!r}".replace("'", '"') in page
    assert f'const SCHEME = "{SECURITY_SCHEME}"' in page
    # What the plugin writes: the access token, its type and when it expires; nothing else.
    written = re.findall(
        r"localStorage\.setItem\(TOKEN_KEY, JSON\.stringify\(\{(.*?)\}\)", page, re.S
    )
    assert len(written) == 1
    keys = re.findall(r"(\w+):", written[0])
    assert keys == ["access_token", "token_type", "expires_at"]
    assert "password" not in written[0]
    # Restored only while the token lives; signing out forgets it.
    assert "saved.expires_at > Date.now()" in page
    assert "localStorage.removeItem(TOKEN_KEY)" in page


def test_the_documents_security_scheme_is_the_one_the_plugin_restores(client: TestClient) -> None:
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert list(schemes) == [SECURITY_SCHEME]
    assert schemes[SECURITY_SCHEME]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
