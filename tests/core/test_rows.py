"""JSON written straight from rows (app/core/rows.py): the document the response model writes."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import create_engine, literal, select

from app.core.rows import RowJSON
from app.core.schemas import Instant

ITEM = RowJSON(("id", "name", "at", "labels"), json_columns=("labels",))


class Label(BaseModel):
    name: str


class Item(BaseModel):
    id: uuid.UUID
    name: str
    at: Instant
    labels: list[Label]


class DriverUUID(uuid.UUID):
    """What asyncpg returns for a uuid column: a subclass, which orjson will not write itself."""


def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.UUID("01900000-0000-7000-8000-0000000000aa"),
        "name": 'tab\tquote" emoji 🚀 \u2028',
        "at": datetime(2031, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
        "labels": '[{"name": "ällo"}, {"name": "a\\\\b"}]',
    }
    return {**row, **overrides}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"at": datetime(2031, 1, 2, tzinfo=UTC)},  # no fraction of a second
        {"labels": "[]"},
        {"id": DriverUUID("01900000-0000-7000-8000-0000000000bb")},
    ],
)
def test_a_row_is_written_as_its_model_writes_itself(overrides: dict[str, Any]) -> None:
    row = _row(**overrides)
    model = Item(**{**row, "labels": json.loads(row["labels"])})
    written = RowJSON.dumps(ITEM.item(row))
    assert json.loads(written) == json.loads(model.model_dump_json())


def test_fields_are_taken_by_name_in_the_models_order() -> None:
    # A SQLAlchemy row: its keys are str subclasses, its columns in the query's order.
    with create_engine("sqlite://").connect() as connection:
        row = (
            connection.execute(
                select(literal(2).label("count"), literal("x").label("name"), literal(0))
            )
            .mappings()
            .one()
        )
    assert RowJSON.dumps(RowJSON(("name", "count")).item(row)) == b'{"name":"x","count":2}'


def test_json_columns_are_embedded_as_they_are() -> None:
    item = RowJSON(("labels",), json_columns=("labels",)).item({"labels": '[{"n": 1}]'})
    assert RowJSON.dumps(item) == b'{"labels":[{"n": 1}]}'
    # A column not named as JSON is a string like any other.
    assert RowJSON.dumps(RowJSON(("labels",)).item({"labels": "[]"})) == b'{"labels":"[]"}'


def test_a_value_orjson_cannot_write_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        RowJSON.dumps({"value": object()})
