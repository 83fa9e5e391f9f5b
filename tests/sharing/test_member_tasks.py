"""Members and the tasks of a shared project: reading, listing, history and comments.

(Editors' writes to tasks are the next part of issue 20; these are the reads.)
"""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.auth.helpers import comparable
from tests.factories import API, make_label, make_project, make_task, new_user
from tests.helpers import MISSING_ID, assert_problem, walk
from tests.sharing.helpers import share


def test_a_member_reads_the_project_s_tasks_as_its_owner_does(
    app: FastAPI, client: TestClient
) -> None:
    owner, viewer = new_user(client), new_user(client)
    project = make_project(client, owner)
    label = make_label(client, owner, "Outside")
    task = make_task(client, owner, project_id=project["id"], label_ids=[label["id"]])
    share(client, app, owner, project["id"], viewer, "viewer")
    url = f"{API}/tasks/{task['id']}"
    as_owner = client.get(url, headers=owner.headers)
    as_viewer = client.get(url, headers=viewer.headers)
    assert as_viewer.status_code == 200
    assert as_viewer.json() == as_owner.json()
    assert as_viewer.headers["etag"] == as_owner.headers["etag"]
    not_modified = client.get(
        url, headers={**viewer.headers, "If-None-Match": as_owner.headers["etag"]}
    )
    assert not_modified.status_code == 304
    listed = walk(client, viewer, f"/projects/{project['id']}/tasks")
    assert [item["id"] for item in listed] == [task["id"]]
    # The project's labels are its owner's: the same filter works for the member.
    by_label = walk(client, viewer, f"/projects/{project['id']}/tasks", {"label": label["id"]})
    assert [item["id"] for item in by_label] == [task["id"]]
    history = walk(client, viewer, f"/tasks/{task['id']}/activity")
    assert [change["verb"] for change in history] == ["create"]


def test_the_owner_s_other_projects_stay_out_of_a_member_s_reach(
    app: FastAPI, client: TestClient
) -> None:
    owner, viewer = new_user(client), new_user(client)
    shared, private = make_project(client, owner), make_project(client, owner)
    hidden = make_task(client, owner, project_id=private["id"])
    inbox_task = make_task(client, owner)
    share(client, app, owner, shared["id"], viewer, "viewer")
    for task in (hidden, inbox_task):
        for path in ("", "/activity", "/comments"):
            response = client.get(f"{API}/tasks/{task['id']}{path}", headers=viewer.headers)
            missing = client.get(f"{API}/tasks/{MISSING_ID}{path}", headers=viewer.headers)
            assert_problem(response, 404, "task_not_found")
            assert comparable(response) == comparable(missing)
    # A parent filter naming the owner's task elsewhere is refused like a missing one.
    elsewhere = client.get(
        f"{API}/projects/{shared['id']}/tasks",
        headers=viewer.headers,
        params={"parent_id": hidden["id"]},
    )
    missing = client.get(
        f"{API}/projects/{shared['id']}/tasks",
        headers=viewer.headers,
        params={"parent_id": MISSING_ID},
    )
    assert_problem(elsewhere, 422, "reference_not_found")
    assert elsewhere.json()["errors"] == missing.json()["errors"]
    assert set(elsewhere.json()) == set(missing.json())
    assert_problem(
        client.get(f"{API}/projects/{private['id']}/tasks", headers=viewer.headers),
        404,
        "project_not_found",
    )


def test_a_removed_member_no_longer_reads_the_tasks(app: FastAPI, client: TestClient) -> None:
    owner, member = new_user(client), new_user(client)
    project = make_project(client, owner)
    task = make_task(client, owner, project_id=project["id"])
    share(client, app, owner, project["id"], member, "editor")
    assert client.get(f"{API}/tasks/{task['id']}", headers=member.headers).status_code == 200
    url = f"{API}/projects/{project['id']}/members/{member.id}"
    assert client.delete(url, headers=owner.headers).status_code == 204
    assert_problem(client.get(f"{API}/tasks/{task['id']}", headers=member.headers), 404)
    assert_problem(client.get(f"{API}/projects/{project['id']}/tasks", headers=member.headers), 404)


def test_members_comment_the_owner_hears_of_it_and_authors_keep_their_comments(
    app: FastAPI, client: TestClient
) -> None:
    owner, viewer = new_user(client), new_user(client)
    project = make_project(client, owner)
    task = make_task(client, owner, project_id=project["id"], title="Paint the fence")
    share(client, app, owner, project["id"], viewer, "viewer")
    comments = f"{API}/tasks/{task['id']}/comments"
    theirs = client.post(comments, headers=viewer.headers, json={"body": "Which colour?"})
    assert theirs.status_code == 201, theirs.text
    mine = client.post(comments, headers=owner.headers, json={"body": "Green."}).json()
    assert [c["body"] for c in walk(client, viewer, f"/tasks/{task['id']}/comments")] == [
        "Which colour?",
        "Green.",
    ]
    [told] = walk(client, owner, "/notifications")
    assert (told["kind"], told["actor_id"]) == ("commented", viewer.id)
    assert told["data"]["task_title"] == "Paint the fence"
    assert walk(client, viewer, "/notifications")[0]["kind"] == "invited"  # not "commented"
    their_url = f"{API}/comments/{theirs.json()['id']}"
    my_url = f"{API}/comments/{mine['id']}"
    edited = client.patch(their_url, headers=viewer.headers, json={"body": "Which green?"})
    assert edited.status_code == 200
    assert_problem(
        client.patch(my_url, headers=viewer.headers, json={"body": "Red."}),
        403,
        "not_comment_author",
    )
    assert_problem(client.delete(my_url, headers=viewer.headers), 403, "not_comment_author")
    assert_problem(
        client.patch(their_url, headers=owner.headers, json={"body": "x"}),
        403,
        "not_comment_author",
    )
    # The project's owner may delete anyone's comment.
    assert client.delete(their_url, headers=owner.headers).status_code == 204


def test_a_deleted_member_s_comments_stay_shown_as_a_deleted_user(
    app: FastAPI, client: TestClient
) -> None:
    owner, member = new_user(client), new_user(client)
    project = make_project(client, owner)
    task = make_task(client, owner, project_id=project["id"])
    share(client, app, owner, project["id"], member, "viewer")
    comments = f"{API}/tasks/{task['id']}/comments"
    made = client.post(comments, headers=member.headers, json={"body": "Bye"}).json()
    assert made["author"] == {"id": member.id, "full_name": None, "email": member.email}
    assert client.delete(f"{API}/users/me", headers=member.headers).status_code == 204
    [kept] = walk(client, owner, f"/tasks/{task['id']}/comments")
    assert (kept["id"], kept["body"], kept["author_id"]) == (made["id"], "Bye", member.id)
    assert kept["author"] is None
    read = client.get(f"{API}/comments/{made['id']}", headers=owner.headers).json()
    assert read["author"] is None
    # The change log keeps the change, its actor shown as deleted too.
    history = walk(client, owner, f"/projects/{project['id']}/activity")
    assert [c["actor"] for c in history if c["entity_type"] == "comment"] == [None]
