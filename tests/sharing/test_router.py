"""Sharing over HTTP: invitations, roles, leaving, transfer, limits, and who sees what."""

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.auth.helpers import comparable, mails_to, outbox, verification_token_from
from tests.factories import (
    API,
    SignedInUser,
    inbox_id,
    make_label,
    make_project,
    make_task,
    new_user,
    unique_email,
)
from tests.helpers import MISSING_ID, assert_problem, walk
from tests.sharing.helpers import invite, last_invitation_token, share


def _accept(client: TestClient, user: SignedInUser, token: str) -> httpx.Response:
    return client.post(f"{API}/invitations/accept", headers=user.headers, json={"token": token})


def test_an_invitation_is_mailed_and_accepted_by_the_invited_account(
    app: FastAPI, client: TestClient
) -> None:
    owner, friend = new_user(client), new_user(client)
    project = make_project(client, owner, name="Garden")
    invitation = invite(client, owner, project["id"], friend.email, "editor")
    assert invitation["email"] == friend.email
    assert invitation["role"] == "editor"
    assert invitation["project_id"] == project["id"]
    pending = client.get(f"{API}/invitations", headers=friend.headers)
    assert pending.status_code == 200
    [received] = pending.json()
    assert received["project"] == {"id": project["id"], "name": "Garden"}
    assert received["invited_by"] == owner.email
    assert received["role"] == "editor"

    joined = share_token_accept(client, app, friend)
    assert joined["id"] == project["id"]
    assert joined["role"] == "editor"
    # The project now shows for the member, everywhere projects are read.
    mine = walk(client, friend, "/projects")
    assert {(p["id"], p["role"]) for p in mine} == {
        (inbox_id(client, friend), "owner"),
        (project["id"], "editor"),
    }
    assert [p["id"] for p in walk(client, friend, "/projects", {"shared": "true"})] == [
        project["id"]
    ]
    assert project["id"] not in [
        p["id"] for p in walk(client, friend, "/projects", {"shared": "false"})
    ]
    as_member = client.get(f"{API}/projects/{project['id']}", headers=friend.headers)
    as_owner = client.get(f"{API}/projects/{project['id']}", headers=owner.headers)
    assert as_member.status_code == as_owner.status_code == 200
    assert as_member.headers["etag"] == as_owner.headers["etag"]
    assert (as_member.json()["role"], as_owner.json()["role"]) == ("editor", "owner")
    conditional = client.get(
        f"{API}/projects/{project['id']}",
        headers={**friend.headers, "If-None-Match": as_owner.headers["etag"]},
    )
    assert conditional.status_code == 304
    # The invitation is used up.
    assert client.get(f"{API}/invitations", headers=friend.headers).json() == []
    members = client.get(f"{API}/projects/{project['id']}/members", headers=friend.headers)
    assert [(m["user_id"], m["role"]) for m in members.json()] == [
        (owner.id, "owner"),
        (friend.id, "editor"),
    ]
    assert {m["email"] for m in members.json()} == {owner.email, friend.email}


