"""Concurrent writers through the whole app: no 500, no broken tree, no 412 nobody asked for.

Each test sends its requests at once (`tests.helpers.together`, one thread each) into one
running app (each request with its own connection from the pool), and repeats the race
enough times to lose it reliably on code without the locks.
"""

from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.tasks import ordering
from tests.factories import API, SignedInUser, make_label, make_project, make_task, new_user
from tests.helpers import assert_problem, together

ROUNDS = 12


@pytest.fixture
def user(client: TestClient) -> SignedInUser:
    return new_user(client)


def _bulk(client: TestClient, user: SignedInUser, ids: list[str], title: str) -> httpx.Response:
    operations = [{"op": "update", "id": task_id, "fields": {"title": title}} for task_id in ids]
    return client.post(f"{API}/tasks/bulk", headers=user.headers, json={"operations": operations})


def _task(client: TestClient, user: SignedInUser, task_id: str) -> httpx.Response:
    return client.get(f"{API}/tasks/{task_id}", headers=user.headers)


def test_bulk_requests_over_the_same_tasks_in_opposite_orders_both_succeed(
    client: TestClient, user: SignedInUser
) -> None:
    ids = [make_task(client, user, title=f"t{n}")["id"] for n in range(6)]
    for round_ in range(ROUNDS):
        forward, backward = together(
            partial(_bulk, client, user, ids, f"forward {round_}"),
            partial(_bulk, client, user, ids[::-1], f"backward {round_}"),
        )
        assert forward.status_code == 200, forward.text
        assert backward.status_code == 200, backward.text
    # Each request was all or none: every task carries the title of whichever ran last.
    titles = {_task(client, user, task_id).json()["title"] for task_id in ids}
    assert len(titles) == 1


def test_two_tasks_never_become_each_others_parent(client: TestClient, user: SignedInUser) -> None:
    for _ in range(ROUNDS):
        a, b = make_task(client, user, title="a")["id"], make_task(client, user, title="b")["id"]
        under_b, under_a = together(
            partial(client.patch, f"{API}/tasks/{a}", headers=user.headers, json={"parent_id": b}),
            partial(client.patch, f"{API}/tasks/{b}", headers=user.headers, json={"parent_id": a}),
        )
        statuses = sorted([under_b.status_code, under_a.status_code])
        assert statuses == [200, 422], (under_b.text, under_a.text)
        loser = under_b if under_b.status_code == 422 else under_a
        assert_problem(loser, 422, "task_cycle")
        parents = [_task(client, user, task_id).json()["parent_id"] for task_id in (a, b)]
        assert None in parents, parents  # one of them is still at the top


def test_concurrent_writes_without_if_match_all_succeed(
    client: TestClient, user: SignedInUser
) -> None:
    """Without a precondition there is nothing to fail: writes queue, on both databases."""
    task = make_task(client, user)
    label = make_label(client, user, "l")
    writes = 6

    def field_change(n: int) -> Callable[[], httpx.Response]:
        return partial(
            client.patch,
            f"{API}/tasks/{task['id']}",
            headers=user.headers,
            json={"title": f"title {n}"},
        )

    def label_change(n: int) -> Callable[[], httpx.Response]:
        labels = [label["id"]] if n % 4 else []
        return partial(
            client.patch,
            f"{API}/tasks/{task['id']}",
            headers=user.headers,
            json={"label_ids": labels},
        )

    calls = [field_change(n) if n % 2 else label_change(n) for n in range(writes * 2)]
    for response in together(*calls):
        assert response.status_code == 200, response.text
    assert _task(client, user, task["id"]).json()["version"] > task["version"]


@pytest.mark.parametrize("container", ["parent", "project"])
def test_a_task_is_never_left_live_in_a_container_deleted_at_the_same_time(
    client: TestClient, user: SignedInUser, container: str
) -> None:
    """A create under a parent (or in a project) racing that container's deletion: either it
    came first and the deletion took it along to the trash, or it finds the container gone."""
    for _ in range(ROUNDS):
        if container == "parent":
            target = make_task(client, user, title="parent")
            field, deletion = "parent_id", f"{API}/tasks/{target['id']}"
        else:
            target = make_project(client, user)
            field, deletion = "project_id", f"{API}/projects/{target['id']}"
        created, deleted = together(
            partial(
                client.post,
                f"{API}/tasks",
                headers=user.headers,
                json={"title": "inside", field: target["id"]},
            ),
            partial(client.delete, deletion, headers=user.headers),
        )
        assert deleted.status_code == 204, deleted.text
        if created.status_code == 201:
            assert_problem(_task(client, user, created.json()["id"]), 404, "task_not_found")
        else:
            assert_problem(created, 422, "reference_not_found")


