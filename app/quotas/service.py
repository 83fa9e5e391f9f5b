"""Quotas: how many tasks, projects and labels one account may hold, checked against usage
counters kept in the same transaction as each change (never a COUNT over the rows)."""

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
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


async def _add(session: AsyncSession, owner_id: uuid.UUID, resource: Resource, amount: int) -> None:
    bind = session.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    row = {
        "owner_id": owner_id,
        "resource": resource.value,
        "shard": random.randrange(USAGE_SHARDS),  # noqa: S311 - spreads writes, not a secret
        "used": amount,
    }
    statement = insert(_COUNTERS).values(row)
    statement = statement.on_conflict_do_update(
        index_elements=["owner_id", "resource", "shard"],
        set_={"used": _COUNTERS.c.used + statement.excluded.used},
    )
    await session.exec(statement)


async def usage(session: AsyncSession, owner_id: uuid.UUID, resource: Resource) -> int:
    """How many of `resource` the account holds (its counters' sum)."""
    total = select(func.coalesce(func.sum(col(UsageCounter.used)), 0)).where(
        UsageCounter.owner_id == owner_id, UsageCounter.resource == resource.value
    )
    return int((await session.exec(total)).one())


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
    await _add(session, owner_id, resource, amount)
    limit = quotas.limit(resource)
    if await usage(session, owner_id, resource) > limit:
        raise QuotaExceeded(extra={"resource": resource.value, "limit": limit})


async def refund(
    session: AsyncSession, *, owner_id: uuid.UUID, resource: Resource, amount: int = 1
) -> None:
    """Count `amount` fewer of `resource` (rows deleted for good), in the same transaction."""
    if amount:
        await _add(session, owner_id, resource, -amount)
