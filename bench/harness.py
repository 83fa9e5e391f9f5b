"""Shared plumbing for the benchmarks: servers, wrk, /proc sampling, databases, tables.

Linux only (reads /proc). Stdlib plus psycopg (already in the dev extra).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
PYTHON = sys.executable
PG_SERVER_URL = os.environ.get("PG_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, str]:
    """Date, machine and commit, for the README's result blocks."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "arch": platform.machine(),
        "cpu": cpu,
        "python": platform.python_version(),
        "commit": commit,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- /proc sampling


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.extend(int(child) for child in task.read_text().split())
    return found


def process_tree(root: int) -> list[int]:
    """The root and all its descendants (uvicorn master, its workers, multiprocessing helpers)."""
    seen: list[int] = []
    stack = [root]
    while stack and len(seen) < 256:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.append(pid)
        stack.extend(_children(pid))
    return seen


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    # fields[11], [12] are utime, stime (the 14th and 15th fields of the whole line).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class ProcSampler:
    """CPU seconds used and peak summed RSS of a process tree while the `with` block runs."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root = root
        self.interval = interval
        self.cpu_seconds = 0.0
        self.peak_rss = 0
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        pids = process_tree(self.root)
        rss = 0
        for pid in pids:
            cpu = _cpu_seconds(pid)
            self._start.setdefault(pid, 0.0)  # a process born during the run: all its CPU
            self._last[pid] = cpu
            rss += _rss_bytes(pid)
        self.peak_rss = max(self.peak_rss, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> ProcSampler:
        for pid in process_tree(self.root):
            self._start[pid] = self._last[pid] = _cpu_seconds(pid)
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        self.cpu_seconds = sum(self._last[pid] - self._start.get(pid, 0.0) for pid in self._last)


def wait_idle(root: int, *, timeout: float = 120.0, window: float = 0.5) -> float:
    """Block until the process tree uses < 10% of a core over `window`; returns seconds waited.

    After wrk stops, the server still runs every request it had accepted (up to one per open
    connection): at 1,024 connections that backlog can take longer than a short run. Waiting
    here keeps one scenario's leftovers out of the next one's numbers. Bounded by `timeout`.
    """
    start = time.monotonic()
    before = sum(_cpu_seconds(pid) for pid in process_tree(root))
    while time.monotonic() - start < timeout:
        time.sleep(window)
        now = sum(_cpu_seconds(pid) for pid in process_tree(root))
        if now - before < 0.1 * window:
            break
        before = now
    return time.monotonic() - start


# --------------------------------------------------------------------------- servers


class ServerFailed(RuntimeError):
    """The server did not become ready, or exited early."""


@dataclass
class Server:
    """A server process in its own process group; stop() kills the whole group."""

    argv: Sequence[str]
    env: Mapping[str, str]
    port: int
    ready_path: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            list(self.argv),
            cwd=ROOT,
            env=dict(self.env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.base_url + self.ready_path, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise ServerFailed(f"server not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Workers that outlived the master (they should not) go with the group too.
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return process_tree(self.proc.pid)

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def uvicorn_argv(app: str, port: int, workers: int = 1) -> list[str]:
    """The one server command line every measured app shares (floor included)."""
    return [
        PYTHON,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        # The app decides client addresses itself (FORWARDED_ALLOW_IPS), never Uvicorn.
        "--no-proxy-headers",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--backlog",
        "4096",
    ]


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    connections: int
    requests: int = 0
    duration_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    socket_errors: dict[str, int] = field(default_factory=dict)
    status_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    raw: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        """Responses >= 400 (wrk's `Non-2xx or 3xx`) plus socket errors of every kind."""
        return self.status_errors + sum(self.socket_errors.values())


def run_wrk(
    url: str,
    *,
    script: Path,
    connections: int,
    duration: float,
    env: Mapping[str, str] | None = None,
    threads: int = 1,
    timeout_s: int = 10,
) -> WrkResult:
    """Run wrk (one thread by default: the load generator shares the machine's cores)."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    wrk_env = {**os.environ, "BENCH_LUA_DIR": str(LUA), **(env or {})}
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=wrk_env, timeout=duration + 60, check=False
    )
    out = proc.stdout + proc.stderr
    result = WrkResult(connections=connections, raw=out)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{out}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    result.requests = data["requests"]
    result.duration_s = data["duration_us"] / 1e6
    result.p50_ms = data["p50_us"] / 1000
    result.p99_ms = data["p99_us"] / 1000
    result.socket_errors = {k: data[k] for k in ("connect", "read", "write", "timeout") if data[k]}
    result.status_errors = data["status_errors"]
    result.statuses = data["statuses"]
    return result


# --------------------------------------------------------------------------- PostgreSQL


def pg_url(dbname: str, driver: str = "postgresql") -> str:
    base = PG_SERVER_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}".replace("postgresql://", f"{driver}://", 1)


@contextlib.contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """Create a uniquely named database; drop it (forcefully) afterwards. Yields its name."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(PG_SERVER_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_SERVER_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- tables


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)