def test_deleting_a_label_while_tasks_are_written_with_it_is_never_a_500(
    client: TestClient, user: SignedInUser
) -> None:
    task = make_task(client, user)
    for _ in range(ROUNDS):
        label = make_label(client, user, "racing")
        created, edited, deleted = together(
            partial(
                client.post,
                f"{API}/tasks",
                headers=user.headers,
                json={"title": "labelled", "label_ids": [label["id"]]},
            ),
            partial(
                client.patch,
                f"{API}/tasks/{task['id']}",
                headers=user.headers,
                json={"label_ids": [label["id"]]},
            ),
            partial(client.delete, f"{API}/labels/{label['id']}", headers=user.headers),
        )
        assert deleted.status_code == 204, deleted.text
        for response, ok in ((created, 201), (edited, 200)):
            if response.status_code != ok:
                assert_problem(response, 422, "reference_not_found")
        assert _task(client, user, task["id"]).json()["labels"] == []


def _positions(client: TestClient, user: SignedInUser, project_id: str) -> list[str]:
    tasks = walk_all(client, user, project_id)
    return [task["position"] for task in tasks]


def walk_all(client: TestClient, user: SignedInUser, project_id: str) -> list[dict[str, Any]]:
    response = client.get(
        f"{API}/projects/{project_id}/tasks",
        headers=user.headers,
        params={"sort": "position", "limit": 200},
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_concurrent_creates_at_the_end_of_a_project_get_distinct_keys(
    client: TestClient, user: SignedInUser, housekeeping_engine: Engine
) -> None:
    project = make_project(client, user)
    creates = [
        partial(
            client.post,
            f"{API}/tasks",
            headers=user.headers,
            json={"title": f"t{n}", "project_id": project["id"]},
        )
        for n in range(16)
    ]
    for _ in range(3):
        for response in together(*creates):
            assert response.status_code == 201, response.text
    keys = _positions(client, user, project["id"])
    assert len(keys) == 48
    assert len(set(keys)) == len(keys)
    # The quota's counter, written by every create at once, counted each one.
    with housekeeping_engine.connect() as connection:
        used = connection.execute(
            text(
                "SELECT SUM(used) FROM usage_counter WHERE resource = 'tasks'"
                " AND owner_id = (SELECT owner_id FROM project WHERE name = :name)"
            ),
            {"name": project["name"]},
        ).scalar_one()
    assert used == 48


def test_concurrent_moves_next_to_one_task_keep_a_strict_order(
    client: TestClient, user: SignedInUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moves to one spot at once get distinct keys, and a rebalance racing them (keys kept
    short here so it runs often) neither fails nor leaves two tasks with one key."""
    monkeypatch.setattr(ordering, "POSITION_REBALANCE_LENGTH", 6)
    project = make_project(client, user)
    anchor, *movers = [make_task(client, user, project_id=project["id"]) for _ in range(9)]
    for _ in range(4):
        moves = [
            partial(
                client.patch,
                f"{API}/tasks/{task['id']}",
                headers=user.headers,
                json={"after_id": anchor["id"]},
            )
            for task in movers
        ]
        for response in together(*moves):
            assert response.status_code == 200, response.text
        keys = _positions(client, user, project["id"])
        assert len(keys) == len(movers) + 1
        assert len(set(keys)) == len(keys)
        assert walk_all(client, user, project["id"])[0]["id"] == anchor["id"]


def test_an_account_deleted_while_its_owner_writes_never_answers_500(
    client: TestClient,
) -> None:
    """The writes either land before the deletion (and go with the account) or find the
    account gone (401): a foreign key the deletion broke runs the write again, never a 500."""
    for _ in range(ROUNDS // 2):
        user = new_user(client)
        task = make_task(client, user)
        writes = [
            partial(client.post, f"{API}/tasks", headers=user.headers, json={"title": "new"}),
            partial(client.post, f"{API}/labels", headers=user.headers, json={"name": "new"}),
            partial(
                client.patch,
                f"{API}/tasks/{task['id']}",
                headers=user.headers,
                json={"title": "edited"},
            ),
        ]
        deleted, *written = together(
            partial(client.delete, f"{API}/users/me", headers=user.headers),
            *writes,
        )
        assert deleted.status_code == 204, deleted.text
        for response in written:
            assert response.status_code in (200, 201, 401, 404), response.text
