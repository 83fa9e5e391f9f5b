"""LISTEN on a connection of its own (app/core/listener.py): what it hears, and what it says
about its own state when the connection goes and comes back."""

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text

from app.core.config import Settings
from app.core.listener import ChannelListener, asyncpg_dsn
from tests.helpers import HANG_GUARD


class Heard:
    """What a listener reported, and a way to wait for it without polling a clock."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.states: list[bool] = []
        self._changed = asyncio.Event()

    def on_message(self, payload: str) -> None:
        self.messages.append(payload)
        self._changed.set()

    def on_state(self, listening: bool) -> None:
        self.states.append(listening)
        self._changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        # The callbacks run on this loop, only while this waits: no wake-up is lost.
        async with asyncio.timeout(HANG_GUARD):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


def _run(engine: Engine, sql: str, **params: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql), params)


async def _notify(engine: Engine, channel: str, payload: str) -> None:
    await asyncio.to_thread(_run, engine, "SELECT pg_notify(:c, :p)", c=channel, p=payload)


@pytest.fixture
def channel() -> str:
    return f"test_listener_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def listener_failures() -> Iterator[asyncio.Event]:
    """Set when the listener logs a failed or lost connection."""
    failed = asyncio.Event()

    class Signal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            failed.set()

    handler = Signal(level=logging.WARNING)
    logger = logging.getLogger("app.core.listener")
    logger.addHandler(handler)
    yield failed
    logger.removeHandler(handler)


def test_the_dsn_is_the_sqlalchemy_url_without_its_driver() -> None:
    url = "postgresql+asyncpg://tasks:s3cret@db.internal:6543/tasks?sslmode=require"
    assert asyncpg_dsn(url) == "postgresql://tasks:s3cret@db.internal:6543/tasks?sslmode=require"


@pytest.mark.anyio
async def test_a_refused_connection_is_retried_and_never_called_listening(
    channel: str, listener_failures: asyncio.Event
) -> None:
    heard = Heard()
    # Nothing listens on port 1: every attempt is refused at once.
    listener = ChannelListener(
        "postgresql+asyncpg://postgres@127.0.0.1:1/postgres",
        channel,
        on_message=heard.on_message,
        on_state=heard.on_state,
    )
    await listener.start(wait_seconds=0)
    try:
        async with asyncio.timeout(HANG_GUARD):
            await listener_failures.wait()
        assert not listener.listening
    finally:
        await listener.stop()
    assert heard.states == []
    assert not listener.listening


@pytest.mark.postgres
@pytest.mark.anyio
async def test_it_hears_its_own_channel_only_and_says_when_it_stops(
    settings: Settings, housekeeping_engine: Engine, channel: str
) -> None:
    heard = Heard()
    listener = ChannelListener(
        settings.async_database_url,
        channel,
        on_message=heard.on_message,
        on_state=heard.on_state,
    )
    await listener.start(wait_seconds=HANG_GUARD)
    try:
        assert listener.listening
        assert heard.states == [True]
        await _notify(housekeeping_engine, f"{channel}_other", "not for it")
        await _notify(housekeeping_engine, channel, "hello")
        await heard.until(lambda: bool(heard.messages))
        assert heard.messages == ["hello"]  # the other channel's, sent first, never came
    finally:
        await listener.stop()
    assert heard.states == [True, False]
    assert not listener.listening


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_lost_connection_is_reported_and_replaced(
    settings: Settings, housekeeping_engine: Engine, channel: str
) -> None:
    heard = Heard()
    listener = ChannelListener(
        settings.async_database_url,
        channel,
        on_message=heard.on_message,
        on_state=heard.on_state,
    )
    await listener.start(wait_seconds=HANG_GUARD)
    try:
        assert heard.states == [True]
        await asyncio.to_thread(
            _run,
            housekeeping_engine,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name",
            name=f"listen:{channel}",
        )
        await heard.until(lambda: len(heard.states) >= 3)
        assert heard.states == [True, False, True]
        assert listener.listening
        await _notify(housekeeping_engine, channel, "after")
        await heard.until(lambda: bool(heard.messages))
        assert heard.messages == ["after"]
    finally:
        await listener.stop()
    assert heard.states == [True, False, True, False]
