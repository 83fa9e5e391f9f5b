"""Post-processing of the OpenAPI document: every error is documented as a problem, and the
links that let a client (or a fuzzer) feed one call's ids into the next are declared here.

Links live in one table instead of on each route: a route's file stays about the route, and a
new area joins the stateful fuzzing with a line here.

`openapi_document()` is the API contract committed as `openapi.json` (`tasks-api
export-openapi` writes it; tests/core/test_openapi.py fails on any difference).
"""

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from app.core.config import Settings
from app.core.errors import (
    PROBLEM_MEDIA_TYPE,
    FieldError,
    Problem,
    ValidationProblem,
    problem_body,
    status_title,
)
from app.core.rate_limit import RATE_LIMITED, RATELIMIT_DRAFT

_BODY_METHODS = {"post", "put", "patch"}
_REQUEST_ID = "4b6a3c1e8f2d4e0b9a7c5d3e1f0a2b4c"


def _example(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return problem_body(status, code, detail, request_id=_REQUEST_ID, **extra)


# One realistic example per status, in the documents every error response shows.
PROBLEM_EXAMPLES: dict[int, dict[str, Any]] = {
    400: _example(
        400,
        "malformed_json",
        "The request body is not valid JSON (Expecting value at character 12).",
    ),
    # A 400 of an operation without a body can only be about its conditional headers.
    -400: _example(
        400,
        "malformed_precondition",
        'Send `*` or entity tags as the ETag header gives them, quotes included (`"v3"`).',
    ),
    401: _example(
        401, "token_expired", "The access token has expired; refresh it or sign in again."
    ),
    403: _example(403, "forbidden", "This operation is for admins only."),
    404: _example(404, "not_found", "The requested resource was not found."),
    409: _example(409, "label_name_taken", "You already have a label with this name."),
    412: _example(
        412,
        "version_mismatch",
        "The resource has changed since you read it; read it again and retry.",
        current_version=4,
        current_etag='"v4"',
    ),
    413: _example(413, "payload_too_large", "The request body exceeds 1048576 bytes."),
    422: _example(
        422,
        "validation_error",
        "The request is not valid; see `errors`.",
        errors=[
            {
                "loc": ["body", "title"],
                "msg": "Must hold something besides white space.",
                "type": "string_pattern_mismatch",
            }
        ],
    ),
    429: _example(429, "rate_limited", "Too many requests; try again later."),
    500: _example(500, "internal_error", "An unexpected error occurred."),
    503: _example(503, "service_unavailable", "The service is temporarily unavailable."),
}

# Response headers, declared once in components and referenced from each response.
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "This request's id (yours, if you sent one); quote it in bug reports.",
        "required": True,
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "The representation's version; send it in If-Match or If-None-Match.",
        "required": True,
        "schema": {"type": "string", "example": '"v3"'},
    },
    "Location": {
        "description": "The path of the created resource.",
        "required": True,
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "WWW-Authenticate": {
        "description": (
            "The bearer challenge (RFC 6750): `error` is `invalid_token` for a token that is "
            "not valid or has expired (the problem's `code` tells which)."
        ),
        "required": True,
        "schema": {"type": "string", "example": 'Bearer error="invalid_token"'},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Policy": {
        "description": (
            f"The per-client quota ({RATELIMIT_DRAFT}): "
            '`"name";q=<quota>;w=<window seconds>`. Sent when rate limiting is on.'
        ),
        "schema": {"type": "string", "example": '"sign-in-failures";q=20;w=900'},
    },
    "RateLimit": {
        "description": (
            f"What is left of that quota ({RATELIMIT_DRAFT}): "
            '`"name";r=<remaining>;t=<seconds until it resets>`.'
        ),
        "schema": {"type": "string", "example": '"sign-in-failures";r=17;t=600'},
    },
}


