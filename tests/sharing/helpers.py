"""Sharing a project the way a client does: invite, read the mailed token, accept."""

import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.mail import Mail
from tests.auth.helpers import mails_to
from tests.factories import API, SignedInUser


def invitation_token_from(mail: Mail) -> str:
    """The token of an invitation mail (in its link and on its own)."""
    match = re.search(r"/invitations#token=([\w-]+)", mail.body)
    assert match, mail.body
    token = match.group(1)
    assert token in mail.body.split("/decline):\n", 1)[1]
    return token


def invite(
    client: TestClient, owner: SignedInUser, project_id: str, email: str, role: str = "viewer"
) -> dict[str, Any]:
    response = client.post(
        f"{API}/projects/{project_id}/members",
        headers=owner.headers,
        json={"email": email, "role": role},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def last_invitation_token(app: FastAPI, address: str) -> str:
    return invitation_token_from(mails_to(app, address)[-1])


def share(
    client: TestClient,
    app: FastAPI,
    owner: SignedInUser,
    project_id: str,
    member: SignedInUser,
    role: str = "viewer",
) -> dict[str, Any]:
    """Invite `member` with `role` and accept with the mailed token; the project as they see it."""
    invite(client, owner, project_id, member.email, role)
    token = last_invitation_token(app, member.email)
    accepted = client.post(
        f"{API}/invitations/accept", headers=member.headers, json={"token": token}
    )
    assert accepted.status_code == 200, accepted.text
    body: dict[str, Any] = accepted.json()
    assert body["role"] == role
    return body
