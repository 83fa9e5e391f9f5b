"""Start-up work that needs the database: the first admin account."""

import logging

from app.core.config import Settings
from app.core.db import Database
from app.core.schemas import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, canonical_email
from app.core.security import PasswordHasher
from app.users import service as user_service
from app.users.exceptions import EmailTaken
from app.users.models import Role

logger = logging.getLogger(__name__)


def check_admin_credentials(email: str, password: str) -> str:
    """The normalised email, if email and password obey the rules sign-up enforces.

    Raises ValueError naming the problem: an admin made at start-up or from the command line
    must be able to sign in, and the sign-in form refuses what registration would.
    """
    normalised = canonical_email(email)
    if normalised is None:
        raise ValueError(f"not a valid email address: {email!r}")
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise ValueError(
            f"the password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long"
        )
    if password.strip().lower() == normalised:
        raise ValueError("the password must not be the email address")
    return normalised


async def create_admin(
    database: Database, hasher: PasswordHasher, *, email: str, password: str
) -> bool:
    """Create an admin with this email unless the email is taken; True if one was created.

    An existing account is never overwritten, so restarting with the same settings, or
    several processes starting at once, is harmless. ValueError if the credentials break the
    sign-up rules (see `check_admin_credentials`).
    """
    email = check_admin_credentials(email, password)
    async with database.sessionmaker() as session:
        if await user_service.get_user_by_email(session, email) is not None:
            return False
        try:
            await user_service.create_user(
                session,
                email=email,
                hashed_password=await hasher.hash(password),
                full_name="Administrator",
                role=Role.ADMIN,
                # The operator chose the address: there is nobody to prove it to.
                email_verified=True,
            )
            await session.commit()
        except EmailTaken:
            return False
    logger.info("created the first admin account %s", email)
    return True


async def ensure_first_admin(
    settings: Settings, database: Database, hasher: PasswordHasher
) -> None:
    """Create FIRST_ADMIN_EMAIL's account at start-up if it is configured and missing."""
    if settings.FIRST_ADMIN_EMAIL and settings.FIRST_ADMIN_PASSWORD:
        await create_admin(
            database,
            hasher,
            email=settings.FIRST_ADMIN_EMAIL,
            password=settings.FIRST_ADMIN_PASSWORD.get_secret_value(),
        )
