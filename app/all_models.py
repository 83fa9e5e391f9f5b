"""Every table model, imported once so the metadata is complete (Alembic, tests)."""

from app.auth.models import AuthSession
from app.core.rate_limit import rate_limit_counter
from app.projects.models import Project
from app.users.models import User

__all__ = ["AuthSession", "Project", "User", "rate_limit_counter"]
