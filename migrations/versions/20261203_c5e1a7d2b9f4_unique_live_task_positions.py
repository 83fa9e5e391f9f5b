"""unique live task positions

Manual order becomes a strict order: no two live tasks of one project share an order key
(a partial unique index). Older releases could leave duplicates behind (concurrent creates
and moves); each duplicate after the first (by id) gets the key followed by "0" and a digit
that no live task of the project uses, so the order between them and every other task stays
as it was read.

Revision ID: c5e1a7d2b9f4
Revises: a3c9d41e7b20
Create Date: 2026-12-03 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5e1a7d2b9f4"
down_revision: str | None = "a3c9d41e7b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIGITS = "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _separate_duplicates() -> None:
    connection = op.get_bind()
    duplicated = connection.execute(
        sa.text(
            "SELECT project_id, position FROM task WHERE deleted_at IS NULL"
            " GROUP BY project_id, position HAVING COUNT(*) > 1"
        )
    ).all()
    for project_id, position in duplicated:
        taken = set(
            connection.execute(
                sa.text(
                    "SELECT position FROM task WHERE deleted_at IS NULL"
                    " AND project_id = :project AND position LIKE :prefix"
                ),
                {"project": project_id, "prefix": position + "0%"},
            ).scalars()
        )
        ids = connection.execute(
            sa.text(
                "SELECT id FROM task WHERE deleted_at IS NULL AND project_id = :project"
                " AND position = :position ORDER BY id"
            ),
            {"project": project_id, "position": position},
        ).scalars()
        free = (position + "0" * width + digit for width in range(1, 64) for digit in _DIGITS)
        for task_id in list(ids)[1:]:
            key = next(key for key in free if key not in taken)
            connection.execute(
                sa.text("UPDATE task SET position = :key, version = version + 1 WHERE id = :id"),
                {"key": key, "id": task_id},
            )


def upgrade() -> None:
    _separate_duplicates()
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index(
            "uq_task_project_id_position",
            ["project_id", "position"],
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_task_project_id_position",
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
