"""Notifications over HTTP: written for what others do to you, never for your own actions."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import API, SignedInUser, make_project, new_user, unique_email
from tests.helpers import MISSING_ID, assert_problem, walk
from tests.sharing.helpers import invite, share


def _kinds(client: TestClient, user: SignedInUser, **params: str) -> list[str]:
    return [n["kind"] for n in walk(client, user, "/notifications", params or None)]


def test_invitations_role_changes_and_removals_notify_the_member(
    app: FastAPI, client: TestClient
) -> None:
    owner, member = new_user(client), new_user(client)
    project = make_project(client, owner, name="Garden")
    url = f"{API}/projects/{project['id']}"
    share(client, app, owner, project["id"], member, "viewer")
    client.patch(f"{url}/members/{member.id}", headers=owner.headers, json={"role": "editor"})
    client.post(f"{url}/transfer", headers=owner.headers, json={"user_id": member.id})
    # Now the member owns it and removes the old owner.
    client.delete(f"{url}/members/{owner.id}", headers=member.headers)

    mine = walk(client, member, "/notifications")
    assert [n["kind"] for n in mine] == ["role_changed", "role_changed", "invited"]
    assert [n["data"].get("role") for n in mine] == ["owner", "editor", "viewer"]
    assert all(n["actor_id"] == owner.id and n["project_id"] == project["id"] for n in mine)
    assert mine[2]["data"]["project_name"] == "Garden"
    # The old owner hears of the removal; nobody hears of their own actions.
    assert _kinds(client, owner) == ["removed"]


def test_no_notification_for_an_address_without_an_account_or_for_oneself(
    app: FastAPI, client: TestClient
) -> None:
    owner, member = new_user(client), new_user(client)
    project = make_project(client, owner)
    invite(client, owner, project["id"], unique_email("nobody"))
    share(client, app, owner, project["id"], member)
    client.post(f"{API}/projects/{project['id']}/leave", headers=member.headers)
    assert _kinds(client, owner) == []
    assert _kinds(client, member) == ["invited"]


def test_reading_one_or_all_and_the_unread_filter(app: FastAPI, client: TestClient) -> None:
    owner, member, stranger = new_user(client), new_user(client), new_user(client)
    first, second = make_project(client, owner), make_project(client, owner)
    invite(client, owner, first["id"], member.email)
    invite(client, owner, second["id"], member.email)
    newest, older = walk(client, member, "/notifications")
    assert newest["read_at"] is None
    read = client.post(f"{API}/notifications/{older['id']}/read", headers=member.headers)
    assert read.status_code == 200
    assert read.json()["read_at"] is not None
    again = client.post(f"{API}/notifications/{older['id']}/read", headers=member.headers)
    assert again.json()["read_at"] == read.json()["read_at"]
    assert [n["id"] for n in walk(client, member, "/notifications", {"unread": "true"})] == [
        newest["id"]
    ]
    assert [n["id"] for n in walk(client, member, "/notifications", {"unread": "false"})] == [
        older["id"]
    ]
    # Someone else's notification, or none, is a 404.
    for notification_id in (newest["id"], MISSING_ID):
        assert_problem(
            client.post(f"{API}/notifications/{notification_id}/read", headers=stranger.headers),
            404,
            "notification_not_found",
        )
    assert client.post(f"{API}/notifications/read-all", headers=member.headers).status_code == 204
    assert walk(client, member, "/notifications", {"unread": "true"}) == []
