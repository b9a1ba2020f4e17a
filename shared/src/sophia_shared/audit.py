"""Append-only, keyed, hash-chained audit log (SQLite WAL by default, PostgreSQL when a DSN is set).

Each record carries `seq`, `prev_hash`, `key_id` and `entry_hash = HMAC-SHA256(key, canonical
JSON of the record without entry_hash)`; the key lives in a keyring outside the audit directory
(`audit_keys`). Records written before keys existed (key_id NULL) keep their plain SHA-256 and are
verified as legacy: the chain continues from them, so the first sealed record pins them too; an
unsealed record after a sealed one is a forgery. The head (last seq and hash) is written beside
the log after each commit and, when configured, to a checkpoint the writer cannot rewrite
(`audit_checkpoint`); `verify` (`audit_verify`) names every modified, deleted, inserted, reordered
or forged record, truncation, and a wiped or deleted log.

Writes fail closed: any failure to write raises `AuditUnavailable` and leaves the chain valid,
and `ready()` says cheaply, before a call runs, whether a record could be written now.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from .audit_checkpoint import Checkpoint, CheckpointFile, CheckpointTable
from .audit_keys import AuditKey, AuditKeyring, KeyringError
from .audit_records import (
    FIELDS,
    GAP_OUTCOME,
    GENESIS,
    SEALED_FIELDS,
    STORED_FIELDS,
    AuditEvent,
    AuditUnavailable,
    Outcome,
    VerifyReport,
    canonical_json,
    entry_hash,
    record_fields,
    unavailable_reason,
)
from .audit_shape import argument_shape, settings_secrets
from .audit_verify import read_head, verify_log
from .audit_writer import AuditWriter, GroupCommit
from .paths import sophia_home
from .redact import redact
from .settings import SuiteSettings, load_settings

__all__ = [
    "FIELDS", "GAP_OUTCOME", "GENESIS", "SEALED_FIELDS", "AuditEvent", "AuditKey", "AuditKeyring", "AuditLog",
    "AuditUnavailable", "AuditWriter", "GroupCommit", "Outcome", "VerifyReport", "argument_shape", "canonical_json",
    "entry_hash",
    "settings_secrets",
]

log = logging.getLogger("sophia.audit")


def _private_file(path: Path) -> None:
    """Create `path` 0600 if absent; tighten a file of ours that an earlier version left 0644."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class _Backend(Protocol):
    def append(self, batch: list[dict[str, Any]], key: AuditKey) -> list[dict[str, Any]]: ...
    def rows(self) -> list[dict[str, Any]] | None: ...
    def since(self, seq: int, limit: int) -> list[dict[str, Any]]: ...
    def last_seq(self) -> int: ...
    def probe(self) -> None: ...
    def free_bytes(self) -> int | None: ...
    def close(self) -> None: ...


