"""Who is calling: small, composable dependencies, each overridable in tests.

token ─▶ get_principal ─▶ get_current_user ─▶ get_current_active_user ─▶ require_admin
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.auth import service
from app.auth.exceptions import InvalidTokenError, NotAuthenticated
from app.auth.service import AuthComponents, ClientInfo, Principal
from app.core.db import SessionDep
from app.core.errors import Forbidden
from app.users.models import Role, User

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret

# auto_error=False: a missing token must be our 401 problem, not FastAPI's own error.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL, auto_error=False, refreshUrl="/api/v1/auth/refresh"
)
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]


def get_auth(request: Request) -> AuthComponents:
    """The process's authentication components, built by the lifespan."""
    auth: AuthComponents = request.app.state.auth
    return auth


AuthDep = Annotated[AuthComponents, Depends(get_auth)]


def get_client(request: Request) -> ClientInfo:
    """The caller's address (as the server sees it, proxy headers applied) and user agent."""
    host = request.client.host if request.client else "unknown"
    return ClientInfo(ip=host, user_agent=request.headers.get("user-agent"))


ClientDep = Annotated[ClientInfo, Depends(get_client)]


async def get_principal(session: SessionDep, auth: AuthDep, token: BearerToken) -> Principal:
    """The user and sign-in session behind the bearer token; 401 if there is none."""
    if not token:
        raise NotAuthenticated()
    return await service.authenticate(session, auth, token)


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


async def require_admin(user: ActiveUser) -> User:
    """The signed-in user, if they are an admin; 403 otherwise."""
    if user.role != Role.ADMIN:
        raise Forbidden("This operation is for admins only.")
    return user


AdminUser = Annotated[User, Depends(require_admin)]