def share_token_accept(client: TestClient, app: FastAPI, user: SignedInUser) -> dict[str, object]:
    response = client.post(
        f"{API}/invitations/accept",
        headers=user.headers,
        json={"token": last_invitation_token(app, user.email)},
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_inviting_tells_nothing_about_whether_the_address_has_an_account(
    app: FastAPI, client: TestClient
) -> None:
    owner, existing = new_user(client), new_user(client)
    project = make_project(client, owner)
    nobody = unique_email("nobody")
    answers = []
    for address in (existing.email, nobody):
        sent = len(outbox(app))
        response = client.post(
            f"{API}/projects/{project['id']}/members",
            headers=owner.headers,
            json={"email": address, "role": "viewer"},
        )
        status, body = comparable(response)
        for varying in ("id", "email", "created_at", "expires_at"):
            body.pop(varying)
        answers.append((status, body, sorted(response.headers.keys())))
        # The same work either way: one mail, to the address.
        assert [mail.to for mail in outbox(app)[sent:]] == [address]
    assert answers[0] == answers[1]
    assert answers[0][0] == 202


def test_a_token_works_once_only_for_its_address_and_not_after_withdrawal(
    app: FastAPI, client: TestClient
) -> None:
    owner, friend, other = new_user(client), new_user(client), new_user(client)
    project = make_project(client, owner)
    invite(client, owner, project["id"], friend.email)
    token = last_invitation_token(app, friend.email)
    assert_problem(_accept(client, other, token), 403, "invitation_for_another_address")
    assert _accept(client, friend, token).status_code == 200
    again = _accept(client, friend, token)
    assert_problem(again, 422, "invalid_invitation")
    assert_problem(_accept(client, friend, "not-a-token"), 422, "invalid_invitation")

    invite(client, owner, project["id"], other.email)
    withdrawn_token = last_invitation_token(app, other.email)
    [pending] = client.get(
        f"{API}/projects/{project['id']}/invitations", headers=owner.headers
    ).json()
    gone = client.delete(
        f"{API}/projects/{project['id']}/invitations/{pending['id']}", headers=owner.headers
    )
    assert gone.status_code == 204
    assert_problem(_accept(client, other, withdrawn_token), 422, "invalid_invitation")
    # A second invitation to one address replaces the first: only the new token works.
    invite(client, owner, project["id"], other.email)
    first = last_invitation_token(app, other.email)
    invite(client, owner, project["id"], other.email, "editor")
    second = last_invitation_token(app, other.email)
    assert_problem(_accept(client, other, first), 422, "invalid_invitation")
    assert _accept(client, other, second).json()["role"] == "editor"


def test_declining_deletes_the_invitation_and_grants_nothing(
    app: FastAPI, client: TestClient
) -> None:
    owner, friend = new_user(client), new_user(client)
    project = make_project(client, owner)
    invite(client, owner, project["id"], friend.email)
    token = last_invitation_token(app, friend.email)
    declined = client.post(
        f"{API}/invitations/decline", headers=friend.headers, json={"token": token}
    )
    assert declined.status_code == 204
    assert_problem(_accept(client, friend, token), 422, "invalid_invitation")
    read = client.get(f"{API}/projects/{project['id']}", headers=friend.headers)
    assert_problem(read, 404, "project_not_found")


@pytest.fixture
def verifying_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app(EMAIL_VERIFICATION_ENABLED=True)


@pytest.fixture
def verifying(verifying_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(verifying_app) as client:
        yield client


def _confirm(app: FastAPI, client: TestClient, user: SignedInUser) -> None:
    [mail, *_] = [m for m in mails_to(app, user.email) if "/verify-email#" in m.body]
    token = verification_token_from(mail)
    assert client.post(f"{API}/auth/verify", json={"token": token}).status_code == 204


def test_an_unconfirmed_account_can_neither_share_nor_join(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    owner, invitee = new_user(verifying), new_user(verifying)
    project = make_project(verifying, owner)
    refused = verifying.post(
        f"{API}/projects/{project['id']}/members",
        headers=owner.headers,
        json={"email": invitee.email},
    )
    assert_problem(refused, 403, "email_not_verified")
    _confirm(verifying_app, verifying, owner)
    invite(verifying, owner, project["id"], invitee.email)
    token = last_invitation_token(verifying_app, invitee.email)
    assert_problem(
        verifying.get(f"{API}/invitations", headers=invitee.headers), 403, "email_not_verified"
    )
    assert_problem(_accept(verifying, invitee, token), 403, "email_not_verified")
    assert_problem(
        verifying.get(f"{API}/projects/{project['id']}", headers=invitee.headers),
        404,
        "project_not_found",
    )
    _confirm(verifying_app, verifying, invitee)
    assert _accept(verifying, invitee, token).status_code == 200


def test_roles_decide_what_a_member_may_do_and_strangers_see_nothing(
    app: FastAPI, client: TestClient
) -> None:
    owner, editor, viewer, stranger = (new_user(client) for _ in range(4))
    project = make_project(client, owner)
    share(client, app, owner, project["id"], editor, "editor")
    share(client, app, owner, project["id"], viewer, "viewer")
    url = f"{API}/projects/{project['id']}"
    for member in (editor, viewer):
        assert client.get(url, headers=member.headers).status_code == 200
        assert client.get(f"{url}/members", headers=member.headers).status_code == 200
        assert_problem(
            client.patch(url, headers=member.headers, json={"name": "mine"}), 403, "role_too_low"
        )
        assert_problem(client.delete(url, headers=member.headers), 403, "role_too_low")
        assert_problem(
            client.post(f"{url}/members", headers=member.headers, json={"email": stranger.email}),
            403,
            "role_too_low",
        )
        assert_problem(client.get(f"{url}/invitations", headers=member.headers), 403)
        assert_problem(
            client.post(f"{url}/transfer", headers=member.headers, json={"user_id": member.id}),
            403,
            "role_too_low",
        )
        other = viewer if member is editor else editor
        assert_problem(
            client.delete(f"{url}/members/{other.id}", headers=member.headers),
            403,
            "role_too_low",
        )
        assert_problem(
            client.patch(
                f"{url}/members/{other.id}", headers=member.headers, json={"role": "editor"}
            ),
            403,
            "role_too_low",
        )
    # A stranger gets what a missing project gets, on every route.
    for method, path, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("GET", "/members", None),
        ("POST", "/members", {"email": stranger.email}),
        ("PATCH", f"/members/{viewer.id}", {"role": "editor"}),
        ("DELETE", f"/members/{viewer.id}", None),
        ("POST", "/leave", None),
        ("POST", "/transfer", {"user_id": stranger.id}),
        ("GET", "/invitations", None),
    ]:
        response = client.request(method, f"{url}{path}", headers=stranger.headers, json=body)
        missing = client.request(
            method, f"{API}/projects/{MISSING_ID}{path}", headers=stranger.headers, json=body
        )
        assert_problem(response, 404, "project_not_found")
        assert comparable(response) == comparable(missing)
    assert project["id"] not in [p["id"] for p in walk(client, stranger, "/projects")]


def test_the_owner_changes_roles_and_removes_members_and_access_ends_at_once(
    app: FastAPI, client: TestClient
) -> None:
    owner, member = new_user(client), new_user(client)
    project = make_project(client, owner)
    url = f"{API}/projects/{project['id']}"
    share(client, app, owner, project["id"], member, "viewer")
    changed = client.patch(
        f"{url}/members/{member.id}", headers=owner.headers, json={"role": "editor"}
    )
    assert changed.status_code == 200
    assert changed.json()["role"] == "editor"
    assert client.get(url, headers=member.headers).json()["role"] == "editor"
    assert_problem(
        client.patch(f"{url}/members/{owner.id}", headers=owner.headers, json={"role": "viewer"}),
        404,
        "member_not_found",
    )
    assert_problem(
        client.patch(f"{url}/members/{MISSING_ID}", headers=owner.headers, json={"role": "viewer"}),
        404,
        "member_not_found",
    )
    invalid = client.patch(
        f"{url}/members/{member.id}", headers=owner.headers, json={"role": "owner"}
    )
    assert_problem(invalid, 422)
    removed = client.delete(f"{url}/members/{member.id}", headers=owner.headers)
    assert removed.status_code == 204
    assert_problem(client.get(url, headers=member.headers), 404, "project_not_found")
    assert project["id"] not in [p["id"] for p in walk(client, member, "/projects")]
    assert_problem(
        client.delete(f"{url}/members/{member.id}", headers=owner.headers), 404, "member_not_found"
    )


def test_members_leave_and_the_owner_cannot(app: FastAPI, client: TestClient) -> None:
    owner, member = new_user(client), new_user(client)
    project = make_project(client, owner)
    url = f"{API}/projects/{project['id']}"
    share(client, app, owner, project["id"], member, "editor")
    assert_problem(client.post(f"{url}/leave", headers=owner.headers), 409, "owner_cannot_leave")
    assert client.post(f"{url}/leave", headers=member.headers).status_code == 204
    assert_problem(client.get(url, headers=member.headers), 404, "project_not_found")
    assert_problem(client.post(f"{url}/leave", headers=member.headers), 404, "project_not_found")


def test_the_inbox_is_never_shared_and_members_are_not_invited_twice(
    app: FastAPI, client: TestClient
) -> None:
    owner, member = new_user(client), new_user(client)
    refused = client.post(
        f"{API}/projects/{inbox_id(client, owner)}/members",
        headers=owner.headers,
        json={"email": member.email},
    )
    assert_problem(refused, 409, "inbox_unshareable")
    project = make_project(client, owner)
    share(client, app, owner, project["id"], member)
    for address in (member.email, owner.email, member.email.upper()):
        again = client.post(
            f"{API}/projects/{project['id']}/members",
            headers=owner.headers,
            json={"email": address},
        )
        assert_problem(again, 409, "already_member")


def test_transfer_moves_the_project_its_tasks_and_their_labels(
    app: FastAPI, client: TestClient
) -> None:
    owner, member, stranger = new_user(client), new_user(client), new_user(client)
    project = make_project(client, owner)
    url = f"{API}/projects/{project['id']}"
    label = make_label(client, owner, "Urgent", color="#ff0000")
    task = make_task(client, owner, project_id=project["id"], label_ids=[label["id"]])
    share(client, app, owner, project["id"], member, "viewer")
    not_member = client.post(
        f"{url}/transfer", headers=owner.headers, json={"user_id": stranger.id}
    )
    body = assert_problem(not_member, 422, "reference_not_found")
    assert body["errors"][0]["loc"] == ["body", "user_id"]

    moved = client.post(f"{url}/transfer", headers=owner.headers, json={"user_id": member.id})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["owner_id"], moved.json()["role"]) == (member.id, "editor")
    assert moved.json()["version"] == project["version"] + 1
    as_new_owner = client.get(url, headers=member.headers).json()
    assert (as_new_owner["role"], as_new_owner["owner_id"]) == ("owner", member.id)
    members = client.get(f"{url}/members", headers=member.headers).json()
    assert [(m["user_id"], m["role"]) for m in members] == [
        (member.id, "owner"),
        (owner.id, "editor"),
    ]
    # The task is the new owner's now, carrying the new owner's label of the same name.
    read = client.get(f"{API}/tasks/{task['id']}", headers=member.headers)
    assert read.status_code == 200, read.text
    [carried] = read.json()["labels"]
    assert (carried["name"], carried["color"]) == ("Urgent", "#ff0000")
    assert carried["id"] != label["id"]
    assert [lb["id"] for lb in walk(client, member, "/labels")] == [carried["id"]]
    assert read.json()["version"] == task["version"] + 1
    # Its project's owner changed; who made it did not.
    assert task["created_by_id"] == owner.id
    assert (read.json()["owner_id"], read.json()["created_by_id"]) == (member.id, owner.id)
    # The old owner's label stays theirs; the new owner may now manage members.
    assert [lb["id"] for lb in walk(client, owner, "/labels")] == [label["id"]]
    assert client.post(f"{url}/leave", headers=owner.headers).status_code == 204
    assert_problem(client.post(f"{url}/leave", headers=member.headers), 409, "owner_cannot_leave")


def test_an_account_owning_a_shared_project_cannot_be_deleted(
    app: FastAPI, client: TestClient
) -> None:
    owner, member = new_user(client), new_user(client)
    project = make_project(client, owner)
    share(client, app, owner, project["id"], member)
    refused = client.delete(f"{API}/users/me", headers=owner.headers)
    assert_problem(refused, 409, "owns_shared_projects")
    # A member's account goes freely; the project stays its owner's.
    assert client.delete(f"{API}/users/me", headers=member.headers).status_code == 204
    assert client.get(f"{API}/projects/{project['id']}", headers=owner.headers).status_code == 200
    assert client.delete(f"{API}/users/me", headers=owner.headers).status_code == 204


@pytest.mark.parametrize(
    ("setting", "resource"),
    [
        ("PROJECT_MEMBERS_MAX", "project_members"),
        ("PENDING_INVITATIONS_PER_INVITER_MAX", "pending_invitations"),
    ],
)
def test_invitations_are_capped(
    make_app: Callable[..., FastAPI], setting: str, resource: str
) -> None:
    with TestClient(make_app(**{setting: 1})) as client:
        owner = new_user(client)
        project = make_project(client, owner)
        invite(client, owner, project["id"], unique_email())
        over = client.post(
            f"{API}/projects/{project['id']}/members",
            headers=owner.headers,
            json={"email": unique_email()},
        )
        body = assert_problem(over, 409, "quota_exceeded")
        assert (body["resource"], body["limit"]) == (resource, 1)


def test_the_projects_shared_with_one_account_are_capped(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(SHARED_PROJECTS_PER_USER_MAX=1)
    with TestClient(app) as client:
        owner, member = new_user(client), new_user(client)
        first, second = make_project(client, owner), make_project(client, owner)
        share(client, app, owner, first["id"], member)
        invite(client, owner, second["id"], member.email)
        over = _accept(client, member, last_invitation_token(app, member.email))
        body = assert_problem(over, 409, "quota_exceeded")
        assert (body["resource"], body["limit"]) == ("shared_projects", 1)


@pytest.mark.postgres
def test_a_removed_member_loses_access_at_once_through_another_server_too(
    make_app: Callable[..., FastAPI],
) -> None:
    """Two apps on one PostgreSQL stand for two server processes: each has its own pools and
    caches, so nothing one remembers can let the removed member in through the other."""
    first, second = make_app(), make_app()
    with TestClient(first) as one, TestClient(second) as other:
        owner, member = new_user(one), new_user(one)
        project = make_project(one, owner)
        share(one, first, owner, project["id"], member, "editor")
        url = f"{API}/projects/{project['id']}"
        # The member's reads through the second server warm whatever it caches.
        for _ in range(3):
            assert other.get(url, headers=member.headers).status_code == 200
            assert other.get(f"{url}/members", headers=member.headers).status_code == 200
        removed = one.delete(f"{url}/members/{member.id}", headers=owner.headers)
        assert removed.status_code == 204
        assert_problem(other.get(url, headers=member.headers), 404, "project_not_found")
        assert_problem(other.get(f"{url}/members", headers=member.headers), 404)
        assert project["id"] not in [p["id"] for p in walk(other, member, "/projects")]
