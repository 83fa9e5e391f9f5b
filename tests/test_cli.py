"""`tasks-api`: every command through Typer's runner (help, exit codes, output), the
migrations' advisory lock on PostgreSQL, and check-emails with an admin resolving collisions.

Exit codes scripts rely on: 0 done, 1 a check found problems, 2 a usage error, 78 invalid
settings. `serve` itself runs in a real process in tests/test_serve.py.
"""

import ast
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from typer.testing import CliRunner, Result

from app.cli import EXIT_CONFIG, cli
from app.core.config import EXAMPLE_SECRET_KEY, get_settings
from app.core.openapi import openapi_json
from tests.auth.helpers import execute, uuid_param
from tests.conftest import ROOT, alembic_config, new_database_url, settings_for, sync_url
from tests.factories import (
    ADMIN_SETTINGS,
    API,
    DEFAULT_PASSWORD,
    bearer,
    register,
    sign_in,
    sign_in_admin,
)
from tests.helpers import HANG_GUARD

# Written in these forms by an older release (or by hand): they are not sign-up's form.
LEGACY = "bob@xn--bcher-kva.example"
LONE_LEGACY = "carol@xn--bcher-kva.example"


def _store_as(engine: Engine, account_id: str, email: str) -> None:
    execute(
        engine,
        'UPDATE "user" SET email = :email WHERE id = :id',
        email=email,
        id=uuid_param(engine, account_id),
    )


runner = CliRunner()


def run(*argv: str) -> Result:
    """`tasks-api ARGV`, in this process (the environment is the test's)."""
    get_settings.cache_clear()  # the settings of this environment, as a new process reads them
    return runner.invoke(cli, list(argv), prog_name="tasks-api")


def _check(argv: list[str]) -> tuple[int, str]:
    result = run(*argv)
    return result.exit_code, result.stdout


def test_colliding_accounts_are_reported_until_an_admin_resolves_them(
    cli_env: None,
    make_app: Callable[..., FastAPI],
    housekeeping_engine: Engine,
) -> None:
    with TestClient(make_app(**ADMIN_SETTINGS)) as client:
        canonical = register(client, email="bob@bücher.example")
        legacy = register(client, email="bob-legacy@example.com", password="legacy-password")
        lone = register(client, email="carol-legacy@example.com")
        _store_as(housekeeping_engine, legacy["id"], LEGACY)
        _store_as(housekeeping_engine, lone["id"], LONE_LEGACY)

        # Both colliders sign in with what they registered with: the typed form wins.
        assert sign_in(client, "bob@bücher.example")
        assert sign_in(client, LEGACY, "legacy-password")

        code, out = _check(["check-emails"])
        assert code == 1
        assert "collision as 'bob@bücher.example': 'bob@bücher.example' (account" in out
        assert f"'{LEGACY}' (account {legacy['id']})" in out
        assert f"would rewrite '{LONE_LEGACY}' -> 'carol@bücher.example'" in out

        # The admin gives the legacy account another address; nothing collides any more.
        admin = sign_in_admin(client)
        changed = client.patch(
            f"{API}/users/{legacy['id']}",
            json={"email": "bob.two@example.com"},
            headers=admin.headers,
        )
        assert changed.status_code == 200, changed.text

        code, out = _check(["check-emails", "--apply"])
        assert code == 0, out
        assert f"rewrote '{LONE_LEGACY}' -> 'carol@bücher.example'" in out
        assert "1 to rewrite (done), 0 collision(s), 0 unparsed" in out

        tokens = sign_in(client, "carol@bücher.example", DEFAULT_PASSWORD)
        me = client.get(f"{API}/users/me", headers=bearer(tokens["access_token"])).json()
        assert (me["id"], me["email"]) == (lone["id"], "carol@bücher.example")
        assert sign_in(client, "bob.two@example.com", "legacy-password")
        assert canonical["email"] == "bob@bücher.example"
        code, _ = _check(["check-emails"])
        assert code == 0


# Help and exit codes

COMMANDS = [
    ["serve"],
    ["migrate"],
    ["migrate", "upgrade"],
    ["migrate", "downgrade"],
    ["migrate", "current"],
    ["migrate", "check"],
    ["create-admin"],
    ["seed-demo"],
    ["purge-trash"],
    ["check-emails"],
    ["check-config"],
    ["export-openapi"],
]


