"""The shipped nginx configuration (deploy/nginx/tasks-api.conf) in front of uvicorn.

A crowd of slow clients (a request header or body that never ends) is held by nginx and never
reaches the app, a client address past its connection limit is refused with a problem
document, requests keep being served while the crowd is open, and nginx's timeouts close the
crowd. The file is rendered as shipped, with only the upstream port, the listen address and
the log directory replaced.
"""

import contextlib
import inspect
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from alembic import command

from app.core.config import Settings
from tests.conftest import BASE_SETTINGS, ROOT, alembic_config, settings_for
from tests.factories import API, DEFAULT_PASSWORD, unique_email
from tests.helpers import HANG_GUARD, PROBLEM, require

SHIPPED_CONF = ROOT / "deploy" / "nginx" / "tasks-api.conf"
# Slow clients held at once, half of them stuck in the header and half in the body, spread
# over loopback addresses (each under the per-address limit; slow headers do not count).
CROWD = 1000
CROWD_ADDRESSES = [f"127.0.0.{host}" for host in range(10, 50)]
# One address that opens more body-stalled connections than limit_conn allows.
GREEDY_ADDRESS = "127.0.0.250"
GREEDY_EXTRA = 10
# Rounds of normal traffic (health, register, sign in, read the account) during the crowd.
ROUNDS = 20
# What ends a stalled request; each at most 10 s.
STALL_TIMEOUTS = ("client_header_timeout", "client_body_timeout")
# Readiness and every other wait for something that should happen at once.
DEADLINE = 60.0
# Sockets uvicorn may hold: its listener, nginx's kept-alive connections (keepalive 32) and a
# few of its own; a crowd that reached it would be hundreds.
UVICORN_SOCKETS_AT_MOST = 40
HOST = "tasks-api.example.com"
TOO_MANY = b'"code":"too_many_connections"'
SLOW_HEADER = f"GET {API}/users/me HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: a".encode()
SLOW_BODY = (
    f"POST {API}/auth/register HTTP/1.1\r\nHost: {HOST}\r\n"
    "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    '{"email": "slow'
).encode()


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def conf_seconds(conf: str, directive: str, *, upstream: bool = False) -> int:
    """`directive Ns;` of the shipped file's server (or upstream) block, in seconds."""
    block = conf.split("\nserver {")[0 if upstream else 1]
    match = re.search(rf"^\s*{directive}\s+(\d+)s;", block, re.MULTILINE)
    assert match, f"{directive} is not set in seconds in {SHIPPED_CONF}"
    return int(match[1])


def conf_number(conf: str, pattern: str) -> int:
    match = re.search(pattern, conf, re.MULTILINE)
    assert match, f"{pattern!r} is not in {SHIPPED_CONF}"
    return int(match[1])


def render(conf: str, *, listen_port: int, upstream_port: int, log_dir: Path) -> str:
    """The shipped file with this run's ports and log directory (each line there exactly once)."""
    replacements = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": f"listen 127.0.0.1:{listen_port};",
        "/var/log/nginx/": f"{log_dir}/",
    }
    for old, new in replacements.items():
        assert conf.count(old) == 1, f"{SHIPPED_CONF} should have {old!r} exactly once"
        conf = conf.replace(old, new)
    return conf


def main_conf(prefix: Path, include: Path, nofile: int) -> str:
    """An nginx.conf as a distribution's, in the foreground, everything under `prefix`."""
    # Workers of a root master run as `nobody` unless told; they must write the temp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nmaster_process on;\nworker_processes 1;\n{user}"
        f"pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        f"worker_rlimit_nofile {nofile};\n"
        "events {\n    worker_connections 4096;\n}\n"
        f"http {{\n{temp}\n    include {include};\n}}\n"
    )


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.extend(int(child) for child in task.read_text().split())
    return found


def socket_count(pids: list[int]) -> int:
    """Open sockets of these processes (their fds that are sockets)."""
    count = 0
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                count += os.readlink(fd).startswith("socket:")
    return count


