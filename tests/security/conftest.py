"""Fixtures of the security suites."""

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from tests.factories import ADMIN_SETTINGS
from tests.security import fuzzing


@pytest.fixture
def admin_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    """An app whose start-up created the admin of `tests.factories.ADMIN_SETTINGS`."""
    return make_app(**ADMIN_SETTINGS)


@pytest.fixture
def fuzz_user(admin_app: FastAPI, housekeeping_engine: Engine) -> Iterator[fuzzing.FuzzTarget]:
    target = fuzzing.FuzzTarget(admin_app, housekeeping_engine)
    yield target
    target.close()


@pytest.fixture
def fuzz_admin(admin_app: FastAPI, housekeeping_engine: Engine) -> Iterator[fuzzing.FuzzTarget]:
    target = fuzzing.FuzzTarget(admin_app, housekeeping_engine, admin=True)
    yield target
    target.close()
