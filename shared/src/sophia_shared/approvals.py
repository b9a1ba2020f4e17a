"""Pending approvals of destructive calls: asked by the request path, decided by a person out of band.

A client that cannot show the user a prompt (no elicitation) gets, for a destructive call, a pending
approval with a short id and a preview — never anything it could use to approve the call itself.
The person decides with `sophia approve ID` / `sophia deny ID` (or, later, the dashboard: every
operation here is a plain method a web panel can call). The model's repeat of the exact same call —
same principal, same tool, same arguments and plan (one digest) — then runs exactly once (`settle`
marks the approval used in the same statement that finds it).

The store lives next to the tokens: SQLite at $SOPHIA_HOME/approvals.db (0600), or the
`sophia_approvals` table of the tokens' PostgreSQL (SOPHIA_TOKENS_DSN / SOPHIA_DATABASE_URL). No
tool writes it: only the request path (pending, used, refused) and the person's commands (approved,
denied).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import Conflict, InvalidArgument, NotFound, Unavailable
from .paths import sophia_home
from .postgres_driver import import_psycopg
from .settings import SuiteSettings
from .sqlite_tx import write_transaction

# No 0/o, 1/l/i: an id is read off one screen and typed into another.
_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_ID_LENGTH = 8


class Status(StrEnum):
    PENDING = "pending"  # waiting for the person
    APPROVED = "approved"  # the next identical call runs
    DENIED = "denied"  # the next identical call is refused
    USED = "used"  # an approved call ran (once)
    REFUSED = "refused"  # a denied call was answered forbidden


@dataclass(frozen=True)
class Binding:
    """What an approval is for: one principal's one call, down to its arguments' digest."""

    principal: str  # the person, as shown
    principal_key: str  # the person and how they authenticated: another token is another principal
    server: str
    tool: str
    digest: str


@dataclass(frozen=True)
class Approval:
    """One approval as stored; `as_dict` is its JSON form (for `sophia approvals --json` and a web panel)."""

    id: str
    principal: str
    principal_key: str
    server: str
    tool: str
    digest: str
    summary: str
    details: dict[str, Any]
    status: Status
    created: float
    expires: float
    decided_by: str | None = None
    decided_at: float | None = None

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out.pop("principal_key")
        out.pop("digest")
        return out


_COLUMNS = ("id, principal, principal_key, server, tool, digest, summary, details, status, created, expires, "
            "decided_by, decided_at")
_DDL = """CREATE TABLE IF NOT EXISTS sophia_approvals (
    id text PRIMARY KEY, principal text NOT NULL, principal_key text NOT NULL, server text NOT NULL,
    tool text NOT NULL, digest text NOT NULL, summary text NOT NULL, details text NOT NULL,
    status text NOT NULL, created double precision NOT NULL, expires double precision NOT NULL,
    decided_by text, decided_at double precision)"""
_INDEX = ("CREATE INDEX IF NOT EXISTS sophia_approvals_binding ON sophia_approvals "
          "(principal_key, server, tool, digest, status)")


def _approval(row: tuple[Any, ...]) -> Approval:
    return Approval(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]), Status(row[8]),
                    row[9], row[10], row[11], row[12])


class ApprovalStore:
    """The approvals, in SQLite (default) or PostgreSQL; every method is one short transaction."""

    def __init__(self, *, path: Path | None = None, dsn: str | None = None, ttl_s: float = 900.0):
        self.ttl_s = ttl_s
        self._dsn = dsn
        self._path = path
        self._psycopg = import_psycopg("SOPHIA_TOKENS_DSN (or SOPHIA_DATABASE_URL)") if dsn else None
        self._ready = False

    @classmethod
    def from_settings(cls, settings: SuiteSettings | None = None) -> ApprovalStore:
        """The store next to the tokens: their PostgreSQL when set, else SOPHIA_HOME."""
        settings = settings or SuiteSettings()
        dsn = settings.tokens_dsn.get_secret_value() if settings.tokens_dsn else ""
        if dsn and not dsn.startswith(("postgresql://", "postgres://")):
            raise InvalidArgument("SOPHIA_TOKENS_DSN must be a postgresql:// URL (unset: approvals under SOPHIA_HOME)")
        return cls(dsn=dsn or None, ttl_s=settings.approval_ttl_s)

    # -- connections ----------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[Any]:
        """A cursor-like connection in one transaction; `?` placeholders on both backends."""
        if self._psycopg is not None:
            with self._pg() as conn:
                yield conn
            return
        path = self._path or sophia_home() / "approvals.db"
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            raise Unavailable("the approvals store cannot be opened", detail=str(exc)) from exc
        try:
            with write_transaction(conn, "the approvals store cannot be used"):
                if not self._ready:
                    conn.execute(_DDL)
                    conn.execute(_INDEX)
                    self._ready = True
                yield _Sqlite(conn)
        finally:
            conn.close()

    @contextmanager
    def _pg(self) -> Iterator[Any]:
        psycopg = self._psycopg
        assert psycopg is not None
        try:
            conn = psycopg.connect(self._dsn, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise Unavailable("the approvals database cannot be reached", detail=str(exc)) from exc
        try:
            with conn.transaction():
                if not self._ready:
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('sophia_approvals_schema'))")
                    conn.execute(_DDL)
                    conn.execute(_INDEX)
                    self._ready = True
                yield _Postgres(conn)
        except psycopg.OperationalError as exc:
            raise Unavailable("the approvals database cannot be used", detail=str(exc)) from exc
        finally:
            conn.close()

    # -- the request path's side ----------------------------------------------------------

    def request(self, binding: Binding, summary: str, details: dict[str, Any]) -> Approval:
        """The open (pending) approval of this exact call, or a new one: asking twice makes one id."""
        now = time.time()
        with self._db() as db:
            row = db.one(
                f"SELECT {_COLUMNS} FROM sophia_approvals WHERE principal_key = ? AND server = ? AND tool = ? "  # noqa: S608 - constant columns, values bound
                "AND digest = ? AND status = ? AND expires > ? ORDER BY created DESC LIMIT 1",
                (binding.principal_key, binding.server, binding.tool, binding.digest, Status.PENDING.value, now),
            )
            if row is not None:
                return _approval(row)
            approval = Approval(
                id=_new_id(), principal=binding.principal, principal_key=binding.principal_key,
                server=binding.server, tool=binding.tool, digest=binding.digest, summary=summary,
                details=details, status=Status.PENDING, created=now, expires=now + self.ttl_s,
            )
            db.run(
                f"INSERT INTO sophia_approvals ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant columns, values bound
                (approval.id, approval.principal, approval.principal_key, approval.server, approval.tool,
                 approval.digest, summary, json.dumps(details, sort_keys=True, default=str), approval.status.value,
                 now, approval.expires, None, None),
            )
            return approval

    def settle(self, binding: Binding) -> Approval | None:
        """The person's decision on this exact call, spent by this call: approved → used (run it, once),
        denied → refused (refuse it). None while nothing was decided."""
        now = time.time()
        with self._db() as db:
            for decided, spent in ((Status.APPROVED, Status.USED), (Status.DENIED, Status.REFUSED)):
                # Found and spent in one statement, guarded on the status: two repeats racing get one run.
                row = db.one(
                    f"UPDATE sophia_approvals SET status = ? WHERE id = (SELECT id FROM sophia_approvals "  # noqa: S608 - constant columns, values bound
                    "WHERE principal_key = ? AND server = ? AND tool = ? AND digest = ? AND status = ? "
                    "AND expires > ? ORDER BY created LIMIT 1) AND status = ? "
                    f"RETURNING {_COLUMNS}",
                    (spent.value, binding.principal_key, binding.server, binding.tool, binding.digest,
                     decided.value, now, decided.value),
                )
                if row is not None:
                    return _approval(row)
        return None

    # -- the person's side (CLI, later the dashboard) --------------------------------------

    def list(self, *, everything: bool = False) -> list[Approval]:
        """Pending approvals not yet expired, oldest first (`everything`: every approval kept)."""
        with self._db() as db:
            if everything:
                rows = db.all(f"SELECT {_COLUMNS} FROM sophia_approvals ORDER BY created, id", ())  # noqa: S608 - constant columns, values bound
            else:
                rows = db.all(f"SELECT {_COLUMNS} FROM sophia_approvals WHERE status = ? AND expires > ? "  # noqa: S608 - constant columns, values bound
                              "ORDER BY created, id", (Status.PENDING.value, time.time()))
        return [_approval(r) for r in rows]

    def get(self, approval_id: str) -> Approval:
        with self._db() as db:
            row = db.one(f"SELECT {_COLUMNS} FROM sophia_approvals WHERE id = ?", (approval_id.strip().lower(),))  # noqa: S608 - constant columns, values bound
        if row is None:
            raise NotFound(f"no approval {approval_id[:40]!r}; see `sophia approvals`")
        return _approval(row)

    def decide(self, approval_id: str, *, approve: bool, by: str) -> Approval:
        """Approve or deny a pending approval; an approved one is valid `ttl_s` from now."""
        now = time.time()
        status = Status.APPROVED if approve else Status.DENIED
        with self._db() as db:
            row = db.one(
                "UPDATE sophia_approvals SET status = ?, decided_by = ?, decided_at = ?, expires = ? "  # noqa: S608 - constant columns, values bound
                f"WHERE id = ? AND status = ? AND expires > ? RETURNING {_COLUMNS}",
                (status.value, by, now, now + self.ttl_s, approval_id.strip().lower(), Status.PENDING.value, now),
            )
        if row is not None:
            return _approval(row)
        current = self.get(approval_id)
        state = "expired" if current.status is Status.PENDING else current.status.value
        raise Conflict(f"approval {current.id} is {state}, not pending; nothing was changed")

    def purge(self, older_than_s: float = 7 * 86_400) -> int:
        """Delete approvals that expired more than `older_than_s` ago (the audit log keeps their story)."""
        with self._db() as db:
            deleted: int = db.count("DELETE FROM sophia_approvals WHERE expires < ?", (time.time() - older_than_s,))
        return deleted

    def close(self) -> None:
        """Nothing held open: every operation connects and closes (approvals are rare)."""


def _new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


class _Sqlite:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, params).fetchall())

    def run(self, sql: str, params: tuple[Any, ...]) -> None:
        self.conn.execute(sql, params)

    def count(self, sql: str, params: tuple[Any, ...]) -> int:
        rowcount: int = self.conn.execute(sql, params).rowcount
        return rowcount


class _Postgres:
    def __init__(self, conn: Any):
        self.conn = conn

    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(sql.replace("?", "%s"), params).fetchone()
        return row

    def all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql.replace("?", "%s"), params).fetchall())

    def run(self, sql: str, params: tuple[Any, ...]) -> None:
        self.conn.execute(sql.replace("?", "%s"), params)

    def count(self, sql: str, params: tuple[Any, ...]) -> int:
        rowcount: int = self.conn.execute(sql.replace("?", "%s"), params).rowcount
        return rowcount
