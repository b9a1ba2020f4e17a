"""One SQLite write transaction, the same way for every store that keeps state in a local file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import Unavailable


@contextmanager
def write_transaction(conn: sqlite3.Connection, failure: str) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE (one writer at a time, taken up front), COMMIT at the end, ROLLBACK on any error.

    A SQLite error becomes `Unavailable(failure)`, so a caller sees a clear refusal and nothing half-done.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise Unavailable(failure, detail=str(exc)) from exc
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
