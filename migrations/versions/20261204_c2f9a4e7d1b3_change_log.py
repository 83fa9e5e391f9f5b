"""change log

One table, written in the transaction of every change (app/activity/service.py says how its
numbers are made). Nothing existing changes, so the previous release runs against it.

Revision ID: c2f9a4e7d1b3
Revises: a8d3e6f2c4b1
Create Date: 2026-12-04 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.models

revision: str = "c2f9a4e7d1b3"
down_revision: str | None = "a8d3e6f2c4b1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_record",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("verb", sa.String(length=16), nullable=False),
        sa.Column("entity_type", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("at", app.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["user.id"],
            name=op.f("fk_change_record_actor_id_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_change_record")),
    )
    with op.batch_alter_table("change_record", schema=None) as batch_op:
        batch_op.create_index("ix_change_record_actor_id", ["actor_id"], unique=False)
        batch_op.create_index("ix_change_record_entity_id_seq", ["entity_id", "seq"], unique=False)
        batch_op.create_index(
            "ix_change_record_project_id_seq", ["project_id", "seq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("change_record", schema=None) as batch_op:
        batch_op.drop_index("ix_change_record_project_id_seq")
        batch_op.drop_index("ix_change_record_entity_id_seq")
        batch_op.drop_index("ix_change_record_actor_id")

    op.drop_table("change_record")
