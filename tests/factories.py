"""Plain functions that make test data through the public API (no hidden fixtures)."""

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

API = "/api/v1"
DEFAULT_PASSWORD = "correct-horse-battery"


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


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def register(
    client: TestClient,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    **extra: Any,
) -> dict[str, Any]:
    """Register an account and return its public representation."""
    response = client.post(
        f"{API}/auth/register",
        json={"email": email or unique_email(), "password": password, **extra},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


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
    user = register(client, email=email, password=password)
    tokens = sign_in(client, user["email"], password)
    return SignedInUser(
        id=user["id"],
        email=user["email"],
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
