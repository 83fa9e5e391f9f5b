"""Sharing: a project's members and roles, invitations by email, leaving and transfer."""

import uuid
from typing import Annotated

from fastapi import BackgroundTasks, Path, Response, status

from app.auth import service as auth_service
from app.auth.dependencies import ActiveUser, AuthDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http import etag_for
from app.core.routing import AppRouter
from app.projects import service as project_service
from app.projects.dependencies import MembersOf, ReadableProject
from app.projects.schemas import ProjectPublic
from app.quotas.dependencies import QuotasDep
from app.sharing import service
from app.sharing.models import Invitation, Role
from app.sharing.schemas import (
    InvitationAnswerBody,
    InvitationCreateBody,
    InvitationPublic,
    MemberPublic,
    ProjectSummary,
    ReceivedInvitation,
    RoleChangeBody,
    TransferBody,
)
from app.sharing.service import MemberView

router = AppRouter(tags=["sharing"])

MemberId = Annotated[uuid.UUID, Path(description="The member's account id.")]
InvitationId = Annotated[uuid.UUID, Path(description="The invitation's id.")]


def _member(view: MemberView) -> MemberPublic:
    return MemberPublic(
        user_id=view.user.id,
        email=view.user.email,
        full_name=view.user.full_name,
        role=view.role,
        since=view.since,
    )


def _invitation(invitation: Invitation) -> InvitationPublic:
    return InvitationPublic.model_validate(invitation, from_attributes=True)


@router.get(
    "/projects/{project_id}/members",
    summary="List a project's members",
    response_model=list[MemberPublic],
    responses=problem_responses(401, 404, 422),
)
async def list_members(access: ReadableProject, session: SessionDep) -> list[MemberPublic]:
    """The owner first, then every member in the order they joined, with their roles (at
    most PROJECT_MEMBERS_MAX + 1 entries). Any member may look."""
    return [_member(view) for view in await service.list_members(session, access.project)]


@router.post(
    "/projects/{project_id}/members",
    summary="Invite someone to a project",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=InvitationPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def invite_member(
    data: InvitationCreateBody,
    access: MembersOf,
    user: ActiveUser,
    session: SessionDep,
    auth: AuthDep,
    background: BackgroundTasks,
) -> InvitationPublic:
    """Invite an address with a role (`editor` or `viewer`): always a pending invitation,
    mailed to the address, which a verified account with that address accepts. The answer
    is the same whether or not the address has an account. The owner only, with a confirmed
    address (403 `email_not_verified`); the Inbox is never shared (409); 409 `already_member`
    for the owner's or a member's address; 409 `quota_exceeded` past the caps."""
    invited = await service.invite(
        session,
        access=access,
        inviter=user,
        email=data.email,
        role=Role(data.role),
        settings=auth.settings,
    )
    background.add_task(auth_service.send_mail, auth.mailer, invited.mail)
    return _invitation(invited.invitation)


@router.get(
    "/projects/{project_id}/invitations",
    summary="List a project's pending invitations",
    response_model=list[InvitationPublic],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_project_invitations(
    access: MembersOf, session: SessionDep
) -> list[InvitationPublic]:
    """The invitations no one has answered yet, oldest first (the owner only)."""
    service.check_manages_members(access)
    invitations = await service.list_project_invitations(session, access.project)
    return [_invitation(invitation) for invitation in invitations]


@router.delete(
    "/projects/{project_id}/invitations/{invitation_id}",
    summary="Withdraw an invitation",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
)
async def withdraw_invitation(
    invitation_id: InvitationId, access: MembersOf, session: SessionDep
) -> None:
    """Delete a pending invitation: its mailed token stops working (the owner only)."""
    await service.withdraw_invitation(session, access=access, invitation_id=invitation_id)


@router.patch(
    "/projects/{project_id}/members/{user_id}",
    summary="Change a member's role",
    response_model=MemberPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def change_member_role(
    user_id: MemberId, data: RoleChangeBody, access: MembersOf, session: SessionDep
) -> MemberPublic:
    """Make a member an `editor` or a `viewer` (the owner only; 404 `member_not_found` for
    anyone who is not a member)."""
    view = await service.change_role(session, access=access, user_id=user_id, role=Role(data.role))
    return _member(view)


@router.delete(
    "/projects/{project_id}/members/{user_id}",
    summary="Remove a member",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
)
async def remove_member(user_id: MemberId, access: MembersOf, session: SessionDep) -> None:
    """Take a member out of the project (the owner only): their access ends at once."""
    await service.remove_member(session, access=access, user_id=user_id)


@router.post(
    "/projects/{project_id}/leave",
    summary="Leave a project",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 409, 422),
)
async def leave_project(access: MembersOf, user: ActiveUser, session: SessionDep) -> None:
    """Stop being a member of a project shared with you (the owner: 409
    `owner_cannot_leave`, transfer it first)."""
    await service.leave(session, access=access, user_id=user.id)


@router.post(
    "/projects/{project_id}/transfer",
    summary="Transfer a project to a member",
    response_model=ProjectPublic,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def transfer_project(
    data: TransferBody,
    access: MembersOf,
    session: SessionDep,
    quotas: QuotasDep,
    response: Response,
) -> ProjectPublic:
    """Make a member the owner (the owner only): the project, its tasks and their counts
    against the quotas move to them (409 `quota_exceeded` when they have no room), the
    labels on its tasks become the new owner's labels of the same names, and the old owner
    stays on as an `editor`. 422 `reference_not_found` when `user_id` is not a member."""
    moved = await service.transfer(session, access=access, to_user_id=data.user_id, quotas=quotas)
    response.headers["ETag"] = etag_for(moved.project.version)
    return project_service.public(moved.project, moved.role)


@router.get(
    "/invitations",
    summary="List your invitations",
    response_model=list[ReceivedInvitation],
    responses=problem_responses(401, 403),
)
async def list_my_invitations(user: ActiveUser, session: SessionDep) -> list[ReceivedInvitation]:
    """The unexpired invitations to your confirmed address, oldest first (an account that
    has not confirmed its address: 403 `email_not_verified`)."""
    found = await service.invitations_for(session, user)
    return [
        ReceivedInvitation(
            id=invitation.id,
            project=ProjectSummary(id=project.id, name=project.name),
            role=Role(invitation.role),
            invited_by=inviter.full_name or inviter.email,
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
        )
        for invitation, project, inviter in found
    ]


@router.post(
    "/invitations/accept",
    summary="Accept an invitation",
    response_model=ProjectPublic,
    responses=problem_responses(401, 403, 409, 422),
)
async def accept_invitation(
    data: InvitationAnswerBody, user: ActiveUser, session: SessionDep, auth: AuthDep
) -> ProjectPublic:
    """Join the project with the mailed token: the account must have confirmed the address
    it was sent to (403 `email_not_verified` or `invitation_for_another_address`); 422
    `invalid_invitation` for a used, withdrawn or expired token."""
    access = await service.accept_invitation(
        session, user=user, token=data.token, settings=auth.settings
    )
    return project_service.public(access.project, access.role)


@router.post(
    "/invitations/decline",
    summary="Decline an invitation",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 422),
)
async def decline_invitation(
    data: InvitationAnswerBody, user: ActiveUser, session: SessionDep
) -> None:
    """Say no with the mailed token: the invitation is gone, nothing else changes."""
    await service.decline_invitation(session, user=user, token=data.token)
