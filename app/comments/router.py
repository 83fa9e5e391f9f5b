"""Comments on tasks: a task's comments oldest first; their authors change them."""

from fastapi import Request, Response, status

from app.auth.dependencies import ActiveUser
from app.comments import service
from app.comments.dependencies import CommentForUpdate, CommentOnTask
from app.comments.schemas import CommentBody, CommentPublic
from app.core.config import SettingsDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http import location_of
from app.core.pagination import CursorCodecDep, Page, PageParamsDep
from app.core.routing import AppRouter
from app.tasks.dependencies import CommentableTask

router = AppRouter(tags=["comments"])


@router.get(
    "/tasks/{task_id}/comments",
    summary="List a task's comments",
    response_model=Page[CommentPublic],
    responses=problem_responses(401, 404, 422),
)
async def list_comments(
    task: CommentableTask, session: SessionDep, cursors: CursorCodecDep, page: PageParamsDep
) -> Page[CommentPublic]:
    """The task's comments, oldest first (a task in the trash hides them: 404)."""
    return await service.list_comments(session, task=task, page=page, codec=cursors)


@router.post(
    "/tasks/{task_id}/comments",
    summary="Comment on a task",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentPublic,
    responses=problem_responses(401, 404, 409, 422),
)
async def add_comment(
    data: CommentBody,
    task: CommentableTask,
    user: ActiveUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> CommentPublic:
    """Add a comment (1 to 10,000 characters of plain text, trimmed); 409 `quota_exceeded`
    when the task holds COMMENTS_PER_TASK_MAX comments."""
    comment = await service.add_comment(
        session,
        task=task,
        author_id=user.id,
        body=data.body,
        limit=settings.COMMENTS_PER_TASK_MAX,
    )
    response.headers["Location"] = location_of(request, "read_comment", comment_id=comment.id)
    return service.public(comment, user)


@router.get(
    "/comments/{comment_id}",
    summary="Read a comment",
    response_model=CommentPublic,
    responses=problem_responses(401, 404, 422),
)
async def read_comment(found: CommentOnTask, session: SessionDep) -> CommentPublic:
    """One comment on a task you see."""
    return service.public(found[0], await service.author_of(session, found[0]))


@router.patch(
    "/comments/{comment_id}",
    summary="Edit a comment",
    response_model=CommentPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def edit_comment(
    data: CommentBody, found: CommentForUpdate, user: ActiveUser, session: SessionDep
) -> CommentPublic:
    """Change a comment's text (its author only: 403 `not_comment_author`)."""
    comment, task = found
    edited = await service.edit_comment(
        session, comment=comment, task=task, user_id=user.id, body=data.body
    )
    return service.public(edited, user)


@router.delete(
    "/comments/{comment_id}",
    summary="Delete a comment",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_comment(found: CommentForUpdate, user: ActiveUser, session: SessionDep) -> None:
    """Delete a comment for good: its author, or the owner of the task's project."""
    comment, task = found
    await service.delete_comment(session, comment=comment, task=task, user_id=user.id)
