"""Sessions: each belongs to one user (the principal's name, also their memory tenant).

`open` claims an unused id for the caller or opens the caller's own session; an id another user
holds is refused (`SessionRefused`, code forbidden) and never shared. The window is stored whole:
the summary of folded turns plus the recent messages, bounded by the token budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
from pydantic import ValidationError
from sophia_shared.auth import Principal
from sophia_shared.errors import InvalidArgument, LimitExceeded

from .backends import Backend, PostgresBackend, SqliteBackend, Tx
from .errors import SessionRefused
from .messages import SessionMessage
from .settings import SessionSettings
from .window import Summariser, Window, check_append, extractive_summariser, fold_point

SESSION_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"


def check_session_id(session_id: str) -> str:
    """`session_id` if it is 1-128 letters, digits and . _ : - (not starting with punctuation)."""
    if not (0 < len(session_id) <= 128 and session_id[0].isalnum() and session_id.isascii()
            and all(c in SESSION_ID_CHARS for c in session_id)):
        raise InvalidArgument("a session id is 1-128 of letters, digits and . _ : - starting with a letter or digit")
    return session_id


class SessionStore:
    """The sessions of every user, on SQLite or PostgreSQL by settings alone."""

    def __init__(self, settings: SessionSettings, backend: Backend, summariser: Summariser | None):
        self.settings = settings
        self._db = backend
        self._summarise = summariser or extractive_summariser(settings.summary_max_chars)

    @classmethod
    async def open_store(cls, settings: SessionSettings | None = None, *,
                         summariser: Summariser | None = None) -> SessionStore:
        """The store the settings select (their DSN, else SQLite under SOPHIA_HOME)."""
        settings = settings or SessionSettings()
        dsn = settings.postgres_dsn()
        backend: Backend = (await anyio.to_thread.run_sync(PostgresBackend, dsn) if dsn
                            else await anyio.to_thread.run_sync(SqliteBackend, settings.sqlite_path()))
        return cls(settings, backend, summariser)

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._db.close)

    async def open(self, principal: Principal, session_id: str) -> Session:
        """The caller's session `session_id`, created if the id is unused; refused if another user holds it."""
        check_session_id(session_id)
        await anyio.to_thread.run_sync(self._claim, principal.name, session_id)
        return Session(self, principal, session_id)

    def _claim(self, owner: str, session_id: str) -> None:
        now = time.time()
        with self._db.transaction() as tx:
            row = tx.one("SELECT owner FROM sophia_sessions WHERE id = ?", (session_id,))
            if row is not None:
                if row[0] != owner:
                    raise SessionRefused(session_id)
                return
            count = tx.one("SELECT count(*) FROM sophia_sessions WHERE owner = ?", (owner,))
            if count is not None and count[0] >= self.settings.max_sessions_per_user:
                raise LimitExceeded(f"{owner} has {count[0]} sessions, the most SOPHIA_SESSIONS_MAX_SESSIONS_PER_USER "
                                    "allows; delete some first")
            # Two users claiming one new id at once: the primary key lets one in; the other is refused
            # when it reads the owner back.
            tx.run("INSERT INTO sophia_sessions (id, owner, summary, folded, created, updated) "
                   "VALUES (?, ?, '', 0, ?, ?) ON CONFLICT (id) DO NOTHING", (session_id, owner, now, now))
            back = tx.one("SELECT owner FROM sophia_sessions WHERE id = ?", (session_id,))
            if back is None or back[0] != owner:
                raise SessionRefused(session_id)

    def read(self, owner: str, session_id: str) -> tuple[Window, int, int]:
        """The owner's window, the fold counter and the last sequence number (refused if not theirs)."""
        with self._db.transaction() as tx:
            return _read(tx, owner, session_id)

    def write(self, owner: str, session_id: str, new: Sequence[SessionMessage]) -> Window:
        """Append after checking the pairing rules against what is stored, in one transaction."""
        with self._db.transaction(lock_session=session_id) as tx:
            window, _, last = _read(tx, owner, session_id)
            check_append(window.messages, new, max_chars=self.settings.max_message_chars,
                         max_calls=self.settings.max_tool_calls_per_message)
            for offset, message in enumerate(new, start=1):
                tx.run("INSERT INTO sophia_session_messages (session_id, owner, seq, body) VALUES (?, ?, ?, ?)",
                       (session_id, owner, last + offset, message.model_dump_json()))
            tx.run("UPDATE sophia_sessions SET updated = ? WHERE id = ? AND owner = ?",
                   (time.time(), session_id, owner))
            return Window(window.summary, window.messages + tuple(new))

    def fold(self, owner: str, session_id: str, through_seq: int, folded_before: int, summary: str) -> bool:
        """Replace messages up to `through_seq` by `summary`, unless another fold got there first."""
        with self._db.transaction(lock_session=session_id) as tx:
            changed = tx.run("UPDATE sophia_sessions SET summary = ?, folded = ?, updated = ? "
                             "WHERE id = ? AND owner = ? AND folded = ?",
                             (summary, through_seq, time.time(), session_id, owner, folded_before))
            if changed != 1:
                return False
            tx.run("DELETE FROM sophia_session_messages WHERE session_id = ? AND owner = ? AND seq <= ?",
                   (session_id, owner, through_seq))
            return True

    async def summarise(self, previous: str, turns: Sequence[SessionMessage]) -> str:
        summary = await self._summarise(previous, turns)
        return summary[: self.settings.summary_max_chars]


def _read(tx: Tx, owner: str, session_id: str) -> tuple[Window, int, int]:
    row = tx.one("SELECT summary, folded FROM sophia_sessions WHERE id = ? AND owner = ?", (session_id, owner))
    if row is None:
        raise SessionRefused(session_id)
    rows = tx.all("SELECT seq, body FROM sophia_session_messages WHERE session_id = ? AND owner = ? ORDER BY seq",
                  (session_id, owner))
    messages = tuple(_message(body) for _, body in rows)
    last = rows[-1][0] if rows else int(row[1])
    return Window(str(row[0]), messages), int(row[1]), int(last)


def _message(body: Any) -> SessionMessage:
    try:
        return SessionMessage.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidArgument("a stored session message is unreadable", detail=str(exc)) from exc


class Session:
    """One user's session: its window (short-term memory); long-term memory is `LongTermMemory`."""

    def __init__(self, store: SessionStore, principal: Principal, session_id: str):
        self.store, self.principal, self.id = store, principal, session_id

    async def window(self) -> Window:
        """The summary and the recent messages, as stored."""
        window, _, _ = await anyio.to_thread.run_sync(self.store.read, self.principal.name, self.id)
        return window

    async def append(self, *messages: SessionMessage) -> Window:
        """Add messages (all or none); past the token budget the oldest turns are summarised, never dropped."""
        window = await anyio.to_thread.run_sync(self.store.write, self.principal.name, self.id, messages)
        if window.tokens() <= self.store.settings.window_token_budget:
            return window
        return await self._fold()

    async def _fold(self) -> Window:
        owner, budget = self.principal.name, self.store.settings.window_token_budget
        window, folded, last = await anyio.to_thread.run_sync(self.store.read, owner, self.id)
        cut = fold_point(window.summary, window.messages, budget)
        if cut == 0:
            return window
        summary = await self.store.summarise(window.summary, window.messages[:cut])
        through = last - (len(window.messages) - cut)
        await anyio.to_thread.run_sync(self.store.fold, owner, self.id, through, folded, summary)
        return await self.window()
