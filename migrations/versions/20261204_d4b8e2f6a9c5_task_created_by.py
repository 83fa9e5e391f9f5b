"""task created by

Who made each task. Until now only a project's owner could make its tasks, so every existing
task was made by its owner. The column is nullable (the previous release does not write it).

Revision ID: d4b8e2f6a9c5
Revises: c2f9a4e7d1b3
Create Date: 2026-12-04 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4b8e2f6a9c5"
down_revision: str | None = "c2f9a4e7d1b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_id", sa.Uuid(), nullable=True))
    op.execute("UPDATE task SET created_by_id = owner_id")


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("created_by_id")
