"""JSON written straight from database rows, for the responses on the hottest paths.

Validating a row into its response model and serializing the model costs more CPU than
reading the row (docs/performance.md). When the row already is what the model shows (its fields by
name, instants aware in UTC, which orjson writes with "+00:00" as `Instant` does, UUIDs and
strings as they are, and JSON text the database built for nested values), orjson writes the
same document directly. Tests compare the two serializations for every model used here.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson


def _uuid_json(value: Any) -> str:
    # asyncpg's UUIDs subclass uuid.UUID, which orjson serializes only exactly.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass(frozen=True, slots=True)
class RowJSON:
    """How rows holding one response model's fields become that model's JSON."""

    fields: tuple[str, ...]
    # Columns holding JSON text (built by the database): embedded as they are.
    json_columns: tuple[str, ...] = ()

    def item(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row as the model's JSON object, ready for `dumps`."""
        # By name, in the model's order (SQLAlchemy's keys are str subclasses orjson refuses).
        item = {name: row[name] for name in self.fields}
        for name in self.json_columns:
            item[name] = orjson.Fragment(item[name])
        return item

    @staticmethod
    def dumps(value: Any) -> bytes:
        """`value` (built from `item`s) as JSON."""
        return orjson.dumps(value, default=_uuid_json)
