"""Who may take part in what others see: the rules about an account itself, written once.

Sharing a project, being added to one and accepting an invitation all call `ensure_verified`
for the account concerned, so an address nobody has proved to own never inherits anything
sent to it.
"""

from app.users.exceptions import EmailNotVerified
from app.users.models import User


def ensure_verified(user: User) -> None:
    """EmailNotVerified (403 `email_not_verified`) unless the account confirmed its address.

    An unconfirmed account signs in and uses its own data; it may not share projects, be
    added to one, or accept an invitation.
    """
    if not user.email_verified:
        raise EmailNotVerified()
