"""Tasks over HTTP: CRUD, limits, subtasks, ordering, filters, sorts, paging, ETags, bulk, trash."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.dependencies import ActiveUser
from app.core.db import SessionDep
from app.core.errors import AppError
from app.tasks import service as task_service
from app.tasks.models import TITLE_MAX_LENGTH
from tests.factories import (
    API,
    SignedInUser,
    inbox_id,
    make_label,
    make_project,
    make_task,
    new_user,
)
from tests.helpers import MISSING_ID, assert_problem, walk


def _get(client: TestClient, user: SignedInUser, task_id: str) -> Any:
    return client.get(f"{API}/tasks/{task_id}", headers=user.headers)


def _patch(client: TestClient, user: SignedInUser, task_id: str, **body: Any) -> Any:
    return client.patch(f"{API}/tasks/{task_id}", headers=user.headers, json=body)


# Create, read, update, delete


def test_create_defaults_to_the_inbox_at_the_end(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(f"{API}/tasks", headers=user.headers, json={"title": "first"})
    assert response.status_code == 201
    task = response.json()
    assert response.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert response.headers["ETag"] == '"v1"'
    assert task["project_id"] == inbox_id(client, user)
    assert task["status"] == "todo"
    assert task["priority"] == 0
    assert task["version"] == 1
    assert task["labels"] == []
    assert task["completed_at"] is None
    second = make_task(client, user, title="second")
    assert second["position"] > task["position"]
    assert task["id"][14] == "7"  # UUIDv7


def test_due_at_is_stored_in_utc_and_returned_with_offset(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user, due_at="2026-05-01T17:00:00+02:00")
    assert task["due_at"] == "2026-05-01T15:00:00+00:00"
    assert _get(client, user, task["id"]).json()["due_at"] == "2026-05-01T15:00:00+00:00"
    naive = client.post(
        f"{API}/tasks", headers=user.headers, json={"title": "x", "due_at": "2026-05-01T17:00:00"}
    )
    assert_problem(naive, 422, "validation_error")


def test_read_update_and_delete(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user, description="d", priority=2)
    assert _get(client, user, task["id"]).json() == task
    response = _patch(client, user, task["id"], title="renamed")
    assert response.status_code == 200
    body = response.json()
    assert (body["title"], body["description"], body["priority"]) == ("renamed", "d", 2)
    assert body["version"] == 2
    assert response.headers["ETag"] == '"v2"'
    deleted = client.delete(f"{API}/tasks/{task['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert_problem(_get(client, user, task["id"]), 404, "task_not_found")


def test_patch_null_clears_nullable_fields_only(client: TestClient) -> None:
    user = new_user(client)
    parent = make_task(client, user)
    task = make_task(
        client, user, description="d", due_at="2026-01-01T00:00:00+00:00", parent_id=parent["id"]
    )
    body = _patch(client, user, task["id"], description=None, due_at=None, parent_id=None).json()
    assert (body["description"], body["due_at"], body["parent_id"]) == (None, None, None)
    assert body["title"] == "T"
    for field in ("title", "status", "priority", "project_id", "label_ids"):
        assert_problem(_patch(client, user, task["id"], **{field: None}), 422)
    # A PATCH that changes nothing leaves the version alone.
    assert _patch(client, user, task["id"], title="T").json()["version"] == body["version"]


def test_status_sets_and_clears_completed_at(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user)
    done = _patch(client, user, task["id"], status="done").json()
    assert done["completed_at"] is not None
    again = _patch(client, user, task["id"], status="done", title="still done").json()
    assert again["completed_at"] == done["completed_at"]
    reopened = _patch(client, user, task["id"], status="in_progress").json()
    assert reopened["completed_at"] is None
    assert make_task(client, user, status="done")["completed_at"] is not None


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "x" * 501},
        {"title": "ok", "description": "x" * 20_001},
        {"title": "ok", "priority": 5},
        {"title": "ok", "priority": -1},
        {"title": "ok", "status": "blocked"},
        {"title": "ok", "label_ids": [MISSING_ID] * 21},
        {"title": "ok", "owner_id": MISSING_ID},
        {"title": "ok", "version": 7},
    ],
)
def test_limits_and_unknown_fields_are_422(client: TestClient, body: dict[str, Any]) -> None:
    user = new_user(client)
    assert_problem(client.post(f"{API}/tasks", headers=user.headers, json=body), 422)


def test_the_longest_values_are_accepted(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user, title="x" * 500, description="y" * 20_000, priority=4)
    assert len(task["title"]) == 500


def test_too_many_labels_after_adding(client: TestClient) -> None:
    user = new_user(client)
    labels = [make_label(client, user, f"l{i}")["id"] for i in range(21)]
    task = make_task(client, user, label_ids=labels[:20])
    assert len(task["labels"]) == 20
    response = client.post(
        f"{API}/tasks/bulk",
        headers=user.headers,
        json={"operations": [{"op": "add_labels", "id": task["id"], "label_ids": labels[20:]}]},
    )
    body = assert_problem(response, 422, "too_many_labels")
    assert body["operation_index"] == 0


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_malformed_id_is_422_problem(client: TestClient, method: str) -> None:
    user = new_user(client)
    kwargs: dict[str, Any] = {"json": {}} if method == "patch" else {}
    response = client.request(method, f"{API}/tasks/not-a-uuid", headers=user.headers, **kwargs)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["path", "task_id"]
    restore = client.post(f"{API}/tasks/123/restore", headers=user.headers)
    assert_problem(restore, 422, "validation_error")


def test_anonymous_is_401(client: TestClient) -> None:
    assert_problem(client.get(f"{API}/tasks"), 401)
    assert_problem(client.post(f"{API}/tasks", json={"title": "x"}), 401)
    assert_problem(client.get(f"{API}/tasks/{MISSING_ID}"), 401)


# Labels on tasks


def test_labels_attach_replace_and_show(client: TestClient) -> None:
    user = new_user(client)
    work = make_label(client, user, "work", color="#112233")
    home = make_label(client, user, "home")
    task = make_task(client, user, label_ids=[work["id"], home["id"], work["id"]])
    assert [label["name"] for label in task["labels"]] == ["home", "work"]
    assert task["labels"][1] == {"id": work["id"], "name": "work", "color": "#112233"}
    body = _patch(client, user, task["id"], label_ids=[home["id"]]).json()
    assert [label["id"] for label in body["labels"]] == [home["id"]]
    assert body["version"] == 2
    assert _patch(client, user, task["id"], label_ids=[]).json()["labels"] == []


def test_reads_and_lists_show_labels_in_name_order_like_writes_do(client: TestClient) -> None:
    # GET and the lists build labels in the task's own SELECT (JSON aggregation, one
    # spelling per database); writes load them through the ORM. Both must agree.
    user = new_user(client)
    names = ["work", "Errands", "home", "zz-last", "a-first"]
    labels = [
        make_label(client, user, name, color="#abcdef" if i % 2 else None)
        for i, name in enumerate(names)
    ]
    written = make_task(client, user, label_ids=[label["id"] for label in labels])
    bare = make_task(client, user)
    expected = sorted(written["labels"], key=lambda label: label["name"].lower())
    assert written["labels"] == expected
    assert _get(client, user, written["id"]).json()["labels"] == expected
    assert _get(client, user, bare["id"]).json()["labels"] == []
    listed = client.get(f"{API}/tasks", headers=user.headers).json()["items"]
    by_id = {item["id"]: item for item in listed}
    assert by_id[written["id"]] == _get(client, user, written["id"]).json()
    assert by_id[written["id"]]["labels"] == expected
    assert by_id[bare["id"]]["labels"] == []


# Subtasks


def test_subtask_follows_parent_project(client: TestClient) -> None:
    user = new_user(client)
    garden = make_project(client, user, name="Garden")
    house = make_project(client, user, name="House")
    parent = make_task(client, user, project_id=garden["id"])
    child = make_task(client, user, parent_id=parent["id"])
    grandchild = make_task(client, user, parent_id=child["id"])
    assert child["project_id"] == garden["id"]
    mismatch = client.post(
        f"{API}/tasks",
        headers=user.headers,
        json={"title": "x", "parent_id": parent["id"], "project_id": house["id"]},
    )
    assert_problem(mismatch, 422, "subtask_project_mismatch")
    assert_problem(
        _patch(client, user, child["id"], project_id=house["id"]), 422, "subtask_project_mismatch"
    )
    # Moving the parent moves the whole subtree, each row's version moving on.
    moved = _patch(client, user, parent["id"], project_id=house["id"]).json()
    assert moved["project_id"] == house["id"]
    for task in (child, grandchild):
        now = _get(client, user, task["id"]).json()
        assert now["project_id"] == house["id"]
        assert now["version"] == task["version"] + 1
    # Setting a parent in another project moves the task there.
    loose = make_task(client, user, project_id=garden["id"])
    adopted = _patch(client, user, loose["id"], parent_id=parent["id"]).json()
    assert (adopted["parent_id"], adopted["project_id"]) == (parent["id"], house["id"])
    # Detaching and moving in one PATCH is allowed.
    freed = _patch(client, user, adopted["id"], parent_id=None, project_id=garden["id"]).json()
    assert (freed["parent_id"], freed["project_id"]) == (None, garden["id"])


def test_subtask_cycles_are_refused(client: TestClient) -> None:
    user = new_user(client)
    a = make_task(client, user)
    b = make_task(client, user, parent_id=a["id"])
    c = make_task(client, user, parent_id=b["id"])
    assert_problem(_patch(client, user, a["id"], parent_id=a["id"]), 422, "task_cycle")
    assert_problem(_patch(client, user, a["id"], parent_id=c["id"]), 422, "task_cycle")
    assert _get(client, user, a["id"]).json()["parent_id"] is None


def test_subtask_depth_is_bounded(client: TestClient) -> None:
    user = new_user(client)
    chain = [make_task(client, user)]
    for _ in range(4):
        chain.append(make_task(client, user, parent_id=chain[-1]["id"]))
    too_deep = client.post(
        f"{API}/tasks", headers=user.headers, json={"title": "x", "parent_id": chain[-1]["id"]}
    )
    assert_problem(too_deep, 422, "task_too_deep")
    other = make_task(client, user)
    make_task(client, user, parent_id=other["id"])
    # `other` has one level below it: under chain[3] that would be 5 levels.
    assert_problem(_patch(client, user, other["id"], parent_id=chain[3]["id"]), 422)
    assert _patch(client, user, other["id"], parent_id=chain[2]["id"]).status_code == 200


# Manual order


def test_move_with_after_and_before_touches_only_the_moved_task(client: TestClient) -> None:
    user = new_user(client)
    project = make_project(client, user)
    tasks = [make_task(client, user, project_id=project["id"], title=f"t{i}") for i in range(4)]
    ids = [t["id"] for t in tasks]

    def order() -> list[str]:
        return [t["id"] for t in walk(client, user, f"/projects/{project['id']}/tasks")]

    assert order() == ids
    _patch(client, user, ids[3], after_id=ids[0])
    assert order() == [ids[0], ids[3], ids[1], ids[2]]
    _patch(client, user, ids[0], before_id=ids[2])
    assert order() == [ids[3], ids[1], ids[0], ids[2]]
    _patch(client, user, ids[2], after_id=None)
    assert order() == [ids[2], ids[3], ids[1], ids[0]]
    _patch(client, user, ids[2], before_id=None)
    assert order() == [ids[3], ids[1], ids[0], ids[2]]
    versions = {t["id"]: t["version"] for t in walk(client, user, "/tasks")}
    assert versions == {ids[0]: 2, ids[1]: 1, ids[2]: 3, ids[3]: 2}
    # Many moves into the same gap keep working (the key grows, no other row changes).
    for _ in range(30):
        _patch(client, user, ids[2], after_id=ids[3])
        _patch(client, user, ids[0], after_id=ids[3])
    assert order() == [ids[3], ids[0], ids[2], ids[1]]
    assert _get(client, user, ids[1]).json()["version"] == 1
    both = _patch(client, user, ids[0], after_id=ids[1], before_id=ids[2])
    assert_problem(both, 422)
    assert_problem(_patch(client, user, ids[0], after_id=ids[0]), 422, "invalid_move")
    elsewhere = make_task(client, user)
    assert_problem(_patch(client, user, ids[0], after_id=elsewhere["id"]), 422, "invalid_move")


# ETags


def test_etag_if_none_match_and_if_match(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user)
    url = f"{API}/tasks/{task['id']}"
    read = client.get(url, headers=user.headers)
    etag = read.headers["ETag"]
    assert etag == '"v1"'
    not_modified = client.get(url, headers={**user.headers, "If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["ETag"] == etag
    weak = client.get(url, headers={**user.headers, "If-None-Match": f'"v9", W/{etag}'})
    assert weak.status_code == 304
    changed = client.patch(url, headers={**user.headers, "If-Match": etag}, json={"title": "a"})
    assert changed.status_code == 200
    assert changed.headers["ETag"] == '"v2"'
    assert client.get(url, headers={**user.headers, "If-None-Match": etag}).status_code == 200
    stale = client.patch(url, headers={**user.headers, "If-Match": etag}, json={"title": "b"})
    body = assert_problem(stale, 412, "version_mismatch")
    assert body["current_version"] == 2
    assert _get(client, user, task["id"]).json()["title"] == "a"
    stale_delete = client.delete(url, headers={**user.headers, "If-Match": etag})
    assert_problem(stale_delete, 412, "version_mismatch")
    assert _get(client, user, task["id"]).status_code == 200
    star = client.patch(url, headers={**user.headers, "If-Match": "*"}, json={"title": "c"})
    assert star.status_code == 200
    # Without If-Match the last write wins, as documented.
    assert _patch(client, user, task["id"], title="d").json()["version"] == 4
    deleted = client.delete(url, headers={**user.headers, "If-Match": '"v4"'})
    assert deleted.status_code == 204


# Filters and sorts against a reference computed in Python


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _dataset(client: TestClient, user: SignedInUser) -> dict[str, Any]:
    """Two dozen tasks with every field varied, a trashed one, and the caller's ids."""
    now = datetime.now(UTC)
    projects = [inbox_id(client, user), make_project(client, user)["id"]]
    labels = [make_label(client, user, name)["id"] for name in ("l0", "l1", "l2")]
    statuses = ["todo", "in_progress", "done"]
    parent = None
    for i in range(24):
        fields: dict[str, Any] = {
            "title": f"task{(i * 7) % 24:02d}" + (" needle" if i % 5 == 0 else ""),
            "description": "has 100% of_it" if i % 6 == 0 else ("x" if i % 2 else None),
            "status": statuses[i % 3],
            "priority": i % 5,
            "label_ids": [labels[j] for j in range(3) if (i >> j) & 1],
        }
        if i % 4:
            fields["due_at"] = (now + timedelta(days=i - 12, hours=i)).isoformat()
        if i in (10, 11) and parent is not None:
            fields["parent_id"] = parent
        else:
            fields["project_id"] = projects[i % 2]
        task = make_task(client, user, **fields)
        if i == 3:
            parent = task["id"]
    trashed = make_task(client, user, title="trashed needle")
    client.delete(f"{API}/tasks/{trashed['id']}", headers=user.headers)
    tasks = walk(client, user, "/tasks", {"limit": 200})
    assert len(tasks) == 24
    return {"tasks": tasks, "projects": projects, "labels": labels, "parent": parent}


