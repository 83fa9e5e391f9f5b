"""Optimistic locking: every change moves a row's version, and a stale write is a 412."""

import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import NotFound
from app.core.http import VersionMismatch
from app.core.models import utcnow


class Versioned(Protocol):
    """A row with optimistic locking: an id, a version and a last-change instant."""

    id: uuid.UUID
    version: int
    updated_at: datetime


def bumped(version: Any, now: datetime) -> dict[str, Any]:
    """The values one change writes besides its own: the next version (so the ETag moves on)
    and the instant. `version` is the current one, or the version column itself in an UPDATE
    of many rows (`bumped(Task.version, now)`)."""
    return {"version": version + 1, "updated_at": now}


def touch(row: Versioned, *, now: datetime | None = None) -> None:
    """Record one change to an ORM row: `bumped` applied to it."""
    for name, value in bumped(row.version, now or utcnow()).items():
        setattr(row, name, value)


async def flush_versioned(session: AsyncSession, row: Versioned) -> None:
    """Flush; if another transaction changed `row` since it was read, 412 with its version.

    The mappers put `WHERE version = <version read>` into every UPDATE, so this catches the
    race that an If-Match check done before the write cannot see on its own.
    """
    model, row_id = type(row), row.id
    try:
        await session.flush()
    except StaleDataError as exc:
        await session.rollback()
        result = await session.exec(select(model.version).where(model.id == row_id))
        current = result.first()
        if current is None:
            raise NotFound() from exc
        raise VersionMismatch(int(current)) from exc
