"""Sharing errors, each with a stable code."""

from app.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity


class RoleTooLow(Forbidden):
    code = "role_too_low"
    detail = "Your role in this project does not allow this."


class InboxUnshareable(Conflict):
    code = "inbox_unshareable"
    detail = "The Inbox is never shared."


class AlreadyMember(Conflict):
    code = "already_member"
    detail = "This address already belongs to the project's owner or one of its members."


class MemberNotFound(NotFound):
    code = "member_not_found"
    detail = "No such member of this project."


class OwnerCannotLeave(Conflict):
    code = "owner_cannot_leave"
    detail = "The owner cannot leave the project: transfer it to a member first."


class InvalidInvitation(UnprocessableEntity):
    code = "invalid_invitation"
    detail = "This invitation does not exist any more: it was answered, withdrawn or expired."


class InvitationForAnotherAddress(Forbidden):
    code = "invitation_for_another_address"
    detail = "This invitation was sent to another address: sign in with the account it names."


class InvitationNotFound(NotFound):
    code = "invitation_not_found"
    detail = "No such pending invitation."


class OwnsSharedProjects(Conflict):
    code = "owns_shared_projects"
    detail = (
        "This account owns projects that other people are members of: transfer them"
        " (POST /api/v1/projects/{id}/transfer) or remove the members first."
    )