def _header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _problem(status: int, description: str, *, has_body: bool) -> dict[str, Any]:
    schema = "ValidationProblem" if status == 422 else "Problem"
    key = -400 if status == 400 and not has_body else status
    return {
        "description": description,
        "content": {
            PROBLEM_MEDIA_TYPE: {
                "schema": {"$ref": f"#/components/schemas/{schema}"},
                "example": PROBLEM_EXAMPLES.get(key, PROBLEM_EXAMPLES[500]),
            }
        },
    }


def _single_resource(response: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether a response's body is one versioned resource (so it carries its ETag)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    component = components.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    # A row's integer version (the index's release string is not one).
    version = component.get("properties", {}).get("version", {})
    return bool(version.get("type") == "integer")


def document_responses(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """Give each response of `operation` its problem schema and example, and its headers."""
    rate_limited = RATE_LIMITED in operation
    for status, response in operation.get("responses", {}).items():
        code = int(status) if status.isdigit() else 0
        if code >= 400:
            description = response.get("description") or status_title(code)
            has_body = "requestBody" in operation
            response.update(_problem(code, description, has_body=has_body))
        names = ["X-Request-ID"]
        if code == 429:
            names.append("Retry-After")
        if code == 401:
            names.append("WWW-Authenticate")
        if code == 304 or (200 <= code < 300 and _single_resource(response, components)):
            names.append("ETag")
        if code == 201 and "ETag" in names:
            names.append("Location")
        if rate_limited:
            names += ["RateLimit-Policy", "RateLimit"]
        response["headers"] = {**response.get("headers", {}), **_header_refs(*names)}


@dataclass(frozen=True, slots=True)
class Link:
    """An OpenAPI link: a `status` answer of `source` gives `target` its `parameters`.

    Parameters map the target's parameter names to runtime expressions such as
    `$response.body#/id`. A link whose operations do not exist (an area not mounted) is
    skipped, so the table may name areas before they land.
    """

    source: str
    status: str
    target: str
    parameters: dict[str, str] = field(default_factory=dict)
    request_body: Any = None

    @property
    def name(self) -> str:
        return self.target.split("-", 1)[-1]


_ID = "$response.body#/id"
_FIRST_ITEM_ID = "$response.body#/items/0/id"

LINKS: tuple[Link, ...] = (
    # Accounts
    Link("auth-list_sessions", "200", "auth-delete_session", {"session_id": _FIRST_ITEM_ID}),
    Link("users-create_user", "201", "users-read_user", {"user_id": _ID}),
    Link("users-create_user", "201", "users-update_user", {"user_id": _ID}),
    Link("users-create_user", "201", "users-delete_user", {"user_id": _ID}),
    Link("users-list_users", "200", "users-read_user", {"user_id": _FIRST_ITEM_ID}),
    Link("users-update_user", "200", "users-read_user", {"user_id": _ID}),
    # Projects
    Link("projects-create_project", "201", "projects-read_project", {"project_id": _ID}),
    Link("projects-create_project", "201", "projects-update_project", {"project_id": _ID}),
    Link("projects-create_project", "201", "projects-delete_project", {"project_id": _ID}),
    Link("projects-list_projects", "200", "projects-read_project", {"project_id": _FIRST_ITEM_ID}),
    # Labels
    Link("labels-create_label", "201", "labels-read_label", {"label_id": _ID}),
    Link("labels-create_label", "201", "labels-update_label", {"label_id": _ID}),
    Link("labels-create_label", "201", "labels-delete_label", {"label_id": _ID}),
    # Tasks
    Link("tasks-create_task", "201", "tasks-read_task", {"task_id": _ID}),
    Link("tasks-create_task", "201", "tasks-update_task", {"task_id": _ID}),
    Link("tasks-create_task", "201", "tasks-delete_task", {"task_id": _ID}),
    Link("tasks-list_tasks", "200", "tasks-read_task", {"task_id": _FIRST_ITEM_ID}),
)


def _operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for path_item in schema.get("paths", {}).values()
        for operation in path_item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def _parameter_names(operation: dict[str, Any]) -> set[str]:
    return {parameter["name"] for parameter in operation.get("parameters", [])}


def add_links(schema: dict[str, Any], links: tuple[Link, ...] = LINKS) -> None:
    """Declare `links` on the responses of their source operations (where both exist)."""
    operations = _operations(schema)
    for link in links:
        source, target = operations.get(link.source), operations.get(link.target)
        if source is None or target is None:
            continue
        response = source.get("responses", {}).get(link.status)
        if response is None:
            continue
        if not set(link.parameters) <= _parameter_names(target):
            raise ValueError(f"link {link.source} -> {link.target}: unknown parameter")
        declared: dict[str, Any] = {"operationId": link.target, "parameters": link.parameters}
        if link.request_body is not None:
            declared["requestBody"] = link.request_body
        response.setdefault("links", {})[link.name] = declared


# The body-limit middleware refuses NUL characters in input (see app/core/middleware.py).
NO_NUL_PATTERN = "^[^\\x00]*$"


def _forbid_nul(schema: dict[str, Any], components: dict[str, Any], seen: set[str]) -> None:
    """Say on every input string that it cannot hold a NUL, following references once."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen and name in components:
            seen.add(name)
            _forbid_nul(components[name], components, seen)
        return
    free_text = schema.get("format") in {None, "password", "email"}
    constrained = {"pattern", "enum", "const"} & schema.keys()
    if schema.get("type") == "string" and free_text and not constrained:
        schema["pattern"] = NO_NUL_PATTERN
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            _forbid_nul(sub, components, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _forbid_nul(schema[key], components, seen)
    for sub in schema.get("properties", {}).values():
        _forbid_nul(sub, components, seen)


def install_openapi(app: FastAPI) -> None:
    """Document errors as problems (422, 500, and malformed or oversized bodies); add links."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        template = "#/components/schemas/{model}"
        for model in (Problem, ValidationProblem):
            components[model.__name__] = model.model_json_schema(
                ref_template=template, mode="serialization"
            )
            components[model.__name__].pop("$defs", None)
        components["FieldError"] = FieldError.model_json_schema(mode="serialization")
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        schema["components"]["headers"] = HEADERS
        for path_item in schema.get("paths", {}).values():
            for method, operation in path_item.items():
                responses = operation.setdefault("responses", {})
                if method in _BODY_METHODS and "requestBody" in operation:
                    # A body that is not valid JSON (or form) at all, or one over the size
                    # limit, is refused before validation by the framework and the middleware.
                    responses.setdefault("400", {"description": "Malformed request"})
                    responses.setdefault("413", {"description": "Content Too Large"})
                names = {parameter["name"] for parameter in operation.get("parameters", [])}
                if names & {"If-Match", "If-None-Match"}:
                    responses.setdefault("400", {"description": "Malformed request"})
                responses.setdefault("500", {"description": "Internal Server Error"})
                document_responses(operation, components)
                seen: set[str] = set()
                for parameter in operation.get("parameters", []):
                    _forbid_nul(parameter.get("schema", {}), components, seen)
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    _forbid_nul(media.get("schema", {}), components, seen)
        add_links(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class _ContractSettings(Settings):
    """Settings from their defaults and the arguments only: no environment, no `.env` file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def contract_settings() -> Settings:
    """The fixed settings the committed document is built with, the same on every machine.

    Of the settings only PROJECT_NAME (the title) reaches the document; DOCS_ENABLED only
    decides whether /openapi.json is served. No database is opened: the lifespan never runs.
    """
    return _ContractSettings(
        ENVIRONMENT="development", DATABASE_URL="sqlite://", LOG_LEVEL="WARNING"
    )


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, as committed in `openapi.json`."""
    from app.main import create_app  # app.main imports this module

    return create_app(contract_settings()).openapi()


def openapi_json(document: dict[str, Any] | None = None) -> str:
    """The document as `openapi.json` holds it: indented, keys in the app's order, UTF-8."""
    document = openapi_document() if document is None else document
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