def wait_until(check: Callable[[], bool], what: str, guard: float = DEADLINE) -> None:
    """Poll `check` until it holds; fail (never hang) after `guard` seconds."""
    deadline = time.monotonic() + guard
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {guard:.0f} s")
        time.sleep(0.05)


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(HANG_GUARD)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(HANG_GUARD)
        # Anything the group left behind (nginx workers) goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def start(argv: list[str], *, log: Path, cwd: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own argv
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(proc, log)


def answers(base_url: str, process: Process) -> Callable[[], bool]:
    """A readiness check: GET /health/live is a 200 (fails at once if the process died)."""

    def check() -> bool:
        assert process.alive(), f"exited with {process.proc.returncode}:\n{tail(process.log)}"
        try:
            return httpx.get(f"{base_url}/health/live", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    return check


def readable(sock: socket.socket) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(0))


@dataclass
class Crowd:
    """Client sockets that send part of a request and then nothing."""

    sockets: list[socket.socket] = field(default_factory=list)

    def open(self, port: int, address: str, payload: bytes, count: int) -> list[socket.socket]:
        opened = []
        for _ in range(count):
            sock = socket.create_connection(
                ("127.0.0.1", port), timeout=HANG_GUARD, source_address=(address, 0)
            )
            self.sockets.append(sock)
            sock.sendall(payload)
            opened.append(sock)
        return opened

    def replies(self, sockets: list[socket.socket], guard: float) -> dict[socket.socket, bytes]:
        """What each socket received until nginx closed it (all of them, or fail after guard)."""
        received = dict.fromkeys(sockets, b"")
        with selectors.DefaultSelector() as selector:
            for sock in sockets:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            deadline = time.monotonic() + guard
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"{len(selector.get_map())} slow clients still open after {guard} s"
                    )
                for key, _ in selector.select(left):
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    try:
                        chunk = ready.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionError:
                        chunk = b""
                    if chunk:
                        received[ready] += chunk
                    else:
                        selector.unregister(ready)
        return received

    def still_open(self, sockets: list[socket.socket]) -> int:
        """How many have neither data nor an end to read."""
        with selectors.DefaultSelector() as selector:
            for sock in sockets:
                selector.register(sock, selectors.EVENT_READ)
            return len(sockets) - len(selector.select(0))

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


