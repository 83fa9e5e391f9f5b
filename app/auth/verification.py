"""Sign-up and confirmed addresses: registering without revealing who has an account, the
links that prove an account receives mail at its address, and changing that address.

Every confirmation token names the address it was mailed to and carries a fingerprint of the
account's address state (`address_fingerprint`: email, pending email, when confirmed), so it
works once, and never for an address the account no longer has or asks for. Mails are made
here and sent by the routes after the response (the time a mail server takes must not tell
anything).
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.exceptions import InvalidVerificationToken
from app.auth.service import (
    REGISTER_POLICY,
    AuthComponents,
    Budget,
    ClientInfo,
    InvalidUUID,
    _throttle_hit,
    _uuid,
    revoke_all_sessions,
)
from app.core.config import Settings
from app.core.db.errors import is_unique_violation
from app.core.mail import Mail
from app.core.models import utcnow
from app.core.security import InvalidToken, TokenType, address_fingerprint
from app.users import service as user_service
from app.users.exceptions import EmailTaken
from app.users.models import User
from app.users.schemas import UserRegister

# The public quota of POST /auth/verify/resend (per client address), as RateLimit names it.
VERIFY_RESEND_POLICY = "email-verification"

# The one answer to a sign-up, whatever happened: it must not tell whether the address had an
# account, nor depend on a setting.
SIGN_UP_ACCEPTED = "Check your inbox: we sent a mail to this address with what to do next."
RESEND_ACCEPTED = "If the address waits for confirmation, a new link is on its way."


@dataclass(frozen=True, slots=True)
class SignUp:
    """What a sign-up did: the mail to send, and the account made (None: the address had one,
    which the caller must never be told)."""

    mail: Mail
    user: User | None


def _frontend(settings: Settings) -> str:
    return str(settings.FRONTEND_URL).rstrip("/")


def _address_state(user: User) -> str:
    return address_fingerprint(user.email, user.pending_email, user.email_verified_at)


def verification_mail(
    auth: AuthComponents, user: User, *, address: str, session_id: uuid.UUID | None = None
) -> Mail:
    """The mail with a link confirming `address` for `user`: the account's own address, or
    the pending one (`session_id`: the session that asked, which a change leaves signed in)."""
    settings = auth.settings
    minutes = settings.EMAIL_VERIFICATION_EXPIRE_MINUTES
    token, _ = auth.tokens.encode(
        subject=str(user.id),
        token_type=TokenType.VERIFY,
        lifetime=timedelta(minutes=minutes),
        session_id=str(session_id) if session_id is not None else None,
        extra={"eml": address, "afp": _address_state(user)},
    )
    link = f"{_frontend(settings)}/verify-email#token={token}"
    body = (
        f"Confirm that {address} is the address of your account.\n\n"
        f"Open this link within {minutes} minutes:\n{link}\n\n"
        f"Or send this token to POST /api/v1/auth/verify:\n{token}\n\n"
        "If you did not ask for this, ignore this mail; nothing changes."
    )
    return Mail(to=address, subject="Confirm your email address", body=body)


def _welcome_mail(settings: Settings, address: str) -> Mail:
    # Sent when verification is off, so a sign-up sends one mail whatever the settings.
    body = (
        "Welcome: your account is ready.\n\n"
        f"Sign in with this address and your password: {_frontend(settings)}/sign-in\n\n"
        "If you did not sign up, tell us by replying to this mail."
    )
    return Mail(to=address, subject="Your account is ready", body=body)


def _existing_account_mail(settings: Settings, address: str) -> Mail:
    body = (
        "Someone (you, we hope) tried to create an account with this address, which already"
        " has one.\n\n"
        f"Sign in with your password: {_frontend(settings)}/sign-in\n"
        f"Forgot it? Reset it: {_frontend(settings)}/forgot-password"
        " (POST /api/v1/auth/password-recovery)\n\n"
        "If it was not you, ignore this mail; nothing has changed."
    )
    return Mail(to=address, subject="You already have an account", body=body)


async def register(
    session: AsyncSession, auth: AuthComponents, *, data: UserRegister, client: ClientInfo
) -> SignUp:
    """Sign up: the same work and answer whether or not the address has an account.

    Either way the password is hashed once and one mail goes out: for a new address the
    account is made (confirmed at once when verification is off) and gets a confirmation link
    (a welcome when off); an address that has an account is told to sign in or reset its
    password, and the hash is thrown away. Rate-limited per client address, and per email
    from everywhere (counted alike for both cases, so the limit reveals nothing either).
    """
    settings = auth.settings
    address = data.email.lower()
    await _throttle_hit(
        auth.limiter,
        [
            Budget(
                f"register:ip:{client.ip}",
                settings.REGISTER_MAX_PER_IP,
                REGISTER_POLICY,
                kind="register_ip",
            ),
            # An account budget: never announced in the response headers.
            Budget(
                f"register:email:{address}",
                settings.REGISTER_MAX_PER_EMAIL,
                kind="register_email",
            ),
        ],
        settings.REGISTER_WINDOW_SECONDS,
    )
    hashed = await auth.hasher.hash(data.password)
    if await user_service.get_user_by_email(session, address) is not None:
        return SignUp(_existing_account_mail(settings, address), None)
    verifying = settings.email_verification_enabled
    try:
        user = await user_service.create_user(
            session,
            email=address,
            hashed_password=hashed,
            full_name=data.full_name,
            email_verified=not verifying,
        )
    except EmailTaken:
        # A sign-up racing this one for the address won: the address has an account now.
        return SignUp(_existing_account_mail(settings, address), None)
    if verifying:
        return SignUp(verification_mail(auth, user, address=user.email), user)
    return SignUp(_welcome_mail(settings, user.email), user)


def _matches(column: Any, value: object) -> Any:
    return column.is_(None) if value is None else column == value


async def verify_email(session: AsyncSession, auth: AuthComponents, *, token: str) -> User:
    """Confirm the address a confirmation token was mailed to; the token works once.

    For the account's own address it marks the account confirmed. For a pending new address
    the address becomes the account's (EmailTaken if another account has it by now), every
    other session is signed out, and reset and older confirmation tokens die with the old
    address. The write is a compare-and-set on the address state the token was made for, so
    two requests racing with one token cannot both win.
    """
    try:
        claims = auth.tokens.decode(token, TokenType.VERIFY)
        user_id = _uuid(claims.subject)
        requester = _uuid(claims.session_id) if claims.session_id is not None else None
    except (InvalidToken, InvalidUUID) as exc:
        raise InvalidVerificationToken() from exc
    address = claims.extra.get("eml")
    user = await session.get(User, user_id)
    if (
        user is None
        or not user.is_active
        or not isinstance(address, str)
        or claims.extra.get("afp") != _address_state(user)
    ):
        raise InvalidVerificationToken()
    changing = address == user.pending_email
    if not changing and (address != user.email or user.email_verified):
        raise InvalidVerificationToken()
    if changing:
        other = await user_service.get_user_by_email(session, address)
        if other is not None and other.id != user.id:
            raise EmailTaken()
    now = utcnow()
    values: dict[str, object] = {"email_verified_at": now, "updated_at": now}
    if changing:
        values.update(email=address, pending_email=None)
    statement = (
        update(User)
        .where(
            col(User.id) == user.id,
            col(User.email) == user.email,
            _matches(col(User.pending_email), user.pending_email),
            _matches(col(User.email_verified_at), user.email_verified_at),
        )
        .values(**values)
        .returning(col(User.id))
        .execution_options(synchronize_session=False)
    )
    try:
        swapped = (await session.exec(statement)).first()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        # Another account took the address since the check above: the constraint decides.
        await session.rollback()
        raise EmailTaken() from exc
    if swapped is None:
        raise InvalidVerificationToken()
    if changing:
        await revoke_all_sessions(session, user_id=user.id, except_session_id=requester)
    await session.refresh(user)
    return user


async def request_verification(
    session: AsyncSession, auth: AuthComponents, *, email: str, client: ClientInfo
) -> Mail | None:
    """A new confirmation link for an active account that has not confirmed `email`; None
    (and the same answer) for any other address, and when verification is off."""
    settings = auth.settings
    await _throttle_hit(
        auth.limiter,
        [
            Budget(
                f"verify-resend:ip:{client.ip}",
                settings.VERIFY_RESEND_MAX_PER_IP,
                VERIFY_RESEND_POLICY,
                kind="verify_resend_ip",
            ),
            # Per email and address: requests from elsewhere never block the owner's resend.
            Budget(
                f"verify-resend:email:{email}:ip:{client.ip}",
                settings.VERIFY_RESEND_MAX_PER_EMAIL,
                kind="verify_resend_email_ip",
            ),
            # Per email from everywhere: nobody floods a mailbox from many addresses.
            Budget(
                f"verify-resend:email:{email}",
                settings.VERIFY_RESEND_MAX_PER_EMAIL_ALL_ADDRESSES,
                kind="verify_resend_email",
            ),
        ],
        settings.VERIFY_RESEND_WINDOW_SECONDS,
    )
    if not settings.email_verification_enabled:
        return None
    user = await user_service.get_user_by_email(session, email)
    if user is None or not user.is_active or user.email_verified:
        return None
    return verification_mail(auth, user, address=user.email)


def _change_notice(old: str, new: str, *, at_once: bool) -> Mail:
    when = (
        "It is your account's address from now on, and your other sessions were signed out."
        if at_once
        else "It takes effect once the link we mailed to the new address is used."
    )
    body = (
        f"Someone signed in to your account asked to change its email address to {new}.\n\n"
        f"{when}\n\n"
        "If it was not you, reset your password at once and sign out your sessions."
    )
    return Mail(to=old, subject="Your account's email address is changing", body=body)


def _taken_notice(address: str) -> Mail:
    # In place of a link when the new address has an account of its own: the one asking is
    # not told (the answer is the same), and the owner of the address learns nothing to act on.
    body = (
        "Someone asked to move another account to this address. It already has an account"
        " here, so nothing changes; if you did not expect this, ignore this mail."
    )
    return Mail(to=address, subject="About your email address", body=body)


async def email_change_mails(
    session: AsyncSession,
    auth: AuthComponents,
    *,
    user: User,
    old_email: str,
    new_email: str,
    session_id: uuid.UUID | None,
) -> list[Mail]:
    """The mails of an asked-for address change, once `user.pending_email` holds it: a link to
    the new address (a notice instead if another account has it), a notice to the old."""
    other = await user_service.get_user_by_email(session, new_email)
    to_new = (
        _taken_notice(new_email)
        if other is not None and other.id != user.id
        else verification_mail(auth, user, address=new_email, session_id=session_id)
    )
    return [to_new, _change_notice(old_email, new_email, at_once=False)]


def email_changed_notice(old_email: str, new_email: str) -> Mail:
    """The mail that tells the old address its account moved (verification off)."""
    return _change_notice(old_email, new_email, at_once=True)
