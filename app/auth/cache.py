"""Verified callers, remembered per process for as long as the database vouches for them.

Whether a token's session is still open and its account still active only changes when a
row of `user` or `auth_session` changes, and PostgreSQL announces each such change
(triggers in the migrations send `NOTIFY principal_changed, '<user id>'`, whoever makes the
change: this service, another process, a console). So each process keeps the answers it got
and drops a user's the moment the announcement arrives:

- Only while its listener is connected (`enabled`): with the connection lost, announcements
  could be missed, so nothing is served from memory until it is back, and the cache starts
  empty then. On SQLite there is no listener and every request asks the database.
- A change this process commits itself is applied when the commit returns, before the
  response goes out (session events below), so a client never sees its own logout ignored.
- An answer read from the database while a change was announced is not kept (`generation`):
  the read may predate the change.
- Entries live `AUTH_CACHE_SECONDS` at most: the bound if an announcement were ever lost.
"""

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cachetools import TTLCache
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from app.auth.models import AuthSession
from app.core.clock import Clock
from app.core.config import Settings
from app.core.db import Database
from app.core.listener import ChannelListener
from app.users.models import User

CHANNEL = "principal_changed"
EVERYONE = "*"  # the payload of a TRUNCATE: forget everyone
# Execution option for statements on `user` or `auth_session` that cannot make a cached
# answer wrong (marking a session used, extending its expiry).
KEEPS_PRINCIPALS = "keeps_principals"
_SESSION_INFO_KEY = "principal_cache"
_CHANGED_KEY = "principals_changed"


@dataclass(slots=True)
class _OpenSession:
    expires_at: datetime
    last_used_at: datetime


@dataclass(slots=True)
class _Account:
    user: dict[str, Any]  # the user row's column values
    sessions: dict[uuid.UUID, _OpenSession]


class PrincipalCache:
    """The users (and their open sessions) this process verified recently."""

    def __init__(self, *, seconds: int, max_users: int, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self._accounts: TTLCache[uuid.UUID, _Account] = TTLCache(
            max_users, max(seconds, 1), timer=clock
        )
        self.enabled = False
        self.generation = 0
        # Notified on every change of `generation` or `enabled`, so another thread (a test, an
        # operator's probe) can wait for an announcement to be heard instead of polling.
        self.changed = threading.Condition()

    def lookup(
        self, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
    ) -> tuple[dict[str, Any], datetime] | None:
        """The user's column values and the session's last use, if known and still open."""
        if not self.enabled:
            return None
        account = self._accounts.get(user_id)
        if account is None:
            return None
        open_session = account.sessions.get(session_id)
        if open_session is None or open_session.expires_at <= now:
            return None
        return account.user, open_session.last_used_at

    def store(
        self,
        generation: int,
        user: dict[str, Any],
        session_id: uuid.UUID,
        *,
        expires_at: datetime,
        last_used_at: datetime,
    ) -> None:
        """Remember an answer read at `generation`, unless something changed since."""
        if not self.enabled or generation != self.generation:
            return
        user_id = user["id"]
        account = self._accounts.get(user_id)
        if account is None or account.user != user:
            account = _Account(user=user, sessions={})
            self._accounts[user_id] = account
        account.sessions[session_id] = _OpenSession(expires_at, last_used_at)

    def touched(self, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime) -> None:
        account = self._accounts.get(user_id)
        open_session = account.sessions.get(session_id) if account else None
        if open_session is not None:
            open_session.last_used_at = now

    def forget(self, payload: str) -> None:
        """Drop what an announcement names: one user's entries, or everything."""
        with self.changed:
            self.generation += 1
            if payload == EVERYONE:
                self._accounts.clear()
            else:
                try:
                    self._accounts.pop(uuid.UUID(payload), None)
                except ValueError:
                    self._accounts.clear()  # unreadable: the safe reading is "anyone"
            self.changed.notify_all()

    def forget_everyone(self) -> None:
        self.forget(EVERYONE)

    def listening(self, listening: bool) -> None:
        """Follow the listener: serve from memory only while every change is heard."""
        with self.changed:
            self.forget_everyone()
            self.enabled = listening and self.seconds > 0
            self.changed.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Block this thread until `condition()` holds after a change, or `timeout` passes."""
        with self.changed:
            return self.changed.wait_for(condition, timeout)

    def __len__(self) -> int:
        return len(self._accounts)


def start_principal_cache(
    settings: Settings, database: Database, clock: Clock = time.monotonic
) -> PrincipalCache:
    """The process's cache, told of the commits of the database's sessions (events below)."""
    cache = PrincipalCache(
        seconds=settings.AUTH_CACHE_SECONDS, max_users=settings.AUTH_CACHE_USERS, clock=clock
    )
    for maker in (database.sessionmaker, database.read_sessionmaker):
        maker.configure(info={_SESSION_INFO_KEY: cache})
    return cache


async def listen_for_changes(settings: Settings, cache: PrincipalCache) -> ChannelListener | None:
    """Start hearing the database's announcements (PostgreSQL, cache on); None otherwise."""
    if not settings.is_postgres or settings.AUTH_CACHE_SECONDS == 0:
        return None
    listener = ChannelListener(
        settings.async_database_url, CHANNEL, on_message=cache.forget, on_state=cache.listening
    )
    await listener.start()
    return listener


# This process's own changes: noted as they are sent, applied once they are committed. The
# listeners are registered once, on every Session; sessions without a cache in their `info`
# are ignored.


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or KEEPS_PRINCIPALS in state.execution_options:
        return
    table = getattr(state.statement, "table", None)
    if table is not None and table.name in (User.__tablename__, AuthSession.__tablename__):
        state.session.info[_CHANGED_KEY] = True


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: Any) -> None:
    for instance in (*session.dirty, *session.deleted):
        if isinstance(instance, (User, AuthSession)):
            session.info[_CHANGED_KEY] = True
            return


@event.listens_for(Session, "after_commit")
def _apply_commit(session: Session) -> None:
    if session.info.pop(_CHANGED_KEY, False):
        cache = session.info.get(_SESSION_INFO_KEY)
        if cache is not None:
            cache.forget_everyone()


@event.listens_for(Session, "after_rollback")
def _drop_notes(session: Session) -> None:
    session.info.pop(_CHANGED_KEY, None)
