"""Load-and-check dependencies for comment routes."""

import uuid
from typing import Annotated

from fastapi import Depends, Path

from app.auth.dependencies import ActiveUser
from app.comments import service
from app.comments.models import Comment
from app.core.db import SessionDep
from app.tasks.models import Task

CommentId = Annotated[uuid.UUID, Path(description="The comment's id.")]


async def get_comment_and_task(
    comment_id: CommentId, user: ActiveUser, session: SessionDep
) -> tuple[Comment, Task]:
    """The comment named in the path with its task, if the caller sees that task (404)."""
    return await service.get_comment(session, comment_id=comment_id, user_id=user.id)


async def get_comment_for_update(
    comment_id: CommentId, user: ActiveUser, session: SessionDep
) -> tuple[Comment, Task]:
    """As `get_comment_and_task`, the comment locked for the change."""
    return await service.get_comment(
        session, comment_id=comment_id, user_id=user.id, for_update=True
    )


CommentOnTask = Annotated[tuple[Comment, Task], Depends(get_comment_and_task)]
CommentForUpdate = Annotated[tuple[Comment, Task], Depends(get_comment_for_update)]
