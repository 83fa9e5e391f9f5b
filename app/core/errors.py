"""One error format for the whole API: RFC 9457 problem details with a stable `code`.

Services raise `AppError` subclasses; the handlers installed by `install_error_handlers`
render those, FastAPI's validation errors, Starlette's HTTP errors (unknown routes, wrong
methods) and unexpected exceptions as the same `application/problem+json` document.
"""

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any, ClassVar

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://tasks-api.example.com/problems/"


class FieldError(BaseModel):
    """One validation failure: where it is, what is wrong, and its machine-readable type."""

    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the field's path."
    )
    msg: str = Field(description="What is wrong, for people.")
    type: str = Field(description="A stable machine-readable kind, e.g. `string_too_short`.")


class Problem(BaseModel):
    """An RFC 9457 problem document; every error response of this API has this shape."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong in this occurrence, for people.")
    code: str = Field(description="A stable machine-readable code, e.g. `task_not_found`.")
    request_id: str | None = Field(description="Quote it when reporting a bug.")


class ValidationProblem(Problem):
    """A 422 problem: the request was well formed, but these fields are not acceptable."""

    errors: list[FieldError] = Field(description="One entry per invalid field.")


class AppError(Exception):
    """Base of every domain error; subclasses fix the status and the stable code."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    detail: ClassVar[str] = "The request could not be processed."
    # Most errors undo the request's writes; a few must keep them (revoking a session whose
    # refresh token was replayed is the point of that error), and say so here.
    keeps_writes: ClassVar[bool] = False
    # Field errors, for 422s (see UnprocessableEntity).
    errors: list[dict[str, Any]] | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = detail or self.detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.message)


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "not_authenticated"
    detail = "Could not validate credentials."

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    detail = "You are not allowed to do this."


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    detail = "The requested resource was not found."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    detail = "The request conflicts with the current state of the resource."


class PreconditionFailed(AppError):
    status_code = 412
    code = "precondition_failed"
    detail = "The resource has changed since you last read it."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    detail = "The request body is too large."


