"""/docs (Swagger UI) and /redoc (ReDoc), served from installed packages' files, not a CDN.

The pages then work on a closed network, and no third party learns who reads the docs.
Swagger UI's files come from swagger-ui-py, ReDoc's from fastapi-offline (ReDoc 2.x, MIT
licence, in that package's `static/`).

Swagger UI's own `persistAuthorization` would keep everything the Authorize dialog holds in
localStorage, the plain password of the password flow included. Instead, a small plugin
(`TOKEN_ONLY_PLUGIN`) keeps the access token alone, with its expiry, and signs the page in
again with it after a reload until the token expires.
"""

import json
from pathlib import Path

import fastapi_offline
import swagger_ui
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs/static"
REDOC_STATIC_URL = "/redoc/static"
SWAGGER_STATIC = Path(swagger_ui.__file__).parent / "static"
REDOC_STATIC = Path(fastapi_offline.__file__).parent / "static"
# The OAuth2 scheme's name in the document (FastAPI names it after the class).
SECURITY_SCHEME = "OAuth2PasswordBearer"
TOKEN_STORAGE_KEY = "tasks-api.docs.access-token"  # noqa: S105 - a storage key

# Keeps the access token (never the password) in localStorage until it expires.
TOKEN_ONLY_PLUGIN = Path(__file__).with_name("docs_token_only.js").read_text(encoding="utf-8")

SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>%(title)s</title>
<link rel="stylesheet" href="%(static)s/swagger-ui.css">
<link rel="icon" href="%(static)s/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="%(static)s/swagger-ui-bundle.js"></script>
<script>
%(plugin)s
const ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  plugins: [TokenOnlyPersistence],
  oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect",
  persistAuthorization: false,
  deepLinking: true,
  showExtensions: true,
  onComplete: () => signInAgain(ui),
});
window.ui = ui;
</script>
</body>
</html>
"""


def swagger_page(title: str) -> str:
    """The /docs page: Swagger UI with the token-only sign-in persistence."""
    names = f"const TOKEN_KEY = {json.dumps(TOKEN_STORAGE_KEY)};\n"
    names += f"const SCHEME = {json.dumps(SECURITY_SCHEME)};\n"
    plugin = names + TOKEN_ONLY_PLUGIN
    return SWAGGER_PAGE % {"title": title, "static": STATIC_URL, "plugin": plugin}


def install_docs(app: FastAPI, *, title: str) -> None:
    """Serve Swagger UI at /docs (its Authorize button signs in through /auth/token) and
    ReDoc at /redoc."""
    app.mount(STATIC_URL, StaticFiles(directory=SWAGGER_STATIC), name="swagger-static")
    app.mount(REDOC_STATIC_URL, StaticFiles(directory=REDOC_STATIC), name="redoc-static")
    page = swagger_page(f"{title} - Swagger UI")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui_html() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc_html() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{REDOC_STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/favicon-32x32.png",
            with_google_fonts=False,
        )
