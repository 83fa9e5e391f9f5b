"""Quotas: how many tasks, projects and labels one account may hold, checked against usage
counters kept in the same transaction as each change (never a COUNT over the rows)."""

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.core.models import table_of
from app.quotas.exceptions import QuotaExceeded
from app.quotas.models import USAGE_SHARDS, Resource, UsageCounter

_COUNTERS = table_of(UsageCounter)


@dataclass(frozen=True, slots=True)
class Quotas:
    """The most of each resource one account may hold."""

    tasks: int
    projects: int
    labels: int

    @classmethod
    def of(cls, settings: Settings) -> "Quotas":
        return cls(settings.QUOTA_TASKS, settings.QUOTA_PROJECTS, settings.QUOTA_LABELS)

    def limit(self, resource: Resource) -> int:
        limits: Mapping[Resource, int] = {
            Resource.TASKS: self.tasks,
            Resource.PROJECTS: self.projects,
            Resource.LABELS: self.labels,
        }
        return limits[resource]


# The settings' defaults: what a service call that names no quotas is held to.
DEFAULT_QUOTAS = Quotas(
    tasks=Settings.model_fields["QUOTA_TASKS"].default,
    projects=Settings.model_fields["QUOTA_PROJECTS"].default,
    labels=Settings.model_fields["QUOTA_LABELS"].default,
)


def _upsert(dialect: str) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(_COUNTERS).values(
        owner_id=_OWNER, resource=_RESOURCE, shard=bindparam("shard"), used=bindparam("amount")
    )
    return statement.on_conflict_do_update(
        index_elements=["owner_id", "resource", "shard"],
        set_={"used": _COUNTERS.c.used + statement.excluded.used},
    )


_OWNER = bindparam("owner_id", type_=_COUNTERS.c.owner_id.type)
_RESOURCE = bindparam("resource", type_=_COUNTERS.c.resource.type)
_MINE = (_COUNTERS.c.owner_id == _OWNER, _COUNTERS.c.resource == _RESOURCE)
# Built once: building an upsert per call cost more CPU than running it.
_ADD = {dialect: _upsert(dialect) for dialect in ("postgresql", "sqlite")}
_USAGE: Any = select(func.coalesce(func.sum(_COUNTERS.c.used), 0)).where(*_MINE)


def _charge_and_count() -> Any:
    # PostgreSQL, one round trip: add to a shard, then its new value plus the other shards'
    # (the outer SELECT sees the table as it was before the upsert, hence "the others").
    added = _ADD["postgresql"].returning(_COUNTERS.c.shard, _COUNTERS.c.used).cte("added")
    others = (
        select(func.coalesce(func.sum(_COUNTERS.c.used), 0))
        .where(*_MINE, _COUNTERS.c.shard != select(added.c.shard).scalar_subquery())
        .scalar_subquery()
    )
    return select(select(added.c.used).scalar_subquery() + others)


_CHARGE_AND_COUNT = _charge_and_count()


def _params(owner_id: uuid.UUID, resource: Resource, amount: int) -> dict[str, Any]:
    # A shard picked at random spreads one account's concurrent writes (not a secret).
    shard = random.randrange(USAGE_SHARDS)  # noqa: S311
    return {"owner_id": owner_id, "resource": resource.value, "shard": shard, "amount": amount}


async def usage(session: AsyncSession, owner_id: uuid.UUID, resource: Resource) -> int:
    """How many of `resource` the account holds (its counters' sum)."""
    params = {"owner_id": owner_id, "resource": resource.value}
    return int((await session.exec(_USAGE, params=params)).scalar_one())


async def charge(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    resource: Resource,
    quotas: Quotas,
    amount: int = 1,
) -> None:
    """Count `amount` more of `resource` for the account, in the session's transaction;
    QuotaExceeded (409) if that takes it past its quota (the transaction then rolls back).

    Concurrent creates of one account add to different counter rows, so they do not wait
    for each other; each sees the others' committed counts, so an account can pass its quota
    by at most the number of its creates in flight at that moment (bounded by the pool).
    """
    params = _params(owner_id, resource, amount)
    if session.get_bind().dialect.name == "postgresql":
        total = int((await session.exec(_CHARGE_AND_COUNT, params=params)).scalar_one())
    else:
        await session.exec(_ADD["sqlite"], params=params)
        total = await usage(session, owner_id, resource)
    limit = quotas.limit(resource)
    if total > limit:
        raise QuotaExceeded(extra={"resource": resource.value, "limit": limit})


async def refund(
    session: AsyncSession, *, owner_id: uuid.UUID, resource: Resource, amount: int = 1
) -> None:
    """Count `amount` fewer of `resource` (rows deleted for good), in the same transaction."""
    if amount:
        dialect = session.get_bind().dialect.name
        await session.exec(_ADD[dialect], params=_params(owner_id, resource, -amount))
