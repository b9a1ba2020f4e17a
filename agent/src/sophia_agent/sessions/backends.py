"""The two places sessions live: SQLite (default, under SOPHIA_HOME) and PostgreSQL (by DSN).

Each runs one short transaction per call in a worker thread; `?` placeholders on both. Every
statement names the owner as well as the session id, so no query can read another user's rows.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sophia_shared.errors import Unavailable
from sophia_shared.postgres_driver import import_psycopg
from sophia_shared.sqlite_tx import write_transaction

DDL = (
    "CREATE TABLE IF NOT EXISTS sophia_sessions (id text PRIMARY KEY, owner text NOT NULL, "
    "summary text NOT NULL, folded bigint NOT NULL, created double precision NOT NULL, "
    "updated double precision NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sophia_sessions_owner ON sophia_sessions (owner, updated)",
    "CREATE TABLE IF NOT EXISTS sophia_session_messages (session_id text NOT NULL, owner text NOT NULL, "
    "seq bigint NOT NULL, body text NOT NULL, PRIMARY KEY (session_id, seq))",
)


class Tx(Protocol):
    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None: ...
    def all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]: ...
    def run(self, sql: str, params: tuple[Any, ...]) -> int: ...


class Backend(Protocol):
    def transaction(self, *, lock_session: str | None = None) -> Any: ...
    def close(self) -> None: ...


class _Cursor:
    def __init__(self, conn: Any, postgres: bool):
        self.conn, self.postgres = conn, postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(self._sql(sql), params).fetchone()
        return row

    def all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(self._sql(sql), params).fetchall())

    def run(self, sql: str, params: tuple[Any, ...]) -> int:
        count: int = self.conn.execute(self._sql(sql), params).rowcount
        return count


class SqliteBackend:
    """One connection, one writer at a time (BEGIN IMMEDIATE), WAL so other processes can read."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            path.chmod(0o600)
            self._conn.execute("PRAGMA journal_mode=WAL")
            for statement in DDL:
                self._conn.execute(statement)
        except sqlite3.Error as exc:
            raise Unavailable("the sessions store cannot be opened", detail=str(exc)) from exc
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self, *, lock_session: str | None = None) -> Iterator[Tx]:
        with self._lock, write_transaction(self._conn, "the sessions store cannot be used") as conn:
            yield _Cursor(conn, postgres=False)

    def close(self) -> None:
        self._conn.close()


class PostgresBackend:
    """A small psycopg pool; a write locks its session's row so appends to one session are serial."""

    def __init__(self, dsn: str, *, max_size: int = 4):
        self._psycopg = import_psycopg("SOPHIA_SESSIONS_DSN (or SOPHIA_DATABASE_URL)")
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._pool = ConnectionPool(dsn, min_size=1, max_size=max_size, timeout=10, open=False,
                                    kwargs={"connect_timeout": 5})
        try:
            self._pool.open(wait=True, timeout=15)
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('sophia_sessions_schema'))")
                for statement in DDL:
                    conn.execute(statement)
        except (self._psycopg.Error, OSError, PoolTimeout) as exc:
            self._pool.close()
            raise Unavailable("the sessions database cannot be reached", detail=str(exc)) from exc

    @contextmanager
    def transaction(self, *, lock_session: str | None = None) -> Iterator[Tx]:
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn, conn.transaction():
                if lock_session is not None:
                    conn.execute("SELECT 1 FROM sophia_sessions WHERE id = %s FOR UPDATE", (lock_session,))
                yield _Cursor(conn, postgres=True)
        except (self._psycopg.OperationalError, PoolTimeout) as exc:
            raise Unavailable("the sessions database cannot be used", detail=str(exc)) from exc

    def close(self) -> None:
        self._pool.close()
