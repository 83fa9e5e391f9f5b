"""Property-based tests of filters, sorting and cursor pagination.

For random rows and random filters, the pages the API returns, concatenated, equal a
reference computed in Python over the same rows: nothing lost, nothing repeated, in order.
Rows are written straight to the database so that timestamps can tie (the id must break
them) and emails can hold LIKE's wildcards (`%`, `_`), which a filter must treat literally.
"""

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from app.users.models import Role, User
from tests.factories import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    API,
    SignedInUser,
    new_user,
    sign_in,
    sign_in_admin,
)
from tests.security.helpers import walk_pages

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

BASE = datetime(2030, 1, 1, tzinfo=UTC)
LOCAL = st.text(alphabet="ab_%+", min_size=1, max_size=4)
ROW = st.fixed_dictionaries(
    {
        "local": LOCAL,
        "is_active": st.booleans(),
        # Few distinct instants, so ties on created_at are common.
        "minute": st.integers(min_value=0, max_value=3),
    }
)


@pytest.fixture
def admin_client(admin_app: FastAPI) -> Iterator[tuple[TestClient, SignedInUser]]:
    with TestClient(admin_app) as client:
        yield client, sign_in_admin(client)


def _replace_users(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with Session(engine) as session:
        session.exec(delete(User).where(col(User.email) != ADMIN_EMAIL))  # type: ignore[call-overload]
        for index, row in enumerate(rows):
            session.add(
                User(
                    id=uuid.uuid4(),  # random, not time-ordered: ties must sort by id anyway
                    email=f"u{row['local']}-{index}@example.com",
                    hashed_password="x",
                    role=Role.USER,
                    is_active=row["is_active"],
                    created_at=BASE + timedelta(minutes=row["minute"]),
                    updated_at=BASE,
                )
            )
        session.commit()


def _all_users(engine: Engine) -> list[User]:
    with Session(engine) as session:
        return list(session.exec(select(User)).all())


@given(
    rows=st.lists(ROW, max_size=12),
    fragment=st.none() | LOCAL,
    is_active=st.none() | st.booleans(),
    limit=st.integers(min_value=1, max_value=5),
    include_total=st.booleans(),
)
@PROPERTY_SETTINGS
def test_user_pages_equal_the_reference(
    admin_client: tuple[TestClient, SignedInUser],
    housekeeping_engine: Engine,
    rows: list[dict[str, Any]],
    fragment: str | None,
    is_active: bool | None,
    limit: int,
    include_total: bool,
) -> None:
    client, admin = admin_client
    _replace_users(housekeeping_engine, rows)
    expected = [
        str(user.id)
        for user in sorted(_all_users(housekeeping_engine), key=lambda u: (u.created_at, u.id))
        if (fragment is None or fragment.lower() in user.email)
        and (is_active is None or user.is_active == is_active)
    ]
    params: dict[str, Any] = {"limit": limit}
    if fragment is not None:
        params["email"] = fragment
    if is_active is not None:
        params["is_active"] = str(is_active).lower()
    got = [item["id"] for item in walk_pages(client, f"{API}/users", admin.headers, params)]
    assert got == expected
    if include_total:
        first = client.get(
            f"{API}/users", params={**params, "include_total": "true"}, headers=admin.headers
        )
        assert first.json()["total"] == len(expected)


@given(signins=st.integers(min_value=1, max_value=7), limit=st.integers(min_value=1, max_value=3))
@PROPERTY_SETTINGS
def test_session_pages_equal_the_reference(client: TestClient, signins: int, limit: int) -> None:
    """The caller's sessions, newest first, each once; nobody else's."""
    user, other = new_user(client), new_user(client)
    for _ in range(signins - 1):
        sign_in(client, user.email)
    sign_in(client, other.email)
    items = walk_pages(client, f"{API}/auth/sessions", user.headers, {"limit": limit})
    assert len(items) == signins
    assert len({item["id"] for item in items}) == signins
    keys = [(item["created_at"], item["id"]) for item in items]
    assert [k[0] for k in keys] == sorted((k[0] for k in keys), reverse=True)
    assert sum(item["current"] for item in items) == 1


def test_a_cursor_only_works_for_its_own_list(
    admin_client: tuple[TestClient, SignedInUser], make_app: Callable[..., FastAPI]
) -> None:
    client, admin = admin_client
    for _ in range(3):
        client.post(f"{API}/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    sessions = client.get(f"{API}/auth/sessions?limit=1", headers=admin.headers).json()
    foreign = sessions["next_cursor"]
    assert foreign
    response = client.get(f"{API}/users", params={"cursor": foreign}, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"
    tampered = foreign[:-2] + ("AA" if not foreign.endswith("AA") else "BB")
    response = client.get(
        f"{API}/auth/sessions", params={"cursor": tampered}, headers=admin.headers
    )
    assert response.status_code == 422


TASK = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["todo", "in_progress", "done"]),
        "priority": st.integers(min_value=0, max_value=4),
        "due_day": st.none() | st.integers(min_value=0, max_value=3),
    }
)
TASK_SORTS = ["priority", "-priority", "created_at", "-created_at", "due_at", "-due_at"]


@given(
    tasks=st.lists(TASK, max_size=8),
    status=st.none() | st.sampled_from(["todo", "in_progress", "done"]),
    priority_min=st.none() | st.integers(min_value=0, max_value=4),
    sort=st.sampled_from(TASK_SORTS),
    limit=st.integers(min_value=1, max_value=4),
)
@PROPERTY_SETTINGS
def test_task_pages_equal_the_reference(
    client: TestClient,
    tasks: list[dict[str, Any]],
    status: str | None,
    priority_min: int | None,
    sort: str,
    limit: int,
) -> None:
    """Every matching task exactly once, in the order asked, empty due dates last; ties may
    break either way on the id, so the order is checked on the sort key."""
    owner, other = new_user(client), new_user(client)
    created: dict[str, dict[str, Any]] = {}
    for index, task in enumerate(tasks):
        due = None if task["due_day"] is None else (BASE + timedelta(days=task["due_day"]))
        body = {
            "title": f"t{index}",
            "status": task["status"],
            "priority": task["priority"],
            "due_at": due.isoformat() if due else None,
        }
        response = client.post(f"{API}/tasks", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        created[response.json()["id"]] = response.json()
    client.post(f"{API}/tasks", json={"title": "not yours"}, headers=other.headers)

    params: dict[str, Any] = {"limit": limit, "sort": sort}
    if status is not None:
        params["status"] = status
    if priority_min is not None:
        params["priority_min"] = priority_min
    items = walk_pages(client, f"{API}/tasks", owner.headers, params)
    ids = [item["id"] for item in items]
    expected = {
        task_id
        for task_id, task in created.items()
        if (status is None or task["status"] == status)
        and (priority_min is None or task["priority"] >= priority_min)
    }
    assert len(ids) == len(set(ids)), "a task was repeated"
    assert set(ids) == expected, "a task was lost or does not match"

    field = sort.lstrip("-")
    values = [item[field] for item in items]
    present = [v for v in values if v is not None]
    assert values == present + [None] * (len(values) - len(present)), "empty values not last"
    keyed = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in present]
    assert keyed == sorted(keyed, reverse=sort.startswith("-"))
