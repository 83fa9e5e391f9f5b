"""project sharing: members and invitations

Two new tables; nothing existing changes, so the previous release runs against this schema.

Revision ID: a8d3e6f2c4b1
Revises: f1c8d2e5a7b9
Create Date: 2026-12-04 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.models

revision: str = "a8d3e6f2c4b1"
down_revision: str | None = "f1c8d2e5a7b9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project_invitation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("inviter_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["inviter_id"],
            ["user.id"],
            name=op.f("fk_project_invitation_inviter_id_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_project_invitation_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_invitation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_project_invitation_token_hash")),
    )
    with op.batch_alter_table("project_invitation", schema=None) as batch_op:
        batch_op.create_index("ix_project_invitation_email", ["email"], unique=False)
        batch_op.create_index("ix_project_invitation_inviter_id", ["inviter_id"], unique=False)
        batch_op.create_index(
            "uq_project_invitation_project_id_email", ["project_id", "email"], unique=True
        )

    op.create_table(
        "project_member",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", app.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_project_member_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_project_member_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_project_member")),
    )
    with op.batch_alter_table("project_member", schema=None) as batch_op:
        batch_op.create_index(
            "ix_project_member_user_id_project_id", ["user_id", "project_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("project_member")
    op.drop_table("project_invitation")
