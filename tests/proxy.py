"""A TCP proxy the tests control, between the app and PostgreSQL: it passes traffic, refuses
new connections, drops open ones, or stalls (connections stay open, nothing gets through).

It runs its own event loop on a thread, so the app under test (on TestClient's loop, or the
test's) sees it as a real server across a real socket.
"""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum


class Mode(Enum):
    PASS = "pass"
    REFUSE = "refuse"  # new connections are closed at once; open ones keep working
    STALL = "stall"  # bytes are held, in both directions, on every connection


class TcpProxy:
    """Listens on 127.0.0.1:<port> and forwards to `target_host:target_port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = Mode.PASS
        self.port = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    def start(self) -> "TcpProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def set_mode(self, mode: Mode) -> None:
        def apply() -> None:
            self.mode = mode
            if mode is Mode.STALL:
                self._flowing.clear()
            else:
                self._flowing.set()

        self._loop.call_soon_threadsafe(apply)

    def drop_all(self) -> None:
        """Close every open connection (as a server that went away would)."""

        def close() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(close)

    def stop(self) -> None:
        self.drop_all()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._flowing.set()
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        # Whatever still runs (pipes of aborted connections) is cancelled before the loop goes.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode is Mode.REFUSE:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for end in (writer, up_writer):
            end.transport.abort()
            self._writers.discard(end)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        writer.transport.abort()


@contextmanager
def proxy_to(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
