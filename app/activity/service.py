"""Writing the change log, and reading it in an order that never goes back.

Each change writes its record with `record`, in the transaction of the change, so a request
that fails leaves no record (it rolls back with the change).

The numbers (`seq`) are made so that a reader who has seen every record up to N can never
later find a record below N, without a counter row that every writer would hold until its
commit (that would serialise all writes through the WAL flush):

- PostgreSQL: `seq` is the writing transaction's id (`pg_current_xact_id()`) shifted left 20
  bits, plus the record's ordinal within its transaction. A reader is served only the records
  below its snapshot's `xmin` (the oldest transaction still running) shifted the same way: all
  of those committed before the reader looked, and every transaction that commits later has
  an id of at least `xmin`, so all its records come after everything served. A slow writer
  holds readers back at most as long as the statement and idle-in-transaction timeouts let
  it run. No NOTIFY: PostgreSQL serialises the commits of notifying transactions.
- SQLite: one writer at a time (a write transaction takes the database's write lock at its
  first write), so the rowid order is the commit order, and everything committed is served.
"""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, insert, literal_column, select, text
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity.models import SERVED_TYPES, ChangeRecord, EntityType, Verb
from app.activity.schemas import Actor, ChangePublic
from app.core.models import table_of, utcnow
from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.users.models import User

_CHANGES = table_of(ChangeRecord)
ORDINAL_BITS = 20
_ORDINAL_LIMIT = 1 << ORDINAL_BITS
_SESSION_KEY = "change_log_ordinal"

_COLUMNS = {
    "actor_id": bindparam("actor_id", type_=_CHANGES.c.actor_id.type),
    "verb": bindparam("verb", type_=_CHANGES.c.verb.type),
    "entity_type": bindparam("entity_type", type_=_CHANGES.c.entity_type.type),
    "entity_id": bindparam("entity_id", type_=_CHANGES.c.entity_id.type),
    "project_id": bindparam("project_id", type_=_CHANGES.c.project_id.type),
    "changes": bindparam("changes", type_=_CHANGES.c.changes.type),
    "at": bindparam("at", type_=_CHANGES.c.at.type),
}
# Built once: a record is one statement, its values bound. Inline: nothing is read back (the
# number is never needed by the writer), so PostgreSQL sends no RETURNING row.
_INSERT = {
    "sqlite": insert(_CHANGES).inline().values(_COLUMNS),
    "postgresql": insert(_CHANGES)
    .inline()
    .values(
        seq=literal_column(f"(pg_current_xact_id()::text::bigint << {ORDINAL_BITS})")
        + bindparam("ordinal"),
        **_COLUMNS,
    ),
}
_PG_WATERMARK = text(
    f"SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {ORDINAL_BITS}"
)


def _next_ordinal(session: AsyncSession) -> int:
    """The record's place among the session's records (PostgreSQL's low bits of `seq`).

    Counted over the session's life rather than per transaction (sessions are per request or
    per CLI job), which keeps it distinct within each transaction without tracking them.
    """
    count = int(session.info.get(_SESSION_KEY, 0))
    if count >= _ORDINAL_LIMIT:
        raise RuntimeError("one session may write at most 2**20 change records")
    session.info[_SESSION_KEY] = count + 1
    return count


def _plain(value: Any) -> Any:
    # JSON holds strings for ids, instants and enum members.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for each field of `after` whose value differs from `before`."""
    return {
        name: [_plain(before.get(name)), _plain(value)]
        for name, value in after.items()
        if before.get(name) != value
    }


def created(fields: Mapping[str, Any]) -> dict[str, list[Any]]:
    """A new row's fields as changes from nothing."""
    return {name: [None, _plain(value)] for name, value in fields.items()}


async def record(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    verb: Verb,
    entity_type: EntityType,
    entity_id: uuid.UUID,
    project_id: uuid.UUID | None,
    changes: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Write one change record in the session's transaction."""
    params: dict[str, Any] = {
        "actor_id": actor_id,
        "verb": verb.value,
        "entity_type": entity_type.value,
        "entity_id": entity_id,
        "project_id": project_id,
        "changes": dict(changes or {}),
        "at": now or utcnow(),
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        params["ordinal"] = _next_ordinal(session)
    await session.exec(_INSERT[dialect], params=params)


async def record_purged(
    session: AsyncSession,
    rows: Sequence[tuple[EntityType, uuid.UUID, uuid.UUID | None]],
    *,
    now: datetime,
) -> None:
    """One purge record per (type, id, project) row, by no account (the retention did it),
    in one statement per 5,000 rows."""
    dialect = session.get_bind().dialect.name
    params: list[dict[str, Any]] = []
    for entity_type, entity_id, project_id in rows:
        one: dict[str, Any] = {
            "actor_id": None,
            "verb": Verb.PURGE.value,
            "entity_type": entity_type.value,
            "entity_id": entity_id,
            "project_id": project_id,
            "changes": {},
            "at": now,
        }
        if dialect == "postgresql":
            one["ordinal"] = _next_ordinal(session)
        params.append(one)
    for start in range(0, len(params), 5_000):
        await session.exec(_INSERT[dialect], params=params[start : start + 5_000])


async def watermark(session: AsyncSession) -> int | None:
    """Every record below this number is visible now, and none below it can appear later
    (None: everything committed is, SQLite)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return int((await session.exec(_PG_WATERMARK)).scalar_one())  # type: ignore[call-overload]


async def read_after(
    session: AsyncSession, *, after: int, limit: int, project_ids: list[uuid.UUID] | None = None
) -> list[ChangeRecord]:
    """The served records after number `after`, oldest first, at most `limit` of them: the
    order a sync client reads the log in (no record can later appear below the last one)."""
    statement = select(ChangeRecord).where(col(ChangeRecord.seq) > after)
    mark = await watermark(session)
    if mark is not None:
        statement = statement.where(col(ChangeRecord.seq) < mark)
    if project_ids is not None:
        statement = statement.where(col(ChangeRecord.project_id).in_(project_ids))
    statement = statement.order_by(col(ChangeRecord.seq)).limit(limit)
    return list((await session.exec(statement)).scalars())  # type: ignore[call-overload]


ACTIVITY_KEYS = [SortKey(col(ChangeRecord.seq), descending=True)]


def _public(row: Any) -> ChangePublic:
    record, actor = row
    return ChangePublic(
        seq=record.seq,
        actor=None
        if actor is None
        else Actor(id=actor.id, full_name=actor.full_name, email=actor.email),
        verb=record.verb,
        entity_type=record.entity_type,
        entity_id=record.entity_id,
        project_id=record.project_id,
        changes=record.changes,
        at=record.at,
    )


async def history(
    session: AsyncSession,
    *,
    page: PageParams,
    codec: CursorCodec,
    project_id: uuid.UUID | None = None,
    entity_id: uuid.UUID | None = None,
) -> Page[ChangePublic]:
    """A project's or one row's history, newest first (audit entries are never shown)."""
    statement = (
        select(ChangeRecord, User)
        .outerjoin(User, col(User.id) == ChangeRecord.actor_id)
        .where(col(ChangeRecord.entity_type).in_([kind.value for kind in SERVED_TYPES]))
    )
    if project_id is not None:
        statement = statement.where(col(ChangeRecord.project_id) == project_id)
    if entity_id is not None:
        statement = statement.where(col(ChangeRecord.entity_id) == entity_id)
    return await paginate(
        session,
        statement,
        keys=ACTIVITY_KEYS,
        page=page,
        codec=codec,
        scope="activity",
        key_of=lambda row: [row[0].seq],
        to_item=_public,
    )
