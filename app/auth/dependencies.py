"""Who is calling: small, composable dependencies, each overridable in tests.

token ─▶ get_principal ─▶ get_current_user ─▶ get_current_active_user ─▶ require_admin
                                                         └─▶ get_active_principal (session routes)
"""

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.security import OAuth2PasswordBearer

from app.auth import service
from app.auth.exceptions import InvalidTokenError, NotAuthenticated
from app.auth.schemas import TOKEN_MAX_LENGTH
from app.auth.service import AuthComponents, ClientInfo, Principal
from app.core.db import SessionDep
from app.core.errors import Forbidden
from app.core.middleware import USER_ID_SCOPE_KEY
from app.core.schemas import EMAIL_MAX_LENGTH, PASSWORD_MAX_LENGTH
from app.users.models import Role, User
from app.users.schemas import NO_CONTROL_CHARACTERS

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret

# auto_error=False: a missing token must be our 401 problem, not FastAPI's own error.
# No refreshUrl: OAuth2 clients would post a form with grant_type=refresh_token there, while
# /auth/refresh takes a JSON body.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]


class PasswordForm:
    """The OAuth2 password form that Swagger's Authorize sends, with bounded fields.

    FastAPI's OAuth2PasswordRequestForm takes strings of any length: a huge password would
    reach the hasher (passlib raises past 4 KiB) and a huge username the database. Nothing
    longer than the longest email or password an account can have can ever match, so it is
    a 422. Other form fields Swagger may send (scope, client_id) are ignored.
    """

    def __init__(
        self,
        username: Annotated[
            str,
            Form(
                min_length=1,
                max_length=EMAIL_MAX_LENGTH,
                pattern=NO_CONTROL_CHARACTERS,
                description="Your email.",
            ),
        ],
        password: Annotated[
            str,
            Form(
                min_length=1,
                max_length=PASSWORD_MAX_LENGTH,
                json_schema_extra={"format": "password"},
            ),
        ],
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
    ) -> None:
        self.username = username
        self.password = password
        self.grant_type = grant_type


PasswordFormDep = Annotated[PasswordForm, Depends()]


async def get_auth(request: Request) -> AuthComponents:
    """The process's authentication components, built by the lifespan."""
    # `async def` for trivial dependencies: a plain `def` costs a threadpool round trip.
    auth: AuthComponents = request.app.state.auth
    return auth


AuthDep = Annotated[AuthComponents, Depends(get_auth)]


async def get_client(request: Request) -> ClientInfo:
    """The caller's address (as the server sees it, proxy headers applied) and user agent."""
    host = request.client.host if request.client else "unknown"
    return ClientInfo(ip=host, user_agent=request.headers.get("user-agent"))


ClientDep = Annotated[ClientInfo, Depends(get_client)]


async def get_principal(
    request: Request, session: SessionDep, auth: AuthDep, token: BearerToken
) -> Principal:
    """The user and sign-in session behind the bearer token; 401 if there is none."""
    if not token:
        raise NotAuthenticated()
    if len(token) > TOKEN_MAX_LENGTH:
        raise InvalidTokenError()
    principal = await service.authenticate(session, auth, token)
    # Named in the request's access line.
    request.scope[USER_ID_SCOPE_KEY] = principal.user.id
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    """The signed-in user."""
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_active_user(user: CurrentUser) -> User:
    """The signed-in user, if their account is active (a deactivated account's tokens die)."""
    if not user.is_active:
        raise InvalidTokenError("This account is deactivated.")
    return user


ActiveUser = Annotated[User, Depends(get_current_active_user)]


async def get_active_principal(_user: ActiveUser, principal: CurrentPrincipal) -> Principal:
    """The caller's sign-in session, for routes that act on it; an inactive account is a 401."""
    return principal


ActivePrincipal = Annotated[Principal, Depends(get_active_principal)]


async def require_admin(user: ActiveUser) -> User:
    """The signed-in user, if they are an admin; 403 otherwise."""
    if user.role != Role.ADMIN:
        raise Forbidden("This operation is for admins only.")
    return user


AdminUser = Annotated[User, Depends(require_admin)]
