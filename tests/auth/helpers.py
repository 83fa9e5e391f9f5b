"""What only the accounts tests need: mail, tokens, the principal cache and raw SQL checks."""

import asyncio
import base64
import json
import random
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.cache import PrincipalCache
from app.auth.service import AuthComponents
from app.core.db import Database
from app.core.mail import Mail, MemoryMailer
from app.core.models import utcnow
from app.core.security import TokenType
from tests.helpers import HANG_GUARD

T = TypeVar("T")


def comparable(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    """Status and body without the request id: what two answers must share to look alike."""
    body = dict(response.json())
    body.pop("request_id", None)
    return response.status_code, body


def auth_of(app: FastAPI) -> AuthComponents:
    auth: AuthComponents = app.state.auth
    return auth


def outbox(app: FastAPI) -> list[Mail]:
    mailer = auth_of(app).mailer
    assert isinstance(mailer, MemoryMailer)
    return mailer.outbox


def reset_token_from(mail: Mail) -> str:
    match = re.search(r"#token=([\w.-]+)", mail.body)
    assert match, mail.body
    token = match.group(1)
    assert token in mail.body.split("POST /api/v1/auth/password-reset:\n", 1)[1]
    return token


def verification_token_from(mail: Mail) -> str:
    """The confirmation token of a verification mail (in its link and on its own)."""
    match = re.search(r"/verify-email#token=([\w.-]+)", mail.body)
    assert match, mail.body
    token = match.group(1)
    assert token in mail.body.split("POST /api/v1/auth/verify:\n", 1)[1]
    return token


def mails_to(app: FastAPI, address: str) -> list[Mail]:
    return [mail for mail in outbox(app) if mail.to == address]


def jwt_segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header and payload (unverified) and the signature segment of a JWT."""
    header, payload, signature = token.split(".")
    return _b64_json(header), _b64_json(payload), signature


def _b64_json(segment: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return data


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_token(
    app: FastAPI,
    *,
    subject: str,
    token_type: TokenType,
    session_id: str | None = None,
    lifetime: timedelta = timedelta(minutes=5),
    issued_ago: timedelta = timedelta(0),
    extra: dict[str, Any] | None = None,
) -> str:
    """A token signed with the app's own key (for expired or odd-but-valid tokens)."""
    token, _ = auth_of(app).tokens.encode(
        subject=subject,
        token_type=token_type,
        lifetime=lifetime,
        session_id=session_id,
        extra=extra,
        now=utcnow() - issued_ago,
    )
    return token


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    """One value from the test database, read outside the app (to check what persisted)."""
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def execute(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql), params)


def change_elsewhere(client: TestClient, engine: Engine, sql: str, **params: Any) -> None:
    """Run `sql` on a connection of its own, as another process would; wait until heard."""
    cache: PrincipalCache = client.app.state.auth.principals  # type: ignore[attr-defined]
    generation = cache.generation
    execute(engine, sql, **params)
    if cache.enabled:
        changed = cache.wait_for(lambda: cache.generation != generation, HANG_GUARD)
        assert changed, "never announced"


def uuid_param(engine: Engine, value: str) -> str:
    """A UUID as the database stores it (SQLite keeps 32 hex digits, PostgreSQL a uuid)."""
    return value.replace("-", "") if engine.dialect.name == "sqlite" else value


def in_session(app: FastAPI, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in a committed session of its own on the app's database (service layer)."""

    async def run() -> T:
        database = Database(app.state.settings)
        try:
            async with database.sessionmaker() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await database.dispose()

    return asyncio.run(run())


def random_ip() -> str:
    """A client address of its own, so throttle counters never meet another test's."""
    return ".".join(str(random.randint(1, 254)) for _ in range(4))
