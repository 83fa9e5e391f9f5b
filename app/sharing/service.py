"""Sharing rules: who can see a project, invitations by email, roles, leaving and transfer.

Plain functions, session first. Every access decision goes through `policy.check`; the role
is read from the database in the request's own transaction each time (never cached), so a
removed member loses access at once, in this process and every other.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity import service as activity
from app.activity.models import EntityType, Verb
from app.core.config import Settings
from app.core.errors import ReferenceNotFound
from app.core.mail import Mail
from app.core.models import utcnow
from app.core.versioning import bumped, flush_versioned, touch
from app.labels.models import Label, name_key
from app.notifications import service as notifications
from app.notifications.models import NotificationKind
from app.projects import service as project_service
from app.projects.exceptions import ProjectNotFound
from app.projects.models import Project
from app.quotas import service as quota_service
from app.quotas.exceptions import QuotaExceeded
from app.quotas.models import Resource
from app.quotas.service import Quotas
from app.sharing import policy
from app.sharing.exceptions import (
    AlreadyMember,
    InboxUnshareable,
    InvalidInvitation,
    InvitationForAnotherAddress,
    InvitationNotFound,
    MemberNotFound,
    OwnsSharedProjects,
)
from app.sharing.models import Invitation, ProjectMember, Role
from app.sharing.policy import Action
from app.tasks.exceptions import TaskNotFound
from app.tasks.models import Task, TaskLabel
from app.users import policy as user_policy
from app.users.models import User


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    """A project as one account reaches it, with that account's role in it."""

    project: Project
    role: Role


@dataclass(frozen=True, slots=True)
class SharingLimits:
    """The caps on sharing (settings), each checked by a count bounded by the cap itself."""

    members_per_project: int
    shared_projects_per_user: int
    pending_invitations_per_inviter: int
    invitation_lifetime: timedelta

    @classmethod
    def of(cls, settings: Settings) -> "SharingLimits":
        return cls(
            members_per_project=settings.PROJECT_MEMBERS_MAX,
            shared_projects_per_user=settings.SHARED_PROJECTS_PER_USER_MAX,
            pending_invitations_per_inviter=settings.PENDING_INVITATIONS_PER_INVITER_MAX,
            invitation_lifetime=timedelta(hours=settings.INVITATION_EXPIRE_HOURS),
        )


@dataclass(frozen=True, slots=True)
class MemberView:
    """One row of a project's member list: the owner or a member, with their account."""

    user: User
    role: Role
    since: datetime


def _role_of(project: Project, user_id: uuid.UUID, member_role: str | None) -> Role:
    # The query found the row only for its owner or a member.
    return Role.OWNER if project.owner_id == user_id else Role(member_role or Role.VIEWER)


async def get_access(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    project_id: uuid.UUID,
    action: Action,
    include_trashed: bool = False,
    for_update: bool = False,
) -> ProjectAccess:
    """The project as `user_id` reaches it, if the policy lets them do `action` there.

    404 `project_not_found` for a stranger (or a missing or trashed project), 403
    `role_too_low` for a member whose role does not allow `action`. `for_update` locks the
    project row (its members change with it: every change to sharing takes this lock first).
    """
    member = ProjectMember
    statement = (
        select(Project, col(member.role))
        .outerjoin(
            member,
            and_(col(member.project_id) == Project.id, col(member.user_id) == user_id),
        )
        .where(
            Project.id == project_id,
            or_(col(Project.owner_id) == user_id, col(member.user_id).is_not(None)),
        )
    )
    if not include_trashed:
        statement = statement.where(col(Project.deleted_at).is_(None))
    if for_update:
        statement = statement.with_for_update(of=Project)
    found = (await session.exec(statement)).first()
    if found is None:
        policy.check(None, action)
        raise ProjectNotFound()  # check(None, ...) always raises; this says so to mypy
    role = _role_of(found[0], user_id, found[1])
    policy.check(role, action)
    return ProjectAccess(found[0], role)


