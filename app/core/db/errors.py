"""What a database error means: which can be cured by running the transaction again, which
is a unique constraint deciding a race, and which says the database cannot serve now."""

import sqlite3

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout

from app.core.errors import ServiceUnavailable

# SQLSTATEs after which the same transaction, run again from the start, can succeed:
# serialization_failure and deadlock_detected (PostgreSQL rolled the transaction back), and
# foreign_key_violation: a row this transaction checked was deleted by a concurrent one
# before the write, and run again the checks see it gone and answer as they should.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "23503"})
UNIQUE_VIOLATION = "23505"


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, raised by asyncpg directly (DriverQuery) or
    wrapped by SQLAlchemy (its `orig`, or the exception's cause); None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str):
            return code
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


# Unique indexes whose violation means a race, not a conflict to report: two writers computed
# the same value at once, and run again one of them computes another (see `retry_on_clash`).
# PostgreSQL names the index; SQLite names its columns ("task.project_id, task.position").
_CLASH_INDEXES: set[str] = set()


def retry_on_clash(index_name: str, *, sqlite_columns: str) -> None:
    """Register a unique index whose violation the request's transaction runs again for."""
    _CLASH_INDEXES.update({index_name, sqlite_columns})


def _constraint_of(error: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = getattr(current, "constraint_name", None)
        if isinstance(name, str):
            return name
        if isinstance(current, sqlite3.Error) and "constraint failed: " in str(current):
            return str(current).split("constraint failed: ", 1)[1]
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


def _sqlite_error(error: BaseException) -> sqlite3.Error | None:
    orig = getattr(error, "orig", None)
    return orig if isinstance(orig, sqlite3.Error) else None


def is_retryable(error: BaseException) -> bool:
    """Whether running the request's transaction again can succeed: see RETRYABLE_SQLSTATES
    (on SQLite a foreign key failure, for the same reason), and the unique indexes
    registered with `retry_on_clash`."""
    code = sqlstate_of(error)
    if code in RETRYABLE_SQLSTATES:
        return True
    if isinstance(error, IntegrityError) and is_unique_violation(error):
        return _constraint_of(error) in _CLASH_INDEXES
    sqlite_error = _sqlite_error(error)
    return sqlite_error is not None and "FOREIGN KEY constraint failed" in str(sqlite_error)


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether a unique constraint refused the write (not a foreign key or a check)."""
    if sqlstate_of(error) == UNIQUE_VIOLATION:
        return True
    sqlite_error = _sqlite_error(error)
    return sqlite_error is not None and "UNIQUE constraint failed" in str(sqlite_error)


# SQLSTATE classes and codes that say the database cannot serve now, whatever the statement:
# connection exceptions (08), insufficient resources (53: too many connections, out of
# memory or disk), operator intervention (57: shutdown, cannot connect now, query cancelled
# by the server's own statement_timeout).
_UNAVAILABLE_CLASSES = ("08", "53", "57")


def unavailability(error: BaseException) -> str | None:
    """Why `error` means the database is unreachable or too slow (a short reason for the
    log), or None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | SQLAlchemyTimeout):
            return "timed out"
        if isinstance(current, OSError):
            return f"unreachable ({type(current).__name__})"
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return "connection lost"
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str) and code.startswith(_UNAVAILABLE_CLASSES):
            return f"SQLSTATE {code}"
        name = type(current).__name__
        if name in ("ConnectionDoesNotExistError", "InterfaceError") and "closed" in str(current):
            return "connection lost"
        if isinstance(current, sqlite3.OperationalError) and "database is locked" in str(current):
            return "SQLite lock wait timed out"
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


class DatabaseUnavailable(ServiceUnavailable):
    """The database did not answer within its bound, or cannot be reached (503)."""

    code = "database_unavailable"
    detail = "The database is unavailable; nothing was changed. Retry after a moment."

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(headers={"Retry-After": str(max(1, retry_after))})
