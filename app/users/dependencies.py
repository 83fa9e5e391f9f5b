"""Load-and-check dependencies for user routes."""

import uuid
from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import AdminUser
from app.core.db import SessionDep
from app.users import service
from app.users.models import User


async def get_user_for_admin(user_id: uuid.UUID, session: SessionDep, _admin: AdminUser) -> User:
    """The user named in the path, for an admin; 404 if there is none."""
    return await service.get_user(session, user_id)


AdministeredUser = Annotated[User, Depends(get_user_for_admin)]
