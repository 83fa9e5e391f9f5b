"""usage counters

Quotas count each account's tasks, projects and labels in `usage_counter` (one row a
shard; the count is the sum), kept in the transaction of every change. The counts start
from the rows that exist (trashed ones included: they count until purged).

Revision ID: d7f3b8e1c2a6
Revises: c5e1a7d2b9f4
Create Date: 2026-12-03 14:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7f3b8e1c2a6"
down_revision: str | None = "c5e1a7d2b9f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTED = {"tasks": "task", "projects": "project", "labels": "label"}


def upgrade() -> None:
    op.create_table(
        "usage_counter",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("resource", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user.id"],
            name=op.f("fk_usage_counter_owner_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "resource", "shard", name=op.f("pk_usage_counter")),
    )
    for resource, table in _COUNTED.items():
        op.execute(
            f"INSERT INTO usage_counter (owner_id, resource, shard, used)"  # noqa: S608 - constants
            f" SELECT owner_id, '{resource}', 0, COUNT(*) FROM {table} GROUP BY owner_id"
        )


def downgrade() -> None:
    op.drop_table("usage_counter")
