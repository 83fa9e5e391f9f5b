"""The app's router: every route runs in the request's transaction."""

from typing import Any

from fastapi import APIRouter

from app.core.db import TransactionRoute


class AppRouter(APIRouter):
    """An APIRouter whose routes are TransactionRoutes (see `get_session`)."""

    def __init__(
        self, *, route_class: type[TransactionRoute] = TransactionRoute, **kwargs: Any
    ) -> None:
        super().__init__(route_class=route_class, **kwargs)
