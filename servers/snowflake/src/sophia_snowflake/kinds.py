"""Statement kinds and the default permissions per role: light, so settings load without sqlglot."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class StatementKind(StrEnum):
    """What a statement does, as far as permissions are concerned."""

    SELECT = "select"
    SHOW = "show"
    DESCRIBE = "describe"
    EXPLAIN = "explain"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    MERGE = "merge"
    DDL = "ddl"
    GRANT = "grant"
    # Never runnable unless an admin setting lists them (see SnowflakeSettings.admin_dangerous_kinds).
    FILE_TRANSFER = "file_transfer"
    COPY = "copy"
    CALL = "call"
    EXECUTE = "execute"
    SCRIPTING = "scripting"
    ALTER_SESSION = "alter_session"
    ALTER_ACCOUNT = "alter_account"
    USE = "use"
    SET = "set"
    TRANSACTION = "transaction"
    SECURITY = "security"


READ_KINDS = frozenset({StatementKind.SELECT, StatementKind.SHOW, StatementKind.DESCRIBE, StatementKind.EXPLAIN})
DML_KINDS = frozenset({StatementKind.INSERT, StatementKind.UPDATE, StatementKind.DELETE, StatementKind.MERGE})
DANGEROUS_KINDS = frozenset(
    {
        StatementKind.FILE_TRANSFER,
        StatementKind.COPY,
        StatementKind.CALL,
        StatementKind.EXECUTE,
        StatementKind.SCRIPTING,
        StatementKind.ALTER_SESSION,
        StatementKind.ALTER_ACCOUNT,
        StatementKind.USE,
        StatementKind.SET,
        StatementKind.TRANSACTION,
        StatementKind.SECURITY,
    }
)

DEFAULT_PERMISSIONS: Mapping[str, frozenset[StatementKind]] = {
    "viewer": READ_KINDS,
    "developer": READ_KINDS,
    "devops": READ_KINDS | DML_KINDS,
    "admin": READ_KINDS | DML_KINDS | {StatementKind.DDL, StatementKind.GRANT},
}
