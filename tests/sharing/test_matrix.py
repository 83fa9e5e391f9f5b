"""Every role against every project action: allowed or denied, with the right status.

Roles: the owner, an editor, a viewer, a former member (removed), an account that was
invited but never confirmed its address (so could not accept), and a stranger. Each case
gets a project of its own, so destructive actions (transfer, delete, leave) cannot leak into
another case. Members read the project's tasks, their history and comment on them; editors'
task writes (create, change, move, delete, restore, bulk, assign) join the matrix with issue
20's next part.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.auth.helpers import mails_to, verification_token_from
from tests.factories import API, SignedInUser, make_project, make_task, new_user
from tests.sharing.helpers import invite, share

ROLES = ("owner", "editor", "viewer", "former", "unverified", "stranger")


@dataclass
class World:
    client: TestClient
    users: dict[str, SignedInUser]
    bystander: SignedInUser  # a viewer that actions on members act upon
    project: dict[str, Any]
    task: dict[str, Any]

    @property
    def url(self) -> str:
        return f"{API}/projects/{self.project['id']}"


def _confirm(app: FastAPI, client: TestClient, user: SignedInUser) -> None:
    [mail, *_] = [m for m in mails_to(app, user.email) if "/verify-email#" in m.body]
    response = client.post(f"{API}/auth/verify", json={"token": verification_token_from(mail)})
    assert response.status_code == 204


def _world(app: FastAPI, client: TestClient) -> World:
    users = {role: new_user(client) for role in ROLES}
    bystander = new_user(client)
    for role, user in [*users.items(), ("bystander", bystander)]:
        if role != "unverified":
            _confirm(app, client, user)
    owner = users["owner"]
    project = make_project(client, owner, name="Shared")
    task = make_task(client, owner, project_id=project["id"])
    for role in ("editor", "viewer", "former"):
        share(
            client, app, owner, project["id"], users[role], "viewer" if role == "former" else role
        )
    share(client, app, owner, project["id"], bystander, "viewer")
    invite(client, owner, project["id"], users["unverified"].email, "editor")
    url = f"{API}/projects/{project['id']}"
    former = users["former"]
    assert client.delete(f"{url}/members/{former.id}", headers=owner.headers).status_code == 204
    return World(client, users, bystander, project, task)


Action = Callable[[World, SignedInUser], httpx.Response]


def _listed(world: World, user: SignedInUser) -> httpx.Response:
    response = world.client.get(f"{API}/projects", headers=user.headers, params={"limit": 100})
    ids = [item["id"] for item in response.json()["items"]]
    # As a status: 200 when the project is listed for the caller, 404 when it is not.
    return httpx.Response(200 if world.project["id"] in ids else 404)


def _restore(world: World, user: SignedInUser) -> httpx.Response:
    owner = world.users["owner"]
    assert world.client.delete(world.url, headers=owner.headers).status_code == 204
    return world.client.post(f"{world.url}/restore", headers=user.headers)


ACTIONS: dict[str, Action] = {
    "read": lambda w, u: w.client.get(w.url, headers=u.headers),
    "list": _listed,
    "members": lambda w, u: w.client.get(f"{w.url}/members", headers=u.headers),
    "activity": lambda w, u: w.client.get(f"{w.url}/activity", headers=u.headers),
    "update": lambda w, u: w.client.patch(w.url, headers=u.headers, json={"name": "Mine"}),
    "delete": lambda w, u: w.client.delete(w.url, headers=u.headers),
    "restore": _restore,
    "invite": lambda w, u: w.client.post(
        f"{w.url}/members", headers=u.headers, json={"email": "new-person@example.com"}
    ),
    "invitations": lambda w, u: w.client.get(f"{w.url}/invitations", headers=u.headers),
    "change_role": lambda w, u: w.client.patch(
        f"{w.url}/members/{w.bystander.id}", headers=u.headers, json={"role": "editor"}
    ),
    "remove_member": lambda w, u: w.client.delete(
        f"{w.url}/members/{w.bystander.id}", headers=u.headers
    ),
    "transfer": lambda w, u: w.client.post(
        f"{w.url}/transfer", headers=u.headers, json={"user_id": w.bystander.id}
    ),
    "leave": lambda w, u: w.client.post(f"{w.url}/leave", headers=u.headers),
    "read_task": lambda w, u: w.client.get(f"{API}/tasks/{w.task['id']}", headers=u.headers),
    "list_tasks": lambda w, u: w.client.get(f"{w.url}/tasks", headers=u.headers),
    "task_activity": lambda w, u: w.client.get(
        f"{API}/tasks/{w.task['id']}/activity", headers=u.headers
    ),
    "comment": lambda w, u: w.client.post(
        f"{API}/tasks/{w.task['id']}/comments", headers=u.headers, json={"body": "hi"}
    ),
}

READERS = {"owner": 200, "editor": 200, "viewer": 200}
OWNER_ONLY_OK = {"owner": 200, "editor": 403, "viewer": 403}
OWNER_ONLY_NO_CONTENT = {"owner": 204, "editor": 403, "viewer": 403}
EXPECTED: dict[str, dict[str, int]] = {
    "read": READERS,
    "list": READERS,
    "members": READERS,
    "activity": READERS,
    "update": OWNER_ONLY_OK,
    "delete": OWNER_ONLY_NO_CONTENT,
    "restore": OWNER_ONLY_OK,
    "invite": {"owner": 202, "editor": 403, "viewer": 403},
    "invitations": OWNER_ONLY_OK,
    "change_role": OWNER_ONLY_OK,
    "remove_member": OWNER_ONLY_NO_CONTENT,
    "transfer": OWNER_ONLY_OK,
    "leave": {"owner": 409, "editor": 204, "viewer": 204},
    "read_task": READERS,
    "list_tasks": READERS,
    "task_activity": READERS,
    "comment": {"owner": 201, "editor": 201, "viewer": 201},
}
CODES = {403: "role_too_low", 404: "project_not_found", 409: "owner_cannot_leave"}
TASK_ACTIONS = {"read_task", "task_activity", "comment"}


# Actions that leave the world usable for the next case (a rename, an invitation, a comment,
# the bystander made editor): checked for every role in one world. The others each get one.
SAFE = (
    "read",
    "list",
    "members",
    "activity",
    "invitations",
    "read_task",
    "list_tasks",
    "task_activity",
    "comment",
    "invite",
    "update",
    "change_role",
)
DESTRUCTIVE = tuple(action for action in ACTIONS if action not in SAFE)


def _mismatch(world: World, role: str, action: str) -> str | None:
    response = ACTIONS[action](world, world.users[role])
    # Former members, unconfirmed invitees and strangers all get what a missing project gets:
    # nothing tells them it exists.
    expected = EXPECTED[action].get(role, 404)
    if response.status_code != expected:
        return f"{role} {action}: {response.status_code} (expected {expected}) {response.text}"
    if expected in CODES and action != "list":
        code = "task_not_found" if expected == 404 and action in TASK_ACTIONS else None
        if response.json()["code"] != (code or CODES[expected]):
            return f"{role} {action}: code {response.json()['code']}"
    return None


def test_every_role_against_every_action_that_keeps_the_project(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(EMAIL_VERIFICATION_ENABLED=True)
    with TestClient(app) as client:
        world = _world(app, client)
        # Strangers first, so no owner action (a rename) decides what they are told.
        order = ("stranger", "unverified", "former", "viewer", "editor", "owner")
        mismatches = [_mismatch(world, role, action) for role in order for action in SAFE]
    assert [m for m in mismatches if m] == []
    assert len(mismatches) == len(ROLES) * len(SAFE)


@pytest.mark.parametrize("action", DESTRUCTIVE)
@pytest.mark.parametrize("role", ROLES)
def test_role_against_an_action_that_changes_the_project(
    make_app: Callable[..., FastAPI], role: str, action: str
) -> None:
    app = make_app(EMAIL_VERIFICATION_ENABLED=True)
    with TestClient(app) as client:
        world = _world(app, client)
        assert _mismatch(world, role, action) is None
