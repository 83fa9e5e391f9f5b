"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): body limits, security headers and
the answer to an unexpected error."""

import re
import time
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import (
    internal_error_response,
    log_unexpected_error,
    problem_response,
)

# A NUL character: raw, percent-encoded (query strings, forms), or as a JSON escape that is not
# itself escaped (`\\u0000` is those six characters, and fine).
_NUL_URLENCODED = re.compile(rb"\x00|%00")
_NUL_JSON = re.compile(rb"\x00|(?<!\\)(?:\\\\)*\\u0000")
NUL_DETAIL = "Text must not contain NUL characters."


def nul_problem(where: str) -> JSONResponse:
    """The 422 for a NUL in the request's `where` (path, query or body)."""
    errors = [{"loc": [where], "msg": NUL_DETAIL, "type": "nul_character"}]
    return problem_response(422, "validation_error", NUL_DETAIL, errors=errors)


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a 413 problem, declared or streamed.

    FastAPI's own `max_body_size` answers a declared oversize body in text/plain, outside
    the problem format, hence this small middleware. It also refuses NUL characters in the
    query string and body with a 422: no client has a reason to send one, PostgreSQL cannot
    store one in text (a 500 otherwise), and SQLite would store it silently.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _NUL_URLENCODED.search(scope.get("query_string", b"")) or "\x00" in scope["path"]:
            where = "path" if "\x00" in scope["path"] else "query"
            await nul_problem(where)(scope, receive, send)
            return
        nul = _NUL_JSON
        for name, value in scope["headers"]:
            if name == b"content-type" and b"x-www-form-urlencoded" in value.lower():
                nul = _NUL_URLENCODED
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
                if declared is None:
                    response = problem_response(400, "bad_request", "Invalid Content-Length.")
                elif declared > self.max_bytes:
                    response = problem_response(
                        413,
                        "payload_too_large",
                        f"The request body exceeds {self.max_bytes} bytes.",
                    )
                else:
                    break
                await response(scope, receive, send)
                return

        received = 0
        body = bytearray()

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_bytes:
                    # A chunked body declares no length: stop reading once it is over the limit.
                    # An HTTPException, so FastAPI's body parser passes it through untouched.
                    raise HTTPException(413, f"The request body exceeds {self.max_bytes} bytes.")
                # Checked whole (at most max_bytes), so an escape split across chunks counts.
                body.extend(chunk)
                if not message.get("more_body", False) and nul.search(body):
                    raise HTTPException(422, NUL_DETAIL)
            return message

        await self.app(scope, limited_receive, send)


SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"permissions-policy": b"geolocation=(), camera=(), microphone=()",
}
# The API itself serves only JSON; the docs pages need scripts and styles of their own.
API_CSP = b"default-src 'none'; frame-ancestors 'none'"


def security_headers(*, hsts: bool, docs: bool = False) -> dict[str, str]:
    """The headers every answer carries (also added by the 500 handler, which runs outside)."""
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS.items()}
    if not docs:
        headers["content-security-policy"] = API_CSP.decode()
    if hsts:
        headers["strict-transport-security"] = "max-age=63072000"
    return headers


class SecurityHeadersMiddleware:
    """Add the headers a JSON API should always send (a route's own value wins)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        # Encoded once: this runs on every response.
        self._headers = {
            docs: [
                (name.encode(), value.encode())
                for name, value in security_headers(hsts=hsts, docs=docs).items()
            ]
            for docs in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers[scope["path"].startswith(("/docs", "/redoc"))]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in extra if item[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UnexpectedErrorMiddleware:
    """Answer an error no handler took with the 500 problem, inside the other middleware.

    Starlette answers such an error in its outermost layer, outside every middleware the
    app adds: that 500 had no CORS headers, so the browser app could not even read that its
    request failed. Added innermost, this one's 500 goes out through CORS, the security
    headers and the request id like any other response. The request's transaction has
    already been rolled back by its route. An error after the response has started cannot
    be answered any more: it is raised on, and the server closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception as exc:
            if started:
                raise
            log_unexpected_error(scope["method"], scope["path"], exc)
            await internal_error_response()(scope, receive, send)


class PrivateCacheMiddleware:
    """Mark answers to authenticated reads `Cache-Control: private, no-cache`, `Vary:
    Authorization` (a route's own Cache-Control wins).

    A browser may keep them and revalidate with the ETag (a 304 costs no body), but no shared
    cache may, and one browser's two users never get each other's answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in {"GET", "HEAD"}:
            await self.app(scope, receive, send)
            return
        if not any(name == b"authorization" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"private, no-cache"))
                vary = [value for name, value in headers if name.lower() == b"vary"]
                if not any(b"authorization" in value.lower() for value in vary):
                    headers.append((b"vary", b"Authorization"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_private)


# Where a request's facts for its access line are left by the code that learns them (the
# principal dependency writes the user id), in the ASGI scope every layer shares.
USER_ID_SCOPE_KEY = "tasks_api.user_id"
HEAD_SCOPE_KEY = "tasks_api.head"
# The route of a request no route matched: never the raw path, which may hold ids or junk.
UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/tasks/{task_id}`), once routing is done.

    FastAPI leaves the route as declared in its router (`/tasks/{task_id}`) in
    `scope["route"]`, and the included route, prefix and all, in its own part of the scope;
    tests/core/test_logging.py fails if that ever moves.
    """
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        included = fastapi_scope.get("effective_route_context")
        template = getattr(included, "path_format", None)
        if isinstance(template, str):
            return template
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


class AccessLogMiddleware:
    """Write one line per request once it is answered: method, route template, status,
    duration, user, client address (as the trusted-proxy rules resolved it), response size.

    Inside the request-id middleware, so the line carries the request's id, and outside
    everything else, so an error answered by any layer is logged with its status.
    """

    def __init__(self, app: ASGIApp, *, logger: Any) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an error raised past every handler
        size = 0

        async def send_counting(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            client = scope.get("client")
            user_id = scope.get(USER_ID_SCOPE_KEY)
            self.logger.info(
                "request",
                method="HEAD" if scope.get(HEAD_SCOPE_KEY) else scope["method"],
                route=route_template(scope),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                user_id=str(user_id) if user_id is not None else None,
                client=client[0] if client else None,
                bytes=size,
            )


class HeadAsGetMiddleware:
    """Answer HEAD wherever GET is answered: as that GET, without its body.

    Load balancers probe with HEAD. Done here rather than as routes of their own, which would
    add an operation (and a duplicate operation id) per GET to the OpenAPI document. The
    server keeps seeing HEAD (it omits the body too); the app sees GET.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET", HEAD_SCOPE_KEY: True}, receive, send_headers_only)