class _SqliteBackend:
    _DDL = """
    CREATE TABLE IF NOT EXISTS audit (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      seq INTEGER NOT NULL, ts REAL NOT NULL, principal TEXT NOT NULL, principal_kind TEXT NOT NULL,
      role TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL,
      outcome TEXT NOT NULL, error_code TEXT, duration_ms REAL NOT NULL, correlation_id TEXT NOT NULL,
      prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL, key_id TEXT
    )"""

    def __init__(self, path: Path, head: _HeadFile):
        self.path = path
        self.head = head
        self._dir = str(path.parent)
        self._local = threading.local()
        self._schema_ready = False

    def _conn(self, *, write: bool) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not self._same_file("ino"):
            # The database was deleted or replaced under us: writing on would write into an
            # unlinked file. Start on the file at the path (verify reports what happened).
            conn.close()
            conn = self._local.conn = None
            self._schema_ready = False
        if conn is None and not write:
            return self._reader()
        if conn is None:
            _private_file(self.path)  # SQLite gives its -wal and -shm files the database's mode
            self._local.ino = os.stat(self.path).st_ino
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed record survives a process crash (kill -9), which
            # is the failure the log must survive; FULL adds an fsync per call for power loss.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        if write and not self._schema_ready:
            self._ensure_schema(conn)
        return conn

    def _same_file(self, slot: str) -> bool:
        try:
            return os.stat(self.path).st_ino == getattr(self._local, slot, None)
        except FileNotFoundError:
            return False

    def _reader(self) -> sqlite3.Connection:
        """A read-only connection: reading (verify, tail) must work where writing does not."""
        conn: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if conn is not None and not self._same_file("reader_ino"):
            conn.close()
            conn = None
        if conn is None:
            self._local.reader_ino = os.stat(self.path).st_ino
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=30, isolation_level=None)
            self._local.reader = conn
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute(self._DDL)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(audit)")}
        if "key_id" not in columns:  # a log from before keys: its records stay, verified as legacy
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                conn.execute("ALTER TABLE audit ADD COLUMN key_id TEXT")
        conn.execute("CREATE TABLE IF NOT EXISTS audit_probe (id INTEGER PRIMARY KEY, ts REAL NOT NULL)")
        # Readers that follow the log (the dashboard's feed) ask for the records after a seq.
        conn.execute("CREATE INDEX IF NOT EXISTS audit_seq ON audit (seq)")
        for suffix in ("-wal", "-shm"):
            companion = self.path.with_name(self.path.name + suffix)
            if companion.exists():
                _private_file(companion)
        self._schema_ready = True

    def append(self, batch: list[dict[str, Any]], key: AuditKey) -> list[dict[str, Any]]:
        conn = self._conn(write=True)
        conn.execute("BEGIN IMMEDIATE")
        head_moved = False
        try:
            last = conn.execute("SELECT seq, entry_hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            records = _chain(batch, last, key)
            conn.executemany(
                f"INSERT INTO audit ({', '.join(STORED_FIELDS)}) VALUES ({', '.join('?' * len(STORED_FIELDS))})",  # noqa: S608
                [[r[k] for k in STORED_FIELDS] for r in records],
            )
            # The head moves inside the transaction: a record counts as written only with its head.
            self.head.write(records[-1]["seq"], records[-1]["entry_hash"])
            head_moved = True
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) leaves the transaction open: roll it back, nothing stays,
            # and the head goes back (an in-place rewrite of its block: it needs no new space).
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if head_moved:
                with contextlib.suppress(OSError):
                    self.head.write(*(last or (0, GENESIS)))
            raise
        return records

    def probe(self) -> None:
        """A real, tiny write: the log can take a record now (or this raises why not)."""
        self._conn(write=True)
        conn = sqlite3.connect(self.path, timeout=2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR REPLACE INTO audit_probe (id, ts) VALUES (1, ?)", (time.time(),))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    def free_bytes(self) -> int | None:
        st = os.statvfs(self._dir)
        return st.f_bavail * st.f_frsize

    def rows(self) -> list[dict[str, Any]] | None:
        if not self.path.exists():
            return None
        conn = self._conn(write=False)
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(audit)")}
        except sqlite3.OperationalError:
            # A WAL database in a directory we cannot write has no -shm to read through: read the
            # file as it stands (nothing of ours can be writing it, we could not either).
            conn.close()
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro&immutable=1", uri=True, isolation_level=None)
            self._local.reader = conn
            columns = {row[1] for row in conn.execute("PRAGMA table_info(audit)")}
        if not columns:
            return []
        wanted = ["id", *(c if c in columns else f"NULL AS {c}" for c in STORED_FIELDS)]
        cur = conn.execute(f"SELECT {', '.join(wanted)} FROM audit ORDER BY id")  # noqa: S608
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def last_seq(self) -> int:
        if not self.path.exists():
            return 0
        try:
            row = self._conn(write=False).execute("SELECT max(seq) FROM audit").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return 0
            raise
        return int(row[0] or 0)

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        conn = self._conn(write=False)
        try:
            cur = conn.execute(f"SELECT {', '.join(STORED_FIELDS)} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
                               (seq, limit))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def close(self) -> None:
        for slot in ("conn", "reader"):
            conn = getattr(self._local, slot, None)
            if conn is not None:
                conn.close()
                setattr(self._local, slot, None)


class _PostgresBackend:
    """The log in PostgreSQL, shared by every host and server that points at the same database.

    Appends from any number of processes and machines form one chain: each batch links to the true
    last record under a table lock held until its commit (which does not wait for the disk: `_flush`
    does, after the lock is gone), and the head (last seq and hash) is kept in the same database, in
    the same transaction, so every host verifies against the same head.
    (Hosts that share it must seal with the same key: SOPHIA_AUDIT_KEY.) The connection is reopened
    after the server restarts; a statement that fails before anything of the batch was sent is
    retried once on the new connection (it cannot duplicate a record). Nothing is created before
    the first write, so `verify` can tell a dropped table.
    """

    _DDL = (
        """CREATE TABLE IF NOT EXISTS sophia_audit (
          id BIGSERIAL PRIMARY KEY,
          seq BIGINT NOT NULL, ts DOUBLE PRECISION NOT NULL, principal TEXT NOT NULL,
          principal_kind TEXT NOT NULL, role TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL,
          arguments TEXT NOT NULL, outcome TEXT NOT NULL, error_code TEXT,
          duration_ms DOUBLE PRECISION NOT NULL, correlation_id TEXT NOT NULL,
          prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL, key_id TEXT
        )""",
        # A log from before keys gains the column; its records stay, verified as legacy.
        "ALTER TABLE sophia_audit ADD COLUMN IF NOT EXISTS key_id TEXT",
        # Readers that follow the log (the dashboard's feed) ask for the records after a seq.
        "CREATE INDEX IF NOT EXISTS sophia_audit_seq ON sophia_audit (seq)",
        """CREATE TABLE IF NOT EXISTS sophia_audit_head (
          singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
          seq BIGINT NOT NULL, entry_hash TEXT NOT NULL
        )""",
    )

    def __init__(self, dsn: str):
        self._dsn = dsn
        self._conn: Any = None
        self._lock = threading.Lock()
        self._schema_ready = False

    def _connection(self, *, write: bool) -> Any:
        from .postgres_driver import import_psycopg

        psycopg = import_psycopg("audit_dsn (SOPHIA_AUDIT_DSN)")

        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            conn = self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        if write and not self._schema_ready:
            try:
                with conn.transaction():
                    # Two processes creating the tables at once must not race CREATE TABLE IF NOT EXISTS.
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('sophia_audit_schema'))")
                    for statement in self._DDL:
                        conn.execute(statement)
            except BaseException:
                if conn.broken:
                    self._drop()
                raise
            self._schema_ready = True
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def append(self, batch: list[dict[str, Any]], key: AuditKey) -> list[dict[str, Any]]:
        with self._lock:
            return self._append(batch, key, retry=True)

    # One round trip to begin, take the chain lock and read the true last record. The commit of the
    # batch releases the lock without waiting for the disk; `_flush` waits for it outside the lock.
    _BEGIN = (
        "BEGIN; SET LOCAL synchronous_commit = off; LOCK TABLE sophia_audit IN EXCLUSIVE MODE; "
        "SELECT seq, entry_hash FROM sophia_audit ORDER BY id DESC LIMIT 1"
    )
    _INSERT = (
        f"INSERT INTO sophia_audit ({', '.join(STORED_FIELDS)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(STORED_FIELDS))})"
    )
    _HEAD = (
        "INSERT INTO sophia_audit_head (singleton, seq, entry_hash) VALUES (true, %s, %s) "
        "ON CONFLICT (singleton) DO UPDATE SET seq = EXCLUDED.seq, entry_hash = EXCLUDED.entry_hash"
    )

    def _append(self, batch: list[dict[str, Any]], key: AuditKey, *, retry: bool) -> list[dict[str, Any]]:
        import psycopg

        conn = self._connection(write=True)
        try:
            last = _last_row(conn.execute(self._BEGIN))
        except psycopg.OperationalError:
            if not conn.broken:
                conn.execute("ROLLBACK")
                raise
            # A connection the server dropped (a restart while it sat idle): nothing was written.
            self._drop()
            if retry:
                return self._append(batch, key, retry=False)
            raise
        except psycopg.errors.UndefinedTable:
            conn.execute("ROLLBACK")
            self._schema_ready = False  # dropped under us: the next write starts a new log (verify tells)
            raise
        with self._undone_on_error(conn):
            records = _chain(batch, last, key)
            # The rows, the head and the commit in one pipeline: one more round trip under the lock.
            with conn.pipeline(), conn.cursor() as cur:
                cur.executemany(self._INSERT, [[r[k] for k in STORED_FIELDS] for r in records])
                cur.execute(self._HEAD, (records[-1]["seq"], records[-1]["entry_hash"]))
                cur.execute("COMMIT")
        self._flush(conn)
        return records

    def _flush(self, conn: Any) -> None:
        """Return once the batch is on disk, as the database's own synchronous_commit promises.

        Holding the chain lock through a commit's WAL flush serialises every writer of every host
        behind one fsync each: 4 writer processes made ~70 appends/s together here (6 ms fsyncs),
        and 136-195/s with the flush moved out of the lock, as fast as skipping it. A transaction that
        takes an xid commits with a WAL record after the batch's, so its synchronous commit waits for
        the flush past the batch; concurrent writers share such flushes (PostgreSQL's group commit).
        If this fails, the batch is in the log but the caller hears an error (it refuses the call).
        """
        with self._undone_on_error(conn):
            conn.execute("BEGIN; SELECT pg_current_xact_id(); COMMIT")

    @contextlib.contextmanager
    def _undone_on_error(self, conn: Any) -> Iterator[None]:
        """On any error: forget the connection if it broke, else roll back what it began."""
        import psycopg

        try:
            yield
        except BaseException:
            if conn.broken:
                self._drop()
            else:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            raise

    def probe(self) -> None:
        with self._lock:
            self._connection(write=True).execute("SELECT 1")

    def free_bytes(self) -> int | None:
        return None  # the database server's disk is its own to watch

    def usable(self) -> bool:
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    def rows(self) -> list[dict[str, Any]] | None:
        return self.snapshot()[0]

    def snapshot(self) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
        """Every record (None when there is no log table) and the head, read in one snapshot."""
        with self._lock:
            conn = self._connection(write=False)
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                present = conn.execute(
                    "SELECT to_regclass('sophia_audit') IS NOT NULL, to_regclass('sophia_audit_head') IS NOT NULL"
                ).fetchone()
                if not present[0]:
                    return None, None
                columns = {r[0] for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'sophia_audit' "
                    "AND table_schema = current_schema()"
                )}
                wanted = ["id", *(c if c in columns else f"NULL AS {c}" for c in STORED_FIELDS)]
                cur = conn.execute(f"SELECT {', '.join(wanted)} FROM sophia_audit ORDER BY id")  # noqa: S608
                names = [d.name for d in cur.description or []]
                rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                head = conn.execute("SELECT seq, entry_hash FROM sophia_audit_head").fetchone() if present[1] else None
        return rows, ({"seq": head[0], "entry_hash": head[1]} if head else None)

    def last_seq(self) -> int:
        import psycopg

        with self._lock:
            try:
                row = self._connection(write=False).execute("SELECT max(seq) FROM sophia_audit").fetchone()
            except psycopg.errors.UndefinedTable:
                return 0
        return int(row[0] or 0)

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        import psycopg

        with self._lock:
            conn = self._connection(write=False)
            try:
                cur = conn.execute(
                    f"SELECT {', '.join(STORED_FIELDS)} FROM sophia_audit WHERE seq > %s ORDER BY seq LIMIT %s",  # noqa: S608
                    (seq, limit))
            except psycopg.errors.UndefinedTable:
                return []
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._drop()


