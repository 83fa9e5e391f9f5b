"""Keyset pagination (app/core/pagination.py): the signed cursor, the "after the cursor"
predicate and ORDER BY, and `paginate`'s walk, each against one reference in Python.

The rows are a UNION of literal rows, so the predicates run on the lane's database (SQLite
or PostgreSQL) without a table of their own: ties on every key, NULLs in the nullable one.
"""

import enum
import itertools
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    Enum,
    Integer,
    LargeBinary,
    String,
    Uuid,
    cast,
    column,
    literal_column,
    null,
    select,
    union_all,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.pagination import (
    CursorCodec,
    InvalidCursor,
    Page,
    PageParams,
    RowPage,
    SortKey,
    after,
    order_by,
    paginate,
)
from app.core.rows import RowJSON
from app.core.schemas import Instant

CODEC = CursorCodec("test-secret")

# (id, a, n): `a` ties often and is never NULL; `n` ties too, and is NULL in a quarter of
# the rows, in every group of equal `a`.
ROWS = [(i, i % 3, None if i % 4 == 0 else (i // 4) % 2) for i in range(1, 17)]


def _sql(value: int | None) -> Any:
    # Written into the SQL (no parameters), typed, so both databases read the same rows.
    return cast(null(), Integer) if value is None else literal_column(str(value), Integer)


TABLE = union_all(
    *(select(_sql(i).label("id"), _sql(a).label("a"), _sql(n).label("n")) for i, a, n in ROWS)
).subquery("t")
ID, A, N = TABLE.c.id, TABLE.c.a, TABLE.c.n
INDEX = {"id": 0, "a": 1, "n": 2}

# Every shape `after` tells apart: one column, one direction (a row-value comparison), mixed
# directions and nullable keys (the OR expansion), a nullable key first or in the middle.
KEY_SETS: dict[str, list[SortKey]] = {
    "id": [SortKey(ID)],
    "-id": [SortKey(ID, descending=True)],
    "a,id": [SortKey(A), SortKey(ID)],
    "-a,-id": [SortKey(A, descending=True), SortKey(ID, descending=True)],
    "a,-id": [SortKey(A), SortKey(ID, descending=True)],
    "n?,id": [SortKey(N, nullable=True), SortKey(ID)],
    "-n?,-id": [SortKey(N, descending=True, nullable=True), SortKey(ID, descending=True)],
    "-a,n?,id": [SortKey(A, descending=True), SortKey(N, nullable=True), SortKey(ID)],
}


def _name(key: SortKey) -> str:
    return str(key.column.name)


def reference(rows: Sequence[tuple[int, ...]], keys: Sequence[SortKey]) -> list[int]:
    """The ids in keyset order, computed in Python: NULLs last whichever the direction."""

    def sort_key(row: tuple[int, ...]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for key in keys:
            value = row[INDEX[_name(key)]]
            parts.append(value is None)
            parts.append(0 if value is None else (-value if key.descending else value))
        return tuple(parts)

    return [row[0] for row in sorted(rows, key=sort_key)]


def _values_of(row_id: int, keys: Sequence[SortKey]) -> list[Any]:
    (row,) = [row for row in ROWS if row[0] == row_id]
    return [row[INDEX[_name(key)]] for key in keys]


# The cursor


CURSOR_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(max_size=20),
    st.uuids(),
    st.binary(max_size=20),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])),
)


_TYPE_OF: list[tuple[type, Any]] = [
    (bool, Boolean()),
    (int, BigInteger()),
    (str, String()),
    (uuid.UUID, Uuid()),
    (bytes, LargeBinary()),
    (datetime, DateTime(timezone=True)),
]


def _key_for(value: Any, n: int) -> SortKey:
    """A sort key whose column is of the value's type (NULL: a nullable one)."""
    if value is None:
        return SortKey(column(f"c{n}", String()), nullable=True)
    sql_type = next(sql for python, sql in _TYPE_OF if isinstance(value, python))
    return SortKey(column(f"c{n}", sql_type))


def _keys(values: Sequence[Any]) -> list[SortKey]:
    return [_key_for(value, n) for n, value in enumerate(values)]


@given(values=st.lists(CURSOR_VALUE, max_size=5), scope=st.text(max_size=10))
def test_a_cursor_gives_back_exactly_the_values_it_was_made_from(
    values: list[Any], scope: str
) -> None:
    decoded = CODEC.decode(CODEC.encode(scope, values), scope, _keys(values))
    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]


def test_a_cursor_is_refused_for_another_list_size_secret_or_after_tampering() -> None:
    cursor = CODEC.encode("tasks:title", ["x", uuid.uuid4()])
    two = [SortKey(column("title", String())), SortKey(column("id", Uuid()))]
    assert len(CODEC.decode(cursor, "tasks:title", two)) == 2
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    refused = [
        (cursor, "tasks:-title", two),  # another sort of the same list
        (cursor, "projects", two),  # another list
        (cursor, "tasks:title", [*two, two[0]]),  # not as many keys as the list's
        (CursorCodec("another-secret").encode("tasks:title", ["x", "y"]), "tasks:title", two),
        (tampered, "tasks:title", two),
        ("not-a-cursor", "tasks:title", two),
    ]
    for text, scope, keys in refused:
        with pytest.raises(InvalidCursor):
            CODEC.decode(text, scope, keys)


@pytest.mark.parametrize(
    "payload",
    [["tasks", [1]], {"v": [1]}, {"s": "tasks"}, {"s": "tasks", "v": [{"t": "not a date"}]}],
)
def test_a_signed_cursor_of_the_wrong_shape_is_refused(payload: Any) -> None:
    # Signed with the right secret, as a leaked or old cursor could be: the shape is checked.
    with pytest.raises(InvalidCursor):
        CODEC.decode(str(CODEC.serializer.dumps(payload)), "tasks", [_key_for(1, 0)])


