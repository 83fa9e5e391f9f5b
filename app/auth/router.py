"""Sign-up, address confirmation, sign-in (OAuth2 password flow), refresh, sign-out,
sessions, password recovery."""

import uuid

from fastapi import BackgroundTasks, Response, status

from app.auth import service, verification
from app.auth.dependencies import ActivePrincipal, AuthDep, ClientDep, PasswordFormDep
from app.auth.schemas import (
    Accepted,
    PasswordRecoveryRequestBody,
    PasswordResetRequestBody,
    RefreshRequestBody,
    SessionPublic,
    TokenPair,
    VerifyRequestBody,
    VerifyResendRequestBody,
)
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import CursorCodecDep, Page, PageParamsDep
from app.core.rate_limit import rate_limited
from app.core.routing import AppRouter
from app.core.schemas import examples
from app.users.schemas import UserRegisterBody

router = AppRouter(prefix="/auth", tags=["auth"])

# The password form's examples (a form body has no model to hang them on).
SIGN_IN_EXAMPLES = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "examples": examples(
                    password=(
                        "Email and password",
                        {"username": "ada@example.com", "password": "correct horse battery staple"},
                    ),
                )
            }
        }
    }
}

# Tokens must never sit in a shared cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/register",
    summary="Create an account",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=problem_responses(429),
    openapi_extra=rate_limited(service.REGISTER_POLICY),
)
async def register(
    data: UserRegisterBody,
    session: SessionDep,
    auth: AuthDep,
    client: ClientDep,
    background: BackgroundTasks,
) -> Accepted:
    """Sign up; the answer is the same whether or not the address has an account.

    A mail says what next: sign in with `/auth/token` (an account that has not confirmed its
    address yet may, and uses its own data), and confirm the address with the mailed link
    (`/auth/verify`) when the service asks for confirmation.
    """
    signed_up = await verification.register(session, auth, data=data, client=client)
    # After the response: the time to talk to a mail server must not reveal the account.
    background.add_task(service.send_mail, auth.mailer, signed_up.mail)
    return Accepted(detail=verification.SIGN_UP_ACCEPTED)


@router.post(
    "/verify",
    summary="Confirm an email address",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 409),
)
async def verify_email(data: VerifyRequestBody, session: SessionDep, auth: AuthDep) -> None:
    """Confirm the address a mailed token was sent to; a pending new email takes effect."""
    await verification.verify_email(session, auth, token=data.token)


@router.post(
    "/verify/resend",
    summary="Ask for a new confirmation link",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=problem_responses(429),
    openapi_extra=rate_limited(verification.VERIFY_RESEND_POLICY),
)
async def resend_verification(
    data: VerifyResendRequestBody,
    session: SessionDep,
    auth: AuthDep,
    client: ClientDep,
    background: BackgroundTasks,
) -> Accepted:
    """Mail a new confirmation link; the answer is the same whether the address has one due."""
    mail = await verification.request_verification(session, auth, email=data.email, client=client)
    if mail is not None:
        background.add_task(service.send_mail, auth.mailer, mail)
    return Accepted(detail=verification.RESEND_ACCEPTED)


@router.post(
    "/token",
    summary="Sign in (OAuth2 password flow)",
    response_model=TokenPair,
    responses=problem_responses(401, 429),
    openapi_extra={**rate_limited(service.SIGN_IN_POLICY), **SIGN_IN_EXAMPLES},
)
async def sign_in(
    form: PasswordFormDep,
    session: SessionDep,
    auth: AuthDep,
    client: ClientDep,
    response: Response,
) -> TokenPair:
    """Exchange email (`username`) and password for an access and a refresh token."""
    pair = await service.sign_in(
        session, auth, email=form.username, password=form.password, client=client
    )
    response.headers.update(NO_STORE)
    return pair


@router.post(
    "/refresh",
    summary="Rotate tokens",
    response_model=TokenPair,
    responses=problem_responses(401),
)
async def refresh(
    data: RefreshRequestBody, session: SessionDep, auth: AuthDep, response: Response
) -> TokenPair:
    """Exchange a refresh token (usable once) for a new access and refresh token."""
    pair = await service.refresh(session, auth, refresh_token=data.refresh_token)
    response.headers.update(NO_STORE)
    return pair


@router.post(
    "/logout",
    summary="Sign out",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401),
)
async def logout(principal: ActivePrincipal, session: SessionDep) -> None:
    """End the current session: its access and refresh tokens stop working at once."""
    await service.revoke_session(
        session, user_id=principal.user.id, session_id=principal.session_id
    )


@router.get(
    "/sessions",
    summary="List my sessions",
    response_model=Page[SessionPublic],
    responses=problem_responses(401),
)
async def list_sessions(
    principal: ActivePrincipal, session: SessionDep, cursors: CursorCodecDep, page: PageParamsDep
) -> Page[SessionPublic]:
    """The caller's open sign-in sessions, newest first."""
    return await service.list_sessions(session, principal=principal, page=page, codec=cursors)


@router.delete(
    "/sessions/{session_id}",
    summary="End one of my sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404),
)
async def delete_session(
    session_id: uuid.UUID, principal: ActivePrincipal, session: SessionDep
) -> None:
    """End one of the caller's sessions (for example a lost phone's)."""
    await service.revoke_session(session, user_id=principal.user.id, session_id=session_id)


@router.post(
    "/password-recovery",
    summary="Ask for a password reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=problem_responses(403, 429),
    openapi_extra=rate_limited(service.RECOVERY_POLICY),
)
async def password_recovery(
    data: PasswordRecoveryRequestBody,
    session: SessionDep,
    auth: AuthDep,
    client: ClientDep,
    background: BackgroundTasks,
) -> Accepted:
    """Mail a single-use reset token; the answer is the same whether the account exists."""
    mail = await service.request_password_reset(session, auth, email=data.email, client=client)
    if mail is not None:
        # After the response: the time to talk to a mail server must not reveal the account.
        background.add_task(service.send_mail, auth.mailer, mail)
    return Accepted(detail="If the account exists, a reset link is on its way.")


@router.post(
    "/password-reset",
    summary="Reset the password with a token",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 403),
)
async def password_reset(
    data: PasswordResetRequestBody, session: SessionDep, auth: AuthDep
) -> None:
    """Set a new password with the mailed token; every session of the account ends."""
    await service.reset_password(session, auth, token=data.token, new_password=data.new_password)