def _last_row(cur: Any) -> Any:
    """The row of the last statement of a multi-statement query (psycopg keeps one result per statement)."""
    row = None
    while True:
        if cur.description is not None:
            row = cur.fetchone()
        if not cur.nextset():
            return row


def _chain(batch: list[dict[str, Any]], last: tuple[int, str] | None, key: AuditKey) -> list[dict[str, Any]]:
    """Link and seal each record of `batch` after `last`."""
    seq, prev_hash = last if last else (0, GENESIS)
    records = []
    for fields in batch:
        seq += 1
        record = {**fields, "seq": seq, "prev_hash": prev_hash, "key_id": key.key_id}
        record["entry_hash"] = prev_hash = entry_hash(record, key)
        records.append(record)
    return records


HEAD_SIZE = 160


class _HeadFile:
    """The head beside the log: one fixed-size record, rewritten in place with each commit.

    A rename per call costs ~0.8 ms on ext4 (it forces the data out); a sub-sector pwrite is not
    torn. Its owner can rewrite it: it catches naive truncation; a checkpoint catches the rest.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def write(self, seq: int, digest: str) -> None:
        self.open()
        assert self._fd is not None
        body = canonical_json({"seq": seq, "entry_hash": digest}).encode()
        os.pwrite(self._fd, body.ljust(HEAD_SIZE), 0)

    def open(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def keyring_from_settings(suite: SuiteSettings, home: Path) -> AuditKeyring:
    if suite.audit_key is not None:
        supplied = [suite.audit_key, *suite.audit_previous_keys]
        return AuditKeyring(supplied=[k.get_secret_value().encode() for k in supplied])
    return AuditKeyring(path=suite.audit_key_file or home / "keys" / "audit.key")


def checkpoints_from_settings(suite: SuiteSettings) -> list[Checkpoint]:
    found: list[Checkpoint] = []
    if suite.audit_checkpoint_file is not None:
        found.append(CheckpointFile(suite.audit_checkpoint_file))
    if suite.audit_checkpoint_dsn is not None:
        found.append(CheckpointTable(suite.audit_checkpoint_dsn.get_secret_value()))
    return found


class AuditLog:
    """The audit log of this SOPHIA_HOME (or of the PostgreSQL DSN given).

    Keys and checkpoints come from the suite settings (SOPHIA_AUDIT_*) unless given. Nothing is
    created until the first record (or `ready()`), so `verify` can tell a deleted log.
    """

    def __init__(
        self,
        dsn: str | None = None,
        home: Path | None = None,
        *,
        suite: SuiteSettings | None = None,
        keyring: AuditKeyring | None = None,
        checkpoints: list[Checkpoint] | None = None,
        reprobe_s: float | None = None,
    ):
        home = home or sophia_home()
        suite = suite if suite is not None else load_settings(SuiteSettings)
        self.dsn = dsn
        self.home = home
        # The head: in the same PostgreSQL (one for every host sharing it), else a file beside the log.
        self.head_path: Path | None = None
        self._head: _HeadFile | None = None
        if dsn:
            self._backend: _Backend = _PostgresBackend(dsn)
        else:
            self.head_path = home / "audit.head"
            self._head = _HeadFile(self.head_path)
            self._backend = _SqliteBackend(home / "audit.sqlite3", self._head)
        self.keyring = keyring if keyring is not None else keyring_from_settings(suite, home)
        self.checkpoints = checkpoints if checkpoints is not None else checkpoints_from_settings(suite)
        self.min_free_bytes = suite.audit_min_free_bytes
        # After a failure, how soon `ready()` may try a real write again. A local probe is cheap and
        # fails fast, so every call may try (recovery is seen at once); a PostgreSQL one may wait on
        # the network, so calls in between are refused from the remembered failure.
        self.reprobe_s = reprobe_s if reprobe_s is not None else (0.5 if dsn else 0.0)
        self._lock_path = home / "audit.lock"
        self._lock_fd: int | None = None
        self._thread_lock = threading.Lock()
        self._failure: str | None = None
        self._failed_at = 0.0
        self._probed = False
        self._errors = _write_errors(uses_postgres=bool(dsn) or any(isinstance(c, CheckpointTable)
                                                                     for c in self.checkpoints))

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        # The head file must move with the log even when several servers share SOPHIA_HOME.
        with self._thread_lock:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- writing ----------------------------------------------------------------------------

    def append(self, event: AuditEvent) -> dict[str, Any]:
        return self.append_many([event])[0]

    def append_many(self, events: list[AuditEvent]) -> list[dict[str, Any]]:
        """Append `events` in order, in one transaction; AuditUnavailable if they cannot be written.

        Either every record is committed with its head or none is. Checkpoints (append-only, they
        cannot be taken back) follow the commit: if one fails, the records stand (they are valid)
        and this still raises, because the log is not kept as promised until a write fully succeeds.
        """
        batch = [record_fields(e) for e in events]
        committed = False
        try:
            with self._process_lock():
                key = self.keyring.current()
                records = self._backend.append(batch, key)
                committed = True
                for checkpoint in self.checkpoints:
                    checkpoint.write(records[-1]["seq"], records[-1]["entry_hash"], key)
        except self._errors as exc:
            reason = unavailable_reason(exc)
            if committed:
                reason += " (the records were written; the checkpoint was not)"
            self._fail(reason, exc)
            raise AuditUnavailable(reason) from exc
        self._failure, self._probed = None, True
        return records

    def _fail(self, reason: str, exc: BaseException) -> None:
        self._failure, self._failed_at = reason, time.monotonic()
        log.error("audit write failed: %s (%s: %s)", reason, type(exc).__name__, redact(str(exc)))

    def ready(self) -> None:
        """Raise AuditUnavailable unless a record could be written now. Cheap enough for every call:
        a flag and one statvfs while healthy (~10 µs here); after a failure, a real probe write (at
        most every `reprobe_s`)."""
        if self._failure is not None or not self._probed:
            if self._failure is not None and time.monotonic() - self._failed_at < self.reprobe_s:
                raise AuditUnavailable(self._failure)
            self._probe()
        elif isinstance(self._backend, _PostgresBackend) and not self._backend.usable():
            self._probe()
        try:
            free = self._backend.free_bytes()
        except OSError as exc:
            raise AuditUnavailable(unavailable_reason(exc)) from exc
        if free is not None and free < self.min_free_bytes:
            raise AuditUnavailable(
                f"less than {self.min_free_bytes // (1024 * 1024)} MiB free where the audit log is written "
                "(SOPHIA_AUDIT_MIN_FREE_BYTES)"
            )

    def _probe(self) -> None:
        try:
            with self._process_lock():
                self._backend.probe()
                if self._head is not None:
                    self._head.open()
                if not self.keyring.can_create():
                    raise PermissionError(errno.EACCES, "the audit key cannot be created")
                for checkpoint in self.checkpoints:
                    checkpoint.probe()
        except self._errors as exc:
            reason = unavailable_reason(exc)
            self._fail(reason, exc)
            raise AuditUnavailable(reason) from exc
        self._failure, self._probed = None, True

    @property
    def last_failure(self) -> str | None:
        """Why the last write or probe failed (None once one succeeded since)."""
        return self._failure

    def rotate_key(self, principal: str = "admin") -> tuple[str | None, str]:
        """Seal new records with a new key (old keys stay for verification); the rotation is itself
        recorded, sealed with the new key. Returns (old key id, new key id)."""
        try:
            old, new = self.keyring.rotate()
        except KeyringError:
            raise
        except OSError as exc:
            raise AuditUnavailable(unavailable_reason(exc)) from exc
        self.append(AuditEvent(
            principal=principal, principal_kind="local", role="admin", server="audit", tool="rotate-key",
            arguments={"old_key_id": old, "new_key_id": new.key_id}, outcome=Outcome.OK, error_code=None,
            duration_ms=0.0, correlation_id="",
        ))
        return old, new.key_id

    # -- reading ----------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        return self._backend.rows() or []

    def since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Up to `limit` records with a seq above `seq`, in order (what a follower of the log reads next)."""
        return self._backend.since(seq, limit)

    def last_seq(self) -> int:
        """The seq of the last record (0 for an empty or missing log)."""
        return self._backend.last_seq()

    def tail(self, n: int) -> list[dict[str, Any]]:
        return self.records()[-n:] if n > 0 else []

    def verify(self) -> VerifyReport:
        return verify_log(self)

    def snapshot(self) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
        """The stored rows (None when the log does not exist) and the head, as one consistent read."""
        if isinstance(self._backend, _PostgresBackend):
            return self._backend.snapshot()
        assert self.head_path is not None
        return self._backend.rows(), read_head(self.head_path)

    @property
    def backend_label(self) -> str:
        return "the PostgreSQL audit table" if self.dsn else "the audit database"

    def close(self) -> None:
        self._backend.close()
        if self._head is not None:
            self._head.close()
        for checkpoint in self.checkpoints:
            checkpoint.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _write_errors(*, uses_postgres: bool) -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)
    if uses_postgres:
        from .postgres_driver import import_psycopg

        errors += (import_psycopg("audit_dsn (SOPHIA_AUDIT_DSN) or audit_checkpoint_dsn").Error,)
    return errors