def test_every_filter_matches_a_python_reference(client: TestClient) -> None:
    user = new_user(client)
    data = _dataset(client, user)
    tasks, labels = data["tasks"], data["labels"]
    now = datetime.now(UTC)
    dues = sorted(d for t in tasks if (d := _parse(t["due_at"])) is not None)
    pivot = dues[len(dues) // 2]
    updated = sorted(_parse(t["updated_at"]) for t in tasks)[10]
    completed = sorted(d for t in tasks if (d := _parse(t["completed_at"])) is not None)[2]

    def label_ids(t: dict[str, Any]) -> set[str]:
        return {label["id"] for label in t["labels"]}

    def overdue(t: dict[str, Any]) -> bool:
        due = _parse(t["due_at"])
        return due is not None and due < now and t["status"] != "done"

    def text(t: dict[str, Any]) -> str:
        return (t["title"] + " " + (t["description"] or "")).lower()

    cases: list[tuple[dict[str, Any], Any]] = [
        ({"project_id": data["projects"][1]}, lambda t: t["project_id"] == data["projects"][1]),
        ({"status": "todo"}, lambda t: t["status"] == "todo"),
        ({"status": ["todo", "done"]}, lambda t: t["status"] in ("todo", "done")),
        ({"priority_min": 3}, lambda t: t["priority"] >= 3),
        ({"label": labels[0]}, lambda t: labels[0] in label_ids(t)),
        ({"label": labels[:2]}, lambda t: set(labels[:2]) <= label_ids(t)),
        ({"due_before": pivot.isoformat()}, lambda t: (_parse(t["due_at"]) or pivot) < pivot),
        (
            {"due_after": pivot.isoformat()},
            lambda t: t["due_at"] is not None and _parse(t["due_at"]) >= pivot,  # type: ignore[operator]
        ),
        ({"overdue": "true"}, overdue),
        ({"overdue": "false"}, lambda t: not overdue(t)),
        ({"has_due": "true"}, lambda t: t["due_at"] is not None),
        ({"has_due": "false"}, lambda t: t["due_at"] is None),
        ({"parent_id": data["parent"]}, lambda t: t["parent_id"] == data["parent"]),
        ({"top_level": "true"}, lambda t: t["parent_id"] is None),
        ({"top_level": "false"}, lambda t: t["parent_id"] is not None),
        ({"q": "NEEDLE"}, lambda t: "needle" in text(t)),
        ({"q": "100%"}, lambda t: "100%" in text(t)),
        ({"q": "f_i"}, lambda t: "f_i" in text(t)),
        ({"q": "0%_"}, lambda t: False),
        (
            {"updated_since": updated.isoformat()},  # type: ignore[union-attr]
            lambda t: _parse(t["updated_at"]) >= updated,  # type: ignore[operator]
        ),
        (
            {"completed_since": completed.isoformat()},
            lambda t: t["completed_at"] is not None and _parse(t["completed_at"]) >= completed,  # type: ignore[operator]
        ),
        (
            {"status": "todo", "priority_min": 1, "has_due": "true", "label": labels[1]},
            lambda t: (
                t["status"] == "todo"
                and t["priority"] >= 1
                and t["due_at"] is not None
                and labels[1] in label_ids(t)
            ),
        ),
    ]
    for params, predicate in cases:
        expected = {t["id"] for t in tasks if predicate(t)}
        got = walk(client, user, "/tasks", {**params, "limit": 7})
        assert [t["id"] for t in got if t["id"] not in expected] == [], params
        assert {t["id"] for t in got} == expected, params
        assert len(got) == len(expected), params
    counted = client.get(
        f"{API}/tasks", headers=user.headers, params={"status": "done", "include_total": "true"}
    ).json()
    assert counted["total"] == sum(t["status"] == "done" for t in tasks)
    assert client.get(f"{API}/tasks", headers=user.headers).json()["total"] is None


def _reference_order(tasks: list[dict[str, Any]], sort: str) -> list[str]:
    descending = sort.startswith("-")
    field = sort.lstrip("-")
    fields = ["project_id", "position"] if field == "position" else [field]

    def value(t: dict[str, Any], name: str) -> Any:
        return _parse(t[name]) if name.endswith("_at") else t[name]

    present = [t for t in tasks if t[field] is not None]
    absent = [t for t in tasks if t[field] is None]
    present.sort(key=lambda t: (*[value(t, f) for f in fields], t["id"]), reverse=descending)
    absent.sort(key=lambda t: t["id"], reverse=descending)
    return [t["id"] for t in present + absent]


SORTS = ["due_at", "priority", "created_at", "updated_at", "position", "title"]


def test_every_sort_both_ways_matches_a_python_reference(client: TestClient) -> None:
    user = new_user(client)
    tasks = _dataset(client, user)["tasks"]
    assert any(t["due_at"] is None for t in tasks)
    for field in SORTS:
        for sort in (field, f"-{field}"):
            got = walk(client, user, "/tasks", {"sort": sort, "limit": 5})
            assert [t["id"] for t in got] == _reference_order(tasks, sort), sort
    # Nulls come last in both directions.
    for sort in ("due_at", "-due_at"):
        got = walk(client, user, "/tasks", {"sort": sort})
        dues = [t["due_at"] for t in got]
        assert dues[-1] is None
        assert dues.index(None) == sum(d is not None for d in dues)


def test_default_sorts(client: TestClient) -> None:
    user = new_user(client)
    project = make_project(client, user)
    first = make_task(client, user, project_id=project["id"])
    second = make_task(client, user, project_id=project["id"])
    _patch(client, user, second["id"], after_id=None)
    by_position = walk(client, user, f"/projects/{project['id']}/tasks")
    assert [t["id"] for t in by_position] == [second["id"], first["id"]]
    by_creation = walk(client, user, "/tasks")
    assert [t["id"] for t in by_creation] == [first["id"], second["id"]]


@pytest.mark.parametrize("sort", ["created_at", "-priority", "due_at", "position", "-title"])
def test_walking_pages_while_inserting_returns_each_row_once(client: TestClient, sort: str) -> None:
    user = new_user(client)
    now = datetime.now(UTC)
    original = {
        make_task(
            client,
            user,
            title=f"o{i % 7}",
            priority=i % 5,
            due_at=(now + timedelta(days=i % 6)).isoformat() if i % 3 else None,
        )["id"]
        for i in range(20)
    }
    seen: list[str] = []
    params: dict[str, Any] = {"sort": sort, "limit": 3}
    inserted = 0
    while True:
        body = client.get(f"{API}/tasks", headers=user.headers, params=params).json()
        seen.extend(t["id"] for t in body["items"])
        # Rows arriving between pages, some sorting before the cursor, some after.
        for j in range(2):
            inserted += 1
            due = (now + timedelta(days=(inserted + j) % 6)).isoformat() if j else None
            make_task(client, user, title=f"n{inserted % 9}", priority=inserted % 5, due_at=due)
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert len(seen) == len(set(seen))
    assert original <= set(seen)


@pytest.mark.parametrize("q", ["äpf", "ÄPF", "Äpf", "ÉCOLE", "école", "ΣΟΦ", "σοφ"])
def test_q_ignores_case_beyond_ascii_on_every_database(client: TestClient, q: str) -> None:
    # PostgreSQL's ILIKE folds all of Unicode; SQLite's lower() only ASCII, unless replaced.
    user = new_user(client)
    apples = make_task(client, user, title="ÄPFEL kaufen")["id"]
    school = make_task(client, user, title="call", description="Anmeldung École du Nord")["id"]
    wisdom = make_task(client, user, title="Σοφία anrufen")["id"]
    make_task(client, user, title="Birnen", description="apfel ohne Umlaut")
    expected = {"äpf": apples, "éco": school, "σοφ": wisdom}[q.lower()[:3]]
    found = walk(client, user, "/tasks", {"q": q})
    assert [task["id"] for task in found] == [expected]


def test_page_limits_and_bad_cursors(client: TestClient) -> None:
    user = new_user(client)
    for _ in range(3):
        make_task(client, user)
    assert_problem(client.get(f"{API}/tasks", headers=user.headers, params={"limit": 201}), 422)
    assert_problem(client.get(f"{API}/tasks", headers=user.headers, params={"limit": 0}), 422)
    ok = client.get(f"{API}/tasks", headers=user.headers, params={"limit": 200})
    assert ok.status_code == 200
    garbage = client.get(f"{API}/tasks", headers=user.headers, params={"cursor": "garbage"})
    assert_problem(garbage, 422, "invalid_cursor")
    page = client.get(f"{API}/tasks", headers=user.headers, params={"limit": 1}).json()
    other_sort = client.get(
        f"{API}/tasks",
        headers=user.headers,
        params={"limit": 1, "cursor": page["next_cursor"], "sort": "-priority"},
    )
    assert_problem(other_sort, 422, "invalid_cursor")
    tampered = page["next_cursor"][:-2] + ("AA" if page["next_cursor"][-2:] != "AA" else "BB")
    response = client.get(f"{API}/tasks", headers=user.headers, params={"cursor": tampered})
    assert_problem(response, 422, "invalid_cursor")


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "owner_id"},
        {"status": "blocked"},
        {"priority_min": 5},
        {"due_before": "2026-01-01T00:00:00"},
        {"updated_since": "yesterday"},
        {"q": "x" * 201},
        {"q": ""},
        {"label": "nope"},
        {"label": [MISSING_ID] * 21},
        {"parent_id": MISSING_ID, "top_level": "true"},
        {"project_id": "nope"},
    ],
)
def test_bad_filters_are_422(client: TestClient, params: dict[str, Any]) -> None:
    user = new_user(client)
    assert_problem(client.get(f"{API}/tasks", headers=user.headers, params=params), 422)