class Weekday(enum.Enum):
    MONDAY = "monday"


@pytest.mark.parametrize(
    ("value", "sql_type", "nullable"),
    [
        ("2030-01-01", DateTime(timezone=True), False),  # a string where an instant goes
        ({"t": "2030-01-01T00:00:00"}, DateTime(timezone=True), False),  # a naive instant
        (7, Uuid(), False),
        ({"u": "not hex"}, Uuid(), False),
        ("7", BigInteger(), False),
        (True, BigInteger(), False),
        (1.5, BigInteger(), False),
        (["x"], String(), False),
        (None, String(), False),  # NULL for a key that is never NULL
        ("someday", Enum(Weekday), False),
    ],
)
def test_a_signed_cursor_value_of_the_wrong_type_is_refused(
    value: Any, sql_type: Any, nullable: bool
) -> None:
    """A cursor from an older release, or for another sort, carries the service's signature
    but values of other types: refused, so no such value reaches a query."""
    forged = str(CODEC.serializer.dumps({"s": "tasks", "v": [value]}))
    with pytest.raises(InvalidCursor):
        CODEC.decode(forged, "tasks", [SortKey(column("c", sql_type), nullable=nullable)])


def test_enum_cursor_values_come_back_as_members() -> None:
    keys = [SortKey(column("day", Enum(Weekday)))]
    cursor = CODEC.encode("days", [Weekday.MONDAY.value])
    assert CODEC.decode(cursor, "days", keys) == [Weekday.MONDAY]


# The predicate and the order


def test_the_rows_hold_ties_and_nulls_within_ties() -> None:
    for a in {a for _, a, _ in ROWS}:
        group = [n for _, same, n in ROWS if same == a]
        valued = [n for n in group if n is not None]
        assert None in group
        assert len(valued) > len(set(valued))  # ties


@pytest.mark.parametrize("name", KEY_SETS)
def test_order_by_is_the_reference_order(housekeeping_engine: Engine, name: str) -> None:
    keys = KEY_SETS[name]
    with housekeeping_engine.connect() as connection:
        ids = connection.execute(select(ID).order_by(*order_by(keys))).scalars().all()
    assert ids == reference(ROWS, keys)


@pytest.mark.parametrize("name", KEY_SETS)
def test_after_selects_exactly_the_rows_after_each_cursor(
    housekeeping_engine: Engine, name: str
) -> None:
    keys = KEY_SETS[name]
    expected = reference(ROWS, keys)
    with housekeeping_engine.connect() as connection:
        for position, row_id in enumerate(expected):
            predicate = after(keys, _values_of(row_id, keys))
            statement = select(ID).where(predicate).order_by(*order_by(keys))
            ids = connection.execute(statement).scalars().all()
            assert ids == expected[position + 1 :], (name, row_id)


def test_after_no_keys_is_nothing(housekeeping_engine: Engine) -> None:
    with housekeeping_engine.connect() as connection:
        assert connection.execute(select(ID).where(after([], []))).all() == []


# paginate: the walk


class Item(BaseModel):
    id: int


async def _walk(
    session: AsyncSession, keys: list[SortKey], limit: int, scope: str
) -> tuple[list[int], list[int | None]]:
    """The ids of every page, in order, and each page's total."""
    ids: list[int] = []
    totals: list[int | None] = []
    cursor = None
    while True:
        page = await paginate(
            session,
            select(TABLE),
            keys=keys,
            page=PageParams(limit=limit, cursor=cursor, include_total=True),
            codec=CODEC,
            scope=scope,
            key_of=lambda row: [getattr(row, _name(key)) for key in keys],
            to_item=lambda row: Item(id=row.id),
        )
        assert len(page.items) <= limit
        ids.extend(item.id for item in page.items)
        totals.append(page.total)
        if page.next_cursor is None:
            return ids, totals
        assert page.items, "a page with a next cursor is not empty"
        cursor = page.next_cursor


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "limit"), list(itertools.product(KEY_SETS, [1, 5, len(ROWS)])))
async def test_paginate_walks_every_row_once_in_order(
    db_session: AsyncSession, name: str, limit: int
) -> None:
    keys = KEY_SETS[name]
    ids, totals = await _walk(db_session, keys, limit, scope=name)
    assert ids == reference(ROWS, keys)
    assert set(totals) == {len(ROWS)}


@pytest.mark.anyio
async def test_paginate_refuses_a_cursor_of_another_scope(db_session: AsyncSession) -> None:
    cursor = CODEC.encode("a,id", [1, 1])
    with pytest.raises(InvalidCursor):
        await paginate(
            db_session,
            select(TABLE),
            keys=KEY_SETS["-a,-id"],
            page=PageParams(limit=2, cursor=cursor),
            codec=CODEC,
            scope="-a,-id",
            key_of=lambda row: [row.a, row.id],
            to_item=lambda row: Item(id=row.id),
        )


# RowPage: the page written from rows


class Row(BaseModel):
    id: uuid.UUID
    at: Instant


def test_a_row_page_writes_the_document_its_page_model_writes() -> None:
    rows = [
        {"id": uuid.uuid4(), "at": datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=i)}
        for i in range(3)
    ]
    page = RowPage(rows, "next", 3, lambda row: Row(**row), RowJSON(("id", "at")))
    model = Page[Row](items=page.items, next_cursor="next", total=3)
    assert json.loads(page.json()) == json.loads(model.model_dump_json())
    assert page.items == [Row(**row) for row in rows]
