"""Plain functions that make test data (no hidden fixtures): through the public API, and
`make_user` for tests that call services directly."""

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel.ext.asyncio.session import AsyncSession

from app.users import service as user_service
from app.users.models import User

API = "/api/v1"
DEFAULT_PASSWORD = "correct-horse-battery"
# The admin an app built with ADMIN_SETTINGS creates at start-up (`make_app(**ADMIN_SETTINGS)`).
ADMIN_EMAIL = "root-admin@example.com"
ADMIN_PASSWORD = "admin-password-for-tests"
ADMIN_SETTINGS: dict[str, Any] = {
    "FIRST_ADMIN_EMAIL": ADMIN_EMAIL,
    "FIRST_ADMIN_PASSWORD": ADMIN_PASSWORD,
}


@dataclass
class SignedInUser:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def fullwidth(text: str) -> str:
    """The text in fullwidth forms (U+FF01-FF5E), as some keyboards and input methods type it."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def register(
    client: TestClient,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    **extra: Any,
) -> dict[str, Any]:
    """Register an account and return its public representation, as a client does: sign up
    (202, whatever happened), sign in, read /users/me, and sign out again."""
    me, tokens = _sign_up(client, email=email, password=password, **extra)
    signed_out = client.post(f"{API}/auth/logout", headers=bearer(tokens["access_token"]))
    assert signed_out.status_code == 204, signed_out.text
    return me


def _sign_up(
    client: TestClient, *, email: str | None, password: str, **extra: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference client's sign-up: POST /auth/register is a 202 with no account in it,
    so the account is read after signing in. (representation, token pair)"""
    email = email or unique_email()
    response = client.post(
        f"{API}/auth/register", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 202, response.text
    tokens = sign_in(client, email, password)
    me = client.get(f"{API}/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    body: dict[str, Any] = me.json()
    return body, tokens


def sign_in(
    client: TestClient, email: str, password: str = DEFAULT_PASSWORD, **headers: str
) -> dict[str, Any]:
    """Sign in with the OAuth2 password form; return the token pair."""
    response = client.post(
        f"{API}/auth/token", data={"username": email, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def new_user(
    client: TestClient, *, email: str | None = None, password: str = DEFAULT_PASSWORD
) -> SignedInUser:
    """Register and sign in a fresh user."""
    user, tokens = _sign_up(client, email=email, password=password)
    return SignedInUser(
        id=user["id"],
        email=user["email"],
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


def sign_in_admin(
    client: TestClient, *, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD
) -> SignedInUser:
    """Sign in an admin: by default the start-up one (the app built with ADMIN_SETTINGS)."""
    tokens = sign_in(client, email, password)
    me = client.get(f"{API}/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "admin"
    return SignedInUser(
        id=me.json()["id"],
        email=email,
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_project(client: TestClient, user: SignedInUser, **fields: Any) -> dict[str, Any]:
    response = client.post(f"{API}/projects", headers=user.headers, json={"name": "P", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_label(client: TestClient, user: SignedInUser, name: str, **fields: Any) -> dict[str, Any]:
    response = client.post(f"{API}/labels", headers=user.headers, json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_task(client: TestClient, user: SignedInUser, **fields: Any) -> dict[str, Any]:
    response = client.post(f"{API}/tasks", headers=user.headers, json={"title": "T", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def inbox_id(client: TestClient, user: SignedInUser) -> str:
    response = client.get(f"{API}/projects", headers=user.headers)
    (inbox,) = [p for p in response.json()["items"] if p["is_inbox"]]
    return str(inbox["id"])


async def make_user(session: AsyncSession, *, email: str | None = None) -> User:
    """A committed account (with its Inbox) for service tests; it cannot sign in."""
    user = await user_service.create_user(
        session, email=email or unique_email(), hashed_password="x"
    )
    await session.commit()
    return user
