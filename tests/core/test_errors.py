"""One error format: every failure is an RFC 9457 problem document with a stable code."""

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from app.core.errors import (
    NotFound,
    ReferenceNotFound,
    UnprocessableEntity,
    human_message,
)
from app.core.middleware import UnexpectedErrorMiddleware
from app.core.schemas import NOT_BLANK
from tests.helpers import PROBLEM, assert_problem


class Item(BaseModel):
    name: str
    count: int


def add_probe_routes(app: FastAPI) -> None:
    @app.post("/probe/items")
    async def create_item(item: Item) -> Item:
        return item

    @app.get("/probe/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM internals WHERE password = 'hunter2'")

    @app.get("/probe/missing")
    async def missing() -> None:
        raise NotFound("No such widget.")


@pytest.fixture
def probe_client(app: FastAPI) -> TestClient:
    add_probe_routes(app)
    return TestClient(app, raise_server_exceptions=False)


def assert_complete_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """`assert_problem`, and every member the format promises, filled in."""
    body = assert_problem(response, status, code)
    assert str(body["type"]).endswith(code)
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_unknown_path_is_a_404_problem(probe_client: TestClient) -> None:
    assert_complete_problem(probe_client.get("/no/such/path"), 404, "not_found")


def test_wrong_method_is_a_405_problem(probe_client: TestClient) -> None:
    assert_complete_problem(probe_client.delete("/health/live"), 405, "method_not_allowed")


def test_invalid_fields_are_listed(probe_client: TestClient) -> None:
    response = probe_client.post("/probe/items", json={"name": "x", "count": "many"})
    body = assert_complete_problem(response, 422, "validation_error")
    assert body["errors"] == [
        {
            "loc": ["body", "count"],
            "msg": "Input should be a valid integer, unable to parse string as an integer.",
            "type": "int_parsing",
        }
    ]


def test_domain_error_keeps_its_code_and_detail(probe_client: TestClient) -> None:
    body = assert_complete_problem(probe_client.get("/probe/missing"), 404, "not_found")
    assert body["detail"] == "No such widget."


