"""Authentication errors, each with a stable code."""

from app.core.errors import BadRequest, Forbidden, NotFound, Unauthorized, UnprocessableEntity


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    detail = "Incorrect email or password."


def bearer_challenge(error: str, description: str) -> str:
    """A `WWW-Authenticate` challenge as RFC 6750 3 writes it (the description is ASCII)."""
    return f'Bearer error="{error}", error_description="{description}"'


class InvalidTokenError(Unauthorized):
    """The token is not one of ours, or was revoked: sign in again (refreshing cannot help)."""

    code = "invalid_token"
    detail = "The access token is not valid or was revoked; sign in again."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = bearer_challenge("invalid_token", self.message)


class TokenExpiredError(InvalidTokenError):
    """The access token was valid and has expired: refresh it (POST /auth/refresh)."""

    code = "token_expired"
    detail = "The access token has expired; refresh it or sign in again."


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"
    detail = "Not authenticated."


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    detail = "The refresh token is invalid, expired, used or revoked."


class InvalidResetToken(BadRequest):
    code = "invalid_reset_token"
    detail = "The reset token is invalid, expired or already used."


class PasswordRecoveryDisabled(Forbidden):
    code = "password_recovery_disabled"
    detail = "Password recovery is switched off on this service; ask an administrator."


class SessionNotFound(NotFound):
    code = "session_not_found"
    detail = "No such session."


class PasswordIsEmail(UnprocessableEntity):
    code = "password_is_email"
    detail = "The password must not be the email address."
    loc = ("body", "password")


class PasswordRequired(UnprocessableEntity):
    code = "password_required"
    detail = "Confirm this change with `current_password`."
    loc = ("body", "current_password")


class InvalidVerificationToken(BadRequest):
    code = "invalid_verification_token"
    detail = (
        "The confirmation link is invalid, expired, already used, or for an address the"
        " account no longer asks for."
    )
