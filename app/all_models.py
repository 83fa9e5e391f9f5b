"""Every table model, imported once so the metadata is complete (Alembic, tests)."""

from app.activity.models import ChangeRecord
from app.auth.models import AuthSession
from app.comments.models import Comment
from app.core.rate_limit import rate_limit_counter
from app.labels.models import Label
from app.notifications.models import Notification
from app.projects.models import Project
from app.quotas.models import UsageCounter
from app.sharing.models import Invitation, ProjectMember
from app.tasks.models import Task, TaskLabel
from app.users.models import User

__all__ = [
    "AuthSession",
    "ChangeRecord",
    "Comment",
    "Invitation",
    "Label",
    "Notification",
    "Project",
    "ProjectMember",
    "Task",
    "TaskLabel",
    "UsageCounter",
    "User",
    "rate_limit_counter",
]
