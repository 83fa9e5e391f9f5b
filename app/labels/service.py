"""Queries and rules for labels: plain functions, session first, keyword-only after."""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.activity import service as activity
from app.activity.models import EntityType, Verb
from app.core.db.errors import is_unique_violation
from app.core.errors import ReferenceNotFound
from app.core.http import check_if_match
from app.core.models import utcnow
from app.core.pagination import CursorCodec, Page, PageParams, SortKey, paginate
from app.core.versioning import bumped, flush_versioned, touch
from app.labels.exceptions import LabelNameTaken, LabelNotFound
from app.labels.models import Label, name_key
from app.labels.schemas import LabelPublic
from app.quotas import service as quota_service
from app.quotas.models import Resource
from app.quotas.service import DEFAULT_QUOTAS, Quotas
from app.tasks.models import Task, TaskLabel

LABEL_KEYS = [SortKey(col(Label.name_key)), SortKey(col(Label.id))]


async def get_label(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    label_id: uuid.UUID,
    for_update: bool = False,
) -> Label:
    """The caller's label with this id, or LabelNotFound (also for anyone else's)."""
    statement = select(Label).where(Label.id == label_id, Label.owner_id == owner_id)
    if for_update:
        statement = statement.with_for_update()
    label = (await session.exec(statement)).first()
    if label is None:
        raise LabelNotFound()
    return label


async def get_labels(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    label_ids: Sequence[uuid.UUID],
    loc: Sequence[str | int] = ("body", "label_ids"),
    lock: bool = False,
) -> list[Label]:
    """The caller's labels with these ids, which a request names at `loc`.

    One that is not the caller's is a ReferenceNotFound (422) at its index in `label_ids`.
    `lock` (a write that attaches them): locked FOR SHARE, so none can be deleted before
    this transaction ends; a deletion in progress is waited for, and the label is then gone.
    """
    wanted = set(label_ids)
    if not wanted:
        return []
    statement = select(Label).where(col(Label.id).in_(wanted), Label.owner_id == owner_id)
    if lock:
        statement = statement.order_by(col(Label.id)).with_for_update(read=True)
    labels = list((await session.exec(statement)).all())
    missing = wanted - {label.id for label in labels}
    if missing:
        index, label_id = next((i, id_) for i, id_ in enumerate(label_ids) if id_ in missing)
        raise ReferenceNotFound(
            "You have no such label.", loc=(*loc, index), extra={"label_id": str(label_id)}
        )
    return labels


async def list_labels(
    session: AsyncSession, *, owner_id: uuid.UUID, page: PageParams, codec: CursorCodec
) -> Page[LabelPublic]:
    """The caller's labels in name order (ignoring case)."""
    return await paginate(
        session,
        select(Label).where(Label.owner_id == owner_id),
        keys=LABEL_KEYS,
        page=page,
        codec=codec,
        scope="labels",
        key_of=lambda label: [label.name_key, label.id],
        to_item=lambda label: LabelPublic.model_validate(label, from_attributes=True),
    )


async def _ensure_name_free(
    session: AsyncSession, *, owner_id: uuid.UUID, key: str, exclude: uuid.UUID | None = None
) -> None:
    statement = select(Label.id).where(Label.owner_id == owner_id, Label.name_key == key)
    if exclude is not None:
        statement = statement.where(Label.id != exclude)
    if (await session.exec(statement)).first() is not None:
        raise LabelNameTaken()


async def _flush_unique_name(session: AsyncSession, label: Label) -> None:
    try:
        await flush_versioned(session, label)
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise  # not the name: a race the request's transaction runs again for
        # Two requests racing for one name: the unique index decides, the loser gets 409.
        await session.rollback()
        raise LabelNameTaken() from exc


async def _record(
    session: AsyncSession, label: Label, verb: Verb, changes: Mapping[str, Any]
) -> None:
    # Labels belong to an account, not a project: their records name no project.
    await activity.record(
        session,
        actor_id=label.owner_id,
        verb=verb,
        entity_type=EntityType.LABEL,
        entity_id=label.id,
        project_id=None,
        changes=changes,
    )


async def create_label(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    name: str,
    color: str | None = None,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> Label:
    """Insert a label; LabelNameTaken (409) if the caller has one by that name, in any case;
    QuotaExceeded (409) past the account's quota."""
    key = name_key(name)
    await _ensure_name_free(session, owner_id=owner_id, key=key)
    await quota_service.charge(session, owner_id=owner_id, resource=Resource.LABELS, quotas=quotas)
    label = Label(owner_id=owner_id, name=name, name_key=key, color=color)
    session.add(label)
    await _flush_unique_name(session, label)
    await _record(session, label, Verb.CREATE, activity.created({"name": name, "color": color}))
    return label


async def _touch_tasks_carrying(session: AsyncSession, label_id: uuid.UUID, now: datetime) -> None:
    # Tasks show their labels' names and colours, so their representation (and ETag) changes.
    carriers = select(TaskLabel.task_id).where(TaskLabel.label_id == label_id)
    await session.exec(
        update(Task)
        .where(col(Task.id).in_(carriers))
        .values(**bumped(Task.version, now))
        .execution_options(synchronize_session="fetch")
    )


async def update_label(
    session: AsyncSession,
    label: Label,
    changes: Mapping[str, Any],
    *,
    if_match: str | None = None,
) -> Label:
    """Rename or recolour a label; 409 on a name the caller uses, 412 on a stale `if_match`."""
    check_if_match(if_match, label.version)
    before = {"name": label.name, "color": label.color}
    changed = False
    if "name" in changes and changes["name"] != label.name:
        key = name_key(changes["name"])
        await _ensure_name_free(session, owner_id=label.owner_id, key=key, exclude=label.id)
        label.name, label.name_key = changes["name"], key
        changed = True
    if "color" in changes and changes["color"] != label.color:
        label.color = changes["color"]
        changed = True
    if changed:
        now = utcnow()
        touch(label, now=now)
        session.add(label)
        await _flush_unique_name(session, label)
        await _touch_tasks_carrying(session, label.id, now)
        after = {"name": label.name, "color": label.color}
        await _record(session, label, Verb.UPDATE, activity.diff(before, after))
    return label


async def delete_label(session: AsyncSession, label: Label, *, if_match: str | None = None) -> None:
    """Delete a label for good; the tasks carrying it lose it (and change version)."""
    check_if_match(if_match, label.version)
    await _record(session, label, Verb.DELETE, {"name": [label.name, None]})
    await _touch_tasks_carrying(session, label.id, utcnow())
    await session.delete(label)
    await flush_versioned(session, label)
    await quota_service.refund(session, owner_id=label.owner_id, resource=Resource.LABELS)
