"""Checkpoints of the audit head kept where the log's writer cannot rewrite them alone.

A checkpoint is an append-only list of sealed (seq, hash) pairs. The writer adds one after each
commit; `verify` demands that the log still holds every pair, so a truncated, recomputed or wiped
log is reported once a checkpoint names it. What makes a store one the writer cannot rewrite is
outside this code: a file with the append-only attribute (`chattr +a`, set by root; even its owner
can then only append), or a PostgreSQL table owned by another role on which the writer's role has
only SELECT and INSERT (`checkpoint_table_sql`). `protection()` says when that is not so.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from .audit_keys import AuditKey

CHECKPOINT_TABLE = "sophia_audit_checkpoint"
_FS_IOC_GETFLAGS = 0x80086601
_FS_APPEND_FL = 0x00000020


def checkpoint_message(seq: int, entry_hash: str, key_id: str, ts: float) -> bytes:
    return f"sophia audit checkpoint\0{seq}\0{entry_hash}\0{key_id}\0{ts!r}".encode()


def sealed_checkpoint(seq: int, entry_hash: str, key: AuditKey) -> dict[str, Any]:
    ts = round(time.time(), 6)
    return {"seq": seq, "hash": entry_hash, "key_id": key.key_id, "ts": ts,
            "mac": key.seal(checkpoint_message(seq, entry_hash, key.key_id, ts))}


class Checkpoint(Protocol):
    label: str

    def write(self, seq: int, entry_hash: str, key: AuditKey) -> None: ...
    def probe(self) -> None: ...
    def entries(self) -> list[dict[str, Any]] | None: ...
    def protection(self) -> str | None: ...
    def close(self) -> None: ...


class CheckpointFile:
    """One JSON line per checkpoint, appended (O_APPEND: one write per line, never rewritten)."""

    def __init__(self, path: Path):
        self.path = path
        self.label = f"checkpoint file {path}"
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            return self._fd

    def write(self, seq: int, entry_hash: str, key: AuditKey) -> None:
        line = json.dumps(sealed_checkpoint(seq, entry_hash, key), sort_keys=True, separators=(",", ":")) + "\n"
        data = line.encode()
        written = os.write(self._open(), data)
        if written != len(data):
            raise OSError(28, "short write to the audit checkpoint")

    def probe(self) -> None:
        self._open()

    def entries(self) -> list[dict[str, Any]] | None:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        out: list[dict[str, Any]] = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            out.append(entry if isinstance(entry, dict) else {"unreadable": number})
        return out

    def protection(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            flags = struct.unpack("l", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("l", 0)))[0]
        except OSError:
            flags = 0
        finally:
            os.close(fd)
        if flags & _FS_APPEND_FL:
            return None
        return (f"the {self.label} is not append-only: whoever can write it can rewrite it "
                f"(as root: chattr +a {self.path})")

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def checkpoint_table_sql(writer_role: str) -> str:
    """The SQL an owner role runs once so that `writer_role` can add checkpoints but never change them."""
    role = '"' + writer_role.replace('"', '""') + '"'
    return (
        f"CREATE TABLE {CHECKPOINT_TABLE} (\n"
        "  id BIGSERIAL PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, key_id TEXT NOT NULL,\n"
        "  ts DOUBLE PRECISION NOT NULL, mac TEXT NOT NULL\n);\n"
        f"REVOKE ALL ON {CHECKPOINT_TABLE} FROM PUBLIC;\n"
        f"GRANT SELECT, INSERT ON {CHECKPOINT_TABLE} TO {role};\n"
        f"GRANT USAGE ON SEQUENCE {CHECKPOINT_TABLE}_id_seq TO {role};\n"
    )


class CheckpointTable:
    """Checkpoints as rows of a PostgreSQL table the writer may only insert into and read.

    The writer never creates the table: a table it owned, it could rewrite.
    """

    def __init__(self, dsn: str):
        self._dsn = dsn
        self.label = f"checkpoint table {CHECKPOINT_TABLE}"
        self._conn: Any = None
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        return self._conn

    def write(self, seq: int, entry_hash: str, key: AuditKey) -> None:
        c = sealed_checkpoint(seq, entry_hash, key)
        with self._lock:
            self._connection().execute(
                f"INSERT INTO {CHECKPOINT_TABLE} (seq, hash, key_id, ts, mac) VALUES (%s, %s, %s, %s, %s)",  # noqa: S608
                (c["seq"], c["hash"], c["key_id"], c["ts"], c["mac"]),
            )

    def probe(self) -> None:
        with self._lock:
            row = self._connection().execute(
                "SELECT has_table_privilege(current_user, %s, 'INSERT')", (CHECKPOINT_TABLE,)
            ).fetchone()
        if not row or not row[0]:
            raise PermissionError(f"the writer may not insert into {CHECKPOINT_TABLE}")

    def entries(self) -> list[dict[str, Any]] | None:
        import psycopg

        with self._lock:
            try:
                cur = self._connection().execute(
                    f"SELECT seq, hash, key_id, ts, mac FROM {CHECKPOINT_TABLE} ORDER BY id"  # noqa: S608
                )
            except psycopg.errors.UndefinedTable:
                return None
            rows = cur.fetchall()
        return [{"seq": r[0], "hash": r[1], "key_id": r[2], "ts": r[3], "mac": r[4]} for r in rows]

    def protection(self) -> str | None:
        import psycopg

        with self._lock:
            try:
                row = self._connection().execute(
                    "SELECT t.tableowner = current_user, r.rolsuper, "
                    "has_table_privilege(current_user, %s, 'UPDATE') OR has_table_privilege(current_user, %s, 'DELETE')"
                    " OR has_table_privilege(current_user, %s, 'TRUNCATE') "
                    "FROM pg_tables t, pg_roles r WHERE t.tablename = %s AND r.rolname = current_user",
                    (CHECKPOINT_TABLE, CHECKPOINT_TABLE, CHECKPOINT_TABLE, CHECKPOINT_TABLE),
                ).fetchone()
            except psycopg.Error:
                return None
        if row is None:
            return None
        owner, superuser, rewrite = row
        if owner or superuser or rewrite:
            return (f"the {self.label} can be rewritten by the role that writes it: create it as another "
                    "role and grant the writer only SELECT and INSERT (sophia audit checkpoint-sql)")
        return None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
