"""User errors, each with a stable code."""

from app.core.errors import BadRequest, Conflict, Forbidden, NotFound


class UserNotFound(NotFound):
    code = "user_not_found"
    detail = "No such user."


class EmailTaken(Conflict):
    code = "email_taken"
    detail = "An account with this email already exists."


class WrongPassword(BadRequest):
    code = "wrong_password"
    detail = "The current password is wrong."


class LastAdmin(Conflict):
    code = "last_admin"
    detail = "The last active admin cannot be demoted, deactivated or deleted."


class EmailNotVerified(Forbidden):
    code = "email_not_verified"
    detail = (
        "This account has not confirmed its email address yet: use the link we mailed"
        " (POST /api/v1/auth/verify/resend sends a new one)."
    )