@dataclass(frozen=True, slots=True)
class TaskAccess:
    """A task as one account reaches it: its owner (the project's), project and the role."""

    owner_id: uuid.UUID
    project_id: uuid.UUID
    role: Role


async def task_access(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    task_id: uuid.UUID,
    action: Action,
    include_trashed: bool = False,
) -> TaskAccess:
    """The task as `user_id` reaches it through its project, if the policy allows `action`;
    404 `task_not_found` for a stranger, as for a missing task (403 for too low a role)."""
    member = ProjectMember
    statement = (
        select(Task.owner_id, Task.project_id, col(member.role))
        .outerjoin(
            member,
            and_(col(member.project_id) == Task.project_id, col(member.user_id) == user_id),
        )
        .where(
            Task.id == task_id,
            or_(col(Task.owner_id) == user_id, col(member.user_id).is_not(None)),
        )
    )
    if not include_trashed:
        statement = statement.where(col(Task.deleted_at).is_(None))
    found = (await session.exec(statement)).first()
    if found is None:
        policy.check(None, action, missing=TaskNotFound)
        raise TaskNotFound()  # check(None, ...) always raises; this says so to mypy
    owner_id, project_id, member_role = found
    role = Role.OWNER if owner_id == user_id else Role(member_role or Role.VIEWER)
    policy.check(role, action, missing=TaskNotFound)
    return TaskAccess(owner_id, project_id, role)


async def roles_in(
    session: AsyncSession, *, user_id: uuid.UUID, project_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Role]:
    """`user_id`'s member roles in these projects (those they do not own), by project id."""
    if not project_ids:
        return {}
    rows = await session.exec(
        select(ProjectMember.project_id, ProjectMember.role).where(
            ProjectMember.user_id == user_id, col(ProjectMember.project_id).in_(project_ids)
        )
    )
    return {project_id: Role(role) for project_id, role in rows.all()}


def shared_with(user_id: uuid.UUID) -> object:
    """The ids of the projects shared with `user_id` (a subquery for `IN`)."""
    return select(ProjectMember.project_id).where(ProjectMember.user_id == user_id)


async def list_members(session: AsyncSession, project: Project) -> list[MemberView]:
    """The owner first, then the members in the order they joined."""
    # The foreign key cascades: a project never outlives its owner.
    owner = (await session.exec(select(User).where(User.id == project.owner_id))).one()
    rows = await session.exec(
        select(ProjectMember, User)
        .join(User, col(User.id) == ProjectMember.user_id)
        .where(ProjectMember.project_id == project.id)
        .order_by(col(ProjectMember.created_at), col(ProjectMember.user_id))
    )
    members = [MemberView(owner, Role.OWNER, project.created_at)]
    members += [MemberView(user, Role(m.role), m.created_at) for m, user in rows.all()]
    return members


async def _count(session: AsyncSession, statement: object, cap: int) -> int:
    # At most cap + 1 rows are read, so a count costs no more than the cap allows.
    limited = statement.limit(cap + 1).subquery()  # type: ignore[attr-defined]
    return int((await session.exec(select(func.count()).select_from(limited))).one())


def _limit_reached(resource: str, limit: int) -> QuotaExceeded:
    return QuotaExceeded(extra={"resource": resource, "limit": limit})


async def _check_room_for_member(
    session: AsyncSession, project: Project, limits: SharingLimits, *, invitations: bool
) -> None:
    """Members and pending invitations of a project together stay within its cap."""
    cap = limits.members_per_project
    members = await _count(
        session, select(ProjectMember.user_id).where(ProjectMember.project_id == project.id), cap
    )
    pending = 0
    if invitations:
        pending = await _count(
            session, select(Invitation.id).where(Invitation.project_id == project.id), cap
        )
    if members + pending >= cap:
        raise _limit_reached("project_members", cap)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Invited:
    """An invitation made, and the mail that carries its token (sent after the response)."""

    invitation: Invitation
    mail: Mail


