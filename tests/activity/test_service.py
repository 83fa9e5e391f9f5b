"""The change log's order: a reader never finds a record below one it has already seen."""

import uuid

import pytest
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity import service
from app.activity.models import EntityType, Verb
from app.core.config import Settings
from app.core.db import Database


async def _write(session: AsyncSession, entity_id: uuid.UUID) -> None:
    await service.record(
        session,
        actor_id=None,
        verb=Verb.UPDATE,
        entity_type=EntityType.TASK,
        entity_id=entity_id,
        project_id=None,
        changes={"title": ["a", "b"]},
    )


async def _read_all(session: AsyncSession, after: int) -> list[tuple[int, uuid.UUID]]:
    records = await service.read_after(session, after=after, limit=100)
    await session.commit()  # a new snapshot for the next read
    return [(record.seq, record.entity_id) for record in records if record.seq is not None]


@pytest.mark.anyio
@pytest.mark.postgres
async def test_two_overlapping_transactions_never_reach_a_reader_out_of_order(
    settings: Settings,
    db_session: AsyncSession,  # empties the tables afterwards
) -> None:
    """The transaction that took its id first writes its record last, after the other one
    committed: a naive `ORDER BY seq` reader would have served the later one and then found
    the earlier one below it."""
    database = Database(settings)
    early_id, late_id = uuid.uuid4(), uuid.uuid4()
    try:
        async with (
            database.sessionmaker() as early,
            database.sessionmaker() as late,
            database.sessionmaker() as reader,
        ):
            # `early` takes its transaction id now (as a first write would).
            await early.exec(text("SELECT pg_current_xact_id()"))  # type: ignore[call-overload]
            await _write(late, late_id)
            await late.commit()
            # The later transaction committed: the reader must not see it yet, because the
            # earlier one, still open, can still commit a record that sorts before it.
            seen = await _read_all(reader, 0)
            assert late_id not in [entity for _, entity in seen]
            await _write(early, early_id)
            assert late_id not in [entity for _, entity in await _read_all(reader, 0)]
            await early.commit()
            last = max((seq for seq, _ in seen), default=0)
            after = await _read_all(reader, last)
            # Both now, in commit-safe order, and both after everything served before.
            assert [entity for _, entity in after][-2:] == [early_id, late_id]
            assert all(seq > last for seq, _ in after)
            assert [seq for seq, _ in after] == sorted(seq for seq, _ in after)
    finally:
        await database.dispose()


@pytest.mark.anyio
async def test_records_are_served_in_the_order_they_committed(db_session: AsyncSession) -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    for entity_id in ids:
        await _write(db_session, entity_id)
        await db_session.commit()
    served = await _read_all(db_session, 0)
    assert [entity for _, entity in served] == ids
    seqs = [seq for seq, _ in served]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    # Reading on from the middle gives exactly the rest.
    assert [entity for _, entity in await _read_all(db_session, seqs[1])] == ids[2:]


@pytest.mark.anyio
async def test_records_of_one_transaction_get_distinct_increasing_numbers(
    db_session: AsyncSession,
) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    for entity_id in ids:
        await _write(db_session, entity_id)
    await db_session.commit()
    served = await _read_all(db_session, 0)
    assert [entity for _, entity in served] == ids


@pytest.mark.anyio
async def test_a_rolled_back_transaction_leaves_no_record(db_session: AsyncSession) -> None:
    await _write(db_session, uuid.uuid4())
    await db_session.rollback()
    assert await _read_all(db_session, 0) == []


def test_diff_lists_only_changed_fields_as_plain_json() -> None:
    when = __import__("datetime").datetime(2030, 1, 2, tzinfo=__import__("datetime").UTC)
    before = {"title": "a", "due_at": None, "priority": 1}
    after = {"title": "b", "due_at": when, "priority": 1}
    assert service.diff(before, after) == {
        "title": ["a", "b"],
        "due_at": [None, "2030-01-02T00:00:00+00:00"],
    }
