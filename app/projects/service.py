"""Queries and rules for projects: plain functions, session first, keyword-only after."""

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from app.projects.models import INBOX_NAME, Project


async def create_inbox(session: AsyncSession, *, owner_id: uuid.UUID) -> Project:
    """Give a new user their Inbox, the default project for tasks."""
    inbox = Project(owner_id=owner_id, name=INBOX_NAME, is_inbox=True)
    session.add(inbox)
    await session.flush()
    return inbox