def test_unexpected_error_is_a_500_without_internals_and_is_logged(
    probe_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = probe_client.get("/probe/boom")
    body = assert_complete_problem(response, 500, "internal_error")
    assert "SELECT" not in response.text
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert body["detail"] == "An unexpected error occurred."
    logged = [record for record in caplog.records if record.exc_info]
    assert logged, "the traceback must be logged"
    assert "hunter2" in str(logged[0].exc_info[1])  # type: ignore[index]


def test_client_request_id_is_echoed(probe_client: TestClient) -> None:
    request_id = "0123456789abcdef0123456789abcdef"
    response = probe_client.get("/no/such/path", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    assert response.json()["request_id"] == request_id


def test_garbage_request_id_is_replaced(probe_client: TestClient) -> None:
    response = probe_client.get("/no/such/path", headers={"X-Request-ID": "<script>alert(1)"})
    assert "<script>" not in response.headers["x-request-id"]
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_oversized_declared_body_is_a_413_problem(make_app: object) -> None:
    app = make_app(MAX_REQUEST_BODY_BYTES=2048)  # type: ignore[operator]
    add_probe_routes(app)
    client = TestClient(app)
    response = client.post(
        "/probe/items",
        content=b'{"name": "' + b"x" * 4096 + b'", "count": 1}',
        headers={"content-type": "application/json"},
    )
    assert_complete_problem(response, 413, "payload_too_large")


def test_oversized_streamed_body_is_a_413_problem(make_app: object) -> None:
    app = make_app(MAX_REQUEST_BODY_BYTES=2048)  # type: ignore[operator]
    add_probe_routes(app)
    client = TestClient(app)

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * 512

    response = client.post(
        "/probe/items", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_complete_problem(response, 413, "payload_too_large")


def test_openapi_documents_errors_as_problems(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "500" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    content = response["content"]
                    assert PROBLEM in content, (method, path, status)
                    name = "ValidationProblem" if status == "422" else "Problem"
                    assert content[PROBLEM]["schema"] == {"$ref": f"#/components/schemas/{name}"}


BROWSER_APP = "http://localhost:5173"


@pytest.fixture
def cors_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    # Built before the test runs: building an app configures logging, which would drop
    # the log capture of a test already running.
    app = make_app(CORS_ORIGINS=BROWSER_APP)
    add_probe_routes(app)
    return app


def test_a_500_carries_cors_security_and_request_id_headers(
    cors_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # The browser app reads a failed response only if it carries its CORS headers.
    origin = BROWSER_APP
    with (
        caplog.at_level(logging.ERROR),
        TestClient(cors_app, raise_server_exceptions=False) as client,
    ):
        response = client.get("/probe/boom", headers={"Origin": origin})
    body = assert_complete_problem(response, 500, "internal_error")
    assert body["detail"] == "An unexpected error occurred."
    assert response.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "hunter2" not in response.text
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1, "logged once, with its traceback"
    assert "hunter2" in str(logged[0].exc_info[1])  # type: ignore[index]


def test_a_500_for_another_origin_carries_no_cors_headers(cors_app: FastAPI) -> None:
    with TestClient(cors_app, raise_server_exceptions=False) as client:
        response = client.get("/probe/boom", headers={"Origin": "https://evil.example"})
    assert_complete_problem(response, 500, "internal_error")
    assert "access-control-allow-origin" not in response.headers


async def _through_the_middleware(inner: Callable[..., Any], sent: list[Message]) -> None:
    """Run one GET through UnexpectedErrorMiddleware around `inner`, collecting what it sends."""

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    await UnexpectedErrorMiddleware(inner)(scope, receive, send)


@pytest.mark.anyio
async def test_an_error_after_the_response_started_is_raised_on() -> None:
    # Nothing can be answered any more: no second response start, the error goes on up.
    async def half_answered(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("broke mid-body")

    sent: list[Message] = []
    with pytest.raises(RuntimeError, match="broke mid-body"):
        await _through_the_middleware(half_answered, sent)
    assert [message["type"] for message in sent] == ["http.response.start"]


@pytest.mark.anyio
async def test_an_error_before_the_response_is_answered_by_the_middleware() -> None:
    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("no")

    sent: list[Message] = []
    await _through_the_middleware(fails, sent)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 500
    assert b'"internal_error"' in sent[1]["body"]


def test_a_body_that_is_not_json_is_a_400_malformed_json(probe_client: TestClient) -> None:
    for body in (b'{"name": "x", "count":', b"not json", b'{"name": "x",}'):
        response = probe_client.post(
            "/probe/items", content=body, headers={"content-type": "application/json"}
        )
        problem = assert_complete_problem(response, 400, "malformed_json")
        assert "not valid JSON" in problem["detail"]


def test_validation_messages_are_written_for_people(probe_client: TestClient) -> None:
    response = probe_client.post("/probe/items", json={"count": "many"})
    problem = assert_problem(response, 422, "validation_error")
    messages = {tuple(error["loc"]): error["msg"] for error in problem["errors"]}
    assert messages[("body", "name")] == "This field is required."
    for message in messages.values():
        assert not message.startswith(("Value error", "Assertion failed")), message
        assert message[0].isupper(), message
        assert message.endswith("."), message


def test_human_message_rewrites_library_wording() -> None:
    assert human_message({"type": "value_error", "msg": "Value error, send a or b"}) == (
        "Send a or b."
    )
    pattern = {"type": "string_pattern_mismatch", "msg": "...", "ctx": {"pattern": NOT_BLANK}}
    assert human_message(pattern) == "Must hold something besides white space."
    unknown = {"type": "string_pattern_mismatch", "msg": "...", "ctx": {"pattern": "^x$"}}
    assert "expected format" in human_message(unknown)


def test_a_domain_422_names_its_field() -> None:
    error = ReferenceNotFound("No such thing.", loc=("body", "thing_id"))
    assert error.errors == [
        {"loc": ["body", "thing_id"], "msg": "No such thing.", "type": "reference_not_found"}
    ]
    error.within("operations", 3)
    assert error.errors is not None
    assert error.errors[0]["loc"] == ["body", "operations", 3, "thing_id"]
    assert UnprocessableEntity().errors == [
        {"loc": ["body"], "msg": "The request is not valid.", "type": "validation_error"}
    ]
