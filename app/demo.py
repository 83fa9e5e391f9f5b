"""A demo account to click through (`tasks-api seed-demo`): projects, labels and tasks, written
through the service functions, so it holds what the API itself would have written (quota
counters included)."""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from app.core.config import Settings
from app.core.db import Database
from app.core.models import utcnow
from app.core.security import PasswordHasher
from app.labels import service as label_service
from app.projects import service as project_service
from app.quotas.service import Quotas
from app.tasks import service as task_service
from app.tasks.models import TaskStatus
from app.users import service as user_service
from app.users.exceptions import EmailTaken

DEMO_EMAIL = "demo@example.com"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """What `seed_demo` created."""

    user_id: uuid.UUID
    projects: int
    labels: int
    tasks: int


async def seed_demo(
    database: Database,
    hasher: PasswordHasher,
    settings: Settings,
    *,
    email: str,
    password: str,
) -> DemoAccount | None:
    """Create the demo account and its rows in one transaction; None (and nothing written) if
    an account with this email exists. `email` is in its stored form (`check_admin_credentials`)."""
    quotas = Quotas.of(settings)
    now = utcnow()
    async with database.sessionmaker() as session:
        if await user_service.get_user_by_email(session, email) is not None:
            return None
        try:
            user = await user_service.create_user(
                session,
                email=email,
                hashed_password=await hasher.hash(password),
                full_name="Demo User",
                email_verified=True,
            )
        except EmailTaken:
            return None
        owner = user.id

        work = await project_service.create_project(
            session,
            owner_id=owner,
            name="Work",
            description="The launch and the weekly chores.",
            color="#3b82f6",
            quotas=quotas,
        )
        home = await project_service.create_project(
            session,
            owner_id=owner,
            name="Home",
            description="Beds, trees and the shed.",
            color="#22c55e",
            quotas=quotas,
        )
        urgent = await label_service.create_label(
            session, owner_id=owner, name="urgent", color="#ef4444", quotas=quotas
        )
        waiting = await label_service.create_label(
            session, owner_id=owner, name="waiting", color="#f59e0b", quotas=quotas
        )
        errand = await label_service.create_label(
            session, owner_id=owner, name="errand", quotas=quotas
        )

        launch = await task_service.create_task(
            session,
            owner_id=owner,
            title="Ship the launch",
            description="Everything the release needs, as subtasks.",
            status=TaskStatus.IN_PROGRESS,
            priority=3,
            due_at=now + timedelta(days=7),
            project_id=work.id,
            label_ids=[urgent.id],
            quotas=quotas,
        )
        subtasks = [
            ("Write the release notes", TaskStatus.DONE, []),
            ("Review the checklist with the team", TaskStatus.TODO, [waiting.id]),
        ]
        for title, status, labels in subtasks:
            await task_service.create_task(
                session,
                owner_id=owner,
                title=title,
                status=status,
                parent_id=launch.id,
                label_ids=labels,
                quotas=quotas,
            )
        others = [
            ("Book the team offsite", work.id, 1, [waiting.id]),
            ("Prune the apple tree", home.id, 0, []),
            ("Buy seeds and compost", home.id, 2, [errand.id]),
            ("Call the bank back", None, 2, [urgent.id, errand.id]),  # None: the Inbox
        ]
        for title, project_id, priority, labels in others:
            await task_service.create_task(
                session,
                owner_id=owner,
                title=title,
                priority=priority,
                project_id=project_id,
                label_ids=labels,
                quotas=quotas,
            )
        await session.commit()
    return DemoAccount(
        user_id=owner,
        projects=len((work, home)) + 1,  # and the Inbox every account has
        labels=len((urgent, waiting, errand)),
        tasks=1 + len(subtasks) + len(others),
    )
