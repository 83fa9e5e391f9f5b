"""Sync (psycopg 3, threadpool) vs async (asyncpg) on PostgreSQL, measured with wrk.

    .venv/bin/python -m bench.sync_vs_async.run [--duration 10] [--connections 64,256]

Creates its own database, seeds 10,000 tasks (100 owners x 100), starts uvicorn (1 worker,
uvloop + httptools, no access log), warms each endpoint up, runs `wrk -t1` per endpoint and
connection count, prints a markdown table, stops the server and drops the database.
"""

import argparse
import io
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from bench.harness import (
    LUA,
    RESULTS,
    ProcSampler,
    Server,
    free_port,
    fresh_pg_database,
    machine_info,
    markdown_table,
    pg_url,
    run_wrk,
    uvicorn_argv,
)

OWNERS = 100
TASKS_PER_OWNER = 100
OWNER_ID = "00000000-0000-4000-8000-000000000001"
SCHEMA = """
CREATE TABLE task (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    title varchar NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX ix_task_owner_created ON task (owner_id, created_at);
"""


def seed(dbname: str) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    owners = [uuid.UUID(OWNER_ID), *(uuid.uuid4() for _ in range(OWNERS - 1))]
    buf = io.StringIO()
    for o, owner in enumerate(owners):
        for t in range(TASKS_PER_OWNER):
            created = start + timedelta(minutes=o * TASKS_PER_OWNER + t)
            buf.write(f"{uuid.uuid4()}\t{owner}\tTask {t} of owner {o}\t{created.isoformat()}\n")
    with psycopg.connect(pg_url(dbname)) as conn:
        conn.execute(SCHEMA)
        with conn.cursor().copy("COPY task (id, owner_id, title, created_at) FROM STDIN") as cp:
            cp.write(buf.getvalue())
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE task")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", default="64,256")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole matrix")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    info = machine_info()
    print(
        f"date {info['date']}, nproc {info['nproc']}, {info['arch']} ({info['cpu']}), "
        f"Python {info['python']}, commit {info['commit']}",
        file=sys.stderr,
    )

    rows = []
    script = LUA / "get.lua"
    with fresh_pg_database("bench_sva") as dbname:
        seed(dbname)
        port = free_port()
        env = {
            **os.environ,
            "BENCH_PG_DB": dbname,
            "BENCH_OWNER_ID": OWNER_ID,
        }
        server = Server(
            argv=uvicorn_argv("bench.sync_vs_async.app:app", port),
            env=env,
            port=port,
            ready_path="/health",
            log_path=RESULTS / "sync_vs_async_server.log",
        )
        with server:
            for path in ("/sync/tasks", "/async/tasks"):  # warm both pools and code paths
                run_wrk(server.base_url + path, script=script, connections=16, duration=args.warmup)
            for rnd in range(args.rounds):
                for c in connections:
                    for path in ("/sync/tasks", "/async/tasks"):
                        assert server.proc is not None
                        with ProcSampler(server.proc.pid) as stats:
                            r = run_wrk(
                                server.base_url + path,
                                script=script,
                                connections=c,
                                duration=args.duration,
                            )
                        rows.append(
                            [
                                path,
                                c,
                                rnd + 1,
                                f"{r.rps:,.0f}",
                                f"{r.p50_ms:.1f}",
                                f"{r.p99_ms:.1f}",
                                r.errors,
                                f"{stats.cpu_seconds:.1f}",
                                f"{stats.peak_rss / 2**20:.0f}",
                            ]
                        )
                        print(f"  {path} c={c}: {r.rps:,.0f} req/s", file=sys.stderr)
    print(
        markdown_table(
            [
                "endpoint",
                "connections",
                "round",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "server CPU s",
                "peak RSS MB",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