def _invitation_mail(
    settings: Settings, *, inviter: User, project: Project, address: str, role: Role, token: str
) -> Mail:
    frontend = str(settings.FRONTEND_URL).rstrip("/")
    who = inviter.full_name or inviter.email
    body = (
        f'{who} invites you to the project "{project.name}" as {role.value}.\n\n'
        f"Accept or decline here: {frontend}/invitations#token={token}\n"
        f"(or send the token to POST /api/v1/invitations/accept or /decline):\n{token}\n\n"
        f"Sign in with an account whose confirmed address is {address}. The invitation"
        f" expires in {settings.INVITATION_EXPIRE_HOURS} hours."
    )
    return Mail(to=address, subject=f"Invitation to {project.name}", body=body)


async def invite(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    inviter: User,
    email: str,
    role: Role,
    settings: Settings,
    now: datetime | None = None,
) -> Invited:
    """Invite an address to the project (the owner only, with a confirmed address).

    Always a pending invitation mailed to the address, whether or not it has an account: the
    inviter learns nothing about it. A new invitation to an address replaces the pending one
    (a new token; the old one stops working).
    """
    policy.check(access.role, Action.MANAGE_MEMBERS)
    user_policy.ensure_verified(inviter)
    project = access.project
    if project.is_inbox:
        raise InboxUnshareable()
    limits = SharingLimits.of(settings)
    now = now or utcnow()
    taken = select(User.id).where(User.email == email)
    owner_or_member = await session.exec(
        select(User.id).where(
            col(User.id).in_(taken),
            or_(
                col(User.id) == project.owner_id,
                col(User.id).in_(
                    select(ProjectMember.user_id).where(ProjectMember.project_id == project.id)
                ),
            ),
        )
    )
    if owner_or_member.first() is not None:
        raise AlreadyMember()
    await session.exec(
        delete(Invitation).where(
            col(Invitation.project_id) == project.id, col(Invitation.email) == email
        )
    )
    await _check_room_for_member(session, project, limits, invitations=True)
    cap = limits.pending_invitations_per_inviter
    pending = await _count(
        session,
        select(Invitation.id).where(
            Invitation.inviter_id == inviter.id, Invitation.expires_at > now
        ),
        cap,
    )
    if pending >= cap:
        raise _limit_reached("pending_invitations", cap)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        project_id=project.id,
        inviter_id=inviter.id,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        created_at=now,
        expires_at=now + limits.invitation_lifetime,
    )
    session.add(invitation)
    await session.flush()
    # No address in the record: members read the project's activity.
    await activity.record(
        session,
        actor_id=inviter.id,
        verb=Verb.CREATE,
        entity_type=EntityType.INVITATION,
        entity_id=invitation.id,
        project_id=project.id,
        changes={"role": [None, role.value]},
        now=now,
    )
    invitee = (
        await session.exec(
            select(User).where(User.email == email, col(User.email_verified_at).is_not(None))
        )
    ).first()
    if invitee is not None:
        await notifications.notify(
            session,
            user_id=invitee.id,
            kind=NotificationKind.INVITED,
            actor_id=inviter.id,
            project_id=project.id,
            data={"project_name": project.name, "role": role.value},
            now=now,
        )
    mail = _invitation_mail(
        settings, inviter=inviter, project=project, address=email, role=role, token=token
    )
    return Invited(invitation, mail)


def check_manages_members(access: ProjectAccess) -> None:
    """The policy's word on managing this project's members (the owner only)."""
    policy.check(access.role, Action.MANAGE_MEMBERS)


async def list_project_invitations(session: AsyncSession, project: Project) -> list[Invitation]:
    """The project's pending invitations, oldest first (its owner's view)."""
    rows = await session.exec(
        select(Invitation)
        .where(Invitation.project_id == project.id)
        .order_by(col(Invitation.created_at), col(Invitation.id))
    )
    return list(rows.all())


