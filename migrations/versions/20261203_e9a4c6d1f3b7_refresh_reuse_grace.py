"""refresh reuse grace

A sign-in session remembers the refresh token it replaced last and when: presented again
within REFRESH_REUSE_GRACE_SECONDS (two tabs, a retry), it gets the same successor instead of
revoking the session.

Revision ID: e9a4c6d1f3b7
Revises: d7f3b8e1c2a6
Create Date: 2026-12-03 15:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.models

revision: str = "e9a4c6d1f3b7"
down_revision: str | None = "d7f3b8e1c2a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "previous_refresh_jti",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("rotated_at", app.core.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.drop_column("rotated_at")
        batch_op.drop_column("previous_refresh_jti")
