"""`tasks-api`: serve the API, run migrations, and the operator's jobs and checks.

Exit status, for scripts: 0 done; 1 a check found problems (`check-emails`, `check-config`,
`migrate check`) or a job refused (`seed-demo` on an existing account); 2 a usage error (an
unknown option, a bad value); 78 the settings are invalid (EX_CONFIG of sysexits.h; every bad
setting is named); 3 Uvicorn could not start (its own code).
"""

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import uuid
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from app.core.config import Settings, get_settings

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from uvicorn import Config as UvicornConfig

    from app.users.service import EmailNormalisation

ROOT = Path(__file__).resolve().parent.parent
# The committed API contract (tests/core/test_openapi.py compares it with the app's).
OPENAPI_FILE = ROOT / "openapi.json"

EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78

# Open files a worker needs besides its client connections and request pool: the rate
# limiter's and the listener's connections, logs, pipes, the app's own files, with room.
OTHER_OPEN_FILES = 128

cli = typer.Typer(
    name="tasks-api",
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    # Plain click output: stable for scripts and logs, no boxes to wrap a message.
    rich_markup_mode=None,
    # A traceback with its locals would print passwords and settings.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
migrate_cli = typer.Typer(
    help="Database migrations; a bare `tasks-api migrate` upgrades to the newest revision.",
    no_args_is_help=False,
)
cli.add_typer(migrate_cli, name="migrate")


def main(argv: list[str] | None = None) -> None:
    """The console script: run the command line. Returns on success, so a caller in the same
    process (a test, a script) goes on; SystemExit with the status otherwise."""
    try:
        cli(args=argv, prog_name="tasks-api")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def _config_errors(exc: ValidationError) -> list[str]:
    """One line per wrong setting (a model rule may name several, one per line)."""
    lines: list[str] = []
    for error in exc.errors():
        where = ".".join(map(str, error["loc"])) or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.extend(f"{where}: {part}" for part in message.splitlines())
    return lines


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        # Name every wrong setting, then stop: better than a traceback at the first request.
        listing = "\n".join(f"  {line}" for line in _config_errors(exc))
        typer.echo(f"invalid configuration:\n{listing}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


# Migrations


def _alembic_config(settings: Settings) -> "AlembicConfig":
    from alembic.config import Config

    from app.core.logging import configure_logging

    # The service's log format and LOG_LEVEL for alembic's lines too, not alembic.ini's.
    configure_logging(settings)
    # stdout named at call time: alembic's default is the one of import time.
    config = Config(str(ROOT / "alembic.ini"), stdout=sys.stdout)
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["settings"] = settings
    config.attributes["configure_logger"] = False
    return config


def _upgrade(revision: str = "head") -> None:
    from alembic import command

    command.upgrade(_alembic_config(_settings()), revision)


@migrate_cli.callback(invoke_without_command=True)
def migrate(ctx: typer.Context) -> None:
    """Database migrations; without a subcommand, upgrade to the newest revision (head).

    On PostgreSQL each run holds an advisory lock, so instances migrating at once take turns.
    """
    if ctx.invoked_subcommand is None:
        _upgrade("head")


@migrate_cli.command("upgrade")
def migrate_upgrade(
    revision: Annotated[str, typer.Argument(help="the revision to reach (+1 for one step)")] = (
        "head"
    ),
) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    _upgrade(revision)


@migrate_cli.command("downgrade", context_settings={"ignore_unknown_options": True})
def migrate_downgrade(
    revision: Annotated[str, typer.Argument(help="the revision to reach: an id, -1, or base")],
) -> None:
    """Downgrade the schema to REVISION (an older release's code may need it first)."""
    from alembic import command

    command.downgrade(_alembic_config(_settings()), revision)


@migrate_cli.command("current")
def migrate_current() -> None:
    """Print the database's revision and whether it is the newest (head)."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    config = _alembic_config(_settings())
    script = ScriptDirectory.from_config(config)
    found: list[str] = []

    def read(_: Any, context: Any) -> list[Any]:
        found.extend(context.get_current_heads())
        return []

    with EnvironmentContext(config, script, fn=read, dont_mutate=True):
        script.run_env()
    heads = set(script.get_heads())
    if not found:
        typer.echo(f"current: none (an empty database); head is {', '.join(sorted(heads))}")
    elif set(found) == heads:
        typer.echo(f"current: {', '.join(found)} (head)")
    else:
        typer.echo(f"current: {', '.join(found)} (behind head {', '.join(sorted(heads))})")


@migrate_cli.command("check")
def migrate_check() -> None:
    """Exit 1 unless the database is at head and the models match the migrations (no drift)."""
    from alembic import command
    from alembic.util import CommandError

    try:
        command.check(_alembic_config(_settings()))
    except CommandError as exc:
        typer.echo(f"migrate check: {exc}", err=True)
        raise typer.Exit(EXIT_PROBLEMS) from None
    typer.echo("the database is at head and matches the models")


# Serving


def _raise_open_file_limit(settings: Settings) -> str:
    """Raise this process's open-file limit (workers inherit it) to the hard limit; what it is."""
    import resource

    # Per process: each worker holds its own connections and pools.
    needed = (
        settings.SERVE_LIMIT_CONCURRENCY
        + settings.DB_POOL_SIZE
        + settings.DB_MAX_OVERFLOW
        + OTHER_OPEN_FILES
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            return f"open files: {soft} per process, could not raise it ({exc})"
    if soft < needed:
        return (
            f"open files: {soft} per process, below the {needed} a worker may need: raise the"
            " hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower SERVE_LIMIT_CONCURRENCY"
        )
    return f"open files: {soft} per process (a worker needs up to {needed})"


def _addresses(settings: Settings, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    docs = f"docs {base}/docs" if settings.docs_enabled else "docs off (DOCS_ENABLED)"
    return f"{settings.PROJECT_NAME} on {base} — {docs}, health {base}/health/ready"


def _run_uvicorn(config: "UvicornConfig") -> None:
    """Run Uvicorn until a signal stops it; return (status 0) once it has drained."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if config.workers > 1:
        # The supervisor passes SIGTERM to each worker, waits for them to drain and returns.
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)

    def after_drain(signum: int, _: FrameType | None) -> None:
        # Uvicorn raises the signal that stopped it again once it has drained, for the handler
        # that was there before it: after a graceful shutdown that is a success (exit 0, not
        # 143). Before Uvicorn took the signal over, stop at once as by default.
        if not server.started:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, after_drain)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C: Uvicorn has drained, as on SIGTERM
        server.run()
    if not server.started:
        raise typer.Exit(3)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="the address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="the port to listen on")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=256, help="worker processes [default: WEB_CONCURRENCY, 1]"),
    ] = None,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="skip `migrate` (another instance runs it)")
    ] = False,
) -> None:
    """Apply migrations, then serve the API with Uvicorn (production-ready).

    On SIGTERM each worker stops accepting, lets requests in flight finish for
    SHUTDOWN_GRACE_SECONDS, cancels the rest, and the process exits 0. Client addresses
    behind a proxy are the app's business (FORWARDED_ALLOW_IPS), never Uvicorn's.
    """
    import uvicorn

    from app.core.metrics import prepare_multiprocess_directory

    settings = _settings()
    if not no_migrate:
        _upgrade("head")
    worker_count = workers or settings.WEB_CONCURRENCY
    # Before the workers start: they inherit the directory through the environment.
    metrics_directory = prepare_multiprocess_directory(
        settings, workers=worker_count, environ=os.environ
    )
    if metrics_directory is not None:
        typer.echo(f"metrics of the {worker_count} workers meet in {metrics_directory}")
    typer.echo(_raise_open_file_limit(settings))
    typer.echo(_addresses(settings, host, port))
    from app.core.logging import configure_logging

    # Uvicorn's own lines (the supervisor's too) in the service's format, not its log config.
    configure_logging(settings)
    config = uvicorn.Config(
        "app.main:app",
        log_config=None,
        host=host,
        port=port,
        workers=worker_count,
        log_level=settings.LOG_LEVEL.lower(),
        # The app decides client addresses (FORWARDED_ALLOW_IPS) and writes its access lines.
        proxy_headers=False,
        access_log=False,
        timeout_graceful_shutdown=settings.SHUTDOWN_GRACE_SECONDS,
        timeout_keep_alive=settings.SERVE_KEEP_ALIVE_SECONDS,
        limit_concurrency=settings.SERVE_LIMIT_CONCURRENCY,
        backlog=settings.SERVE_BACKLOG,
    )
    _run_uvicorn(config)


# Accounts and data


@cli.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="the admin's email address")],
) -> None:
    """Create an admin (password from ADMIN_PASSWORD or a prompt); an existing account is kept."""
    from app.bootstrap import check_admin_credentials
    from app.bootstrap import create_admin as create
    from app.core.db import Database
    from app.core.security import PasswordHasher

    settings = _settings()
    password = os.environ.get("ADMIN_PASSWORD") or typer.prompt(
        "Password for the admin", hide_input=True
    )
    try:
        email = check_admin_credentials(email, password)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--email' or ADMIN_PASSWORD") from None

    async def run() -> bool:
        database = Database(settings)
        try:
            return await create(database, PasswordHasher(settings), email=email, password=password)
        finally:
            await database.dispose()

    created = asyncio.run(run())
    typer.echo("admin created" if created else "an account with this email exists; left unchanged")


@cli.command("seed-demo")
def seed_demo(
    email: Annotated[str, typer.Option(help="the demo account's email")] = "demo@example.com",
    password: Annotated[
        str | None,
        typer.Option(help="its password [default: a generated one, printed once]"),
    ] = None,
) -> None:
    """Create a demo account with two projects, three labels and a few tasks (exit 1 if the
    email is taken: nothing is changed)."""
    from app.bootstrap import check_admin_credentials
    from app.core.db import Database
    from app.core.security import PasswordHasher
    from app.demo import DemoAccount
    from app.demo import seed_demo as seed

    settings = _settings()
    chosen = password or secrets.token_urlsafe(12)
    try:
        email = check_admin_credentials(email, chosen)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--email' or '--password'") from None

    async def run() -> DemoAccount | None:
        database = Database(settings)
        try:
            return await seed(
                database, PasswordHasher(settings), settings, email=email, password=chosen
            )
        finally:
            await database.dispose()

    account = asyncio.run(run())
    if account is None:
        typer.echo(f"an account with email {email} exists; nothing changed", err=True)
        raise typer.Exit(EXIT_PROBLEMS)
    typer.echo(
        f"created the demo account {email} (account {account.user_id}): {account.projects}"
        f" projects with the Inbox, {account.labels} labels, {account.tasks} tasks"
    )
    if password is None:
        typer.echo(f"password (shown once): {chosen}")


@cli.command("purge-trash")
def purge_trash() -> None:
    """Delete for good what has been in the trash past TRASH_RETENTION_DAYS."""
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
    typer.echo(f"purged {tasks} task(s) and {projects} project(s)")


@cli.command("check-emails")
def check_emails(
    apply: Annotated[
        bool, typer.Option("--apply", help="rewrite every one that collides with no other")
    ] = False,
) -> None:
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
                plan = await normalise_stored_emails(session, apply=apply)
                await session.commit()
                return plan
        finally:
            await database.dispose()

    plan = asyncio.run(run())
    verb = "rewrote" if apply else "would rewrite"
    for account_id, stored, canonical in plan.changes:
        typer.echo(f"{verb} {stored!r} -> {canonical!r} (account {account_id})")
    for account_id, stored in plan.unparsed:
        typer.echo(
            f"not an address by today's rules, left as it is: {stored!r} (account {account_id})"
        )
    for canonical, accounts in plan.collisions.items():
        sharing = ", ".join(f"{stored!r} (account {account_id})" for account_id, stored in accounts)
        typer.echo(f"collision as {canonical!r}: {sharing}")
    typer.echo(
        f"{len(plan.changes)} to rewrite{' (done)' if apply else ''},"
        f" {len(plan.collisions)} collision(s), {len(plan.unparsed)} unparsed"
    )
    if plan.collisions:
        raise typer.Exit(EXIT_PROBLEMS)


# Checks and documents


@cli.command("check-config")
def check_config() -> None:
    """Validate the settings, and list everything production would refuse in them.

    Exits 1 if the settings are invalid here, or if ENVIRONMENT=production would refuse to
    start with them (each reason is printed); 0 if production would start.
    """
    try:
        settings = get_settings()
    except ValidationError as exc:
        for line in _config_errors(exc):
            typer.echo(f"invalid: {line}")
        raise typer.Exit(EXIT_PROBLEMS) from None
    typer.echo(f"the settings are valid for ENVIRONMENT={settings.ENVIRONMENT}")
    findings = settings.model_copy(update={"ENVIRONMENT": "production"}).production_refusals()
    # The validator itself, on the same values as production: a rule it has that the list
    # above lacks still shows.
    try:
        Settings.model_validate({**settings.model_dump(), "ENVIRONMENT": "production"})
    except ValidationError as exc:
        others = [line.removeprefix("settings: ") for line in _config_errors(exc)]
        findings += [line for line in others if line not in findings]
    for finding in findings:
        typer.echo(f"production would refuse: {finding}")
    if findings:
        raise typer.Exit(EXIT_PROBLEMS)
    typer.echo("production would start with these settings")


@cli.command("export-openapi")
def export_openapi(
    output: Annotated[
        str,
        typer.Option(
            metavar="PATH",
            help="where to write it; - for stdout [default: openapi.json at the repository root]",
            show_default=False,
        ),
    ] = str(OPENAPI_FILE),
) -> None:
    """Write the OpenAPI document (the committed openapi.json), built from fixed settings."""
    from app.core.openapi import openapi_json

    text = openapi_json()
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8", newline="\n")
        typer.echo(f"wrote {output}", err=True)


if __name__ == "__main__":
    main()
