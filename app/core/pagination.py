"""Keyset (cursor) pagination, the same shape for every list endpoint.

A page is `{items, next_cursor, total?}`. The cursor is the sort key of the last row sent,
signed with the service's secret: opaque to clients, and a tampered or foreign cursor is a
422 problem rather than a wrong page. Pages are read with a `WHERE (sort key) > (cursor)`
predicate on an index, never an OFFSET, so page 1,000 costs what page 1 does.
"""

import base64
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Generic, TypeVar

from cachetools import LRUCache
from fastapi import Depends, Query, Request
from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, false, func, or_, tuple_
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import DriverQuery
from app.core.errors import UnprocessableEntity
from app.core.query import QueryModel
from app.core.rows import RowJSON
from app.core.schemas import RESPONSE_MODEL_CONFIG

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Above the longest cursor the API hands out (a 500-character title of 4-byte characters
# is ~2,700 characters signed; tests/core/test_pagination.py checks every text sort key).
CURSOR_MAX_LENGTH = 4096

T = TypeVar("T")
Q = TypeVar("Q")
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


class Page(BaseModel, Generic[T]):
    """One page of a list, and the cursor for the next one (null on the last page)."""

    model_config = RESPONSE_MODEL_CONFIG

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )
    total: int | None = Field(
        default=None, description="Rows matching the filters, when `include_total=true`."
    )


@dataclass(frozen=True, slots=True)
class RowPage(Generic[T]):
    """A page read as rows (mappings of column name to value), for the hottest lists.

    `json()` writes the document `Page[Model]` would, straight from the rows, with
    `serializer` (see app/core/rows.py); `items` validates the rows into models, for
    everything else.
    """

    rows: Sequence[Mapping[str, Any]]
    next_cursor: str | None
    total: int | None
    to_item: Callable[[Mapping[str, Any]], T]
    serializer: RowJSON

    @property
    def items(self) -> list[T]:
        return [self.to_item(row) for row in self.rows]

    def json(self) -> bytes:
        """The page as JSON, `Page[Model]`'s document."""
        item = self.serializer.item
        items = [item(row) for row in self.rows]
        page = {"items": items, "next_cursor": self.next_cursor, "total": self.total}
        return self.serializer.dumps(page)


class InvalidCursor(UnprocessableEntity):
    code = "invalid_cursor"
    detail = "The cursor is not valid for this list; start again without one."
    loc = ("query", "cursor")


class PageParams(QueryModel):
    """The paging query parameters every list takes, declared once.

    Routes read them with `PageParamsDep`; a list whose whole query is one model (tasks,
    `app.core.query`) extends this one.
    """

    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Rows per page (at most 200).")
    ] = DEFAULT_PAGE_SIZE
    cursor: Annotated[
        str | None,
        Query(max_length=CURSOR_MAX_LENGTH, description="`next_cursor` of the previous page."),
    ] = None
    include_total: Annotated[
        bool, Query(description="Also count every matching row (costs a count query).")
    ] = False


async def page_params(page: Annotated[PageParams, Query()]) -> PageParams:
    """The paging parameters, read by FastAPI as one query model."""
    # A dependency of its own, so a route's own filters are documented before them.
    return page


PageParamsDep = Annotated[PageParams, Depends(page_params)]


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": value.hex}
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode()}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if tag == "t":
            return datetime.fromisoformat(raw)
        if tag == "u":
            return uuid.UUID(hex=raw)
        if tag == "b":
            return base64.b64decode(raw)
    return value


