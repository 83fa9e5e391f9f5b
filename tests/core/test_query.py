"""Query parameters read as one model: FastAPI's semantics, errors and documentation."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient

from app.core.errors import install_error_handlers
from app.core.query import QueryModel, query_dependency, query_parameters
from app.main import create_app


class Example(QueryModel):
    limit: Annotated[int, Query(ge=1, le=10, description="How many.")] = 5
    tag: Annotated[list[str] | None, Query(max_length=3)] = None
    owner: uuid.UUID | None = None
    flag: bool = False


def _client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/items", openapi_extra={"parameters": query_parameters(Example)})
    async def items(query: Annotated[Example, Depends(query_dependency(Example))]) -> Any:
        return query.model_dump(mode="json")

    return TestClient(app)


def test_values_lists_defaults_and_unknown_parameters() -> None:
    client = _client()
    assert client.get("/items").json() == {"limit": 5, "tag": None, "owner": None, "flag": False}
    reply = client.get("/items?limit=2&limit=3&tag=a&tag=b&flag=yes&other=1").json()
    # A repeated single value: the last one, as FastAPI reads it; unknown names are ignored.
    assert reply == {"limit": 3, "tag": ["a", "b"], "owner": None, "flag": True}


def test_errors_are_422_problems_located_in_the_query() -> None:
    client = _client()
    reply = client.get("/items?limit=0&tag=a&tag=b&tag=c&tag=d&owner=nope")
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    locations = {tuple(error["loc"]) for error in reply.json()["errors"]}
    assert locations == {("query", "limit"), ("query", "tag"), ("query", "owner")}


def test_parameters_are_documented_as_fastapi_documents_them() -> None:
    document = _client().app.openapi()  # type: ignore[attr-defined]
    parameters = {p["name"]: p for p in document["paths"]["/items"]["get"]["parameters"]}
    assert set(parameters) == {"limit", "tag", "owner", "flag"}
    assert parameters["limit"]["in"] == "query"
    assert parameters["limit"]["description"] == "How many."
    assert parameters["limit"]["schema"]["maximum"] == 10
    assert parameters["tag"]["schema"]["anyOf"][0]["maxItems"] == 3
    assert not any(p["required"] for p in parameters.values())


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def test_the_task_lists_document_every_parameter_and_their_references_resolve() -> None:
    document = create_app().openapi()
    components = document["components"]["schemas"]
    for path in ("/api/v1/tasks", "/api/v1/projects/{project_id}/tasks"):
        parameters = document["paths"][path]["get"]["parameters"]
        names = [p["name"] for p in parameters if p["in"] == "query"]
        assert len(names) == len(set(names)), path
        assert {"limit", "cursor", "include_total", "sort", "status", "q", "label"} <= set(names)
        assert ("project_id" in names) == (path == "/api/v1/tasks")
        for ref in _refs(parameters):
            assert ref.removeprefix("#/components/schemas/") in components, ref
