"""Query parameters read as one pydantic model: one validation per request.

FastAPI validates each query parameter on its own (a TypeAdapter call, alias look-ups and a
dependency of its own per parameter), which adds up for a list with seventeen optional
filters (docs/performance.md). `query_dependency(Model)` reads them all from the
query string and validates the model once. The errors are FastAPI's own, a 422 whose `loc`
starts with "query", and `query_parameters(Model)` documents the parameters exactly as FastAPI
would document `Annotated[Model, Query()]` (it asks FastAPI), for the route's `openapi_extra`.
"""

import types
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class QueryModel(BaseModel):
    """Base of query parameter models: unknown parameters are ignored, as FastAPI does."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) in (list, tuple, set, frozenset)


def query_dependency(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency giving `model` validated from the request's query string.

    A repeated parameter is a list where the field is one (`?status=a&status=b`) and its last
    value otherwise; an absent list is the field's default, like FastAPI's own parameters.
    Parameters are named as the fields are (the models here use no aliases).
    """
    # (name, is a list): only the model's own names are looked up, whatever else is sent.
    fields = tuple((name, _is_list(field.annotation)) for name, field in model.model_fields.items())
    validate = model.model_validate

    async def read_query(request: Request) -> M:
        params = request.query_params
        values: dict[str, Any] = {}
        for name, is_list in fields:
            if name in params:
                values[name] = params.getlist(name) if is_list else params[name]
        try:
            return validate(values)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError(
                [{**error, "loc": ("query", *error["loc"])} for error in errors]
            ) from None

    read_query.__doc__ = f"The query parameters of {model.__name__}, validated at once."
    return read_query


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI parameters FastAPI documents for `Annotated[model, Query()]`.

    Their `$ref`s point at `#/components/schemas/...`: the models they name (enums) must also
    be documented elsewhere in the app, which a test checks.
    """
    router = APIRouter()

    async def probe(query: Annotated[model, Query()]) -> None:  # type: ignore[valid-type]
        """Only documented, never served."""

    router.add_api_route("/", probe, methods=["GET"])
    document = get_openapi(title="probe", version="0", routes=router.routes)
    parameters: list[dict[str, Any]] = document["paths"]["/"]["get"]["parameters"]
    return parameters
