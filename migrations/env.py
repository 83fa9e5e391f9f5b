"""Alembic environment: URL from the settings, metadata from every model, async engine.

On PostgreSQL every run holds an advisory lock for its whole length, so instances started
together (each `tasks-api serve` migrates first) take turns: the second finds the schema at
head and does nothing.
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import app.all_models  # noqa: F401 - registers every table on the metadata
from app.core.config import Settings, get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata
# The advisory lock key of migrations ("task" in ASCII): the same in every instance and used
# for nothing else (tests/test_cli.py holds it to show a migration waits).
MIGRATION_LOCK_KEY = 0x7461736B


def _settings() -> Settings:
    # Tests pass their own settings; the command line uses the process's.
    settings = config.attributes.get("settings")
    return settings if isinstance(settings, Settings) else get_settings()


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    is_sqlite = (connection.dialect.name if connection is not None else str(url)).startswith(
        "sqlite"
    )
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        # SQLite cannot ALTER most things: batch mode recreates the table instead.
        render_as_batch=is_sqlite,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    _configure(url=_settings().async_database_url)
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Hold the migrations' advisory lock (PostgreSQL; SQLite has one writer at a time anyway).

    A session lock, not a transaction's: it outlives a migration that commits on its own
    (`autocommit_block`), and closing the connection releases it if the process dies.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    external = connection.in_transaction()  # a caller's connection: its transaction is its own
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    if not external:
        connection.commit()
    try:
        yield
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        if not external:
            connection.commit()


def _run_sync(connection: Connection) -> None:
    with _migration_lock(connection):
        # Configured once the lock is held, so alembic sees no transaction of ours.
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


async def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        await connection.run_sync(_run_sync)
        return
    engine = create_async_engine(_settings().async_database_url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
