"""The caller's own account, and account administration for admins."""

from typing import Annotated

from fastapi import BackgroundTasks, Query, status

from app.auth import service as auth_service
from app.auth.dependencies import ActivePrincipal, ActiveUser, AdminUser, AuthDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import CursorCodecDep, Page, PageParamsDep
from app.core.routing import AppRouter
from app.core.schemas import EMAIL_MAX_LENGTH
from app.users import service
from app.users.dependencies import AdministeredUser
from app.users.models import Role, User
from app.users.schemas import (
    NO_CONTROL_CHARACTERS,
    PasswordChangeBody,
    UserCreateBody,
    UserPublic,
    UserUpdateBody,
    UserUpdateMeBody,
)

router = AppRouter(prefix="/users", tags=["users"])


_PUBLIC_FIELDS = tuple(UserPublic.model_fields)


def _public(user: User) -> UserPublic:
    # The stored row was validated on its way in; validating it again would rerun the email
    # syntax check on every response (docs/performance.md).
    fields = {name: getattr(user, name) for name in _PUBLIC_FIELDS}
    fields["role"] = Role(fields["role"])
    return UserPublic.model_construct(**fields)


@router.get(
    "/me", summary="My account", response_model=UserPublic, responses=problem_responses(401)
)
async def read_me(user: ActiveUser) -> UserPublic:
    """The signed-in user's account."""
    return _public(user)


@router.patch(
    "/me",
    summary="Update my account",
    response_model=UserPublic,
    responses=problem_responses(400, 401, 409, 429),
)
async def update_me(
    data: UserUpdateMeBody,
    principal: ActivePrincipal,
    session: SessionDep,
    auth: AuthDep,
    background: BackgroundTasks,
) -> UserPublic:
    """Change the caller's name or email (with `current_password`); only fields sent change.

    When the service confirms addresses, a new email shows in `pending_email` until the link
    mailed to it is used (`/auth/verify`); then, or at once when it does not, it replaces
    `email` and every other session of the account is signed out. The old address is told.
    """
    updated = await service.update_own_account(
        session, auth, user=principal.user, data=data, session_id=principal.session_id
    )
    for mail in updated.mails:
        background.add_task(auth_service.send_mail, auth.mailer, mail)
    return _public(updated.user)


@router.delete(
    "/me",
    summary="Delete my account",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 409),
)
async def delete_me(user: ActiveUser, session: SessionDep) -> None:
    """Delete the caller's account and everything it owns, for good."""
    await service.delete_user(session, user)


@router.post(
    "/me/password",
    summary="Change my password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 401, 429),
)
async def change_password(
    data: PasswordChangeBody,
    principal: ActivePrincipal,
    session: SessionDep,
    auth: AuthDep,
) -> None:
    """Replace the caller's password; every other session of the account is signed out."""
    await auth_service.change_password(
        session,
        auth,
        principal=principal,
        current_password=data.current_password,
        new_password=data.new_password,
    )


@router.get(
    "",
    summary="List users (admin)",
    response_model=Page[UserPublic],
    responses=problem_responses(401, 403),
)
async def list_users(
    _admin: AdminUser,
    session: SessionDep,
    cursors: CursorCodecDep,
    page: PageParamsDep,
    email: Annotated[
        str | None,
        Query(
            max_length=EMAIL_MAX_LENGTH,
            pattern=NO_CONTROL_CHARACTERS,
            description="Part of the email.",
        ),
    ] = None,
    is_active: Annotated[bool | None, Query(description="Only (in)active accounts.")] = None,
) -> Page[UserPublic]:
    """Every account, in sign-up order, optionally filtered."""
    return await service.list_users(
        session, page=page, codec=cursors, email=email, is_active=is_active
    )


@router.post(
    "",
    summary="Create a user (admin)",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=problem_responses(401, 403, 409),
)
async def create_user(
    data: UserCreateBody, _admin: AdminUser, session: SessionDep, auth: AuthDep
) -> UserPublic:
    """Create an account with any role (its address unconfirmed when the service confirms
    addresses; PATCH `email_verified` vouches for it)."""
    verified = not auth.settings.email_verification_enabled
    return _public(
        await service.admin_create_user(session, auth.hasher, data=data, email_verified=verified)
    )


@router.get(
    "/{user_id}",
    summary="Read a user (admin)",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404),
)
async def read_user(user: AdministeredUser) -> UserPublic:
    """One account."""
    return _public(user)


@router.patch(
    "/{user_id}",
    summary="Update a user (admin)",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404, 409),
)
async def update_user(
    data: UserUpdateBody,
    user: AdministeredUser,
    admin: AdminUser,
    session: SessionDep,
    auth: AuthDep,
) -> UserPublic:
    """Change any field of an account; deactivating it or setting its password signs it out.

    A new email takes effect at once; when the service confirms addresses it counts as
    unconfirmed unless `email_verified` is sent with it."""
    return _public(
        await service.admin_update_user(
            session,
            auth.hasher,
            user=user,
            data=data,
            verification=auth.settings.email_verification_enabled,
            admin_id=admin.id,
        )
    )


@router.delete(
    "/{user_id}",
    summary="Delete a user (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_user(user: AdministeredUser, admin: AdminUser, session: SessionDep) -> None:
    """Delete an account and everything it owns (409 `owns_shared_projects` while it owns a
    project others are members of)."""
    await service.delete_user(session, user, admin_id=admin.id)
