"""/docs and /redoc served with Swagger UI's files from the installed package, not a CDN.

The page then works on a closed network, and no third party learns who reads the docs.
"""

from pathlib import Path

import swagger_ui
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs/static"
SWAGGER_STATIC = Path(swagger_ui.__file__).parent / "static"


def install_docs(app: FastAPI, *, title: str) -> None:
    """Serve Swagger UI at /docs; its Authorize button signs in through /auth/token."""
    app.mount(STATIC_URL, StaticFiles(directory=SWAGGER_STATIC), name="swagger-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui_html() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
