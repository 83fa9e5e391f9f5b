"""app/core/db/transaction.py and errors.py: a transaction that lost a race runs again, a
bounded number of times, then is a 503 `transaction_conflict`; nothing else is run again."""

import asyncio
import uuid
from collections.abc import Callable

import asyncpg
import pytest
from fastapi import BackgroundTasks, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.core.db import Database, SessionDep
from app.core.db.errors import is_retryable, is_unique_violation, sqlstate_of
from app.core.db.transaction import TRANSACTION_ATTEMPTS
from app.labels.models import Label
from app.users.models import User
from tests.helpers import assert_problem, is_postgres


class Deadlock(Exception):
    """What asyncpg raises on a deadlock, as far as the classifier looks: its SQLSTATE."""

    sqlstate = "40P01"


def _emails(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(text('SELECT email FROM "user"'))}


def _racing_app(make_app: Callable[..., FastAPI], losses: int) -> tuple[FastAPI, list[int]]:
    """An app whose POST /probe/race writes a user, then loses `losses` races (each attempt
    after the first writes under a new email, so every attempt's writes can be seen)."""
    app = make_app()
    attempts: list[int] = []

    @app.post("/probe/race")
    async def race(session: SessionDep) -> dict[str, int]:
        attempts.append(len(attempts) + 1)
        session.add(User(email=f"attempt-{len(attempts)}@example.com", hashed_password="x"))
        await session.flush()
        if len(attempts) <= losses:
            raise Deadlock("deadlock detected")
        return {"attempt": len(attempts)}

    return app, attempts


def test_a_transaction_that_lost_a_race_runs_again_and_only_its_last_attempt_is_kept(
    make_app: Callable[..., FastAPI], housekeeping_engine: Engine
) -> None:
    app, attempts = _racing_app(make_app, losses=TRANSACTION_ATTEMPTS - 1)
    with TestClient(app) as client:
        response = client.post("/probe/race")
    assert response.status_code == 200, response.text
    assert response.json() == {"attempt": TRANSACTION_ATTEMPTS}
    assert attempts == list(range(1, TRANSACTION_ATTEMPTS + 1))
    # The attempts that lost were rolled back: only the last one's write stays.
    assert _emails(housekeeping_engine) == {f"attempt-{TRANSACTION_ATTEMPTS}@example.com"}


def test_a_transaction_that_keeps_losing_is_a_503_transaction_conflict(
    make_app: Callable[..., FastAPI], housekeeping_engine: Engine
) -> None:
    app, attempts = _racing_app(make_app, losses=TRANSACTION_ATTEMPTS)
    with TestClient(app) as client:
        response = client.post("/probe/race")
    body = assert_problem(response, 503, "transaction_conflict")
    assert response.headers["retry-after"] == "1"
    assert "nothing was changed" in body["detail"]
    assert len(attempts) == TRANSACTION_ATTEMPTS
    assert _emails(housekeeping_engine) == set()


def test_other_errors_are_not_run_again(make_app: Callable[..., FastAPI]) -> None:
    app = make_app()
    calls: list[int] = []

    @app.post("/probe/crash")
    async def crash(session: SessionDep) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert_problem(client.post("/probe/crash"), 500, "internal_error")
    assert calls == [1]


def test_the_request_body_is_read_again_by_a_second_attempt(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app()
    seen: list[dict[str, str]] = []

    @app.post("/probe/body")
    async def body(data: dict[str, str], session: SessionDep) -> dict[str, str]:
        seen.append(data)
        if len(seen) == 1:
            raise Deadlock("deadlock detected")
        return data

    with TestClient(app) as client:
        response = client.post("/probe/body", json={"title": "again"})
    assert response.json() == {"title": "again"}
    assert seen == [{"title": "again"}, {"title": "again"}]


def test_the_classifier_reads_sqlstates_through_sqlalchemy_and_asyncpg() -> None:
    wrapped = DBAPIError("UPDATE ...", {}, Deadlock("deadlock detected"))
    assert sqlstate_of(wrapped) == "40P01"
    assert is_retryable(wrapped)
    caused = RuntimeError("outer")
    caused.__cause__ = Deadlock()
    assert is_retryable(caused)
    assert not is_retryable(RuntimeError("no SQLSTATE"))
    assert not is_retryable(DBAPIError("SELECT", {}, ValueError("x")))


@pytest.mark.anyio
async def test_real_deadlocks_and_constraint_failures_are_told_apart(
    settings: Settings, db_session: AsyncSession
) -> None:
    """On the real database: a unique violation is one, a foreign key failure is not (it is
    run again), and on PostgreSQL a real deadlock between two connections is retryable."""
    db_session.add(User(email="one@example.com", hashed_password="x"))
    await db_session.commit()
    db_session.add(User(email="one@example.com", hashed_password="x"))
    with pytest.raises(IntegrityError) as unique:
        await db_session.flush()
    assert is_unique_violation(unique.value)
    assert not is_retryable(unique.value)
    await db_session.rollback()
    # A label of an owner no row has: the foreign key refuses it.
    db_session.add(Label(owner_id=uuid.uuid4(), name="x", name_key="x"))
    with pytest.raises(IntegrityError) as foreign:
        await db_session.flush()
    assert not is_unique_violation(foreign.value)
    assert is_retryable(foreign.value)
    await db_session.rollback()
    if not is_postgres(settings.DATABASE_URL):
        return
    await _assert_a_real_deadlock_is_retryable(settings)


async def _assert_a_real_deadlock_is_retryable(settings: Settings) -> None:
    database = Database(settings)
    try:
        async with database.sessionmaker() as seed:
            for email in ("a@example.com", "b@example.com"):
                seed.add(User(email=email, hashed_password="x"))
            await seed.commit()
        both_locked_one = asyncio.Barrier(2)
        errors: list[BaseException] = []

        async def lock(first: str, second: str) -> None:
            async with database.sessionmaker() as session:
                update = 'UPDATE "user" SET hashed_password = :p WHERE email = :e'
                try:
                    await session.exec(text(update), params={"p": "y", "e": first})  # type: ignore[call-overload]
                    await both_locked_one.wait()
                    await session.exec(text(update), params={"p": "y", "e": second})  # type: ignore[call-overload]
                    await session.commit()
                except DBAPIError as exc:
                    errors.append(exc)

        await asyncio.gather(
            lock("a@example.com", "b@example.com"), lock("b@example.com", "a@example.com")
        )
        assert len(errors) == 1, errors
        assert sqlstate_of(errors[0]) == "40P01"
        assert is_retryable(errors[0])
        assert isinstance(errors[0].orig.__cause__, asyncpg.exceptions.DeadlockDetectedError)  # type: ignore[union-attr]
    finally:
        await database.dispose()


def test_a_side_effect_of_a_request_run_again_happens_once(
    make_app: Callable[..., FastAPI],
) -> None:
    """Background tasks (mail) belong to the response of the attempt that committed: the
    attempt that lost the race sends nothing."""
    app = make_app()
    sent: list[str] = []
    attempts: list[int] = []

    @app.post("/probe/mail")
    async def mail(session: SessionDep, background: BackgroundTasks) -> dict[str, int]:
        attempts.append(1)
        background.add_task(sent.append, f"mail of attempt {len(attempts)}")
        if len(attempts) == 1:
            raise Deadlock("deadlock detected")
        return {"attempts": len(attempts)}

    with TestClient(app) as client:
        assert client.post("/probe/mail").json() == {"attempts": 2}
    assert sent == ["mail of attempt 2"]
