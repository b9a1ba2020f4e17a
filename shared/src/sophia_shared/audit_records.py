"""The audit record: its fields, its seal, the events the request path hands over, and errors."""

from __future__ import annotations

import errno
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .audit_keys import AuditKey
from .errors import Unavailable
from .redact import redact

GENESIS = "0" * 64
# Column names are constants of this module, never input: the f-string SQL below is safe.
FIELDS = (
    "seq", "ts", "principal", "principal_kind", "role", "server", "tool", "arguments",
    "outcome", "error_code", "duration_ms", "correlation_id", "prev_hash",
)
SEALED_FIELDS = (*FIELDS, "key_id")
STORED_FIELDS = (*SEALED_FIELDS, "entry_hash")


class Outcome(StrEnum):
    """How a call ended, as its audit record says."""

    OK = "ok"
    ERROR = "error"
    DENIED = "denied"
    INPUT_REQUIRED = "input_required"
    # A destructive call waits for a person's approval (code approval_required); nothing ran.
    PENDING = "pending"
    # The caller went away (or cancelled) before an answer: no answer is sent, and no error code.
    CANCELLED = "cancelled"
    # A record that stands for records the write-behind had to drop.
    GAP = "gap"


GAP_OUTCOME = Outcome.GAP


class AuditUnavailable(Unavailable):
    """No audit record can be written now: the call must not run (or, after it ran, is reported)."""

    def __init__(self, reason: str):
        super().__init__(f"audit unavailable: {reason}")
        self.reason = reason


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(record: dict[str, Any], key: AuditKey | None = None) -> str:
    """The record's seal: HMAC with `key`, or the legacy plain SHA-256 when `key` is None."""
    if key is None:
        return hashlib.sha256(canonical_json({k: record[k] for k in FIELDS}).encode()).hexdigest()
    body = canonical_json({k: record[k] for k in SEALED_FIELDS})
    return key.seal(b"sophia audit record v2\0" + body.encode())


@dataclass
class AuditEvent:
    """One call, as the request path saw it. `arguments` is already a shape (see `argument_shape`)."""

    principal: str
    principal_kind: str
    role: str
    server: str
    tool: str
    arguments: dict[str, Any]
    outcome: Outcome
    error_code: str | None
    duration_ms: float
    correlation_id: str
    ts: float = field(default_factory=time.time)


@dataclass
class VerifyReport:
    records: int
    problems: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def unavailable_reason(exc: BaseException) -> str:
    """A short, path-free reason for a failed audit write (the details go to the server's log)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        reasons = {
            errno.ENOSPC: "no space left where the audit log is written",
            errno.EDQUOT: "the disk quota where the audit log is written is used up",
            errno.EFBIG: "the audit log is over its file size limit",
            errno.EROFS: "the audit log is on a read-only file system",
            errno.EACCES: "permission denied writing the audit log",
            errno.EPERM: "permission denied writing the audit log",
        }
        return reasons.get(exc.errno, f"the audit log cannot be written ({errno.errorcode.get(exc.errno, exc.errno)})")
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        for needle, reason in (
            ("full", "no space left where the audit log is written"),
            ("readonly", "the audit log is read-only"),
            ("unable to open", "the audit log cannot be opened"),
            ("locked", "the audit log is locked by another writer"),
            ("disk i/o", "disk I/O error writing the audit log"),
        ):
            if needle in text:
                return reason
        return f"the audit log cannot be written ({type(exc).__name__})"
    return f"the audit database cannot be written ({type(exc).__name__})"


def gap_event(dropped: int, span: tuple[float, float]) -> AuditEvent:
    return AuditEvent(
        principal="sophia", principal_kind="system", role="admin", server="audit", tool="gap",
        arguments={"dropped": dropped, "first_ts": round(span[0], 6), "last_ts": round(span[1], 6)},
        outcome=GAP_OUTCOME, error_code="records_dropped", duration_ms=0.0, correlation_id="",
    )


def record_fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "ts": round(event.ts, 6),
        "principal": event.principal,
        "principal_kind": event.principal_kind,
        "role": event.role,
        "server": event.server,
        "tool": event.tool,
        "arguments": redact(canonical_json(event.arguments)),
        "outcome": Outcome(event.outcome).value,
        "error_code": event.error_code,
        "duration_ms": round(event.duration_ms, 3),
        "correlation_id": event.correlation_id,
    }
