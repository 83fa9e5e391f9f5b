"""email verification

An account records when it proved it receives mail at its address (`email_verified_at`) and
the new address it asked for until that one is confirmed (`pending_email`). Every account
that exists already counts as confirmed since it was made: nothing it could do before is
taken away. Both columns are nullable, so the previous release runs against this schema.

Revision ID: f1c8d2e5a7b9
Revises: b4e2f6a8c1d3
Create Date: 2026-12-04 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.models

revision: str = "f1c8d2e5a7b9"
down_revision: str | None = "b4e2f6a8c1d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "email_verified_at", app.core.models.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("pending_email", sa.String(length=254), nullable=True))
    op.execute('UPDATE "user" SET email_verified_at = created_at')


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("pending_email")
        batch_op.drop_column("email_verified_at")
