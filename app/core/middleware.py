"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): body limits and security headers."""

from fastapi import HTTPException
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import problem_response


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a 413 problem, declared or streamed.

    FastAPI's own `max_body_size` answers a declared oversize body in text/plain, outside
    the problem format, hence this small middleware.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # A chunked body declares no length: stop reading once it is over the limit.
                    # An HTTPException, so FastAPI's body parser passes it through untouched.
                    raise HTTPException(413, f"The request body exceeds {self.max_bytes} bytes.")
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


class SecurityHeadersMiddleware:
    """Add the headers a JSON API should always send."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope["path"].startswith(("/docs", "/redoc"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name.decode(), value.decode())
                if not is_docs:
                    headers.setdefault("content-security-policy", API_CSP.decode())
                if self.hsts:
                    headers.setdefault("strict-transport-security", "max-age=63072000")
            await send(message)

        await self.app(scope, receive, send_with_headers)