# Bulk


def test_bulk_applies_every_operation(client: TestClient) -> None:
    user = new_user(client)
    project = make_project(client, user)
    label = make_label(client, user, "bulk")
    a, b, c, d = (make_task(client, user, title=f"t{i}") for i in range(4))
    operations = [
        {"op": "update", "id": a["id"], "fields": {"title": "A", "priority": 4}},
        {"op": "complete", "id": b["id"]},
        {"op": "move", "id": c["id"], "project_id": project["id"]},
        {"op": "add_labels", "id": a["id"], "label_ids": [label["id"]]},
        {"op": "delete", "id": d["id"]},
        {"op": "remove_labels", "id": a["id"], "label_ids": [label["id"]]},
        {"op": "add_labels", "id": c["id"], "label_ids": [label["id"]]},
    ]
    response = client.post(
        f"{API}/tasks/bulk", headers=user.headers, json={"operations": operations}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deleted_ids"] == [d["id"]]
    result = {t["id"]: t for t in body["tasks"]}
    assert (result[a["id"]]["title"], result[a["id"]]["labels"]) == ("A", [])
    assert result[a["id"]]["version"] == 4
    assert result[b["id"]]["status"] == "done"
    assert result[b["id"]]["completed_at"] is not None
    assert result[c["id"]]["project_id"] == project["id"]
    assert [label_["id"] for label_ in result[c["id"]]["labels"]] == [label["id"]]
    assert _get(client, user, a["id"]).json() == result[a["id"]]
    assert_problem(_get(client, user, d["id"]), 404)


def test_bulk_is_all_or_nothing_and_names_the_failing_operation(client: TestClient) -> None:
    user = new_user(client)
    stranger = new_user(client)
    theirs = make_task(client, stranger)
    a, b = make_task(client, user), make_task(client, user)
    before = walk(client, user, "/tasks")
    # A row the body names that is missing or someone else's is the body's fault: a 422 whose
    # `loc` points into the failing operation (404 is only ever about the URL).
    reference = "reference_not_found"
    failing_ops: list[tuple[dict[str, Any], str, list[Any]]] = [
        ({"op": "delete", "id": MISSING_ID}, reference, ["id"]),
        ({"op": "complete", "id": theirs["id"]}, reference, ["id"]),
        ({"op": "move", "id": a["id"], "project_id": MISSING_ID}, reference, ["project_id"]),
        ({"op": "add_labels", "id": a["id"], "label_ids": [MISSING_ID]}, reference,
         ["label_ids", 0]),
        ({"op": "update", "id": a["id"], "fields": {"parent_id": MISSING_ID}}, reference,
         ["fields", "parent_id"]),
        ({"op": "update", "id": b["id"], "fields": {"parent_id": b["id"]}}, "task_cycle",
         ["fields", "parent_id"]),
    ]  # fmt: skip
    for failing, code, loc in failing_ops:
        operations = [
            {"op": "update", "id": a["id"], "fields": {"title": "changed"}},
            {"op": "delete", "id": b["id"]}
            if code != "task_cycle"
            else {"op": "complete", "id": a["id"]},
            failing,
        ]
        response = client.post(
            f"{API}/tasks/bulk", headers=user.headers, json={"operations": operations}
        )
        body = assert_problem(response, 422, code)
        assert body["errors"][0]["loc"] == ["body", "operations", 2, *loc]
        assert body["operation_index"] == 2
        assert "Operation 2" in body["detail"]
        assert walk(client, user, "/tasks") == before
    bad_field = client.post(
        f"{API}/tasks/bulk",
        headers=user.headers,
        json={
            "operations": [
                {"op": "complete", "id": a["id"]},
                {"op": "update", "id": a["id"], "fields": {"title": "x" * 501}},
            ]
        },
    )
    body = assert_problem(bad_field, 422, "validation_error")
    assert body["errors"][0]["loc"][:3] == ["body", "operations", 1]
    assert walk(client, user, "/tasks") == before


def test_bulk_limits(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user)
    too_many = [{"op": "complete", "id": task["id"]}] * 101
    response = client.post(f"{API}/tasks/bulk", headers=user.headers, json={"operations": too_many})
    assert_problem(response, 422)
    empty = client.post(f"{API}/tasks/bulk", headers=user.headers, json={"operations": []})
    assert_problem(empty, 422)
    unknown = client.post(
        f"{API}/tasks/bulk",
        headers=user.headers,
        json={"operations": [{"op": "explode", "id": task["id"]}]},
    )
    assert_problem(unknown, 422)
    hundred = [
        {"op": "update", "id": task["id"], "fields": {"priority": i % 5}} for i in range(100)
    ]
    ok = client.post(f"{API}/tasks/bulk", headers=user.headers, json={"operations": hundred})
    assert ok.status_code == 200
    assert ok.json()["tasks"][0]["version"] == 1 + 100 - 1  # priority 0 → 0 is no change


# Trash


def test_delete_trashes_the_subtree_and_restore_brings_it_back(client: TestClient) -> None:
    user = new_user(client)
    root = make_task(client, user, title="root")
    child = make_task(client, user, parent_id=root["id"])
    grandchild = make_task(client, user, parent_id=child["id"])
    loner = make_task(client, user, parent_id=root["id"], title="deleted first")
    assert client.delete(f"{API}/tasks/{loner['id']}", headers=user.headers).status_code == 204
    assert client.delete(f"{API}/tasks/{root['id']}", headers=user.headers).status_code == 204
    for task in (root, child, grandchild, loner):
        assert_problem(_get(client, user, task["id"]), 404, "task_not_found")
        assert_problem(_patch(client, user, task["id"], title="x"), 404)
    assert walk(client, user, "/tasks") == []
    assert walk(client, user, "/tasks", {"q": "root"}) == []
    trash = walk(client, user, "/trash")
    assert [(i["kind"], i["id"]) for i in trash] == [("task", root["id"]), ("task", loner["id"])]
    assert trash[0]["name"] == "root"
    purge_after = _parse(trash[0]["purge_after"])
    assert purge_after == _parse(trash[0]["deleted_at"]) + timedelta(days=30)  # type: ignore[operator]
    # The loner's parent is in the trash: restore that first.
    assert_problem(
        client.post(f"{API}/tasks/{loner['id']}/restore", headers=user.headers),
        409,
        "container_in_trash",
    )
    restored = client.post(f"{API}/tasks/{root['id']}/restore", headers=user.headers)
    assert restored.status_code == 200
    assert restored.headers["ETag"] == f'"v{restored.json()["version"]}"'
    live = {t["id"] for t in walk(client, user, "/tasks")}
    assert live == {root["id"], child["id"], grandchild["id"]}
    assert _get(client, user, grandchild["id"]).json()["version"] == grandchild["version"] + 2
    assert [i["id"] for i in walk(client, user, "/trash")] == [loner["id"]]
    assert client.post(f"{API}/tasks/{loner['id']}/restore", headers=user.headers).is_success
    assert_problem(
        client.post(f"{API}/tasks/{loner['id']}/restore", headers=user.headers),
        409,
        "task_not_in_trash",
    )
    assert walk(client, user, "/trash") == []


# Ownership: someone else's ids are 404s, exactly like missing ones


def _with_missing_ids(fields: dict[str, Any]) -> dict[str, Any]:
    """The same fields with every id replaced by one no row has."""
    return {
        name: [MISSING_ID] * len(value) if isinstance(value, list) else MISSING_ID
        for name, value in fields.items()
    }


def test_other_users_tasks_are_404_on_every_verb(client: TestClient) -> None:
    owner, other = new_user(client), new_user(client)
    theirs = make_task(client, owner, title="secret")
    trashed = make_task(client, owner)
    client.delete(f"{API}/tasks/{trashed['id']}", headers=owner.headers)
    project = make_project(client, owner)
    label = make_label(client, owner, "theirs")
    mine = make_task(client, other)

    missing = _get(client, other, MISSING_ID).json()
    calls = [
        ("GET", f"/tasks/{theirs['id']}", None),
        ("PATCH", f"/tasks/{theirs['id']}", {"title": "mine now"}),
        ("DELETE", f"/tasks/{theirs['id']}", None),
        ("POST", f"/tasks/{trashed['id']}/restore", None),
        ("POST", f"/tasks/{theirs['id']}/restore", None),
    ]
    for method, path, body in calls:
        response = client.request(method, f"{API}{path}", headers=other.headers, json=body)
        problem = assert_problem(response, 404, "task_not_found")
        assert (problem["detail"], problem["title"]) == (missing["detail"], missing["title"])
    # Someone else's row named in a body or a filter is a 422 at that field, word for word the
    # answer for an id no row has: nothing tells the two apart.
    mine_too = make_label(client, other, "mine")
    attach: list[tuple[dict[str, Any], list[Any]]] = [
        ({"project_id": project["id"]}, ["body", "project_id"]),
        ({"parent_id": theirs["id"]}, ["body", "parent_id"]),
        ({"label_ids": [label["id"]]}, ["body", "label_ids", 0]),
    ]
    for fields, loc in attach:
        for value in (fields, _with_missing_ids(fields)):
            response = client.post(
                f"{API}/tasks", headers=other.headers, json={"title": "x", **value}
            )
            problem = assert_problem(response, 422, "reference_not_found")
            assert [error["loc"] for error in problem["errors"]] == [loc]
    # The index is the first one that is not the caller's.
    body = {"title": "x", "label_ids": [mine_too["id"], label["id"]]}
    response = client.post(f"{API}/tasks", headers=other.headers, json=body)
    problem = assert_problem(response, 422, "reference_not_found")
    assert problem["errors"][0]["loc"] == ["body", "label_ids", 1]
    patches: list[tuple[dict[str, Any], list[Any]]] = [
        ({"project_id": project["id"]}, ["body", "project_id"]),
        ({"parent_id": theirs["id"]}, ["body", "parent_id"]),
        ({"label_ids": [label["id"]]}, ["body", "label_ids", 0]),
        ({"after_id": theirs["id"]}, ["body", "after_id"]),
        ({"before_id": theirs["id"]}, ["body", "before_id"]),
    ]
    for fields, loc in patches:
        for value in (fields, _with_missing_ids(fields)):
            problem = assert_problem(
                _patch(client, other, mine["id"], **value), 422, "reference_not_found"
            )
            assert problem["errors"][0]["loc"] == loc
    lists: list[tuple[dict[str, Any], list[Any]]] = [
        ({"project_id": project["id"]}, ["query", "project_id"]),
        ({"label": label["id"]}, ["query", "label", 0]),
        ({"parent_id": theirs["id"]}, ["query", "parent_id"]),
    ]
    for params, loc in lists:
        for value in (params, _with_missing_ids(params)):
            response = client.get(f"{API}/tasks", headers=other.headers, params=value)
            problem = assert_problem(response, 422, "reference_not_found")
            assert problem["errors"][0]["loc"] == loc
    assert [t["id"] for t in walk(client, other, "/tasks")] == [mine["id"]]
    assert walk(client, other, "/tasks", {"q": "secret"}) == []
    assert walk(client, other, "/trash") == []
    # And the owner's task is untouched.
    assert _get(client, owner, theirs["id"]).json() == theirs


# Every spelling of a number that float() reads: the fuzzer found the exponent one.
NUMBER_SPELLINGS = [
    "0.5",
    "1700000000",
    "-3",
    "3.602613726413053e-36",
    "1E5",
    "+2e+3",
    "inf",
    "-Infinity",
    "nan",
    "1_700_000_000",
    " 12 ",
]


@pytest.mark.parametrize("value", NUMBER_SPELLINGS)
def test_numeric_instants_are_not_unix_seconds(client: TestClient, value: str) -> None:
    user = new_user(client)
    response = client.get(f"{API}/tasks", headers=user.headers, params={"updated_since": value})
    assert_problem(response, 422, "validation_error")
    for due_at in (value, 5, 5.5):
        body = client.post(
            f"{API}/tasks", headers=user.headers, json={"title": "x", "due_at": due_at}
        )
        assert_problem(body, 422, "validation_error")


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE", "PUT"])
def test_bulk_path_takes_only_post(client: TestClient, method: str) -> None:
    user = new_user(client)
    response = client.request(method, f"{API}/tasks/bulk", headers=user.headers, json={})
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


class _FailAfterWriting(AppError):
    status_code = 409
    code = "probe_failed_after_writing"


@pytest.mark.parametrize("changes", [{"title": "after"}, {"title": "after", "label_ids": []}])
def test_a_request_that_changes_a_task_then_fails_leaves_it_unchanged(
    make_app: Callable[..., FastAPI], changes: dict[str, Any]
) -> None:
    """Every write is the request's: a later failure undoes the PATCH, whichever path it
    took, with the token cache cold (first request) and warm (the second, on PostgreSQL,
    where the PATCH's statements are then the transaction's first)."""
    app = make_app()

    @app.post("/probe/patch-then-fail/{task_id}")
    async def patch_then_fail(task_id: uuid.UUID, user: ActiveUser, session: SessionDep) -> None:
        await task_service.patch_task(session, owner_id=user.id, task_id=task_id, changes=changes)
        raise _FailAfterWriting()

    with TestClient(app) as client:
        user = new_user(client)
        task = client.post(f"{API}/tasks", headers=user.headers, json={"title": "before"}).json()
        for _ in range(2):  # cold, then warm
            failed = client.post(f"/probe/patch-then-fail/{task['id']}", headers=user.headers)
            assert failed.status_code == 409
            assert _get(client, user, task["id"]).json() == task


@pytest.mark.parametrize("title", [" ", "\t\n", "\u3000", "\u00a0 \u2003"])
def test_a_blank_title_is_refused_like_a_blank_name(client: TestClient, title: str) -> None:
    user = new_user(client)
    created = client.post(f"{API}/tasks", headers=user.headers, json={"title": title})
    problem = assert_problem(created, 422, "validation_error")
    assert [error["loc"] for error in problem["errors"]] == [["body", "title"]]
    assert problem["errors"][0]["type"] == "string_too_short"  # empty once trimmed
    task = make_task(client, user, title="  Water the tomatoes  ")
    assert task["title"] == "Water the tomatoes"  # trimmed, as names are
    assert_problem(_patch(client, user, task["id"], title=title), 422, "validation_error")
    assert _get(client, user, task["id"]).json()["title"] == "Water the tomatoes"


def test_a_malformed_precondition_is_a_400_not_a_412(client: TestClient) -> None:
    user = new_user(client)
    task = make_task(client, user)
    for header in ("v1", '"v1', "W/ v1", "1"):
        response = client.patch(
            f"{API}/tasks/{task['id']}",
            headers={**user.headers, "If-Match": header},
            json={"title": "changed"},
        )
        problem = assert_problem(response, 400, "malformed_precondition")
        assert "has changed" not in problem["detail"]
        read = client.get(
            f"{API}/tasks/{task['id']}", headers={**user.headers, "If-None-Match": header}
        )
        assert_problem(read, 400, "malformed_precondition")
    assert _get(client, user, task["id"]).json() == task
    # A well-formed tag that does not match is still the 412 it always was.
    stale = client.patch(
        f"{API}/tasks/{task['id']}",
        headers={**user.headers, "If-Match": '"v99"'},
        json={"title": "changed"},
    )
    assert_problem(stale, 412, "version_mismatch")


def test_an_unknown_field_is_named_in_plain_words(client: TestClient) -> None:
    user = new_user(client)
    response = client.post(f"{API}/tasks", headers=user.headers, json={"title": "x", "colour": 1})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"] == [
        {
            "loc": ["body", "colour"],
            "msg": "Unknown field; see the schema for the fields this operation takes.",
            "type": "extra_forbidden",
        }
    ]


def test_every_next_cursor_is_accepted_back_even_for_the_longest_titles(
    client: TestClient,
) -> None:
    """Sorted by title, a cursor carries the last title: at 500 four-byte characters it is
    ~2,700 characters long, and the list must still take it back."""
    user = new_user(client)
    longest = "\U0001d11e" * TITLE_MAX_LENGTH
    titles = [longest[:-1] + tail for tail in ("a", "b", "c")]
    for title in titles:
        make_task(client, user, title=title)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(titles) + 1):
        params: dict[str, str | int] = {"sort": "title", "limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get(f"{API}/tasks", headers=user.headers, params=params)
        assert response.status_code == 200, response.text
        seen.extend(task["title"] for task in response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == titles