async def withdraw_invitation(
    session: AsyncSession, *, access: ProjectAccess, invitation_id: uuid.UUID
) -> None:
    """Delete a pending invitation of the project (its token stops working)."""
    policy.check(access.role, Action.MANAGE_MEMBERS)
    result = await session.exec(
        delete(Invitation).where(
            col(Invitation.id) == invitation_id, col(Invitation.project_id) == access.project.id
        )
    )
    if result.rowcount == 0:
        raise InvitationNotFound()
    await activity.record(
        session,
        actor_id=access.project.owner_id,
        verb=Verb.DELETE,
        entity_type=EntityType.INVITATION,
        entity_id=invitation_id,
        project_id=access.project.id,
        changes={},
    )


async def invitations_for(
    session: AsyncSession, user: User, *, now: datetime | None = None
) -> list[tuple[Invitation, Project, User]]:
    """The pending, unexpired invitations to the account's confirmed address, with their
    projects and inviters."""
    user_policy.ensure_verified(user)
    now = now or utcnow()
    inviter = aliased(User)
    rows = await session.exec(
        select(Invitation, Project, inviter)
        .join(Project, col(Project.id) == Invitation.project_id)
        .join(inviter, col(inviter.id) == Invitation.inviter_id)
        .where(
            Invitation.email == user.email,
            Invitation.expires_at > now,
            col(Project.deleted_at).is_(None),
        )
        .order_by(col(Invitation.created_at), col(Invitation.id))
    )
    return list(rows.all())


async def _invitation_by_token(
    session: AsyncSession, user: User, token: str, now: datetime
) -> Invitation:
    """The live invitation this token names, if it is the caller's to answer (locked)."""
    user_policy.ensure_verified(user)
    found = (
        await session.exec(
            select(Invitation).where(Invitation.token_hash == _token_hash(token)).with_for_update()
        )
    ).first()
    if found is None or found.expires_at <= now:
        raise InvalidInvitation(loc=("body", "token"))
    if found.email != user.email:
        raise InvitationForAnotherAddress()
    return found


async def accept_invitation(
    session: AsyncSession,
    *,
    user: User,
    token: str,
    settings: Settings,
    now: datetime | None = None,
) -> ProjectAccess:
    """Join the project the invitation names, with its role; the invitation is used up."""
    now = now or utcnow()
    invitation = await _invitation_by_token(session, user, token, now)
    project = (
        await session.exec(
            select(Project)
            .where(Project.id == invitation.project_id, col(Project.deleted_at).is_(None))
            .with_for_update()
        )
    ).first()
    if project is None:
        raise InvalidInvitation(loc=("body", "token"))
    limits = SharingLimits.of(settings)
    # The account's row orders its concurrent acceptances, so its cap holds exactly.
    await session.exec(select(User.id).where(User.id == user.id).with_for_update())
    cap = limits.shared_projects_per_user
    shared = await _count(
        session, select(ProjectMember.project_id).where(ProjectMember.user_id == user.id), cap
    )
    if shared >= cap:
        raise _limit_reached("shared_projects", cap)
    role = Role(invitation.role)
    await session.delete(invitation)
    if project.owner_id != user.id:
        existing = await session.get(ProjectMember, (project.id, user.id))
        if existing is None:
            session.add(
                ProjectMember(project_id=project.id, user_id=user.id, role=role, created_at=now)
            )
            await activity.record(
                session,
                actor_id=user.id,
                verb=Verb.CREATE,
                entity_type=EntityType.MEMBERSHIP,
                entity_id=user.id,
                project_id=project.id,
                changes={"role": [None, role.value]},
                now=now,
            )
        await session.flush()
        role = Role(existing.role) if existing is not None else role
    else:
        role = Role.OWNER
        await session.flush()
    return ProjectAccess(project, role)


async def decline_invitation(
    session: AsyncSession, *, user: User, token: str, now: datetime | None = None
) -> None:
    """Say no: the invitation is deleted, nothing else changes."""
    invitation = await _invitation_by_token(session, user, token, now or utcnow())
    await activity.record(
        session,
        actor_id=user.id,
        verb=Verb.DELETE,
        entity_type=EntityType.INVITATION,
        entity_id=invitation.id,
        project_id=invitation.project_id,
        changes={"role": [Role(invitation.role).value, None]},
    )
    await session.delete(invitation)
    await session.flush()


