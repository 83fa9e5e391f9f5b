"""Rate limits that every process sees: counters in the database, or in Redis if configured.

The windowing logic is the `limits` library's fixed-window strategy; this module adds a
storage for it backed by the service's own database (one upserted row per key and window),
so a deployment of many processes on one PostgreSQL needs nothing else. Counters are written
on their own connection and committed at once: a failed sign-in must count even though the
request that observed it rolls back.
"""

import hashlib
from contextvars import ContextVar
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import ConnectionPool
from sqlalchemy import Column, Float, Integer, String, Table, case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.clock import Clock, wall_clock
from app.core.config import Settings

KEY_MAX_LENGTH = 255


# A Core table (the storage speaks SQL expressions only); it sits on the shared metadata, so
# migrations and the drift test see it like any model.
rate_limit_counter = Table(
    "rate_limit_counter",
    SQLModel.metadata,
    Column("key", String(KEY_MAX_LENGTH), primary_key=True),
    Column("count", Integer, nullable=False),
    # When the window ends, in epoch seconds.
    Column("expires_at", Float, nullable=False, index=True),
)


def _db_key(key: str) -> str:
    """The key as stored: a long key keeps a readable head and ends in a digest of the whole.

    Cutting it short instead would make two long keys (two long emails, or one identifier
    under two limits, which differ only at the end) share one counter. A NUL, which
    PostgreSQL refuses in text, goes into the digest too.
    """
    if len(key) <= KEY_MAX_LENGTH and "\x00" not in key:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    head = key[: KEY_MAX_LENGTH - len(digest) - 1].replace("\x00", "")
    return f"{head}#{digest}"


