"""The task field rules (app/tasks/rules.py), called directly: every write path reads them."""

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.tasks.models import TaskStatus
from app.tasks.rules import FIELD_COLUMNS, completed_at_for, field_changes

NOW = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)

STATUSES = st.sampled_from(list(TaskStatus))
INSTANTS = st.none() | st.sampled_from([EARLIER, NOW, NOW + timedelta(hours=1)])
STORED = st.fixed_dictionaries(
    {
        "title": st.sampled_from(["a", "b"]),
        "description": st.none() | st.sampled_from(["", "x"]),
        "priority": st.integers(0, 4),
        "due_at": INSTANTS,
        "status": STATUSES,
    }
).map(
    lambda row: {
        **row,
        "completed_at": EARLIER if row["status"] == TaskStatus.DONE else None,
    }
)
CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "title": st.sampled_from(["a", "b"]),
        "description": st.none() | st.sampled_from(["", "x"]),
        "priority": st.integers(0, 4),
        "due_at": INSTANTS,
        "status": STATUSES,
    },
)


def test_completed_at_follows_the_status() -> None:
    done, todo = TaskStatus.DONE, TaskStatus.TODO
    assert completed_at_for(done, was=None, completed_at=None, now=NOW) == NOW  # created done
    assert completed_at_for(done, was=todo, completed_at=None, now=NOW) == NOW  # entering done
    assert completed_at_for(done, was=done, completed_at=EARLIER, now=NOW) == EARLIER  # stays
    assert completed_at_for(todo, was=done, completed_at=EARLIER, now=NOW) is None  # leaving
    assert completed_at_for(TaskStatus.IN_PROGRESS, was=todo, completed_at=None, now=NOW) is None


@given(stored=STORED, changes=CHANGES)
def test_field_changes_write_exactly_what_differs_and_what_follows(
    stored: dict[str, Any], changes: dict[str, Any]
) -> None:
    assert set(FIELD_COLUMNS) == set(stored)
    values = field_changes(stored, changes, now=NOW)
    after = {**stored, **values}
    # Every change sent is in the result, and nothing else of the sent fields moved.
    for name, value in changes.items():
        assert after[name] == value
    assert all(values[name] != stored[name] for name in values)  # only real changes
    # completed_at is a function of the status history alone.
    assert after["completed_at"] == completed_at_for(
        after["status"], was=stored["status"], completed_at=stored["completed_at"], now=NOW
    )
    if all(stored[name] == value for name, value in changes.items()):
        assert values == {}  # a change to the same values writes nothing: the version stays