class CursorCodec:
    """Signs and checks cursors; `scope` ties a cursor to one list and one sort order."""

    def __init__(self, secret: str) -> None:
        self.serializer = URLSafeSerializer(secret, salt="pagination-cursor")

    def encode(self, scope: str, values: Sequence[Any]) -> str:
        return str(self.serializer.dumps({"s": scope, "v": [_to_json(v) for v in values]}))

    def decode(self, cursor: str, scope: str, keys: Sequence["SortKey"]) -> list[Any]:
        """The values of a cursor this service signed for `scope`, each of its key's type.

        The signature only proves the service wrote the cursor once: one from an older
        release, or for another sort, is an InvalidCursor (422), and no value of the wrong
        type ever reaches a query.
        """
        try:
            payload = self.serializer.loads(cursor)
            if not isinstance(payload, dict) or payload.get("s") != scope:
                raise InvalidCursor()
            raw = payload["v"]
            if not isinstance(raw, list) or len(raw) != len(keys):
                raise InvalidCursor()
            return [key.accept(_from_json(v)) for key, v in zip(keys, raw, strict=True)]
        except (BadSignature, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidCursor() from exc


async def get_cursor_codec(request: Request) -> CursorCodec:
    """The process's cursor codec, built by the lifespan."""
    codec: CursorCodec = request.app.state.cursors
    return codec


CursorCodecDep = Annotated[CursorCodec, Depends(get_cursor_codec)]


@dataclass(frozen=True, slots=True)
class SortKey:
    """One column of a keyset: its direction, and whether it can hold NULL (sorted last)."""

    column: Any
    descending: bool = False
    nullable: bool = False

    def accept(self, value: Any) -> Any:
        """`value` as a cursor value of this key; ValueError if it is not of the column's type."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError("a NULL cursor value for a key that is never NULL")
        expected = _python_type(self.column)
        if expected is None:
            raise ValueError("a key whose column type is not known")
        if issubclass(expected, Enum):
            return expected(value)
        if expected is int and isinstance(value, bool):
            raise ValueError("a boolean for an integer key")
        if not isinstance(value, expected):
            raise ValueError(f"a {type(value).__name__} for a {expected.__name__} key")
        if isinstance(value, datetime) and value.utcoffset() is None:
            raise ValueError("a naive instant")
        return value

    def order_by(self) -> list[Any]:
        ordered = self.column.desc() if self.descending else self.column.asc()
        if self.nullable:
            # Portable "NULLS LAST": sort on IS NULL first (false < true), then the value.
            return [self.column.is_(None).asc(), ordered]
        return [ordered]


def _python_type(column: Any) -> type | None:
    try:
        python_type: type = column.type.python_type
    except NotImplementedError:
        return None
    return python_type


def order_by(keys: Sequence[SortKey]) -> list[Any]:
    """ORDER BY clauses for the keyset, in order."""
    clauses: list[Any] = []
    for key in keys:
        clauses.extend(key.order_by())
    return clauses


def _after_expanded(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    # The general form: `a > x OR (a = x AND (b > y OR ...))`, any mix of directions and NULLs.
    if not keys:
        return false()
    key, value, rest = keys[0], values[0], _after_expanded(keys[1:], values[1:])
    column = key.column
    if key.nullable and value is None:
        # Among the NULLs (which sort last), only the remaining keys decide.
        return and_(column.is_(None), rest)
    beyond = column < value if key.descending else column > value
    same = and_(column == value, rest) if len(keys) > 1 else false()
    if key.nullable:
        return or_(beyond, column.is_(None), same)
    return or_(beyond, same) if len(keys) > 1 else beyond


def after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """The predicate selecting rows strictly after `values` in the keyset order.

    When no key is nullable and all run in one direction, this is a row-value comparison,
    `(a, b) > (x, y)`, which PostgreSQL turns into an index range: the scan starts at the
    cursor instead of reading and discarding every earlier row. Otherwise it is the
    equivalent OR expansion.
    """
    if not keys:
        return false()
    descending = keys[0].descending
    if any(k.nullable or k.descending != descending for k in keys):
        return _after_expanded(keys, values)
    return _row_after([k.column for k in keys], values, descending)


def _row_after(
    columns: Sequence[Any], values: Sequence[Any], descending: bool
) -> ColumnElement[bool]:
    # A one-element "row" is just the column; SQLite has no 1-tuple row values.
    row = columns[0] if len(columns) == 1 else tuple_(*columns)
    # The cursor's values are typed bound parameters (`_cursor_placeholders`): a row of them.
    bound = tuple_(*values) if len(columns) > 1 else values[0]
    predicate: ColumnElement[bool] = row < bound if descending else row > bound
    return predicate


# Prebuilt page statements, by (scope, statement key, which cursor values are NULL). Building a
# statement and computing its SQLAlchemy cache key cost more CPU than running it; a list whose
# SQL depends only on a few choices (its sort, which filters are present, where the cursor
# points) builds each statement once and binds the values as parameters.
_PREBUILT: LRUCache[Hashable, list[DriverQuery]] = LRUCache(maxsize=1024)
_PAGE_LIMIT = bindparam("page_limit", type_=Integer)


def _cursor_placeholders(keys: Sequence[SortKey], values: Sequence[Any]) -> list[Any]:
    # NULL cursor values stay literal (they change the predicate itself); the others become
    # typed bound parameters, `:cursor_<i>`, whose values `_cursor_params` gives.
    return [
        None if value is None else bindparam(f"cursor_{i}", type_=key.column.type)
        for i, (key, value) in enumerate(zip(keys, values, strict=True))
    ]


def _cursor_params(values: Sequence[Any] | None) -> dict[str, Any]:
    return {f"cursor_{i}": v for i, v in enumerate(values or ()) if v is not None}


def _page_statements(
    statement: S, keys: Sequence[SortKey], placeholders: Sequence[Any] | None
) -> list[S]:
    """The statements reading one page, in order, each limited by `:page_limit`.

    A leading nullable key reads two statements: the rows with a value, then the NULLs. Each
    is a plain range of an index on (..., col, tie-breakers), in either direction; one ORDER
    BY `col IS NULL, col` would instead sort every matching row on each page.
    """
    if not (keys and keys[0].nullable):
        paged = statement if placeholders is None else statement.where(after(keys, placeholders))
        return [paged.order_by(*order_by(keys)).limit(_PAGE_LIMIT)]
    first, rest = keys[0], list(keys[1:])
    valued_keys = [SortKey(first.column, first.descending), *rest]
    statements = []
    if placeholders is None or placeholders[0] is not None:
        valued = statement.where(first.column.is_not(None))
        if placeholders is not None:
            valued = valued.where(after(valued_keys, placeholders))
        statements.append(valued.order_by(*order_by(valued_keys)).limit(_PAGE_LIMIT))
    nulls = statement.where(first.column.is_(None))
    if placeholders is not None and placeholders[0] is None:
        nulls = nulls.where(after(rest, placeholders[1:]))
    statements.append(nulls.order_by(*order_by(rest)).limit(_PAGE_LIMIT))
    return statements


async def _read_rows(
    statements: Sequence[Q],
    run: Callable[[Q, Mapping[str, Any]], Awaitable[Sequence[Any]]],
    params: dict[str, Any],
    limit: int,
) -> list[Any]:
    # One row beyond the page says there is a next one.
    rows: list[Any] = []
    for statement in statements:
        params["page_limit"] = limit + 1 - len(rows)
        rows.extend(await run(statement, params))
        if len(rows) > limit:
            break
    return rows


def _cut_page(
    rows: list[Any],
    page: PageParams,
    codec: CursorCodec,
    scope: str,
    key_of: Callable[[Any], Sequence[Any]],
) -> tuple[list[Any], str | None]:
    # The page's rows, and the cursor after its last one when more rows follow.
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    return rows, codec.encode(scope, key_of(rows[-1]))


async def _count(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: Mapping[str, Any]
) -> int:
    counted = select(func.count()).select_from(statement.order_by(None).subquery())
    return int((await session.exec(counted, params=dict(params))).one())


async def paginate(
    session: AsyncSession,
    statement: Select[*tuple[Any, ...]],
    *,
    keys: Sequence[SortKey],
    page: PageParams,
    codec: CursorCodec,
    scope: str,
    key_of: Callable[[Any], Sequence[Any]],
    to_item: Callable[[Any], T],
) -> Page[T]:
    """One page of `statement` (already filtered), each row made an item by `to_item`.

    The rows are what the session gives for the statement: instances for `select(Model)`, rows
    of columns otherwise. `key_of(row)` gives the row's values for `keys`; `scope` names the
    list and its order, so a cursor from one list or sort cannot be replayed against another.
    """
    values = codec.decode(page.cursor, scope, keys) if page.cursor else None
    placeholders = None if values is None else _cursor_placeholders(keys, values)

    async def run(query: Any, params: Mapping[str, Any]) -> Sequence[Any]:
        rows: Sequence[Any] = (await session.exec(query, params=params)).all()
        return rows

    statements = _page_statements(statement, keys, placeholders)
    rows = await _read_rows(statements, run, _cursor_params(values), page.limit)
    rows, next_cursor = _cut_page(rows, page, codec, scope, key_of)
    total = await _count(session, statement, {}) if page.include_total else None
    return Page[T](items=[to_item(row) for row in rows], next_cursor=next_cursor, total=total)


async def paginate_prebuilt(
    session: AsyncSession,
    build: Callable[[], Select[*tuple[Any, ...]]],
    *,
    statement_key: Hashable,
    params: Mapping[str, Any],
    keys: Sequence[SortKey],
    page: PageParams,
    codec: CursorCodec,
    scope: str,
    key_of: Callable[[Mapping[str, Any]], Sequence[Any]],
    to_item: Callable[[Mapping[str, Any]], T],
    serializer: RowJSON,
) -> RowPage[T]:
    """One page of the statement `build()` returns, for the hottest lists.

    `build()` gives the filtered statement, with bound parameters whose values are `params`;
    `(scope, statement_key)` must determine its SQL. The page statements are then built once
    and reused, run as `DriverQuery`s, and the rows are mappings of column name to value.
    """
    values = codec.decode(page.cursor, scope, keys) if page.cursor else None
    null_values = None if values is None else tuple(v is None for v in values)
    queries = _PREBUILT.get((scope, statement_key, null_values))
    if queries is None:
        placeholders = None if values is None else _cursor_placeholders(keys, values)
        statements = _page_statements(build(), keys, placeholders)
        queries = [DriverQuery(statement) for statement in statements]
        _PREBUILT[(scope, statement_key, null_values)] = queries

    async def run(query: DriverQuery, bound: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        return await query.fetch(session, bound)

    bound = {**params, **_cursor_params(values)}
    rows = await _read_rows(queries, run, bound, page.limit)
    rows, next_cursor = _cut_page(rows, page, codec, scope, key_of)
    total = await _count(session, build(), params) if page.include_total else None
    return RowPage(rows, next_cursor, total, to_item, serializer)
