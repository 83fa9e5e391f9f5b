"""CPU per request, in process: the quick measure between two wrk runs.

    .venv/bin/python -m bench.inproc                       # PostgreSQL, every hot path
    .venv/bin/python -m bench.inproc --only list --profile # pyinstrument of the list path
    .venv/bin/python -m bench.inproc --db sqlite

Builds the real app (production-like settings, throttles off) on a fresh database, signs a
user in, creates 40 tasks through the API, then sends each hot request `--requests` times, one
after the other, through httpx's ASGI transport on a uvloop loop, and prints the process CPU
time per request. No sockets and no HTTP parsing, so this is the app's own share (plus the
client's, the same for every variant): comparable between two commits on one machine, not a
replacement for `bench/run.py`.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PYTHON, ROOT, fresh_pg_database, pg_url

PASSWORD = "bench-Password-1234"


def _environment(database_url: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "RATE_LIMIT_ENABLED": "false",
        "DOCS_ENABLED": "false",
        "MAIL_BACKEND": "console",
        "PASSWORD_RECOVERY_ENABLED": "false",
        "EMAIL_VERIFICATION_ENABLED": "false",
        # Production's level: every request writes its access line (to a file, below).
        "LOG_LEVEL": "INFO",
    }


async def _run(args: argparse.Namespace) -> None:
    import httpx

    from app.main import create_app

    app = create_app()
    # The client's own request log is not the app's cost.
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            api = "/api/v1"
            email = f"inproc-{secrets.token_hex(4)}@example.com"
            reply = await client.post(
                f"{api}/auth/register", json={"email": email, "password": PASSWORD}
            )
            assert reply.status_code == 202, reply.text
            reply = await client.post(
                f"{api}/auth/token", data={"username": email, "password": PASSWORD}
            )
            token = reply.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            ids = []
            for n in range(40):
                reply = await client.post(
                    f"{api}/tasks", json={"title": f"Task {n}"}, headers=headers
                )
                assert reply.status_code == 201, reply.text
                ids.append(reply.json()["id"])
            etags = dict.fromkeys(ids, "")
            for task_id in ids:
                etags[task_id] = (
                    await client.get(f"{api}/tasks/{task_id}", headers=headers)
                ).headers["etag"]
            counter = iter(range(10**9))

            async def list_() -> None:
                reply = await client.get(f"{api}/tasks?limit=20", headers=headers)
                assert reply.status_code == 200
                assert len(reply.json()["items"]) == 20

            async def read_one() -> None:
                reply = await client.get(f"{api}/tasks/{ids[next(counter) % 40]}", headers=headers)
                assert reply.status_code == 200

            async def users_me() -> None:
                reply = await client.get(f"{api}/users/me", headers=headers)
                assert reply.status_code == 200

            async def create() -> None:
                reply = await client.post(
                    f"{api}/tasks", json={"title": "Created", "description": "x"}, headers=headers
                )
                assert reply.status_code == 201

            async def patch() -> None:
                # A new title every time, as bench/run.py's PATCH sends: every request writes.
                n = next(counter)
                task_id = ids[n % 40]
                reply = await client.patch(
                    f"{api}/tasks/{task_id}",
                    json={"title": f"Edited {n}"},
                    headers={**headers, "If-Match": etags[task_id]},
                )
                assert reply.status_code == 200, reply.text
                etags[task_id] = reply.headers["etag"]

            paths: dict[str, Callable[[], Awaitable[None]]] = {
                "list": list_,
                "read_one": read_one,
                "users_me": users_me,
                "create": create,
                "patch": patch,
            }
            chosen = args.only.split(",") if args.only else list(paths)
            for name in chosen:
                call = paths[name]
                for _ in range(50):
                    await call()
                profiler = None
                if args.profile:
                    from pyinstrument import Profiler

                    profiler = Profiler(interval=0.0002, async_mode="disabled")
                    profiler.start()
                cprof = None
                if args.cprofile:
                    import cProfile

                    cprof = cProfile.Profile()
                    cprof.enable()
                rounds = []
                for _ in range(args.rounds):
                    cpu0 = time.process_time()
                    for _ in range(args.requests // args.rounds):
                        await call()
                    rounds.append((time.process_time() - cpu0) / (args.requests // args.rounds))
                rounds.sort()
                if cprof is not None:
                    import pstats

                    cprof.disable()
                    out = ROOT / "bench" / "results" / f"cprofile-{name}.txt"
                    out.parent.mkdir(exist_ok=True)
                    with out.open("w") as stream:
                        stats = pstats.Stats(cprof, stream=stream)
                        stats.sort_stats("tottime").print_stats(45)
                        stats.sort_stats("cumulative").print_stats(90)
                    print(f"  profile: {out}")
                if profiler is not None:
                    profiler.stop()
                    out = ROOT / "bench" / "results" / f"inproc-{name}.txt"
                    out.parent.mkdir(exist_ok=True)
                    out.write_text(profiler.output_text(unicode=False, show_all=True))
                    print(f"  profile: {out}")
                # The best round is the least disturbed by the rest of the machine.
                best, median = rounds[0] * 1000, rounds[len(rounds) // 2] * 1000
                print(f"{name:10s} {best:6.2f} ms CPU/request (best round; median {median:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20, help="report the best round")
    parser.add_argument("--only", default="", help="comma-separated: list,read_one,...")
    parser.add_argument("--profile", action="store_true", help="pyinstrument each path")
    parser.add_argument("--cprofile", action="store_true", help="cProfile each path (flat)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the app (repeatable), e.g. --set LOG_LEVEL=WARNING for logs off",
    )
    args = parser.parse_args()

    def go(database_url: str) -> None:
        env = _environment(database_url)
        env.update(item.split("=", 1) for item in args.set)
        subprocess.run(
            [PYTHON, "-m", "app.cli", "migrate"],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        os.environ.update(env)
        # The app's log lines are written, as in production, but to a file, not the terminal.
        log = ROOT / "bench" / "results" / "inproc-app.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("w") as stream:
            os.dup2(stream.fileno(), 2)
        import uvloop

        uvloop.run(_run(args))

    if args.db == "postgres":
        with fresh_pg_database("tasks_inproc") as name:
            go(pg_url(name))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            go(f"sqlite:///{tmp}/inproc.db")


if __name__ == "__main__":
    main()