def test_help_lists_every_command_and_the_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for name in {argv[0] for argv in COMMANDS}:
        assert re.search(rf"^  {name}\b", result.stdout, re.MULTILINE), name
    assert "78 the" in result.stdout


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_command_has_help(argv: list[str]) -> None:
    result = run(*argv, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: tasks-api {' '.join(argv)}")


def test_serve_help_names_its_options_and_not_the_proxy_one() -> None:
    out = run("serve", "--help").stdout
    for option in ("--host", "--port", "--workers", "--no-migrate"):
        assert option in out
    assert "--forwarded-allow-ips" not in out


@pytest.mark.parametrize(
    "argv",
    [["no-such-command"], ["serve", "--forwarded-allow-ips", "*"], ["serve", "--workers", "0"]],
    ids=["unknown-command", "removed-option", "bad-value"],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = run(*argv)
    assert result.exit_code == 2
    assert "Usage: tasks-api" in result.stderr


def test_invalid_settings_are_all_named_and_exit_78(
    cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "0")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    result = run("migrate", "current")
    assert result.exit_code == EXIT_CONFIG == 78
    assert result.stderr.startswith("invalid configuration:\n")
    assert "  DB_POOL_SIZE: " in result.stderr
    assert "  LOG_LEVEL: " in result.stderr


# check-config

PRODUCTION_READY = {
    "SECRET_KEY": "a-real-secret-that-is-long-enough-0123456789",
    "MAIL_BACKEND": "smtp",
    "SMTP_HOST": "smtp.example.com",
    "FRONTEND_URL": "https://app.example.com",
}


def test_check_config_lists_every_production_refusal(
    cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", EXAMPLE_SECRET_KEY)
    result = run("check-config")
    assert result.exit_code == 1, result.output
    assert "the settings are valid for ENVIRONMENT=test" in result.stdout
    refusals = [line for line in result.stdout.splitlines() if "production would refuse" in line]
    assert len(refusals) == 3, result.stdout
    assert "SECRET_KEY is the example value" in refusals[0]
    assert "needs mail" in refusals[1]
    assert "needs FRONTEND_URL" in refusals[2]


def test_check_config_passes_settings_production_accepts(
    cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PRODUCTION_READY.items():
        monkeypatch.setenv(name, value)
    result = run("check-config")
    assert result.exit_code == 0, result.output
    assert "production would start with these settings" in result.stdout
    monkeypatch.setenv("SECRET_KEY", "x" * 31)  # fine in test, too short in production
    result = run("check-config")
    assert result.exit_code == 1
    assert "production would refuse: SECRET_KEY must be at least 32 bytes" in result.stdout


def test_check_config_reports_invalid_settings(
    cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/tasks")
    result = run("check-config")
    assert result.exit_code == 1
    assert "invalid: DATABASE_URL: DATABASE_URL must be a sqlite:// or postgresql://" in (
        result.stdout
    )


# export-openapi and purge-trash


def test_export_openapi_writes_the_document(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    result = run("export-openapi", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"wrote {target}"
    assert target.read_text() == openapi_json()  # what tests/core/test_openapi.py compares
    printed = run("export-openapi", "--output", "-")
    assert json.loads(printed.stdout)["openapi"].startswith("3.1")


def test_purge_trash_reports_what_it_purged(cli_env: None) -> None:
    result = run("purge-trash")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "purged 0 task(s) and 0 project(s)"


# seed-demo


def test_seed_demo_creates_an_account_through_the_services_once(
    cli_env: None, make_app: Callable[..., FastAPI]
) -> None:
    result = run("seed-demo")
    assert result.exit_code == 0, result.output
    assert "created the demo account demo@example.com" in result.stdout
    password = re.search(r"^password \(shown once\): (\S+)$", result.stdout, re.MULTILINE)
    assert password is not None, result.stdout

    with TestClient(make_app()) as client:
        headers = bearer(sign_in(client, "demo@example.com", password[1])["access_token"])
        projects = client.get(f"{API}/projects", headers=headers).json()["items"]
        labels = client.get(f"{API}/labels", headers=headers).json()["items"]
        tasks = client.get(f"{API}/tasks", headers=headers, params={"limit": 100}).json()
    assert sorted(p["name"] for p in projects) == ["Home", "Inbox", "Work"]
    assert sorted(label["name"] for label in labels) == ["errand", "urgent", "waiting"]
    assert len(tasks["items"]) == 7
    assert any(task["parent_id"] for task in tasks["items"])

    again = run("seed-demo", "--password", "another-password")
    assert again.exit_code == 1
    assert "an account with email demo@example.com exists; nothing changed" in again.stderr


def test_seed_demo_takes_an_email_and_a_password(
    cli_env: None, make_app: Callable[..., FastAPI]
) -> None:
    result = run("seed-demo", "--email", "Show@Example.com", "--password", "shown-to-the-team")
    assert result.exit_code == 0, result.output
    assert "shown once" not in result.stdout
    with TestClient(make_app()) as client:
        assert sign_in(client, "show@example.com", "shown-to-the-team")
    refused = run("seed-demo", "--password", "short")
    assert refused.exit_code == 2
    assert "8 to 128" in refused.stderr


# migrate: on a database of its own (the run's database stays at head)


@pytest.fixture
def fresh_database(cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """An empty database that the CLI's DATABASE_URL names."""
    url, drop = new_database_url(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    drop()


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config(settings_for("sqlite:///unused.db")))
    return str(head.get_current_head())


def test_migrate_without_a_subcommand_upgrades_to_head(fresh_database: str) -> None:
    assert run("migrate", "current").stdout.startswith("current: none (an empty database)")
    result = run("migrate")
    assert result.exit_code == 0, result.output
    assert run("migrate", "current").stdout.strip() == f"current: {_head()} (head)"
    check = run("migrate", "check")
    assert check.exit_code == 0, check.output
    assert "the database is at head and matches the models" in check.stdout


def test_migrate_downgrade_and_upgrade_and_check_says_behind(fresh_database: str) -> None:
    assert run("migrate", "upgrade").exit_code == 0
    down = run("migrate", "downgrade", "-1")
    assert down.exit_code == 0, down.output
    current = run("migrate", "current").stdout
    assert "(behind head" in current

    check = run("migrate", "check")
    assert check.exit_code == 1
    assert "not up to date" in check.stderr

    assert run("migrate", "upgrade", "head").exit_code == 0
    assert run("migrate", "check").exit_code == 0


def test_migrate_check_finds_drift(fresh_database: str) -> None:
    assert run("migrate", "upgrade").exit_code == 0
    engine = create_engine(sync_url(fresh_database))
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    check = run("migrate", "check")
    assert check.exit_code == 1
    assert "stray" in check.stderr


def _migration_lock_key() -> int:
    """MIGRATION_LOCK_KEY, as migrations/env.py defines it (that file runs on import)."""
    tree = ast.parse((ROOT / "migrations" / "env.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == (
            "MIGRATION_LOCK_KEY"
        ):
            key: int = ast.literal_eval(node.value)
            return key
    raise AssertionError("no MIGRATION_LOCK_KEY in migrations/env.py")


@pytest.mark.postgres
def test_migrations_started_together_take_turns_under_the_advisory_lock(
    cli_env: None, tmp_path: Path
) -> None:
    # Two processes (alembic's context is one per process), as two instances starting at once.
    url, drop = new_database_url(tmp_path)
    key = _migration_lock_key()
    tasks_api = Path(sys.executable).with_name("tasks-api")
    env = {**os.environ, "DATABASE_URL": url}
    holder = create_engine(sync_url(url), isolation_level="AUTOCOMMIT")
    migrations: list[subprocess.Popen[bytes]] = []
    try:
        with holder.connect() as held:
            # Hold the lock ourselves: both migrations must queue behind it.
            held.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            migrations = [
                subprocess.Popen([str(tasks_api), "migrate"], env=env)  # noqa: S603
                for _ in range(2)
            ]
            deadline = time.monotonic() + HANG_GUARD
            waiting = 0
            while waiting < 2 and time.monotonic() < deadline:
                assert all(migration.poll() is None for migration in migrations)
                waiting = held.execute(
                    text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                        " WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid = :key"
                        " AND d.datname = current_database()"
                    ),
                    {"key": key},
                ).scalar_one()
            assert waiting == 2, "both migrations should wait for the lock"
            tables = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'user'"
            assert held.execute(text(tables)).scalar_one() == 0

            held.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            # Both succeed: the second to get the lock finds the schema at head.
            assert [migration.wait(HANG_GUARD) for migration in migrations] == [0, 0]
            version = held.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert list(version) == [_head()]
            assert held.execute(text(tables)).scalar_one() == 1
    finally:
        for migration in migrations:
            if migration.poll() is None:
                migration.kill()
                migration.wait(HANG_GUARD)
        holder.dispose()
        drop()
