"""What the security suites share: the API's operations read from its own OpenAPI document and
route table, and one table saying how to make an object each kind of path id can name.

Tests walk `operations(app)` rather than listing endpoints, so a new route is attacked the
day it lands; a path parameter nobody taught `OWNED` how to fill fails loudly instead of
being skipped.
"""

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from app.auth.dependencies import require_admin
from tests.factories import API, SignedInUser, new_user


class Client(Protocol):
    """The part of an HTTP client the helpers use (TestClient, or schemathesis's ASGI client)."""

    def request(self, method: str, url: str, **kwargs: Any) -> Any: ...
    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Operation:
    """One operation of the OpenAPI document, with what the walks need to know about it."""

    operation_id: str
    method: str
    path: str
    spec: dict[str, Any] = field(repr=False, compare=False)
    admin_only: bool = False

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def secured(self) -> bool:
        return bool(self.spec.get("security"))

    @property
    def query_params(self) -> dict[str, dict[str, Any]]:
        return {
            p["name"]: p.get("schema", {})
            for p in self.spec.get("parameters", [])
            if p["in"] == "query"
        }

    @property
    def body_schema_ref(self) -> str | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        ref = schema.get("$ref")
        return ref.rsplit("/", 1)[-1] if ref else None

    @property
    def form_body(self) -> bool:
        content = self.spec.get("requestBody", {}).get("content", {})
        return "application/x-www-form-urlencoded" in content

    def url(self, **params: str) -> str:
        return self.path.format(**params)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _admin_gated(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path) of every route whose dependency tree includes `require_admin`."""

    def calls(dependant: Any) -> Iterator[Any]:
        for sub in dependant.dependencies:
            yield sub.call
            yield from calls(sub)

    gated: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        if any(call is require_admin for call in calls(route.dependant)):
            gated |= {(method, route.path) for method in route.methods or ()}
    return gated


def operations(app: FastAPI) -> list[Operation]:
    """Every operation the app documents, in document order."""
    gated = _admin_gated(app)
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, spec in item.items():
            found.append(
                Operation(
                    operation_id=spec["operationId"],
                    method=method.upper(),
                    path=path,
                    spec=spec,
                    admin_only=(method.upper(), path) in gated,
                )
            )
    return found


def schema_component(app: FastAPI, name: str) -> dict[str, Any]:
    component: dict[str, Any] = app.openapi()["components"]["schemas"][name]
    return component


def resolve(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, or the component it refers to."""
    if "$ref" in schema:
        return schema_component(app, schema["$ref"].rsplit("/", 1)[-1])
    return schema


def walk_schema(
    app: FastAPI, schema: dict[str, Any], seen: set[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(property name, property schema) for every property reachable from `schema`."""
    seen = set() if seen is None else seen
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return
        seen.add(name)
        yield from walk_schema(app, schema_component(app, name), seen)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from walk_schema(app, sub, seen)
    if "items" in schema:
        yield from walk_schema(app, schema["items"], seen)
    for name, sub in schema.get("properties", {}).items():
        yield name, sub
        yield from walk_schema(app, sub, seen)


def leaf_types(app: FastAPI, schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The non-null alternatives of a property's schema (`str | None` -> the `str` part)."""
    schema = resolve(app, schema)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        for sub in alternatives:
            yield from leaf_types(app, sub)
    elif schema.get("type") != "null":
        yield schema


def json_keys(value: Any) -> Iterator[str]:
    """Every object key anywhere in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from json_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_keys(item)


# --- Owned objects ---------------------------------------------------------------------------
#
# For each path parameter an API route can take: how `owner` makes (or finds) an object of that
# kind and returns its id. Areas that are not mounted yet are simply never asked for.


def _first_session_id(client: Client, owner: SignedInUser) -> str:
    response = client.get(f"{API}/auth/sessions", headers=owner.headers)
    assert response.status_code == 200, response.text
    session_id: str = response.json()["items"][0]["id"]
    return session_id


def _create(path: str, body: dict[str, Any]) -> Callable[[Client, SignedInUser], str]:
    def make(client: Client, owner: SignedInUser) -> str:
        response = client.post(f"{API}{path}", json=body, headers=owner.headers)
        assert response.status_code == 201, f"{path}: {response.status_code} {response.text}"
        object_id: str = response.json()["id"]
        return object_id

    return make


def _new_project(client: Client, owner: SignedInUser) -> str:
    return _create("/projects", {"name": f"p-{uuid.uuid4().hex[:6]}"})(client, owner)


def _new_label(client: Client, owner: SignedInUser) -> str:
    return _create("/labels", {"name": f"l-{uuid.uuid4().hex[:6]}"})(client, owner)


def _new_task(client: Client, owner: SignedInUser) -> str:
    return _create("/tasks", {"title": f"t-{uuid.uuid4().hex[:6]}"})(client, owner)


def _new_comment(client: Client, owner: SignedInUser) -> str:
    task_id = _new_task(client, owner)
    return _create(f"/tasks/{task_id}/comments", {"body": "a comment"})(client, owner)


def _new_invitation(client: Client, owner: SignedInUser) -> str:
    project_id = _new_project(client, owner)
    address = f"invitee-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post(
        f"{API}/projects/{project_id}/members", json={"email": address}, headers=owner.headers
    )
    assert response.status_code == 202, response.text
    invitation_id: str = response.json()["id"]
    return invitation_id


def _new_notification(client: Client, owner: SignedInUser) -> str:
    # Someone else invites the owner's address: the owner is told.
    other = new_user(client)  # type: ignore[arg-type]
    project_id = _new_project(client, other)
    invited = client.post(
        f"{API}/projects/{project_id}/members", json={"email": owner.email}, headers=other.headers
    )
    assert invited.status_code == 202, invited.text
    listed = client.get(f"{API}/notifications", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    notification_id: str = listed.json()["items"][0]["id"]
    return notification_id


OWNED: dict[str, Callable[[Client, SignedInUser], str]] = {
    "session_id": _first_session_id,
    "user_id": lambda _client, owner: owner.id,
    "project_id": _new_project,
    "label_id": _new_label,
    "task_id": _new_task,
    "comment_id": _new_comment,
    "invitation_id": _new_invitation,
    "notification_id": _new_notification,
}


def owned_params(client: Client, owner: SignedInUser, operation: Operation) -> dict[str, str]:
    """Path parameters naming objects that `owner` owns, for `operation`."""
    missing = [name for name in operation.path_params if name not in OWNED]
    assert not missing, f"{operation}: add a factory for {missing} to tests/security/helpers.OWNED"
    return {name: OWNED[name](client, owner) for name in operation.path_params}


def walk_pages(
    client: TestClient,
    url: str,
    headers: dict[str, str],
    params: dict[str, Any],
    *,
    max_pages: int = 100,
) -> list[dict[str, Any]]:
    """Every item of a keyset list, page by page (`params` holds the `limit`).

    Each page must answer 200, hold at most `limit` items, and not be empty while it still
    hands out a cursor; the walk must end within `max_pages`.
    """
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(max_pages):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= params["limit"]
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert page["items"], "a page with a next cursor must not be empty"
    raise AssertionError("pagination did not end")
