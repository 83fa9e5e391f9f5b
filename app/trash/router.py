"""The trash: deleted projects and tasks, until the retention period purges them."""

from datetime import timedelta

from app.auth.dependencies import ActiveUser
from app.core.config import SettingsDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import CursorCodecDep, Page, PageParamsDep
from app.core.routing import AppRouter
from app.trash import service
from app.trash.schemas import TrashItem

router = AppRouter(prefix="/trash", tags=["trash"])


@router.get(
    "",
    summary="List the trash",
    response_model=Page[TrashItem],
    responses=problem_responses(401, 422),
)
async def list_trash(
    user: ActiveUser,
    session: SessionDep,
    settings: SettingsDep,
    cursors: CursorCodecDep,
    page: PageParamsDep,
) -> Page[TrashItem]:
    """Projects and tasks the caller deleted, newest first, with when each will be purged.

    Restore with `POST /projects/{id}/restore` or `POST /tasks/{id}/restore`.
    """
    retention = timedelta(days=settings.TRASH_RETENTION_DAYS)
    return await service.list_trash(
        session, owner_id=user.id, retention=retention, page=page, codec=cursors
    )
