"""canonical emails

Sign-up has always stored an address in the email validator's form (local part NFC, domain
IDNA-decoded and UTS-46 mapped), lower-cased; sign-in compared NFC and lower case only, and
accounts written by other means may hold another spelling. This brings every stored email
to `app.core.schemas.canonical_email`'s form, the one sign-in now uses too. Accounts whose
canonical forms would collide keep their stored forms, are logged here, and are listed by
`tasks-api check-emails` until an admin changes or deletes all but one (then
`tasks-api check-emails --apply` rewrites the rest). Nothing to undo on downgrade: the old
code reads the canonical form as well.

Revision ID: b4e2f6a8c1d3
Revises: e9a4c6d1f3b7
Create Date: 2026-12-04 01:40:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.users.service import plan_email_normalisation

revision: str = "b4e2f6a8c1d3"
down_revision: str | None = "e9a4c6d1f3b7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text('SELECT id, email FROM "user"')).all()
    plan = plan_email_normalisation((row.id, row.email) for row in rows)
    for account_id, _, canonical in plan.changes:
        connection.execute(
            sa.text('UPDATE "user" SET email = :email WHERE id = :id'),
            {"email": canonical, "id": account_id},
        )
    for canonical, accounts in plan.collisions.items():
        logger.warning(
            "emails collide as %r, left unchanged until an admin resolves them"
            " (tasks-api check-emails): %s",
            canonical,
            ", ".join(f"{stored!r}" for _, stored in accounts),
        )
    if plan.changes:
        logger.info("rewrote %d stored email(s) to their canonical form", len(plan.changes))


def downgrade() -> None:
    pass
