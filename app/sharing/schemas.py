"""Request and response models for sharing: members, invitations, transfer."""

import uuid
from enum import StrEnum
from typing import Annotated

from fastapi import Body
from pydantic import Field as PydanticField
from pydantic import StringConstraints

from app.core.schemas import Email, InputModel, Instant, PublicModel, examples
from app.sharing.models import Role


class MemberRole(StrEnum):
    """The roles that can be given to a member (ownership moves only by a transfer)."""

    EDITOR = "editor"
    VIEWER = "viewer"


class InvitationCreate(InputModel):
    """Invite an address to the project with a role."""

    email: Email
    role: MemberRole = MemberRole.VIEWER


class RoleChange(InputModel):
    """A member's new role."""

    role: MemberRole


class Transfer(InputModel):
    """The member who becomes the project's owner."""

    user_id: uuid.UUID


# Tokens are 43 URL-safe characters; the bound keeps a huge body from being hashed.
InvitationToken = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class InvitationAnswer(InputModel):
    """The token of the mailed invitation."""

    token: InvitationToken


InvitationCreateBody = Annotated[
    InvitationCreate,
    Body(
        openapi_examples=examples(
            viewer=("Invite someone to read and comment", {"email": "ada@example.com"}),
            editor=(
                "Invite someone to work on the tasks",
                {"email": "ada@example.com", "role": "editor"},
            ),
        )
    ),
]
RoleChangeBody = Annotated[
    RoleChange, Body(openapi_examples=examples(editor=("Make an editor", {"role": "editor"})))
]
TransferBody = Annotated[
    Transfer,
    Body(
        openapi_examples=examples(
            member=("To a member", {"user_id": "0192f0c1-7a6e-7b3a-9f1e-2b4c6d8e0a12"})
        )
    ),
]
InvitationAnswerBody = Annotated[
    InvitationAnswer,
    Body(
        openapi_examples=examples(
            mailed=("The mailed token", {"token": "kq3V0cXbq2d5m9fK1nJ8Yw0Qx7sT4uR6aP2eL5hC9gM"})
        )
    ),
]


class MemberPublic(PublicModel):
    """Someone with access to a project: its owner or a member."""

    user_id: uuid.UUID
    email: str = PydanticField(description="Co-members see each other's address.")
    full_name: str | None
    role: Role
    since: Instant = PydanticField(description="When they joined (the owner: creation).")


class InvitationPublic(PublicModel):
    """A pending invitation, as the project's owner sees it."""

    id: uuid.UUID
    project_id: uuid.UUID
    email: str
    role: Role
    created_at: Instant
    expires_at: Instant


class ProjectSummary(PublicModel):
    """The project an invitation is for."""

    id: uuid.UUID
    name: str


class ReceivedInvitation(PublicModel):
    """An invitation to the caller's address, to accept or decline with the mailed token."""

    id: uuid.UUID
    project: ProjectSummary
    role: Role
    invited_by: str | None = PydanticField(description="The inviter's name or address.")
    created_at: Instant
    expires_at: Instant