class UnprocessableEntity(AppError):
    """A well-formed request the rules refuse; `errors` names the field (`loc`) at fault.

    Every 422 carries `errors`, whether pydantic or a domain rule refused the request.
    """

    status_code = 422
    code = "validation_error"
    detail = "The request is not valid."
    loc: ClassVar[tuple[str | int, ...]] = ("body",)

    def __init__(
        self,
        detail: str | None = None,
        *,
        loc: Sequence[str | int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)
        where = list(self.loc if loc is None else loc)
        self.errors = [{"loc": where, "msg": self.message, "type": self.code}]

    def within(self, *prefix: str | int) -> None:
        """Say the fields are inside `prefix` of the body (an item of a list, say)."""
        for error in self.errors or ():
            if error["loc"][:1] == ["body"]:
                error["loc"] = ["body", *prefix, *error["loc"][1:]]


class ReferenceNotFound(UnprocessableEntity):
    """A body field names a row that does not exist, or is not the caller's.

    A 404 is only ever about the URL's resource: a missing `project_id` in a body is the
    body's fault, and a client must not read it as "this collection is gone".
    """

    code = "reference_not_found"
    detail = "No such item of yours."


@contextmanager
def referring(*loc: str | int, detail: str) -> Iterator[None]:
    """Inside, a NotFound is about a reference the request made: ReferenceNotFound at `loc`.

    For lookups shared with routes whose URL names the row (there, a 404 is right).
    """
    try:
        yield
    except NotFound as exc:
        raise ReferenceNotFound(detail, loc=loc, extra=exc.extra) from exc


class MalformedPrecondition(BadRequest):
    code = "malformed_precondition"
    detail = "The If-Match or If-None-Match header is not a list of entity tags."


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"
    detail = "Too many requests; try again later."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    detail = "The service is temporarily unavailable."


# Codes for errors raised by the framework itself (routing, methods, media types).
_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def status_title(status: int) -> str:
    """The status's reason phrase (a problem's `title`)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    request_id: str | None,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One problem document's members (`errors` only when there are field errors)."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": status_title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """Render one problem document."""
    body = problem_body(
        status, code, detail, request_id=correlation_id.get(), errors=errors, **(extra or {})
    )
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE
    )


def _json_safe_loc(loc: Iterable[Any]) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


async def _app_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)  # noqa: S101 - registered for AppError only
    return problem_response(
        exc.status_code,
        exc.code,
        exc.message,
        headers=exc.headers,
        errors=exc.errors,
        extra=exc.extra,
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts at this path.

    The router's own 405 names only the first route matching the path, while each method of a
    resource is a route of its own: `Allow: GET` on a resource that also takes PATCH and DELETE.
    """
    path = request.scope["path"]
    exact: set[str] = set()
    templated: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        # Hidden routes only exist to answer 405 (e.g. GET /tasks/bulk); they allow nothing.
        if not (route.path and route.methods and getattr(route, "include_in_schema", True)):
            continue
        regex, _, convertors = compile_path(route.path)
        if regex.match(path):
            (templated if convertors else exact).update(route.methods)
    # A literal path wins over a template that also matches it (/tasks/bulk, /tasks/{id}).
    return ", ".join(sorted(exact or templated))


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else status_title(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No resource at this path."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    errors = None
    if exc.status_code == 422:
        # Raised while the body streams in (a NUL in it, see middleware.py).
        errors = [{"loc": ["body"], "msg": detail, "type": "nul_character"}]
    return problem_response(exc.status_code, code, detail, headers=headers, errors=errors)


# Pydantic's messages for the patterns the API publishes (a regex is no message for people).
PATTERN_MESSAGES: dict[str, str] = {}


def describe_pattern(pattern: str, message: str) -> str:
    """Register the message a value that does not match `pattern` gets; returns the pattern."""
    PATTERN_MESSAGES[pattern] = message
    return pattern


# Pydantic's wording, where it reads like a library's ("Value error, ...").
_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field; see the schema for the fields this operation takes.",
    "model_attributes_type": "Expected a JSON object.",
    "dict_type": "Expected a JSON object.",
}


def human_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message as the API sends it: a sentence for people."""
    kind = error["type"]
    message = str(error.get("msg", ""))
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        return PATTERN_MESSAGES.get(pattern, "This value does not have the expected format.")
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message.removeprefix(prefix)
            return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
    return message if message.endswith(".") else message + "."


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = exc.errors()
    malformed = next((err for err in errors if err["type"] == "json_invalid"), None)
    if malformed is not None:
        # Not JSON at all is a malformed request (400), not a refused one (422).
        reason = malformed.get("ctx", {}).get("error", "invalid JSON")
        position = malformed.get("loc", ("body", 0))[-1]
        return problem_response(
            400,
            "malformed_json",
            f"The request body is not valid JSON ({reason} at character {position}).",
        )
    return problem_response(
        422,
        "validation_error",
        "The request is not valid; see `errors`.",
        errors=[
            {
                "loc": _json_safe_loc(err.get("loc", ())),
                "msg": human_message(err),
                "type": err["type"],
            }
            for err in errors
        ],
    )


def log_unexpected_error(method: str, path: str, exc: BaseException) -> None:
    """The traceback goes to the log, never to the client."""
    logger.exception("unhandled error on %s %s", method, path, exc_info=exc)


def internal_error_response(headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The 500 problem: no detail of what went wrong."""
    return problem_response(500, "internal_error", "An unexpected error occurred.", headers=headers)


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # Only for an error in the middleware itself: the app's own errors are answered inside
    # it (UnexpectedErrorMiddleware). Starlette runs this handler outermost, after the
    # request-id and security-header middleware have gone: add their headers back.
    log_unexpected_error(request.method, request.url.path, exc)
    from app.core.middleware import security_headers  # the middleware module imports this one

    settings = getattr(request.app.state, "settings", None)
    headers = security_headers(hsts=getattr(settings, "ENVIRONMENT", None) == "production")
    request_id = correlation_id.get()
    if request_id:
        headers["X-Request-ID"] = request_id
    return internal_error_response(headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of error through the problem renderer."""
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(Exception, _unexpected_error_handler)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting the given error statuses as problem documents."""
    # Their schema, example and headers are added with every other response's (openapi.py).
    return {status: {"description": status_title(status)} for status in statuses}