class DatabaseStorage(Storage):
    """A `limits` storage on the service's database, for the fixed-window strategy."""

    STORAGE_SCHEME = None

    def __init__(self, engine: AsyncEngine, clock: Clock = wall_clock) -> None:
        super().__init__()
        self.engine = engine
        self.clock = clock
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self.clock()
        table = rate_limit_counter
        expired = table.c.expires_at <= now
        statement = (
            self._insert(table)
            .values(key=_db_key(key), count=amount, expires_at=now + expiry)
            .on_conflict_do_update(
                index_elements=[table.c.key],
                set_={
                    "count": case((expired, amount), else_=table.c.count + amount),
                    "expires_at": case((expired, now + expiry), else_=table.c.expires_at),
                },
            )
            .returning(table.c.count)
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
            count: int = result.scalar_one()
            return count

    async def _row(self, key: str) -> tuple[int, float] | None:
        table = rate_limit_counter
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(table.c.count, table.c.expires_at).where(table.c.key == _db_key(key))
            )
            row = result.first()
        if row is None or row[1] <= self.clock():
            return None
        return int(row[0]), float(row[1])

    async def get(self, key: str) -> int:
        row = await self._row(key)
        return row[0] if row else 0

    async def get_expiry(self, key: str) -> float:
        row = await self._row(key)
        return row[1] if row else self.clock()

    async def check(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    async def reset(self) -> int | None:
        """Drop expired counters (the table only ever holds live windows plus this garbage)."""
        table = rate_limit_counter
        async with self.engine.begin() as connection:
            result = await connection.execute(
                delete(table).where(table.c.expires_at <= self.clock())
            )
            return int(result.rowcount)

    async def clear(self, key: str) -> None:
        table = rate_limit_counter
        async with self.engine.begin() as connection:
            await connection.execute(delete(table).where(table.c.key == _db_key(key)))


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int


# The RateLimit header fields of draft-ietf-httpapi-ratelimit-headers-10 (September 2025):
# `RateLimit-Policy: "name";q=<quota>;w=<window s>` and `RateLimit: "name";r=<left>;t=<s>`.
RATELIMIT_DRAFT = "draft-ietf-httpapi-ratelimit-headers-10"
# The OpenAPI extension naming an operation's public quota (its responses then document the
# RateLimit headers, app/core/openapi.py).
RATE_LIMITED = "x-rate-limit-policy"


def rate_limited(policy: str) -> dict[str, str]:
    """A route's `openapi_extra` for an operation that counts against the quota `policy`."""
    return {RATE_LIMITED: policy}


@dataclass(frozen=True, slots=True)
class QuotaState:
    """Where one public quota stands after this request, for the RateLimit headers."""

    policy: str
    quota: int
    window: int
    remaining: int
    reset: int

    @property
    def policy_field(self) -> str:
        return f'"{self.policy}";q={self.quota};w={self.window}'

    @property
    def state_field(self) -> str:
        return f'"{self.policy}";r={self.remaining};t={self.reset}'


# The public quotas the current request touched, by policy name (set by the middleware).
_request_quotas: ContextVar[dict[str, QuotaState] | None] = ContextVar(
    "request_quotas", default=None
)


class RateLimitHeadersMiddleware:
    """Send the RateLimit-Policy and RateLimit fields for the public quotas a request used.

    Only quotas given a policy name are announced (per client address); per-account ones
    never are: how many guesses an account has left is for no one to know.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        quotas: dict[str, QuotaState] = {}
        token = _request_quotas.set(quotas)

        async def send_with_quotas(message: Message) -> None:
            if message["type"] == "http.response.start" and quotas:
                states = quotas.values()
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"ratelimit-policy", ", ".join(q.policy_field for q in states).encode()),
                    (b"ratelimit", ", ".join(q.state_field for q in states).encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_quotas)
        finally:
            _request_quotas.reset(token)


class RateLimiter:
    """Fixed-window limits by (name, identifier); a no-op when limits are disabled.

    `clock` is the wall clock the database counters and Retry-After read; Redis keeps its own
    time (key expiry), which tests end by expiring the keys.
    """

    def __init__(self, settings: Settings, engine: AsyncEngine, clock: Clock = wall_clock) -> None:
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.clock = clock
        self.storage: Storage
        # Our own pool, so that `aclose` can release its connections at shutdown.
        self._redis_pool: ConnectionPool | None = None
        if settings.RATE_LIMIT_STORAGE_URL:
            url = settings.RATE_LIMIT_STORAGE_URL.removeprefix("async+")
            self._redis_pool = ConnectionPool.from_url(url)
            self.storage = RedisStorage(
                "async+" + url,
                implementation="redispy",
                key_prefix="tasks-api",
                connection_pool=self._redis_pool,  # type: ignore[arg-type]
            )
        else:
            self.storage = DatabaseStorage(engine, clock)
        self.strategy = FixedWindowRateLimiter(self.storage)

    async def aclose(self) -> None:
        """Release the Redis connections (the caller owns and disposes the database engine)."""
        if self._redis_pool is not None:
            await self._redis_pool.aclose()

    async def _retry_after(self, item: RateLimitItemPerSecond, key: str) -> int:
        stats = await self.strategy.get_window_stats(item, key)
        return max(1, int(stats.reset_time - self.clock()) + 1)

    async def _announce(self, policy: str | None, item: RateLimitItemPerSecond, key: str) -> None:
        quotas = _request_quotas.get()
        if policy is None or quotas is None:
            return
        stats = await self.strategy.get_window_stats(item, key)
        reset = max(0, int(stats.reset_time - self.clock()) + 1)
        quotas[policy] = QuotaState(
            policy, item.amount, window=item.get_expiry(), remaining=stats.remaining, reset=reset
        )

    async def hit(
        self, key: str, *, limit: int, window_seconds: int, policy: str | None = None
    ) -> Decision:
        """Count one event; refused once more than `limit` happened in the window.

        A `policy` name makes the quota public: the response's RateLimit headers show it.
        """
        if not self.enabled:
            return Decision(True, 0)
        item = RateLimitItemPerSecond(limit, window_seconds)
        allowed = await self.strategy.hit(item, key)
        await self._announce(policy, item, key)
        if allowed:
            return Decision(True, 0)
        return Decision(False, await self._retry_after(item, key))

    async def check(
        self, key: str, *, limit: int, window_seconds: int, policy: str | None = None
    ) -> Decision:
        """Whether `limit` events already happened in the window, without counting one."""
        if not self.enabled:
            return Decision(True, 0)
        item = RateLimitItemPerSecond(limit, window_seconds)
        allowed = await self.strategy.test(item, key)
        await self._announce(policy, item, key)
        if allowed:
            return Decision(True, 0)
        return Decision(False, await self._retry_after(item, key))

    async def refund(self, key: str, *, limit: int, window_seconds: int) -> None:
        """Take back one event counted by `hit` (it turned out not to count: a sign-in that
        succeeded, counted before its password was checked)."""
        if self.enabled:
            item = RateLimitItemPerSecond(limit, window_seconds)
            await self.storage.incr(item.key_for(key), item.get_expiry(), amount=-1)

    async def clear(self, key: str, *, limit: int, window_seconds: int) -> None:
        if self.enabled:
            await self.strategy.clear(RateLimitItemPerSecond(limit, window_seconds), key)
