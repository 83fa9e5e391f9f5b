"""Labels: the caller's tags for tasks, unique by name (ignoring case)."""

from fastapi import Request, Response, status

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http import (
    IfMatchHeader,
    IfNoneMatchHeader,
    etag_for,
    if_none_match_matches,
    location_of,
)
from app.core.pagination import CursorCodecDep, Page, PageParamsDep
from app.core.routing import AppRouter
from app.labels import service
from app.labels.dependencies import LabelForUpdate, OwnedLabel
from app.labels.models import Label
from app.labels.schemas import LabelCreateBody, LabelPublic, LabelUpdateBody
from app.quotas.dependencies import QuotasDep

router = AppRouter(prefix="/labels", tags=["labels"])


def _public(label: Label, response: Response) -> LabelPublic:
    response.headers["ETag"] = etag_for(label.version)
    return LabelPublic.model_validate(label, from_attributes=True)


@router.get(
    "",
    summary="List labels",
    response_model=Page[LabelPublic],
    responses=problem_responses(401, 422),
)
async def list_labels(
    user: ActiveUser, session: SessionDep, cursors: CursorCodecDep, page: PageParamsDep
) -> Page[LabelPublic]:
    """The caller's labels, in name order."""
    return await service.list_labels(session, owner_id=user.id, page=page, codec=cursors)


@router.post(
    "",
    summary="Create a label",
    status_code=status.HTTP_201_CREATED,
    response_model=LabelPublic,
    responses=problem_responses(401, 409, 422),
)
async def create_label(
    data: LabelCreateBody,
    user: ActiveUser,
    session: SessionDep,
    request: Request,
    response: Response,
    quotas: QuotasDep,
) -> LabelPublic:
    """Create a label; 409 if the caller has one with the same name in any case, or holds
    as many labels as the account may (`quota_exceeded`)."""
    fields = data.model_dump()
    label = await service.create_label(session, owner_id=user.id, quotas=quotas, **fields)
    response.headers["Location"] = location_of(request, "read_label", label_id=label.id)
    return _public(label, response)


@router.get(
    "/{label_id}",
    summary="Read a label",
    response_model=LabelPublic,
    responses={304: {"description": "Not modified"}, **problem_responses(401, 404, 422)},
)
async def read_label(
    label: OwnedLabel, response: Response, if_none_match: IfNoneMatchHeader = None
) -> LabelPublic | Response:
    """One label; 304 with no body when `If-None-Match` names its current ETag."""
    if if_none_match_matches(if_none_match, label.version):
        return Response(status_code=304, headers={"ETag": etag_for(label.version)})
    return _public(label, response)


@router.patch(
    "/{label_id}",
    summary="Update a label",
    response_model=LabelPublic,
    responses=problem_responses(401, 404, 409, 412, 422),
)
async def update_label(
    data: LabelUpdateBody,
    label: LabelForUpdate,
    session: SessionDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> LabelPublic:
    """Rename or recolour a label (`null` clears the colour); a stale `If-Match` is a 412."""
    changes = data.model_dump(exclude_unset=True)
    return _public(await service.update_label(session, label, changes, if_match=if_match), response)


@router.delete(
    "/{label_id}",
    summary="Delete a label",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 412, 422),
)
async def delete_label(
    label: LabelForUpdate, session: SessionDep, if_match: IfMatchHeader = None
) -> None:
    """Delete a label for good (labels have no trash); tasks carrying it lose it."""
    await service.delete_label(session, label, if_match=if_match)
