"""principal change notifications

PostgreSQL announces every change that can make a verified caller's answer wrong (a user row
updated or deleted; a sign-in session revoked, moved, shortened or deleted; either table
truncated) with `NOTIFY principal_changed, '<user id>'` ('*' for a truncate), so each app
process can drop what it remembered at once (app/auth/cache.py). SQLite has no NOTIFY and
nothing to do: processes on SQLite always ask the database.

Revision ID: a3c9d41e7b20
Revises: e8723edb4ed7
Create Date: 2026-11-22 07:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a3c9d41e7b20"
down_revision: str | None = "e8723edb4ed7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION notify_principal_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('principal_changed', '*');
    ELSIF TG_TABLE_NAME = 'user' THEN
        PERFORM pg_notify('principal_changed', OLD.id::text);
    ELSE
        PERFORM pg_notify('principal_changed', OLD.user_id::text);
    END IF;
    RETURN NULL;
END
$$
"""

_TRIGGERS = {
    "user_changed": 'AFTER UPDATE OR DELETE ON "user" FOR EACH ROW',
    "user_truncated": 'AFTER TRUNCATE ON "user" FOR EACH STATEMENT',
    # Marking a session used or extending it (a refresh) cannot make a cached answer wrong;
    # revoking, moving or shortening it can.
    "auth_session_changed": (
        "AFTER UPDATE ON auth_session FOR EACH ROW WHEN ("
        "OLD.revoked_at IS DISTINCT FROM NEW.revoked_at"
        " OR OLD.user_id IS DISTINCT FROM NEW.user_id"
        " OR NEW.expires_at < OLD.expires_at)"
    ),
    "auth_session_deleted": "AFTER DELETE ON auth_session FOR EACH ROW",
    "auth_session_truncated": "AFTER TRUNCATE ON auth_session FOR EACH STATEMENT",
}


def _table(when: str) -> str:
    return when.split(" ON ", 1)[1].split(" ", 1)[0]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTION)
    for name, when in _TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION notify_principal_changed()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, when in _TRIGGERS.items():
        op.execute(f"DROP TRIGGER {name} ON {_table(when)}")
    op.execute("DROP FUNCTION notify_principal_changed()")
