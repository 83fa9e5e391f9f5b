"""Migrations are the schema's only author: they round-trip, and match the models exactly."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

from tests.conftest import alembic_config, new_database_url, settings_for, sync_url
from tests.factories import fullwidth

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    url, drop = new_database_url(tmp_path)
    yield url
    drop()


def tables(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    config = alembic_config(settings_for(empty_database))
    expected = set(SQLModel.metadata.tables)

    command.upgrade(config, "head")
    assert tables(empty_database) == expected

    command.downgrade(config, "base")
    assert tables(empty_database) == set()

    command.upgrade(config, "head")
    assert tables(empty_database) == expected


def test_each_revision_steps_down_and_up(empty_database: str) -> None:
    config = alembic_config(settings_for(empty_database))
    revisions = list(ScriptDirectory.from_config(config).walk_revisions())
    command.upgrade(config, "head")
    for _ in revisions:
        command.downgrade(config, "-1")
    assert tables(empty_database) == set()
    for _ in revisions:
        command.upgrade(config, "+1")
    assert tables(empty_database) == set(SQLModel.metadata.tables)


def test_models_and_migrations_do_not_drift(empty_database: str) -> None:
    command.upgrade(alembic_config(settings_for(empty_database)), "head")
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_there_is_one_head_and_files_are_named_by_date() -> None:
    config = alembic_config(settings_for("sqlite:///unused.db"))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        assert path.name[:8].isdigit(), path.name


def test_the_running_service_never_creates_tables() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "app").rglob("*.py")
        if "create_all" in path.read_text()
    ]
    assert offenders == []


def test_duplicate_live_positions_are_separated_before_the_unique_index(
    empty_database: str,
) -> None:
    """Older releases could leave two live tasks of a project with one key; the migration
    that makes keys unique gives each duplicate after the first (by id) a key of its own,
    right after the shared one, so the order with every other task stays as it was."""
    from sqlalchemy import text

    config = alembic_config(settings_for(empty_database))
    command.upgrade(config, "a3c9d41e7b20")
    engine = create_engine(sync_url(empty_database))
    user, project = "01900000-0000-7000-8000-0000000000a1", "01900000-0000-7000-8000-0000000000b1"
    rows = [("c1", "a0"), ("c2", "a0"), ("c3", "a0"), ("c4", "a1"), ("c5", "a0")]
    try:
        with engine.begin() as connection:
            is_pg = connection.dialect.name == "postgresql"

            def uid(value: str) -> str:
                return value if is_pg else value.replace("-", "")

            now = "2026-01-01 00:00:00+00:00"
            connection.execute(
                text(
                    'INSERT INTO "user" (id, email, hashed_password, is_active, role,'
                    " created_at, updated_at) VALUES (:id, 'm@example.com', 'x', true,"
                    " 'user', :now, :now)"
                ),
                {"id": uid(user), "now": now},
            )
            connection.execute(
                text(
                    "INSERT INTO project (id, owner_id, name, is_archived, is_inbox, version,"
                    " created_at, updated_at) VALUES (:id, :owner, 'p', false, false, 1, :now,"
                    " :now)"
                ),
                {"id": uid(project), "owner": uid(user), "now": now},
            )
            for suffix, key in rows:
                task_id = f"01900000-0000-7000-8000-0000000000{suffix}"
                connection.execute(
                    text(
                        "INSERT INTO task (id, owner_id, project_id, title, status, priority,"
                        " position, version, created_at, updated_at) VALUES (:id, :owner,"
                        " :project, :title, 'todo', 0, :key, 1, :now, :now)"
                    ),
                    {
                        "id": uid(task_id),
                        "owner": uid(user),
                        "project": uid(project),
                        "title": suffix,
                        "key": key,
                        "now": now,
                    },
                )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            ordered = connection.execute(
                text("SELECT title, position FROM task ORDER BY position")
            ).all()
            # Tasks made before `created_by_id` were made by their owner (the only one who could).
            made_by_owner = connection.execute(
                text("SELECT count(*) FROM task WHERE created_by_id = owner_id")
            ).scalar_one()
    finally:
        engine.dispose()
    assert [title for title, _ in ordered] == ["c1", "c2", "c3", "c5", "c4"]
    assert len({key for _, key in ordered}) == len(rows)
    assert made_by_owner == len(rows)


def test_stored_emails_are_brought_to_the_canonical_form_and_collisions_reported(
    empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The migration that makes sign-in and sign-up agree rewrites each stored spelling to
    the form sign-up stores, and leaves accounts that would then share one, with a warning."""
    from sqlalchemy import text

    config = alembic_config(settings_for(empty_database))
    command.upgrade(config, "e9a4c6d1f3b7")
    engine = create_engine(sync_url(empty_database))
    stored = {
        "01900000-0000-7000-8000-0000000000a1": "ada@xn--bcher-kva.example",
        "01900000-0000-7000-8000-0000000000a2": "bob@xn--bcher-kva.example",
        "01900000-0000-7000-8000-0000000000a3": "bob@bücher.example",
        "01900000-0000-7000-8000-0000000000a4": f"carol@{fullwidth('example')}.com",
        "01900000-0000-7000-8000-0000000000a5": "dan@example.com",
    }
    try:
        with engine.begin() as connection:
            is_pg = connection.dialect.name == "postgresql"
            for account_id, email in stored.items():
                connection.execute(
                    text(
                        'INSERT INTO "user" (id, email, hashed_password, is_active, role,'
                        " created_at, updated_at) VALUES (:id, :email, 'x', true, 'user',"
                        " '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"
                    ),
                    {"id": account_id if is_pg else account_id.replace("-", ""), "email": email},
                )
        with caplog.at_level("WARNING", logger="alembic.runtime.migration"):
            command.upgrade(config, "head")
        with engine.connect() as connection:
            emails = {row.email for row in connection.execute(text('SELECT email FROM "user"'))}
    finally:
        engine.dispose()
    assert emails == {
        "ada@bücher.example",
        "bob@xn--bcher-kva.example",
        "bob@bücher.example",
        "carol@example.com",
        "dan@example.com",
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "'bob@bücher.example'" in warnings[0]
    assert "'bob@xn--bcher-kva.example'" in warnings[0]


def test_accounts_that_exist_count_as_confirmed_since_they_were_made(empty_database: str) -> None:
    """Email verification takes nothing away from the accounts it finds: each is confirmed
    as of its creation, with no change pending; the downgrade drops both columns again."""
    from sqlalchemy import text

    config = alembic_config(settings_for(empty_database))
    command.upgrade(config, "b4e2f6a8c1d3")
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.begin() as connection:
            is_pg = connection.dialect.name == "postgresql"
            account_id = "01900000-0000-7000-8000-0000000000b1"
            connection.execute(
                text(
                    'INSERT INTO "user" (id, email, hashed_password, is_active, role,'
                    " created_at, updated_at) VALUES (:id, 'old@example.com', 'x', true, 'user',"
                    " '2026-01-02 03:04:05+00:00', '2026-01-03 00:00:00+00:00')"
                ),
                {"id": account_id if is_pg else account_id.replace("-", "")},
            )
        command.upgrade(config, "f1c8d2e5a7b9")
        with engine.connect() as connection:
            row = connection.execute(
                text('SELECT created_at, email_verified_at, pending_email FROM "user"')
            ).one()
        assert row.email_verified_at is not None
        assert row.email_verified_at == row.created_at
        assert row.pending_email is None
        command.downgrade(config, "b4e2f6a8c1d3")
        columns = {column["name"] for column in inspect(engine).get_columns("user")}
        assert not {"email_verified_at", "pending_email"} & columns
    finally:
        engine.dispose()
