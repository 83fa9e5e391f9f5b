"""PostgreSQL LISTEN on one channel, on a connection of its own that reconnects by itself.

What the database announces (NOTIFY, here sent by triggers) reaches every process at once.
Caches that are only correct while they hear every announcement follow `listening`: it turns
false the moment the connection is lost or stops answering, and they must then stop serving;
when it turns true again, whatever was announced in between was missed, so they start empty.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

# A connection can die without a word (a dropped network path): a trivial query this often,
# and the connection is given up if it does not answer within the timeout.
KEEPALIVE_SECONDS = 10.0
KEEPALIVE_TIMEOUT_SECONDS = 5.0
RECONNECT_MAX_SECONDS = 30.0


def asyncpg_dsn(database_url: str) -> str:
    """The `postgresql://` form of a SQLAlchemy URL (`postgresql+asyncpg://...`)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


class ChannelListener:
    """Calls `on_message(payload)` for each NOTIFY on `channel`; `on_state(listening)` on changes.

    Both callbacks run on the event loop and must not block.
    """

    def __init__(
        self,
        database_url: str,
        channel: str,
        *,
        on_message: Callable[[str], None],
        on_state: Callable[[bool], None],
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._channel = channel
        self._on_message = on_message
        self._on_state = on_state
        self._task: asyncio.Task[None] | None = None
        self.listening = False

    async def start(self, *, wait_seconds: float = 5.0) -> None:
        """Start listening in the background; wait (bounded) for the first connection."""
        connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(connected), name=f"listen:{self._channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), wait_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _set_listening(self, listening: bool) -> None:
        if listening != self.listening:
            self.listening = listening
            self._on_state(listening)

    def _deliver(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_message(payload)

    async def _run(self, connected: asyncio.Event) -> None:
        delay = 0.5
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(
                    self._dsn,
                    timeout=KEEPALIVE_TIMEOUT_SECONDS,
                    server_settings={"application_name": f"listen:{self._channel}"},
                )
                lost = asyncio.Event()
                connection.add_termination_listener(_setter(lost))
                await connection.add_listener(self._channel, self._deliver)
                self._set_listening(True)
                connected.set()
                delay = 0.5
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), KEEPALIVE_SECONDS)
                    if not lost.is_set():
                        await connection.fetchval("SELECT 1", timeout=KEEPALIVE_TIMEOUT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:  # any failure means: not listening; try again
                logger.warning("LISTEN %s lost; reconnecting", self._channel, exc_info=True)
            finally:
                self._set_listening(False)
                if connection is not None:
                    connection.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)


def _setter(flag: asyncio.Event) -> Callable[[Any], None]:
    return lambda _connection: flag.set()
