"""Authentication errors, each with a stable code."""

from app.core.errors import BadRequest, NotFound, Unauthorized, UnprocessableEntity


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    detail = "Incorrect email or password."


class InvalidTokenError(Unauthorized):
    code = "invalid_token"
    detail = "The token is invalid, expired or revoked."


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"
    detail = "Not authenticated."


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    detail = "The refresh token is invalid, expired, used or revoked."


class InvalidResetToken(BadRequest):
    code = "invalid_reset_token"
    detail = "The reset token is invalid, expired or already used."


class SessionNotFound(NotFound):
    code = "session_not_found"
    detail = "No such session."


class PasswordIsEmail(UnprocessableEntity):
    code = "password_is_email"
    detail = "The password must not be the email address."


class PasswordRequired(UnprocessableEntity):
    code = "password_required"
    detail = "Confirm this change with `current_password`."