async def _member(session: AsyncSession, project: Project, user_id: uuid.UUID) -> ProjectMember:
    member = (
        await session.exec(
            select(ProjectMember)
            .where(ProjectMember.project_id == project.id, ProjectMember.user_id == user_id)
            .with_for_update()
        )
    ).first()
    if member is None:
        raise MemberNotFound()
    return member


async def change_role(
    session: AsyncSession, *, access: ProjectAccess, user_id: uuid.UUID, role: Role
) -> MemberView:
    """Give a member another role (the owner only; ownership moves by `transfer`)."""
    policy.check(access.role, Action.MANAGE_MEMBERS)
    member = await _member(session, access.project, user_id)
    target = (await session.exec(select(User).where(User.id == user_id))).one()
    user_policy.ensure_verified(target)
    if member.role != role:
        await activity.record(
            session,
            actor_id=access.project.owner_id,
            verb=Verb.UPDATE,
            entity_type=EntityType.MEMBERSHIP,
            entity_id=user_id,
            project_id=access.project.id,
            changes={"role": [Role(member.role).value, role.value]},
        )
        member.role = role
        session.add(member)
        await session.flush()
        await notifications.notify(
            session,
            user_id=user_id,
            kind=NotificationKind.ROLE_CHANGED,
            actor_id=access.project.owner_id,
            project_id=access.project.id,
            data={"project_name": access.project.name, "role": role.value},
        )
    return MemberView(target, role, member.created_at)


async def remove_member(
    session: AsyncSession, *, access: ProjectAccess, user_id: uuid.UUID
) -> None:
    """Take a member out of the project (the owner only): their access ends with this commit."""
    policy.check(access.role, Action.MANAGE_MEMBERS)
    member = await _member(session, access.project, user_id)
    await _membership_ended(session, access.project, member, actor_id=access.project.owner_id)
    await notifications.notify(
        session,
        user_id=user_id,
        kind=NotificationKind.REMOVED,
        actor_id=access.project.owner_id,
        project_id=access.project.id,
        data={"project_name": access.project.name},
    )


async def leave(session: AsyncSession, *, access: ProjectAccess, user_id: uuid.UUID) -> None:
    """The caller leaves a project shared with them (the owner must transfer it first)."""
    policy.check(access.role, Action.LEAVE)
    member = await _member(session, access.project, user_id)
    await _membership_ended(session, access.project, member, actor_id=user_id)


async def _membership_ended(
    session: AsyncSession, project: Project, member: ProjectMember, *, actor_id: uuid.UUID
) -> None:
    await activity.record(
        session,
        actor_id=actor_id,
        verb=Verb.DELETE,
        entity_type=EntityType.MEMBERSHIP,
        entity_id=member.user_id,
        project_id=project.id,
        changes={"role": [Role(member.role).value, None]},
    )
    await session.delete(member)
    await session.flush()


async def _move_labels(
    session: AsyncSession,
    *,
    project: Project,
    old_owner: uuid.UUID,
    new_owner: uuid.UUID,
    quotas: Quotas,
) -> None:
    """A task's labels come from its project owner's set: the project's tasks get labels of
    the new owner's set with the same names (made where the new owner has none)."""
    in_project = select(Task.id).where(Task.project_id == project.id)
    used = await session.exec(
        select(Label)
        .where(
            Label.owner_id == old_owner,
            col(Label.id).in_(
                select(TaskLabel.label_id).where(col(TaskLabel.task_id).in_(in_project))
            ),
        )
        .order_by(col(Label.id))
    )
    for label in used.all():
        key = name_key(label.name)
        target = (
            await session.exec(
                select(Label).where(Label.owner_id == new_owner, Label.name_key == key)
            )
        ).first()
        if target is None:
            await quota_service.charge(
                session, owner_id=new_owner, resource=Resource.LABELS, quotas=quotas
            )
            target = Label(owner_id=new_owner, name=label.name, name_key=key, color=label.color)
            session.add(target)
            await session.flush()
        await session.exec(
            update(TaskLabel)
            .where(
                col(TaskLabel.label_id) == label.id,
                col(TaskLabel.task_id).in_(in_project),
            )
            .values(label_id=target.id)
            .execution_options(synchronize_session=False)
        )


