"""Queries and rules for users: plain functions, session first, keyword-only after."""

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity import service as activity
from app.activity.models import EntityType, Verb
from app.core.db.errors import is_unique_violation
from app.core.mail import Mail
from app.core.models import utcnow
from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.core.schemas import canonical_email
from app.core.security import PasswordHasher
from app.core.sql import LIKE_ESCAPE, contains_pattern
from app.sharing import service as sharing_service
from app.users.exceptions import EmailTaken, LastAdmin, UserNotFound
from app.users.models import Role, User
from app.users.schemas import UserCreate, UserPublic, UserUpdate, UserUpdateMe

if TYPE_CHECKING:
    from app.auth.service import AuthComponents


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    """The user with this id, or UserNotFound."""
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this email (compared case-insensitively), if any."""
    result = await session.exec(select(User).where(User.email == email.lower()))
    return result.first()


async def _flush_unique_email(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise  # not the email: a race the request's transaction runs again for
        # Two sign-ups racing for one email: the unique constraint decides, the loser gets 409.
        await session.rollback()
        raise EmailTaken() from exc


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    hashed_password: str,
    full_name: str | None = None,
    role: Role = Role.USER,
    is_active: bool = True,
    email_verified: bool = False,
) -> User:
    """Insert a user; EmailTaken when the email is in use. `email_verified`: the address
    counts as confirmed from now (verification off, or an operator's own account)."""
    email = email.lower()
    if await get_user_by_email(session, email) is not None:
        raise EmailTaken()
    user = User(
        email=email,
        hashed_password=hashed_password,
        full_name=full_name,
        role=role,
        is_active=is_active,
        email_verified_at=utcnow() if email_verified else None,
    )
    session.add(user)
    await _flush_unique_email(session)
    # Imported here: the tasks area depends on users, not the other way round at import time.
    from app.projects import service as project_service

    await project_service.create_inbox(session, owner_id=user.id)
    return user


async def _active_admin_count(session: AsyncSession) -> int:
    # Lock the admin rows (PostgreSQL; SQLite has one writer at a time anyway): two admins
    # demoting each other at once must not both see "another admin is left".
    admins = await session.exec(
        select(User.id).where(User.role == Role.ADMIN, col(User.is_active)).with_for_update()
    )
    return len(admins.all())


async def _guard_last_admin(session: AsyncSession, user: User, changes: Mapping[str, Any]) -> None:
    if user.role != Role.ADMIN or not user.is_active:
        return
    demoted = changes.get("role", Role.ADMIN) != Role.ADMIN
    deactivated = changes.get("is_active", True) is False
    if (demoted or deactivated or changes.get("_delete")) and await _active_admin_count(
        session
    ) <= 1:
        raise LastAdmin()


async def update_user(
    session: AsyncSession, user: User, changes: Mapping[str, Any], *, hashed_password: str | None
) -> User:
    """Apply the given field changes (already validated); EmailTaken on a taken email."""
    await _guard_last_admin(session, user, changes)
    email = changes.get("email")
    if email is not None and email != user.email:
        other = await get_user_by_email(session, email)
        if other is not None and other.id != user.id:
            raise EmailTaken()
    for field, value in changes.items():
        if field in {"email", "full_name", "role", "is_active"}:
            if field in {"email", "role", "is_active"} and value is None:
                continue  # these columns cannot be cleared
            setattr(user, field, value)
    if hashed_password is not None:
        user.hashed_password = hashed_password
    user.updated_at = utcnow()
    session.add(user)
    await _flush_unique_email(session)
    return user


@dataclass(frozen=True, slots=True)
class OwnAccountUpdate:
    """The caller's account after their change, and the mails to send once it is committed."""

    user: User
    mails: list[Mail]


async def update_own_account(
    session: AsyncSession,
    auth: "AuthComponents",
    *,
    user: User,
    data: UserUpdateMe,
    session_id: uuid.UUID | None = None,
) -> OwnAccountUpdate:
    """The caller's changes to their own name or email; a new email needs `current_password`.

    With verification on, a new email waits in `pending_email` until the link mailed to it is
    used (`auth.verification.verify_email` makes the change and signs out the other
    sessions); whether another account has that address is not told here. With it off, the
    address changes at once (EmailTaken if it is another account's) and every session but
    `session_id` (the caller's) is signed out. Either way the old address is told. Sending
    the current email again cancels a pending change.
    """
    # Imported here: auth depends on users at import time, not the other way round.
    from app.auth import service as auth_service
    from app.auth import verification

    changes = data.model_dump(exclude_unset=True, exclude={"current_password", "email"})
    requested = data.email
    old_email = user.email
    if requested is None or requested == old_email:
        if requested is not None and user.pending_email is not None:
            session.add(user)  # the caller's detached copy: tracked before it is changed
            user.pending_email = None  # the current address again: a pending change is off
        return OwnAccountUpdate(await update_user(session, user, changes, hashed_password=None), [])
    await auth_service.confirm_password(session, auth, user=user, password=data.current_password)
    session.add(user)
    if auth.settings.email_verification_enabled:
        user.pending_email = requested
        updated = await update_user(session, user, changes, hashed_password=None)
        mails = await verification.email_change_mails(
            session,
            auth,
            user=updated,
            old_email=old_email,
            new_email=requested,
            session_id=session_id,
        )
        return OwnAccountUpdate(updated, mails)
    user.pending_email = None
    user.email_verified_at = utcnow()  # verification is off: every address counts as confirmed
    updated = await update_user(
        session, user, {**changes, "email": requested}, hashed_password=None
    )
    await auth_service.revoke_all_sessions(session, user_id=user.id, except_session_id=session_id)
    return OwnAccountUpdate(updated, [verification.email_changed_notice(old_email, requested)])


async def admin_create_user(
    session: AsyncSession,
    hasher: PasswordHasher,
    *,
    data: UserCreate,
    email_verified: bool = True,
) -> User:
    """An account made by an admin, with any role; EmailTaken when the email is in use.
    `email_verified`: whether its address counts as confirmed (verification off)."""
    return await create_user(
        session,
        email=data.email,
        hashed_password=await hasher.hash(data.password),
        full_name=data.full_name,
        role=data.role,
        is_active=data.is_active,
        email_verified=email_verified,
    )


async def admin_update_user(
    session: AsyncSession,
    hasher: PasswordHasher,
    *,
    user: User,
    data: UserUpdate,
    verification: bool = False,
    admin_id: uuid.UUID | None = None,
) -> User:
    """An admin's changes to any account; a new password or email, or deactivation, signs
    it out. An audit entry (`admin_id` the admin) records the fields it changed.

    A new email takes effect at once and drops a pending change; with `verification` on it
    counts as unconfirmed unless the same request sets `email_verified`, which marks the
    address confirmed (now, if it was not) or not.
    """
    from app.auth import service as auth_service

    changes = data.model_dump(exclude_unset=True, exclude={"password", "email_verified"})
    audited = {name: getattr(user, name) for name in [*changes, "email_verified"]}
    if data.password:
        auth_service.ensure_password_not_email(data.password, changes.get("email") or user.email)
    hashed = await hasher.hash(data.password) if data.password else None
    new_email = changes.get("email") not in (None, user.email)
    verified = data.email_verified
    if new_email:
        user.pending_email = None
        if verified is None:
            verified = not verification
        if not verified:
            user.email_verified_at = None
    if verified is not None and verified != user.email_verified:
        user.email_verified_at = utcnow() if verified else None
    after = {**changes, "email_verified": user.email_verified}
    if hashed is not None:  # never the hash itself
        audited["password"], after["password"] = "unchanged", "reset"
    updated = await update_user(session, user, changes, hashed_password=hashed)
    await _audit(session, user, Verb.UPDATE, activity.diff(audited, after), admin_id=admin_id)
    if changes.get("is_active") is False or hashed is not None or new_email:
        await auth_service.revoke_all_sessions(session, user_id=user.id)
    return updated


async def _audit(
    session: AsyncSession,
    user: User,
    verb: Verb,
    changes: Mapping[str, Any],
    *,
    admin_id: uuid.UUID | None,
) -> None:
    # In the change log's sequence, never served to clients (activity.SERVED_TYPES).
    await activity.record(
        session,
        actor_id=admin_id,
        verb=verb,
        entity_type=EntityType.ACCOUNT,
        entity_id=user.id,
        project_id=None,
        changes=changes,
    )


async def delete_user(
    session: AsyncSession, user: User, *, admin_id: uuid.UUID | None = None
) -> None:
    """Delete the account; the database cascades to everything it owns. Refused (409
    `owns_shared_projects`) while it owns a project other people are members of. Deleted
    by an admin (`admin_id`): an audit entry says so."""
    await _guard_last_admin(session, user, {"_delete": True})
    await sharing_service.ensure_no_shared_projects(session, user)
    if admin_id is not None:
        await _audit(session, user, Verb.DELETE, {"email": [user.email, None]}, admin_id=admin_id)
    await session.delete(user)
    await session.flush()


USER_KEYS = [SortKey(col(User.created_at)), SortKey(col(User.id))]


async def list_users(
    session: AsyncSession,
    *,
    page: PageParams,
    codec: CursorCodec,
    email: str | None = None,
    is_active: bool | None = None,
) -> Page[UserPublic]:
    """Users in sign-up order, filtered by an email fragment and/or the active flag."""
    statement = select(User)
    if email:
        pattern = contains_pattern(email.lower())
        statement = statement.where(col(User.email).like(pattern, escape=LIKE_ESCAPE))
    if is_active is not None:
        statement = statement.where(col(User.is_active).is_(is_active))
    return await paginate(
        session,
        statement,
        keys=USER_KEYS,
        page=page,
        codec=codec,
        scope="users",
        key_of=lambda user: [user.created_at, user.id],
        to_item=lambda user: UserPublic.model_validate(user, from_attributes=True),
    )


AccountId = TypeVar("AccountId", bound=Hashable)


@dataclass
class EmailNormalisation(Generic[AccountId]):
    """What bringing stored emails to their canonical form would do.

    `changes` are (account, stored, canonical) that can be rewritten; `collisions` map a
    canonical form to the accounts (id, stored) that share it, which keep their stored forms
    until an admin changes or deletes all but one; `unparsed` are stored emails the address
    rules no longer accept (kept as they are).
    """

    changes: list[tuple[AccountId, str, str]] = dataclasses.field(default_factory=list)
    collisions: dict[str, list[tuple[AccountId, str]]] = dataclasses.field(default_factory=dict)
    unparsed: list[tuple[AccountId, str]] = dataclasses.field(default_factory=list)


def plan_email_normalisation(
    accounts: Iterable[tuple[AccountId, str]],
) -> EmailNormalisation[AccountId]:
    """The rewrite of every stored email to `canonical_email`'s form, and its collisions."""
    plan: EmailNormalisation[AccountId] = EmailNormalisation()
    by_form: dict[str, list[tuple[AccountId, str]]] = defaultdict(list)
    for account_id, stored in accounts:
        canonical = canonical_email(stored)
        if canonical is None:
            plan.unparsed.append((account_id, stored))
            canonical = stored
        by_form[canonical].append((account_id, stored))
    for canonical, sharing in by_form.items():
        if len(sharing) > 1:
            plan.collisions[canonical] = sorted(sharing, key=lambda account: account[1])
        elif sharing[0][1] != canonical:
            plan.changes.append((sharing[0][0], sharing[0][1], canonical))
    return plan


async def normalise_stored_emails(
    session: AsyncSession, *, apply: bool
) -> EmailNormalisation[uuid.UUID]:
    """Plan (and with `apply`, carry out) the rewrite of stored emails; see the migration
    that did it first (20261204_b4e2f6a8c1d3)."""
    rows = await session.exec(select(User.id, User.email).with_for_update())
    plan = plan_email_normalisation((account_id, email) for account_id, email in rows.all())
    if apply:
        for account_id, _, canonical in plan.changes:
            await session.exec(
                update(User).where(col(User.id) == account_id).values(email=canonical)
            )
    return plan
