"""The Tasks API benchmark: the real service under wrk, on PostgreSQL and SQLite, vs a floor.

    .venv/bin/python bench/run.py --smoke                 # CI: SQLite, 1 worker, ~30 s
    .venv/bin/python bench/run.py --db postgres --workers 1
    .venv/bin/python bench/run.py --db both --workers 1,4 --duration 10
    .venv/bin/python bench/run.py --scenarios users_me,sign_in --profile users_me

For each database and worker count it creates a fresh database (a SQLite file, or a new
PostgreSQL database), migrates it, starts `python -m uvicorn app.main:app --workers N
--no-access-log` with production settings (RATE_LIMIT_ENABLED=false, except for the sign-in
scenarios, which run against a second server with the throttles as configured), seeds users
through the API and bulk data with SQL, drives each scenario with `wrk -t1` (Lua scripts in
bench/lua/), samples the server's CPU time and peak RSS from /proc, and prints a markdown table
with every scenario's requests/s as a ratio to the floor (bench/floor_app.py, same server and
flags, measured in the same run at the same connection counts). Servers are stopped and
databases dropped on every exit path.

Exit status: 2 if a server fails to start or a seed step fails; 1 (with --smoke or --strict)
if any scenario saw a response >= 400 or a socket error; 0 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    LUA,
    PYTHON,
    RESULTS,
    ROOT,
    ProcSampler,
    Server,
    ServerFailed,
    WrkResult,
    free_port,
    fresh_pg_database,
    machine_info,
    markdown_table,
    pg_url,
    run_wrk,
    uvicorn_argv,
    wait_idle,
)

API = "/api/v1"
T = TypeVar("T")
PASSWORD = "bench-Password-1234"


# =========================================================================== scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    connections: int
    phase: str  # "app" (throttles off) or "signin" (throttles as configured)
    needs_tasks: bool = False
    smoke: bool = False


SCENARIOS = [
    Scenario("list", "list 20 tasks (signed in)", 64, "app", needs_tasks=True, smoke=True),
    Scenario("read_one", "read one task", 64, "app", needs_tasks=True),
    Scenario("list_c32", "list, 32 connections", 32, "app", needs_tasks=True),
    Scenario("list_c256", "list, 256 connections", 256, "app", needs_tasks=True),
    Scenario("list_c1024", "list, 1,024 connections", 1024, "app", needs_tasks=True),
    Scenario("list_user_1k", "list, user with 1,000 tasks", 64, "app", needs_tasks=True),
    Scenario("list_user_1m", "list, user with 1,000,000 tasks", 64, "app", needs_tasks=True),
    Scenario("create", "create a task", 64, "app", needs_tasks=True, smoke=True),
    Scenario("patch", "PATCH with If-Match", 64, "app", needs_tasks=True),
    Scenario("users_me", "GET /users/me", 64, "app", smoke=True),
    Scenario("sign_in", "sign in (argon2id)", 8, "signin", smoke=True),
    Scenario("list_storm", "list during a sign-in storm", 64, "signin", needs_tasks=True),
    # Last: if it exhausts the pool, the server stays jammed until the pool timeout.
    # More concurrent sign-ins than half the connection pool: shows whether sign-in, which
    # holds its session's connection while the rate limiter asks the pool for another, can
    # exhaust the pool (it did at 848111f..0006643: QueuePool timeouts, then 500s).
    Scenario("sign_in_c32", "sign in, 32 connections", 32, "signin"),
]
BY_NAME = {s.name: s for s in SCENARIOS}
# The sign-in load running alongside `list_storm` (its own row is reported as well).
STORM_CONNECTIONS = 8


@dataclass
class Sizes:
    users: int
    tasks_per_user: int
    big_users: dict[str, int]  # scenario name -> tasks of that user
    duration: float
    warmup: float


FULL = Sizes(
    users=32,
    tasks_per_user=40,
    big_users={"list_user_1k": 1_000, "list_user_1m": 1_000_000},
    duration=10,
    warmup=2,
)
SMOKE = Sizes(
    users=4,
    tasks_per_user=25,
    big_users={"list_user_1k": 1_000, "list_user_1m": 10_000},
    duration=1,
    warmup=0,
)


# =========================================================================== HTTP helpers


def http(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request to the service under test (127.0.0.1 only); (status, headers, JSON body)."""
    data = None
    hdrs = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            status, resp_headers = resp.status, {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status, resp_headers = exc.code, {k.lower(): v for k, v in exc.headers.items()}
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return status, resp_headers, body


class SeedFailed(RuntimeError):
    pass


def expect(status: int, body: Any, ok: tuple[int, ...], what: str) -> None:
    if status not in ok:
        raise SeedFailed(f"{what}: HTTP {status}: {str(body)[:500]}")


# =========================================================================== databases


@dataclass
class Target:
    """One database under test: its URL for the service, and how to reach it for bulk SQL."""

    kind: str  # "sqlite" | "postgres"
    url: str
    sqlite_path: Path | None = None
    pg_name: str | None = None


@contextlib.contextmanager
def fresh_target(kind: str) -> Iterator[Target]:
    if kind == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
        try:
            path = tmp / "bench.db"
            yield Target("sqlite", f"sqlite:///{path}", sqlite_path=path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        with fresh_pg_database("tasks_bench") as name:
            yield Target("postgres", pg_url(name), pg_name=name)


def service_env(target: Target, secret: str, *, throttles: bool) -> dict[str, str]:
    """Production settings; only the throttles (and the database) vary."""
    env = {k: v for k, v in os.environ.items() if k not in {"FIRST_ADMIN_EMAIL", "MAIL_BACKEND"}}
    env.update(
        ENVIRONMENT="production",
        SECRET_KEY=secret,
        DATABASE_URL=target.url,
        RATE_LIMIT_ENABLED="true" if throttles else "false",
        DOCS_ENABLED="false",
        # No mail server is involved: sign-up mails go to the log, recovery and address
        # confirmation are off.
        MAIL_BACKEND="console",
        PASSWORD_RECOVERY_ENABLED="false",
        EMAIL_VERIFICATION_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    env.pop("FIRST_ADMIN_PASSWORD", None)
    return env


def migrate(env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        subprocess.run(
            [PYTHON, "-m", "app.cli", "migrate"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=300,
        )


# =========================================================================== seeding: users


@dataclass
class Account:
    email: str
    token: str = ""
    user_id: str = ""


@dataclass
class Seeded:
    accounts: list[Account] = field(default_factory=list)
    big: dict[str, Account] = field(default_factory=dict)  # scenario -> its user
    # "<token> <path> <etag>" per task created through the API (read one, PATCH).
    task_targets: list[str] = field(default_factory=list)


def register_and_sign_in(base: str, email: str) -> Account:
    status, _, body = http(
        "POST",
        f"{base}{API}/auth/register",
        json_body={"email": email, "password": PASSWORD, "full_name": "Bench User"},
    )
    expect(status, body, (202,), f"register {email}")
    account = Account(email=email)
    sign_in(base, account)
    status, _, body = http("GET", f"{base}{API}/users/me", token=account.token)
    expect(status, body, (200,), f"read {email}")
    account.user_id = body["id"]
    return account


def sign_in(base: str, account: Account) -> None:
    status, _, body = http(
        "POST",
        f"{base}{API}/auth/token",
        form={"username": account.email, "password": PASSWORD, "grant_type": "password"},
    )
    expect(status, body, (200,), f"sign in {account.email}")
    account.token = body["access_token"]


def parallel(fn: Callable[..., Any], items: list[Any], workers: int = 4) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def seed_users(base: str, sizes: Sizes, names: set[str]) -> Seeded:
    run_id = secrets.token_hex(3)
    emails = [f"bench-{run_id}-{i}@example.com" for i in range(sizes.users)]
    seeded = Seeded(accounts=parallel(lambda e: register_and_sign_in(base, e), emails))
    for scenario in sizes.big_users:
        if scenario in names:
            seeded.big[scenario] = register_and_sign_in(
                base, f"bench-{run_id}-{scenario.replace('_', '-')}@example.com"
            )
    return seeded


# =========================================================================== seeding: tasks
# >>> TASKS WIRE-UP: everything that depends on the tasks API and schema is in this block.
# It targets `POST /api/v1/tasks` (JSON body, 201 with the task and an ETag header),
# `GET /api/v1/tasks?limit=20` (a Page), `GET/PATCH /api/v1/tasks/{id}` (PATCH needs If-Match)
# and the `task` table of app/tasks/models.py. If the endpoints or the table change shape,
# only this block (and TASK_BODY in bench/lua/create.lua's env) needs to follow.

TASKS = f"{API}/tasks"
LIST_PATH = f"{TASKS}?limit=20"
TASK_BODY = '{"title": "Benchmark task %d", "description": "Created by bench/run.py"}'
PATCH_BODY = '{"title": "Edited by bench %d"}'


def tasks_api_exists(base: str) -> bool:
    """The tasks router is mounted: an anonymous list is 401, not 404."""
    status, _, _ = http("GET", base + LIST_PATH)
    return status != 404


def create_task(base: str, account: Account, n: int) -> tuple[str, str]:
    status, headers, body = http(
        "POST", base + TASKS, json_body=json.loads(TASK_BODY % n), token=account.token
    )
    expect(status, body, (201,), "create a task")
    return body["id"], headers.get("etag", "")


def refresh_etags(base: str, targets: list[str]) -> list[str]:
    """The "<token> <path> <etag>" lines again, each with its task's current ETag."""

    def one(line: str) -> str:
        token, path, _ = line.split(" ")
        status, headers, body = http("GET", base + path, token=token)
        expect(status, body, (200,), f"read {path}")
        return f"{token} {path} {headers.get('etag', '')}"

    return parallel(one, targets)


def seed_tasks_api(base: str, seeded: Seeded, per_user: int) -> None:
    """A few tasks per user through the API; each becomes a read/PATCH target."""

    def one_user(account: Account) -> list[str]:
        targets = []
        for n in range(per_user):
            task_id, etag = create_task(base, account, n)
            targets.append(f"{account.token} {TASKS}/{task_id} {etag}")
        return targets

    for targets in parallel(one_user, seeded.accounts):
        seeded.task_targets.extend(targets)


def _order_keys(after: str | None, count: int) -> list[str]:
    try:
        from app.tasks.position import keys_after

        return list(keys_after(after, count))
    except ImportError:
        # 'd' + 4 base-62 digits: valid integer keys, all after any key the API hands out first.
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        out = []
        for i in range(1, count + 1):
            key = ""
            for _ in range(4):
                i, r = divmod(i, 62)
                key = digits[r] + key
            out.append("d" + key)
        return out


_COUNT_CLONES = (
    "INSERT INTO usage_counter (owner_id, resource, shard, used) VALUES (?, 'tasks', 0, ?)"
    " ON CONFLICT (owner_id, resource, shard)"
    " DO UPDATE SET used = usage_counter.used + excluded.used"
)


def seed_tasks_bulk(target: Target, base: str, account: Account, count: int) -> None:
    """`count` tasks for one user: one through the API, the rest cloned from it with SQL.

    The clone copies every column of the template row, giving each copy a new UUIDv7 id, its
    own title, creation/update instants one millisecond apart and, if the table has a
    `position` column, order keys after the template's, so the list sees a realistic table.
    """
    import uuid_utils.compat as uuid_compat

    template_id, _ = create_task(base, account, 0)
    rows_needed = count - 1
    if rows_needed <= 0:
        return
    if target.kind == "postgres":
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(target.url, row_factory=dict_row) as conn:
            template = conn.execute("SELECT * FROM task WHERE id = %s", (template_id,)).fetchone()
            assert template is not None
            columns = list(template)
            keys = _order_keys(template.get("position"), rows_needed)
            names = ", ".join(f'"{c}"' for c in columns)
            with conn.cursor().copy(f"COPY task ({names}) FROM STDIN") as copy:
                for i in range(rows_needed):
                    copy.write_row(
                        _clone(template, i, keys, new_id=uuid_compat.uuid7, as_text=False)
                    )
            # The account's usage counter (quotas) counts the clones as the API would have.
            if conn.execute("SELECT to_regclass('usage_counter') AS t").fetchone()["t"]:
                conn.execute(_COUNT_CLONES.replace("?", "%s"), (template["owner_id"], rows_needed))
            conn.commit()
            conn.autocommit = True
            # Vacuum now, or autovacuum does it later, competing with the measured scenarios.
            conn.execute("VACUUM (ANALYZE) task")
    else:
        assert target.sqlite_path is not None
        conn = sqlite3.connect(target.sqlite_path)
        try:
            conn.row_factory = sqlite3.Row
            hexid = uuid.UUID(template_id).hex
            row = conn.execute(
                "SELECT * FROM task WHERE id IN (?, ?)", (hexid, template_id)
            ).fetchone()
            assert row is not None
            template = dict(row)
            columns = list(template)
            keys = _order_keys(template.get("position"), rows_needed)
            dashed = len(str(template["id"])) == 36
            placeholders = ", ".join("?" for _ in columns)
            names = ", ".join(f'"{c}"' for c in columns)
            batch: list[list[Any]] = []
            for i in range(rows_needed):
                batch.append(
                    _clone(
                        template,
                        i,
                        keys,
                        new_id=lambda: (
                            str(uuid_compat.uuid7()) if dashed else uuid_compat.uuid7().hex
                        ),
                        as_text=True,
                    )
                )
                if len(batch) >= 50_000:
                    conn.executemany(f"INSERT INTO task ({names}) VALUES ({placeholders})", batch)
                    batch.clear()
            if batch:
                conn.executemany(f"INSERT INTO task ({names}) VALUES ({placeholders})", batch)
            counted = (
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'usage_counter'"
            )
            if conn.execute(counted).fetchone():
                conn.execute(_COUNT_CLONES, (template["owner_id"], rows_needed))
            conn.commit()
            conn.execute("ANALYZE")
        finally:
            conn.close()


def _clone(
    template: dict[str, Any], i: int, keys: list[str], *, new_id: Callable[[], Any], as_text: bool
) -> list[Any]:
    row = []
    for column, value in template.items():
        if column == "id":
            value = new_id()
        elif column == "title":
            value = f"Bulk task {i}"
        elif column == "position":
            value = keys[i]
        elif column in {"created_at", "updated_at"} and value is not None:
            when = datetime.fromisoformat(value) if isinstance(value, str) else value
            when = when + timedelta(milliseconds=i + 1)
            value = when.isoformat(sep=" ") if as_text else when
        row.append(value)
    return row


# <<< TASKS WIRE-UP ends
# =========================================================================== running


@dataclass
class Row:
    db: str
    workers: int
    scenario: str
    title: str
    result: WrkResult
    cpu_s: float
    rss_mb: float
    ratio: float | None = None
    round: int = 1
    rounds: int = 1  # > 1: a summary row, the median of that many rounds
    median: tuple[float, float, float] | None = None  # a summary row's req/s, p50, p99

    @property
    def rps(self) -> float:
        return self.median[0] if self.median else self.result.rps

    @property
    def p50_ms(self) -> float:
        return self.median[1] if self.median else self.result.p50_ms

    @property
    def p99_ms(self) -> float:
        return self.median[2] if self.median else self.result.p99_ms


@dataclass
class Context:
    args: argparse.Namespace
    sizes: Sizes
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    round: int = 1  # the round being measured (`--rounds`)

    def write_lines(self, name: str, lines: list[str]) -> Path:
        path = self.workdir / name
        path.write_text("\n".join(lines) + "\n")
        return path


def rounds(ctx: Context, items: list[T]) -> Iterator[T]:
    """`items` `--rounds` times over, interleaved, with `ctx.round` set to the round.

    Interleaved, not back to back: this VM drifts 5-15% over minutes, and a ratio between
    two scenarios (1,024 vs 32 connections) is only fair if the drift hits both alike.
    """
    for n in range(1, ctx.args.rounds + 1):
        ctx.round = n
        yield from items


def measure(
    ctx: Context,
    server: Server,
    *,
    db: str,
    workers: int,
    scenario: str,
    title: str,
    path: str,
    script: str,
    connections: int,
    env: dict[str, str] | None = None,
    warmup_env: dict[str, str] | None = None,
    background: Callable[[], Any] | None = None,
) -> Row:
    """Warm up, then one measured wrk run with the server's CPU and RSS sampled."""
    url = server.base_url + path
    lua = LUA / script
    assert server.proc is not None
    wait_idle(server.proc.pid)
    if ctx.sizes.warmup > 0:
        warm = warmup_env if warmup_env is not None else env
        run_wrk(url, script=lua, connections=connections, duration=ctx.sizes.warmup, env=warm)
        wait_idle(server.proc.pid)
    profiler = start_profiler(ctx, server, scenario, db, workers)
    try:
        with ProcSampler(server.proc.pid) as stats:
            if background is None:
                result = run_wrk(
                    url, script=lua, connections=connections, duration=ctx.sizes.duration, env=env
                )
                extra = None
            else:
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    pending = pool.submit(background)
                    time.sleep(0.5)  # the storm is already under way when measuring starts
                    result = run_wrk(
                        url,
                        script=lua,
                        connections=connections,
                        duration=ctx.sizes.duration,
                        env=env,
                    )
                    extra = pending.result()
    finally:
        stop_profiler(profiler)
    row = Row(
        db,
        workers,
        scenario,
        title,
        result,
        stats.cpu_seconds,
        stats.peak_rss / 2**20,
        round=ctx.round,
    )
    ctx.rows.append(row)
    report(ctx, row)
    if extra is not None:
        storm = Row(
            db,
            workers,
            "  storm",
            "  (the sign-in load alongside)",
            extra,
            0.0,
            0.0,
            round=ctx.round,
        )
        ctx.rows.append(storm)
        report(ctx, storm)
    return row


def report(ctx: Context, row: Row) -> None:
    r = row.result
    print(
        f"  {row.db:8} w={row.workers} r={row.round} {row.scenario:14} c={r.connections:<5} "
        f"{r.rps:9,.0f} req/s  p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms  "
        f"errors {r.errors}" + (f" {r.statuses} {r.socket_errors}" if r.errors else ""),
        file=sys.stderr,
        flush=True,
    )
    if r.requests == 0:
        ctx.failures.append(
            f"{row.db} w={row.workers} {row.scenario}: no response completed (server stalled)"
        )
    if r.errors:
        ctx.failures.append(
            f"{row.db} w={row.workers} {row.scenario}: {r.status_errors} responses >= 400 "
            f"{r.statuses}, socket errors {r.socket_errors}"
        )


def start_profiler(
    ctx: Context, server: Server, scenario: str, db: str, workers: int
) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy on one worker for the measured run, as collapsed stacks (bench/results/)."""
    if scenario not in ctx.args.profile:
        return None
    pyspy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    pid = server.worker_pids()[-1]  # with one worker the server itself; with N, a worker
    out = RESULTS / f"pyspy-{scenario}-{db}-w{workers}-{time.strftime('%Y%m%dT%H%M%S')}.txt"
    print(f"  py-spy on pid {pid} -> {out}", file=sys.stderr)
    argv = [pyspy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "-o", str(out)]
    argv += ["--duration", str(max(1, round(ctx.sizes.duration)))]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL), out


def stop_profiler(profiler: tuple[subprocess.Popen[bytes], Path] | None) -> None:
    if profiler is None:
        return
    proc, out = profiler
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if out.exists():
        summary = summarise_profile(out)
        out.with_suffix(".top.md").write_text(summary)
        print(summary, file=sys.stderr)


def summarise_profile(path: Path, top: int = 15) -> str:
    """Self and inclusive sample shares per function, from py-spy's collapsed stacks."""
    total = 0
    self_samples: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        self_samples[frames[-1]] = self_samples.get(frames[-1], 0) + count
    if not total:
        return "no samples\n"

    def table(counts: dict[str, int]) -> str:
        best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return markdown_table(
            ["share", "function (file:line)"],
            [[f"{100 * n / total:.1f}%", f"`{frame}`"] for frame, n in best],
        )

    return (
        f"py-spy samples: {total}\n\nSelf time (leaf frames)\n\n{table(self_samples)}\n\n"
        f"Inclusive time\n\n{table(inclusive)}\n"
    )


def app_server(target: Target, env: dict[str, str], workers: int, tag: str) -> Server:
    port = free_port()
    return Server(
        argv=uvicorn_argv("app.main:app", port, workers),
        env=env,
        port=port,
        ready_path="/health/ready",
        log_path=RESULTS / f"server-{target.kind}-w{workers}-{tag}.log",
    )


def run_floor(ctx: Context, workers: int, connections: list[int]) -> dict[int, float]:
    port = free_port()
    server = Server(
        argv=uvicorn_argv("bench.floor_app:app", port, workers),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        port=port,
        ready_path="/health/ready",
        log_path=RESULTS / f"server-floor-w{workers}.log",
    )
    measured: dict[int, list[float]] = {c: [] for c in connections}
    with server:
        for c in rounds(ctx, connections):
            row = measure(
                ctx,
                server,
                db="-",
                workers=workers,
                scenario="floor",
                title="floor: 20 tasks from memory",
                path=LIST_PATH,
                script="get.lua",
                connections=c,
            )
            row.ratio = 1.0
            measured[c].append(row.result.rps)
    return {c: statistics.median(rps) for c, rps in measured.items()}


def run_config(ctx: Context, kind: str, workers: int, names: list[str]) -> None:
    secret = secrets.token_urlsafe(48)
    sizes = ctx.sizes
    with fresh_target(kind) as target:
        migrate(service_env(target, secret, throttles=False), RESULTS / f"migrate-{kind}.log")

        # ---- phase 1: throttles off
        server = app_server(target, service_env(target, secret, throttles=False), workers, "app")
        with server:
            base = server.base_url
            has_tasks = tasks_api_exists(base)
            wanted = [n for n in names if has_tasks or not BY_NAME[n].needs_tasks]
            skipped = sorted(set(names) - set(wanted))
            if skipped:
                print(f"  skipped (no {TASKS} yet): {', '.join(skipped)}", file=sys.stderr)
            t0 = time.monotonic()
            seeded = seed_users(base, sizes, set(wanted))
            if has_tasks:
                seed_tasks_api(base, seeded, sizes.tasks_per_user)
                for scenario, account in seeded.big.items():
                    seed_tasks_bulk(target, base, account, sizes.big_users[scenario])
            print(f"  seeded in {time.monotonic() - t0:.1f}s", file=sys.stderr)
            tokens = ctx.write_lines("tokens.txt", [a.token for a in seeded.accounts])
            token_env = {"BENCH_TOKEN_FILE": str(tokens)}
            common = {"db": kind, "workers": workers}

            def run(
                name: str,
                path: str,
                script: str,
                env: dict[str, str],
                warmup_env: dict[str, str] | None = None,
            ) -> None:
                s = BY_NAME[name]
                measure(
                    ctx,
                    server,
                    **common,  # type: ignore[arg-type]
                    scenario=name,
                    title=s.title,
                    path=path,
                    script=script,
                    connections=s.connections,
                    env=env,
                    warmup_env=warmup_env,
                )

            app_names = [n for n in wanted if BY_NAME[n].phase == "app"]
            for name in rounds(ctx, app_names):
                if name in {"list", "list_c32", "list_c256", "list_c1024"}:
                    run(name, LIST_PATH, "auth_get.lua", token_env)
                elif name in sizes.big_users:
                    run(name, LIST_PATH, "auth_get.lua", {"BENCH_TOKEN": seeded.big[name].token})
                elif name == "read_one":
                    # "<token> <path>" lines: each task read with its owner's token.
                    lines = [" ".join(t.split(" ")[:2]) for t in seeded.task_targets]
                    reads = ctx.write_lines("reads.txt", lines)
                    run(name, TASKS, "auth_get.lua", {"BENCH_TOKEN_FILE": str(reads)})
                elif name == "create":
                    run(name, TASKS, "create.lua", {**token_env, "BENCH_BODY": TASK_BODY})
                elif name == "patch":
                    # Warm-up and measured run edit different tasks: a task edited in the
                    # warm-up has a newer ETag than the file says, and would answer 412.
                    # A later round starts from the ETags the last one left.
                    if ctx.round > 1:
                        seeded.task_targets = refresh_etags(base, seeded.task_targets)
                    third = len(seeded.task_targets) // 3
                    warm = ctx.write_lines("targets-warm.txt", seeded.task_targets[:third])
                    targets = ctx.write_lines("targets.txt", seeded.task_targets[third:])
                    env = {"BENCH_TARGETS_FILE": str(targets), "BENCH_BODY": PATCH_BODY}
                    warm_env = {**env, "BENCH_TARGETS_FILE": str(warm)}
                    run(name, TASKS, "patch_if_match.lua", env, warm_env)
                elif name == "users_me":
                    run(name, f"{API}/users/me", "auth_get.lua", token_env)

        # ---- phase 2: throttles as configured (sign-in scenarios)
        signin_names = [n for n in wanted if BY_NAME[n].phase == "signin"]
        if not signin_names:
            return
        server = app_server(target, service_env(target, secret, throttles=True), workers, "signin")
        with server:
            for account in seeded.accounts:  # fresh access tokens for this phase
                sign_in(server.base_url, account)
            tokens = ctx.write_lines("tokens.txt", [a.token for a in seeded.accounts])
            users = ctx.write_lines("users.txt", [f"{a.email} {PASSWORD}" for a in seeded.accounts])
            signin_env = {"BENCH_USERS_FILE": str(users)}
            for name in rounds(ctx, signin_names):
                s = BY_NAME[name]
                if name in {"sign_in", "sign_in_c32"}:
                    measure(
                        ctx,
                        server,
                        db=kind,
                        workers=workers,
                        scenario=name,
                        title=s.title,
                        path=f"{API}/auth/token",
                        script="signin.lua",
                        connections=s.connections,
                        env=signin_env,
                    )
                elif name == "list_storm":
                    url = server.base_url + f"{API}/auth/token"

                    def storm(url: str = url) -> WrkResult:
                        return run_wrk(
                            url,
                            script=LUA / "signin.lua",
                            connections=STORM_CONNECTIONS,
                            duration=sizes.duration + 1,
                            env=signin_env,
                        )

                    measure(
                        ctx,
                        server,
                        db=kind,
                        workers=workers,
                        scenario=name,
                        title=s.title,
                        path=LIST_PATH,
                        script="auth_get.lua",
                        connections=s.connections,
                        env={"BENCH_TOKEN_FILE": str(tokens)},
                        background=storm,
                    )


# =========================================================================== output


def results_table(rows: list[Row], *, show_round: bool = False) -> str:
    headers = [
        "db",
        "workers",
        *(["round"] if show_round else []),
        "scenario",
        "connections",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU s",
        "peak RSS MB",
        "x floor",
    ]
    body = []
    for row in rows:
        r = row.result
        body.append(
            [
                row.db,
                row.workers,
                *([row.round] if show_round else []),
                row.scenario.strip() if row.scenario.strip() != "storm" else "(storm: sign in)",
                r.connections,
                f"{row.rps:,.0f}",
                f"{row.p50_ms:.1f}",
                f"{row.p99_ms:.1f}",
                r.errors if r.requests else f"{r.errors} (stalled)",
                f"{row.cpu_s:.1f}" if row.cpu_s else "",
                f"{row.rss_mb:.0f}" if row.rss_mb else "",
                "" if row.ratio is None else f"{row.ratio:.{2 if row.ratio >= 0.1 else 3}f}",
            ]
        )
    return markdown_table(headers, body)


def median_rows(rows: list[Row], floor: dict[int, float]) -> list[Row]:
    """One row per scenario: the median req/s, p50 and p99 of its rounds, errors summed.

    CPU is the median too; peak RSS is the highest any round saw.
    """
    groups: dict[tuple[str, int, str, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.db, row.workers, row.scenario, row.result.connections), []).append(
            row
        )
    summary = []
    for (db, workers, scenario, connections), group in groups.items():
        errors = WrkResult(
            connections=connections,
            requests=sum(r.result.requests for r in group),
            duration_s=sum(r.result.duration_s for r in group),
            status_errors=sum(r.result.status_errors for r in group),
            socket_errors={
                kind: sum(r.result.socket_errors.get(kind, 0) for r in group)
                for kind in {k for r in group for k in r.result.socket_errors}
            },
        )
        row = Row(
            db,
            workers,
            scenario,
            group[0].title,
            errors,
            statistics.median(r.cpu_s for r in group),
            max(r.rss_mb for r in group),
            rounds=len(group),
            median=(
                statistics.median(r.rps for r in group),
                statistics.median(r.p50_ms for r in group),
                statistics.median(r.p99_ms for r in group),
            ),
        )
        ref = floor.get(connections) or floor.get(64)
        if scenario == "floor":
            row.ratio = 1.0
        elif ref and scenario.strip() != "storm":
            row.ratio = row.rps / ref
        summary.append(row)
    return summary


# Issue 5's targets, checked on one (database, workers) set of rows: (what, value, needed, met).
def target_checks(rows: list[Row], floor: dict[int, float]) -> list[tuple[str, str, str, bool]]:
    by = {r.scenario: r for r in rows}
    checks: list[tuple[str, str, str, bool]] = []

    def ratio_to_floor(name: str, needed: float) -> None:
        if name in by and floor.get(64):
            value = by[name].rps / floor[64]
            checks.append(
                (f"{name} / floor (64 conn.)", f"{value:.1%}", f">= {needed:.0%}", value >= needed)
            )

    ratio_to_floor("list", 0.15)
    ratio_to_floor("read_one", 0.20)
    ratio_to_floor("users_me", 0.20)
    ratio_to_floor("create", 0.10)
    ratio_to_floor("patch", 0.10)
    if "list_c32" in by:
        for name in ("list_c256", "list_c1024"):
            if name in by:
                value = by[name].rps / by["list_c32"].rps
                checks.append((f"{name} / list_c32", f"{value:.1%}", ">= 90%", value >= 0.90))
                errors = by[name].result.errors
                checks.append((f"{name} errors", str(errors), "0", errors == 0))
    if "list_storm" in by and "list" in by:
        value = by["list_storm"].p99_ms / by["list"].p99_ms
        checks.append(("list p99: storm / no storm", f"{value:.2f}x", "<= 2x", value <= 2.0))
    if "sign_in" in by:
        value = by["sign_in"].rps
        checks.append(("sign-ins per second", f"{value:.0f}", ">= 25", value >= 25))
    if "list_user_1k" in by and "list_user_1m" in by:
        value = by["list_user_1k"].rps / by["list_user_1m"].rps
        checks.append(
            ("list: 1k-task user / 1M-task user", f"{value:.2f}x", "<= 1.25x", value <= 1.25)
        )
    if "list_c1024" in by:
        value = by["list_c1024"].rss_mb
        checks.append(("peak RSS at 1,024 conn. (MB)", f"{value:.0f}", "< 250", value < 250))
    errors = sum(r.result.errors for r in rows)
    checks.append(("errors, all scenarios", str(errors), "0", errors == 0))
    return checks


def targets_table(rows: list[Row], floor: dict[int, float]) -> str:
    checks = target_checks(rows, floor)
    body = [
        [what, value, needed, "yes" if met else "**NO**"] for what, value, needed, met in checks
    ]
    return markdown_table(["target", "measured", "needed", "met"], body)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny CI run: SQLite, 1 worker")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="postgres")
    parser.add_argument("--workers", default="1", help="comma-separated, e.g. 1,4")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per scenario (2)")
    parser.add_argument(
        "--scenarios",
        default="",
        help="comma-separated names or prefixes; default all (smoke: the smoke set). "
        f"Names: {', '.join(s.name for s in SCENARIOS)}",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (no ratios)")
    parser.add_argument("--users", type=int, help="signed-in users to rotate over (32)")
    parser.add_argument("--big-user-tasks", type=int, help="tasks of the big user (1,000,000)")
    parser.add_argument(
        "--profile", default="", help="comma-separated scenarios to record with py-spy"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every scenario this many times, interleaved, and add the medians and "
        "the target check (3 for a run that checks issue 5's targets)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 on any error (as --smoke)")
    parser.add_argument("--out", type=Path, help="also write the tables here (markdown)")
    args = parser.parse_args(argv)
    args.profile = {p for p in args.profile.split(",") if p}
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.smoke:
        args.rounds = 1
    return args


def select_scenarios(args: argparse.Namespace) -> list[str]:
    if not args.scenarios:
        return [s.name for s in SCENARIOS if s.smoke or not args.smoke]
    wanted = [w.strip() for w in args.scenarios.split(",") if w.strip()]
    # An exact name selects that scenario only (`list`); anything else is a prefix (`list_c`).
    names = [
        s.name
        for s in SCENARIOS
        if any(s.name == w or (w not in BY_NAME and s.name.startswith(w)) for w in wanted)
    ]
    unknown = [w for w in wanted if not any(s.name.startswith(w) for s in SCENARIOS)]
    if unknown and unknown != ["floor"]:
        raise SystemExit(f"unknown scenarios: {', '.join(unknown)}")
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base_sizes = SMOKE if args.smoke else FULL
    sizes = Sizes(
        users=args.users or base_sizes.users,
        tasks_per_user=base_sizes.tasks_per_user,
        big_users=dict(base_sizes.big_users),
        duration=args.duration if args.duration is not None else base_sizes.duration,
        warmup=args.warmup if args.warmup is not None else base_sizes.warmup,
    )
    if args.big_user_tasks:
        sizes.big_users["list_user_1m"] = args.big_user_tasks
    dbs = ["sqlite"] if args.smoke else (["sqlite", "postgres"] if args.db == "both" else [args.db])
    workers = [1] if args.smoke else [int(w) for w in args.workers.split(",")]
    names = select_scenarios(args)
    strict = args.smoke or args.strict

    info = machine_info()
    command = " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    header = (
        f"{info['date']}; nproc {info['nproc']}, {info['arch']} ({info['cpu']}); "
        f"Python {info['python']}; commit {info['commit']}; wrk -t1; `{command}`"
    )
    print(header, file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="tasks-bench-lua-"))
    ctx = Context(args=args, sizes=sizes, workdir=workdir)
    started = time.monotonic()
    code = 0
    tables: list[str] = []
    floors: dict[int, dict[int, float]] = {}
    try:
        for w in workers:
            floor: dict[int, float] = {}
            floors[w] = floor
            if not args.no_floor:
                wanted_conns = sorted({BY_NAME[n].connections for n in names} | {64})
                if args.smoke:
                    wanted_conns = [64]
                print(f"== floor, {w} worker(s)", file=sys.stderr)
                floor.update(run_floor(ctx, w, wanted_conns))
            for kind in dbs:
                print(f"== {kind}, {w} worker(s)", file=sys.stderr)
                first = len(ctx.rows)
                run_config(ctx, kind, w, names)
                for row in ctx.rows[first:]:
                    ref = floor.get(row.result.connections) or floor.get(64)
                    if ref and row.scenario.strip() != "storm":
                        row.ratio = row.result.rps / ref
    except (ServerFailed, SeedFailed, subprocess.CalledProcessError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        code = 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for w in workers:
        rows = [r for r in ctx.rows if r.workers == w]
        if not rows:
            continue
        floor = floors.get(w, {})
        if args.rounds == 1:
            tables.append(f"### {w} worker(s)\n\n{results_table(rows)}")
            summary = rows
        else:
            summary = median_rows(rows, floor)
            tables.append(
                f"### {w} worker(s): median of {args.rounds} interleaved rounds\n\n"
                f"{results_table(summary)}"
            )
            tables.append(
                f"### {w} worker(s): every round\n\n{results_table(rows, show_round=True)}"
            )
        # A smoke run's second-long SQLite numbers say nothing about the targets.
        for kind in [] if args.smoke else dbs:
            measured = [r for r in summary if r.db == kind]
            if measured:
                tables.append(
                    f"### Targets: {kind}, {w} worker(s) (issue 5 sets them for postgres, 1 "
                    f"worker)\n\n{targets_table(measured, floor)}"
                )
    output = f"{header}\n\n" + "\n\n".join(tables) + "\n"
    print(output)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"run-{stamp}.md").write_text(output)
    if args.out:
        args.out.write_text(output)
    print(f"finished in {time.monotonic() - started:.0f}s", file=sys.stderr)
    if code == 0 and ctx.failures:
        print("errors:\n  " + "\n  ".join(ctx.failures), file=sys.stderr)
        if strict:
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