async def transfer(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    to_user_id: uuid.UUID,
    quotas: Quotas,
    now: datetime | None = None,
) -> ProjectAccess:
    """Make a member the owner (the owner only); the old owner stays on as an editor.

    The project's tasks follow (`task.owner_id` is always the project's owner, and their
    labels come from the new owner's set), and so do their counts against the quotas: 409
    `quota_exceeded` when the new owner has no room for them.
    """
    policy.check(access.role, Action.TRANSFER)
    project = access.project
    old_owner = project.owner_id
    try:
        member = await _member(session, project, to_user_id)
    except MemberNotFound as exc:
        raise ReferenceNotFound(
            "No member of this project has this id.", loc=("body", "user_id")
        ) from exc
    now = now or utcnow()
    task_count = int(
        (
            await session.exec(
                select(func.count()).select_from(Task).where(Task.project_id == project.id)
            )
        ).one()
    )
    await quota_service.charge(
        session, owner_id=to_user_id, resource=Resource.PROJECTS, quotas=quotas
    )
    await quota_service.refund(session, owner_id=old_owner, resource=Resource.PROJECTS)
    if task_count:
        await quota_service.charge(
            session, owner_id=to_user_id, resource=Resource.TASKS, quotas=quotas, amount=task_count
        )
        await quota_service.refund(
            session, owner_id=old_owner, resource=Resource.TASKS, amount=task_count
        )
    await _move_labels(
        session, project=project, old_owner=old_owner, new_owner=to_user_id, quotas=quotas
    )
    await session.delete(member)
    await session.flush()
    project.owner_id = to_user_id
    touch(project, now=now)
    session.add(project)
    await flush_versioned(session, project)
    await session.exec(
        update(Task)
        .where(col(Task.project_id) == project.id)
        .values(owner_id=to_user_id, **bumped(Task.version, now))
        .execution_options(synchronize_session=False)
    )
    session.add(
        ProjectMember(project_id=project.id, user_id=old_owner, role=Role.EDITOR, created_at=now)
    )
    await session.flush()
    for user_id, before, after in (
        (to_user_id, Role(member.role), Role.OWNER),
        (old_owner, Role.OWNER, Role.EDITOR),
    ):
        await activity.record(
            session,
            actor_id=old_owner,
            verb=Verb.UPDATE,
            entity_type=EntityType.MEMBERSHIP,
            entity_id=user_id,
            project_id=project.id,
            changes={"role": [before.value, after.value]},
            now=now,
        )
    await project_service.record_change(
        session,
        project,
        Verb.UPDATE,
        activity.diff({"owner_id": old_owner}, {"owner_id": to_user_id}),
        actor_id=old_owner,
        now=now,
    )
    await notifications.notify(
        session,
        user_id=to_user_id,
        kind=NotificationKind.ROLE_CHANGED,
        actor_id=old_owner,
        project_id=project.id,
        data={"project_name": project.name, "role": Role.OWNER.value},
        now=now,
    )
    return ProjectAccess(project, Role.EDITOR)


async def ensure_no_shared_projects(session: AsyncSession, user: User) -> None:
    """OwnsSharedProjects (409) while the account owns a project someone else is a member of:
    deleting it would delete their work too."""
    found = await session.exec(
        select(ProjectMember.project_id)
        .join(Project, col(Project.id) == ProjectMember.project_id)
        .where(Project.owner_id == user.id)
        .limit(1)
    )
    if found.first() is not None:
        raise OwnsSharedProjects()
