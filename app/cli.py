"""`tasks-api`: serve the API, apply migrations, create an admin, purge the trash, check stored
emails, export the OpenAPI document."""

import argparse
import asyncio
import getpass
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from app.core.config import Settings, get_settings

if TYPE_CHECKING:
    from app.users.service import EmailNormalisation

ROOT = Path(__file__).resolve().parent.parent
# The committed API contract (tests/core/test_openapi.py compares it with the app's).
OPENAPI_FILE = ROOT / "openapi.json"


def _settings() -> "Settings":
    try:
        return get_settings()
    except ValidationError as exc:
        # Name every wrong setting, then stop: better than a traceback at the first request.
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        sys.exit("invalid configuration:\n" + "\n".join(lines))


def migrate() -> None:
    """Bring the database schema to the newest revision."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["settings"] = _settings()
    command.upgrade(config, "head")


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings()
    if not args.no_migrate:
        migrate()
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.LOG_LEVEL.lower(),
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )


def create_admin(args: argparse.Namespace) -> None:
    from app.bootstrap import check_admin_credentials
    from app.bootstrap import create_admin as create
    from app.core.db import Database
    from app.core.security import PasswordHasher

    settings = _settings()
    password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Password for the admin: ")
    try:
        email = check_admin_credentials(args.email, password)
    except ValueError as exc:
        sys.exit(str(exc))

    async def run() -> bool:
        database = Database(settings)
        try:
            return await create(database, PasswordHasher(settings), email=email, password=password)
        finally:
            await database.dispose()

    created = asyncio.run(run())
    print("admin created" if created else "an account with this email exists; left unchanged")


def purge_trash() -> None:
    """Delete for good the projects and tasks whose trash retention has run out."""
    from datetime import timedelta

    from app.core.db import Database
    from app.core.models import utcnow
    from app.trash.service import purge_expired_trash

    settings = _settings()
    # A job, not a request: its statements may run long (DB_CLI_STATEMENT_TIMEOUT_SECONDS).
    settings = settings.model_copy(
        update={"DB_STATEMENT_TIMEOUT_SECONDS": settings.DB_CLI_STATEMENT_TIMEOUT_SECONDS}
    )

    async def run() -> tuple[int, int]:
        database = Database(settings)
        try:
            async with database.sessionmaker() as session:
                result = await purge_expired_trash(
                    session,
                    now=utcnow(),
                    retention=timedelta(days=settings.TRASH_RETENTION_DAYS),
                )
                await session.commit()
                return result.tasks, result.projects
        finally:
            await database.dispose()

    tasks, projects = asyncio.run(run())
    print(f"purged {tasks} task(s) and {projects} project(s)")


def check_emails(args: argparse.Namespace) -> None:
    """List stored emails not in their canonical form; with --apply, rewrite those that can be.

    Exits 1 while accounts collide (their canonical forms are one), so a script can wait for
    an admin to change or delete all but one of each (PATCH or DELETE /api/v1/users/{id}).
    """
    from app.core.db import Database
    from app.users.service import normalise_stored_emails

    settings = _settings()

    async def run() -> "EmailNormalisation[uuid.UUID]":
        database = Database(settings)
        try:
            async with database.sessionmaker() as session:
                plan = await normalise_stored_emails(session, apply=args.apply)
                await session.commit()
                return plan
        finally:
            await database.dispose()

    plan = asyncio.run(run())
    verb = "rewrote" if args.apply else "would rewrite"
    for account_id, stored, canonical in plan.changes:
        print(f"{verb} {stored!r} -> {canonical!r} (account {account_id})")
    for account_id, stored in plan.unparsed:
        print(f"not an address by today's rules, left as it is: {stored!r} (account {account_id})")
    for canonical, accounts in plan.collisions.items():
        sharing = ", ".join(f"{stored!r} (account {account_id})" for account_id, stored in accounts)
        print(f"collision as {canonical!r}: {sharing}")
    print(
        f"{len(plan.changes)} to rewrite{' (done)' if args.apply else ''},"
        f" {len(plan.collisions)} collision(s), {len(plan.unparsed)} unparsed"
    )
    if plan.collisions:
        sys.exit(1)


def export_openapi(args: argparse.Namespace) -> None:
    """Write the app's OpenAPI document (built from fixed settings, not this machine's)."""
    from app.core.openapi import openapi_json

    text = openapi_json()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.output}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tasks-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="apply migrations, then serve the API")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--workers", type=int, default=1)
    serve_parser.add_argument("--no-migrate", action="store_true", help="skip `migrate`")
    serve_parser.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-For is trusted for the client address",
    )
    commands.add_parser("migrate", help="apply database migrations")
    admin_parser = commands.add_parser(
        "create-admin", help="create an admin (password from ADMIN_PASSWORD or a prompt)"
    )
    admin_parser.add_argument("--email", required=True)
    commands.add_parser(
        "purge-trash", help="delete what has been in the trash past TRASH_RETENTION_DAYS"
    )
    emails_parser = commands.add_parser(
        "check-emails",
        help="list stored emails not in canonical form and the accounts that collide (exit 1)",
    )
    emails_parser.add_argument(
        "--apply", action="store_true", help="rewrite every one that collides with no other"
    )

    export_parser = commands.add_parser(
        "export-openapi", help="write the OpenAPI document (the committed openapi.json)"
    )
    export_parser.add_argument(
        "--output",
        default=str(OPENAPI_FILE),
        metavar="PATH",
        help="where to write it; - for stdout (default: openapi.json at the repository root)",
    )

    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args)
    elif args.command == "migrate":
        migrate()
    elif args.command == "purge-trash":
        purge_trash()
    elif args.command == "export-openapi":
        export_openapi(args)
    elif args.command == "check-emails":
        check_emails(args)
    else:
        create_admin(args)


if __name__ == "__main__":
    main()
