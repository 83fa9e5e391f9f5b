"""The rules about an account itself (app/users/policy.py), called directly."""

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.dependencies import ActiveUser
from app.core.models import utcnow
from app.core.routing import AppRouter
from app.users.exceptions import EmailNotVerified
from app.users.models import User
from app.users.policy import ensure_verified
from tests.factories import new_user
from tests.helpers import assert_problem


def test_an_unconfirmed_account_is_refused_a_confirmed_one_passes() -> None:
    """What sharing a project, being added to one, or accepting an invitation call: an
    unconfirmed account takes part in nothing of others'."""
    unconfirmed = User(email="una@example.com", hashed_password="x")
    with pytest.raises(EmailNotVerified) as refused:
        ensure_verified(unconfirmed)
    assert (refused.value.status_code, refused.value.code) == (403, "email_not_verified")
    ensure_verified(User(email="cal@example.com", hashed_password="x", email_verified_at=utcnow()))


def test_the_refusal_is_a_403_problem_a_client_can_act_on(
    make_app: Callable[..., FastAPI],
) -> None:
    """Until the collaboration routes call it, a route of the test's own stands in for
    "add this account to a project"."""
    app = make_app(EMAIL_VERIFICATION_ENABLED=True)
    router = AppRouter()  # the request's transaction, as every route of the API has

    @router.post("/test-policy/join")
    async def _join(user: ActiveUser) -> dict[str, str]:
        ensure_verified(user)
        return {"joined": str(user.id)}

    app.include_router(router)

    with TestClient(app) as client:
        user = new_user(client)
        refused = client.post("/test-policy/join", headers=user.headers)
    body = assert_problem(refused, 403, "email_not_verified")
    assert "/auth/verify/resend" in body["detail"]