@pytest.fixture
def open_files() -> Iterator[int]:
    """The soft open-file limit raised to the hard one for this test; the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CROWD + len(CROWD_ADDRESSES) + 200
    if hard != resource.RLIM_INFINITY and hard < needed:
        require("an open-file limit for the crowd", f"RLIMIT_NOFILE hard limit {hard} < {needed}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[tuple[Process, int]]:
    """The app under uvicorn (proxy headers off, as in production) on a fresh SQLite file."""
    # Only this test's settings: none inherited from the shell, no .env (cwd is tmp_path).
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update({name: str(value) for name, value in BASE_SETTINGS.items()})
    database_url = f"sqlite:///{tmp_path / 'nginx.db'}"
    env["DATABASE_URL"] = database_url
    # nginx's address, as deploy/nginx/README.md says: the app believes its X-Forwarded-For.
    env["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command.upgrade(alembic_config(settings_for(database_url)), "head")
    port = free_port()
    server = start(
        [
            *(sys.executable, "-m", "uvicorn", "app.main:app"),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--no-proxy-headers", "--no-access-log", "--log-level", "warning"),
        ],
        log=tmp_path / "uvicorn.log",
        cwd=tmp_path,
        env=env,
    )
    try:
        wait_until(answers(f"http://127.0.0.1:{port}", server), "uvicorn ready")
        yield server, port
    finally:
        server.stop()


@pytest.fixture
def nginx() -> str:
    """The nginx binary (skip, or fail in CI, without one)."""
    binary = nginx_binary()
    require("nginx", None if binary else "no nginx on PATH or at /usr/sbin/nginx (apt: nginx)")
    assert binary is not None
    return binary


@pytest.fixture
def nginx_server(
    nginx: str, open_files: int, tmp_path: Path, uvicorn_server: tuple[Process, int]
) -> Iterator[tuple[Process, int]]:
    """nginx in the foreground with the shipped file, in front of `uvicorn_server`."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    site = prefix / "tasks-api.conf"
    site.write_text(
        render(
            SHIPPED_CONF.read_text(),
            listen_port=port,
            upstream_port=uvicorn_server[1],
            log_dir=prefix,
        )
    )
    conf = prefix / "nginx.conf"
    conf.write_text(main_conf(prefix, site, open_files))
    argv = [nginx, "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log")]
    checked = subprocess.run(  # noqa: S603 - our own argv
        [*argv, "-t"], capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    assert checked.returncode == 0, checked.stderr
    server = start(argv, log=prefix / "stdout.log", cwd=prefix)
    try:
        wait_until(answers(f"http://127.0.0.1:{port}", server), "nginx ready")
        yield server, port
    finally:
        server.stop()
        # nginx's own log, for a failure's report.
        print(tail(prefix / "error.log"))


def normal_round(client: httpx.Client) -> int:
    """Health, register, sign in, read the account: every answer right; requests made."""
    request_id = uuid.uuid4().hex
    live = client.get("/health/live", headers={"X-Request-ID": request_id})
    assert live.status_code == 200, live.text
    assert live.headers["x-request-id"] == request_id
    email = unique_email("nginx")
    created = client.post(
        f"{API}/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert created.status_code == 202, created.text
    token = client.post(f"{API}/auth/token", data={"username": email, "password": DEFAULT_PASSWORD})
    assert token.status_code == 200, token.text
    me = client.get(
        f"{API}/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email
    # Without an id of the client's, the one nginx made reaches the app and comes back.
    assert re.fullmatch(r"[0-9a-f]{32}", me.headers["x-request-id"])
    return 4


def signed_in_from(address: str, port: int) -> int:
    """Sign in from `address` with a forged X-Forwarded-For; the session records `address`."""
    transport = httpx.HTTPTransport(local_address=address)
    base_url = f"http://127.0.0.1:{port}"
    with httpx.Client(
        base_url=base_url, transport=transport, timeout=HANG_GUARD, trust_env=False
    ) as client:
        email = unique_email("forwarded")
        forged = {"X-Forwarded-For": "203.0.113.7"}
        body = {"email": email, "password": DEFAULT_PASSWORD}
        assert client.post(f"{API}/auth/register", json=body, headers=forged).status_code == 202
        form = {"username": email, "password": DEFAULT_PASSWORD}
        token = client.post(f"{API}/auth/token", data=form, headers=forged)
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}", **forged}
        sessions = client.get(f"{API}/auth/sessions", headers=bearer)
        assert sessions.status_code == 200, sessions.text
    [session] = sessions.json()["items"]
    # Until the app reads FORWARDED_ALLOW_IPS (another change), it records nginx's address.
    expected = address if "FORWARDED_ALLOW_IPS" in Settings.model_fields else "127.0.0.1"
    assert session["ip_address"] == expected, session
    return 3


def test_shipped_limits_pair_with_the_app() -> None:
    conf = SHIPPED_CONF.read_text()
    # Short timeouts are what frees the crowd's connections.
    assert all(conf_seconds(conf, name) <= 10 for name in STALL_TIMEOUTS)
    # The client's own X-Forwarded-For is replaced, never appended to.
    forwarded_for = re.findall(r"^\s*proxy_set_header\s+X-Forwarded-For\s+(\S+);", conf, re.M)
    assert forwarded_for == ["$remote_addr"]
    # nginx refuses exactly what the app would (MAX_REQUEST_BODY_BYTES's default), and says so.
    max_body = Settings.model_fields["MAX_REQUEST_BODY_BYTES"].default
    size, unit = re.findall(r"^\s*client_max_body_size\s+(\d+)([km]?);", conf, re.M)[0]
    assert int(size) * {"": 1, "k": 1024, "m": 1024**2}[unit] == max_body
    assert f"exceeds {max_body} bytes" in conf
    # nginx closes an idle upstream connection before uvicorn would (its default).
    uvicorn_idle = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    assert conf_seconds(conf, "keepalive_timeout", upstream=True) < uvicorn_idle


def test_slow_clients_are_held_by_nginx_while_requests_are_served(
    nginx_server: tuple[Process, int], uvicorn_server: tuple[Process, int]
) -> None:
    nginx_master, port = nginx_server
    uvicorn = uvicorn_server[0]
    conf = SHIPPED_CONF.read_text()
    timeouts = [conf_seconds(conf, name) for name in STALL_TIMEOUTS]
    limit = conf_number(conf, r"^\s*limit_conn tasks_api_addr (\d+);")
    per_address = CROWD // len(CROWD_ADDRESSES)
    assert per_address <= limit
    workers = children(nginx_master.proc.pid)
    assert workers, "nginx started no worker"

    crowd = Crowd()
    try:
        held: list[socket.socket] = []
        for index, address in enumerate(CROWD_ADDRESSES):
            payload = SLOW_HEADER if index % 2 == 0 else SLOW_BODY
            held += crowd.open(port, address, payload, per_address)
        greedy = crowd.open(port, GREEDY_ADDRESS, SLOW_BODY, limit + GREEDY_EXTRA)
        # nginx has accepted every one (not just the kernel's backlog).
        wait_until(
            lambda: socket_count(workers) >= len(held) + len(greedy),
            f"nginx holding {len(held) + len(greedy)} connections",
        )
        assert socket_count([uvicorn.proc.pid]) <= UVICORN_SOCKETS_AT_MOST

        # Past its limit one address is refused at once, with the problem document.
        refused: dict[socket.socket, bytes] = {}

        def refused_all() -> bool:
            for sock in greedy:
                if readable(sock):
                    refused[sock] = refused.get(sock, b"") + sock.recv(65536)
            problems = [reply for reply in refused.values() if TOO_MANY in reply]
            return len(problems) >= GREEDY_EXTRA

        wait_until(refused_all, f"{GREEDY_EXTRA} connections over the limit refused")
        assert len(refused) == GREEDY_EXTRA
        for reply in refused.values():
            assert reply.startswith(b"HTTP/1.1 429 "), reply
            assert f"Content-Type: {PROBLEM}".encode() in reply, reply

        served = 0
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=HANG_GUARD, trust_env=False
        ) as client:
            for _ in range(ROUNDS):
                served += normal_round(client)
            # A body over MAX_REQUEST_BODY_BYTES is refused by nginx, in the app's format.
            big = client.post(f"{API}/auth/register", content=b"x" * (1_048_576 + 1))
            assert big.status_code == 413
            assert big.headers["content-type"] == PROBLEM
            assert big.json()["code"] == "payload_too_large"
            served += 1
        # The app sees the client's address as nginx wrote it, never one the client wrote.
        served += signed_in_from("127.0.0.77", port)
        # The slow clients never reached the app: nginx buffers headers and bodies.
        uvicorn_sockets = socket_count([uvicorn.proc.pid])
        assert uvicorn_sockets <= UVICORN_SOCKETS_AT_MOST
        open_after = crowd.still_open(held)
        print(
            f"{len(held)} slow clients held (+{len(greedy)} from one address,"
            f" {len(refused)} refused); {served} requests served; uvicorn held"
            f" {uvicorn_sockets} sockets; {open_after} slow clients still open after them"
        )

        # nginx's timeouts end every stalled request (a header or a body that stopped).
        replies = crowd.replies(held + greedy, max(timeouts) + HANG_GUARD)
        for sock in held:
            # Closed without a response, or with a 408; never an answer from the app.
            assert replies[sock] == b"" or replies[sock].startswith(b"HTTP/1.1 408"), replies[sock]
    finally:
        crowd.close()
