"""The contract a client author reads in the OpenAPI document (app/core/openapi.py): every
operation described, with examples; every response with its schema, example and headers;
response fields always sent marked required; and the headers the API really sends documented.
"""

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from app.core.openapi import openapi_document
from tests.factories import API, SignedInUser, make_label, make_project, make_task, new_user

DOCUMENT = openapi_document()
COMPONENTS = DOCUMENT["components"]
OPERATIONS = [
    (path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]
# The headers the contract speaks about; any of them a response carries must be documented.
CONTRACT_HEADERS = {"etag", "location", "retry-after", "x-request-id", "ratelimit-policy"}
CONTRACT_HEADERS |= {"ratelimit", "www-authenticate"}


def _ids(operations: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    return [operation["operationId"] for _, _, operation in operations]


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema validator for `schema`, its `#/components/...` references resolved."""
    return Draft202012Validator({**schema, "components": COMPONENTS})


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=_ids(OPERATIONS))
def test_every_operation_is_described(path: str, method: str, operation: dict[str, Any]) -> None:
    assert operation["operationId"]
    assert operation["tags"], path
    assert operation["summary"], path
    assert operation["description"].strip(), path
    assert operation["responses"]


BODIES = [(p, m, o) for p, m, o in OPERATIONS if "requestBody" in o]


@pytest.mark.parametrize(("path", "method", "operation"), BODIES, ids=_ids(BODIES))
def test_every_request_body_has_examples_that_its_schema_accepts(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    for media_type, media in operation["requestBody"]["content"].items():
        examples = media.get("examples", {})
        assert examples, f"{method} {path} {media_type}: no examples"
        check = validator(media["schema"])
        for name, example in examples.items():
            assert example["summary"], name
            errors = [error.message for error in check.iter_errors(example["value"])]
            assert not errors, f"{method} {path} example {name}: {errors}"


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=_ids(OPERATIONS))
def test_every_error_response_is_a_problem_with_an_example_of_its_status(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    for status, response in operation["responses"].items():
        if int(status) < 400:
            continue
        media = response["content"]["application/problem+json"]
        expected = "ValidationProblem" if status == "422" else "Problem"
        assert media["schema"] == {"$ref": f"#/components/schemas/{expected}"}
        example = media["example"]
        assert example["status"] == int(status), (path, status)
        assert not list(validator(media["schema"]).iter_errors(example)), (path, status)


def test_each_status_has_its_own_example() -> None:
    examples: dict[str, set[str]] = {}
    for _, _, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                example = response["content"]["application/problem+json"]["example"]
                examples.setdefault(status, set()).add(example["code"])
    assert examples.pop("400") == {"malformed_json", "malformed_precondition"}
    codes = [code for found in examples.values() for code in found]
    assert len(codes) == len(set(codes)) == len(examples)
    assert examples["401"] == {"token_expired"}


def test_only_validation_problems_have_errors_and_there_they_are_required() -> None:
    problem = COMPONENTS["schemas"]["Problem"]
    validation = COMPONENTS["schemas"]["ValidationProblem"]
    assert "errors" not in problem["properties"]
    assert "errors" in validation["required"]
    assert set(problem["required"]) == set(problem["properties"])


def _response_schemas() -> set[str]:
    """The component schemas some 2xx response body refers to, followed through references."""
    names: set[str] = set()
    pending: list[Any] = [
        media["schema"]
        for _, _, operation in OPERATIONS
        for status, response in operation["responses"].items()
        if status.startswith("2")
        for media in response.get("content", {}).values()
    ]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in names:
                    names.add(name)
                    pending.append(COMPONENTS["schemas"][name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return names


RESPONSE_SCHEMAS = sorted(_response_schemas())


@pytest.mark.parametrize("name", RESPONSE_SCHEMAS)
def test_response_fields_are_all_required_and_instants_are_date_times(name: str) -> None:
    schema = COMPONENTS["schemas"][name]
    properties = schema.get("properties", {})
    assert set(schema.get("required", [])) == set(properties), name
    for field, definition in properties.items():
        if field.endswith("_at") or field.endswith("_since"):
            variants = definition.get("anyOf", [definition])
            formats = {v.get("format") for v in variants if v.get("type") not in (None, "null")}
            assert formats == {"date-time"}, (name, field, definition)


def test_request_fields_with_defaults_are_optional() -> None:
    task_create = COMPONENTS["schemas"]["TaskCreate"]
    assert task_create["required"] == ["title"]
    assert "required" not in COMPONENTS["schemas"]["TaskUpdate"]


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=_ids(OPERATIONS))
def test_every_response_documents_its_request_id_and_429s_their_retry_after(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    for status, response in operation["responses"].items():
        headers = response["headers"]
        assert "X-Request-ID" in headers, (path, status)
        if status == "429":
            assert "Retry-After" in headers
        if status == "401":
            assert "WWW-Authenticate" in headers


def _operation_for(method: str, url: str) -> tuple[str, dict[str, Any]]:
    path = url.split("?", 1)[0]
    for template, item in DOCUMENT["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            # A literal path (/tasks/bulk) wins over a template (/tasks/{task_id}).
            literal = "{" not in template
            best = (template, item[method.lower()])
            if literal:
                return best
    return best


def assert_headers_documented(method: str, url: str, response: Any) -> None:
    """Every contract header `response` carries is documented for its operation and status,
    and every header documented as required is there."""
    template, operation = _operation_for(method, url)
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {template}: {response.status_code} not documented"
    names = {name.lower() for name in documented["headers"]}
    sent = {name.lower() for name in response.headers} & CONTRACT_HEADERS
    assert sent <= names, f"{method} {template} {response.status_code}: {sent - names}"
    for name, ref in documented["headers"].items():
        header = COMPONENTS["headers"][ref["$ref"].rsplit("/", 1)[-1]]
        if header.get("required"):
            assert name.lower() in sent, f"{method} {template} {response.status_code}: {name}"


def test_the_headers_sent_are_the_documented_ones(client: TestClient) -> None:
    user: SignedInUser = new_user(client)
    auth = user.headers
    calls: list[tuple[str, str, Any]] = []

    def call(method: str, url: str, **kwargs: Any) -> Any:
        response = client.request(method, url, **kwargs)
        calls.append((method, url, response))
        return response

    project = make_project(client, user, name="Garden")
    label = make_label(client, user, "errands")
    task = make_task(client, user, title="Water", project_id=project["id"])
    call("POST", f"{API}/projects", headers=auth, json={"name": "Shed"})
    call("POST", f"{API}/labels", headers=auth, json={"name": "later"})
    call("POST", f"{API}/tasks", headers=auth, json={"title": "Dig"})
    call("POST", f"{API}/projects/{project['id']}/tasks", headers=auth, json={"title": "Rake"})
    for kind, row in (("projects", project), ("labels", label), ("tasks", task)):
        url = f"{API}/{kind}/{row['id']}"
        read = call("GET", url, headers=auth)
        call("GET", url, headers={**auth, "If-None-Match": read.headers["etag"]})
        call("GET", f"{API}/{kind}", headers=auth)
        call("PATCH", url, headers={**auth, "If-Match": '"v999"'}, json={})
    call("PATCH", f"{API}/tasks/{task['id']}", headers=auth, json={"title": "Water well"})
    call("POST", f"{API}/tasks/bulk", headers=auth, json={"operations": [{"op": "complete",
         "id": task["id"]}]})  # fmt: skip
    call("GET", f"{API}/users/me", headers=auth)
    call("GET", f"{API}/tasks/{task['id']}")
    call("GET", f"{API}/tasks/{task['id']}", headers={"Authorization": "Bearer garbage"})
    call("POST", f"{API}/tasks", headers=auth, json={"title": " "})
    call("POST", f"{API}/tasks", headers={**auth, "content-type": "application/json"},
         content=b'{"title":')  # fmt: skip
    call("POST", f"{API}/auth/token", data={"username": user.email, "password": "wrong"})
    call("POST", f"{API}/auth/token", data={"username": user.email, "password": user.password})
    call("DELETE", f"{API}/tasks/{task['id']}", headers=auth)
    call("POST", f"{API}/tasks/{task['id']}/restore", headers=auth)
    call("GET", "/health/live")
    call("POST", f"{API}/auth/register", json={"email": "new@example.com", "password": "x" * 12})
    call("POST", f"{API}/auth/password-recovery", json={"email": user.email})
    call("POST", f"{API}/auth/verify/resend", json={"email": user.email})
    call("POST", f"{API}/auth/verify", json={"token": "not-a-token"})
    for method, url, response in calls:
        assert_headers_documented(method, url, response)
