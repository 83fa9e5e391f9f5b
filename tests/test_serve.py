"""`tasks-api serve` in a real process: it migrates a fresh database, answers, and on SIGTERM
lets the request in flight finish, then exits 0 (one worker and two)."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BASE_SETTINGS, new_database_url
from tests.helpers import HANG_GUARD

TASKS_API = Path(sys.executable).with_name("tasks-api")
REGISTER = "/api/v1/auth/register"
# What a worker logs once it is draining connections still open at SIGTERM.
DRAINING = "Waiting for connections to close"


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[str]:
    url, drop = new_database_url(tmp_path)
    yield url
    drop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(database_url: str) -> dict[str, str]:
    names = ("ENVIRONMENT", "SECRET_KEY", "ARGON2_MEMORY_KIB", "ARGON2_TIME_COST")
    return {
        **os.environ,
        **{name: str(BASE_SETTINGS[name]) for name in names},
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "INFO",  # the draining line is INFO
        "SHUTDOWN_GRACE_SECONDS": str(int(HANG_GUARD)),
    }


class Served:
    """A `tasks-api serve` process, its output lines as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own console script
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, text: str) -> None:
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            try:
                if text in self.lines.get(timeout=deadline - time.monotonic()):
                    return
            except queue.Empty:
                break
        pytest.fail(f"no line with {text!r}:\n{''.join(self.output)}")

    def stop(self) -> None:
        """Kill what is left of the process group (after a failure), close the pipe."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(HANG_GUARD)
        self._reader.join(HANG_GUARD)
        assert self.process.stdout is not None
        self.process.stdout.close()


def _wait_until_live(served: Served, base_url: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        assert served.process.poll() is None, "".join(served.output)
        try:
            if httpx.get(f"{base_url}/health/live", timeout=HANG_GUARD).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # polling for the port to open, bounded by the deadline
    pytest.fail(f"never live:\n{''.join(served.output)}")


def _start_body(port: int, body: bytes) -> socket.socket:
    """A sign-up whose headers are sent and read by the app (it asked for the body with 100
    Continue), the body itself not yet: a request in flight, for as long as the test likes."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
    connection.sendall(
        (
            f"POST {REGISTER} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(4096)
        assert chunk, "closed before 100 Continue"
        received += chunk
    assert received.startswith(b"HTTP/1.1 100 Continue"), received
    return connection


def _finish(connection: socket.socket, body: bytes) -> bytes:
    connection.sendall(body)
    response = b""
    while chunk := connection.recv(65536):  # the server closes it: it is shutting down
        response += chunk
    connection.close()
    return response


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_the_request_in_flight_and_exits_0(
    fresh_database: str, workers: int
) -> None:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    argv = [str(TASKS_API), "serve", "--port", str(port)]
    env = _environment(fresh_database)
    if workers == 1:
        argv += ["--workers", "1"]
    else:
        env["WEB_CONCURRENCY"] = str(workers)  # the setting, when --workers is not given
    served = Served(argv, env)
    try:
        _wait_until_live(served, base_url)
        started = "".join(served.output)
        assert f"Tasks API on {base_url} — docs {base_url}/docs" in started
        assert "open files: " in started
        assert ("metrics of the 2 workers meet in" in started) == (workers == 2)

        body = b'{"email": "in-flight@example.com", "password": "a-long-password"}'
        connection = _start_body(port, body)
        os.kill(served.process.pid, signal.SIGTERM)
        # The worker holding the connection is draining; only now does the body arrive.
        served.wait_for_line(DRAINING)
        response = _finish(connection, body)

        assert served.process.wait(HANG_GUARD) == 0, "".join(served.output)
    finally:
        served.stop()
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 202 Accepted", response
    assert b"connection: close" in response.lower()
