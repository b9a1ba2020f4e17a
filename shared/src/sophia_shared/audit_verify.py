"""`verify`: walk the audit log and name every break in it, against its keys, head and checkpoints."""

from __future__ import annotations

import hmac
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audit_checkpoint import checkpoint_message
from .audit_keys import AuditKeyring
from .audit_records import GAP_OUTCOME, GENESIS, VerifyReport, entry_hash

if TYPE_CHECKING:
    from .audit import AuditLog

# A checkpoint naming many rewritten records is reported by its first few, then a count.
_MAX_LISTED = 5


@dataclass(frozen=True)
class Anchor:
    """A (seq, hash) that something outside the log remembers: the head or a checkpoint."""

    seq: int
    entry_hash: str
    source: str


@dataclass
class _Walk:
    problems: list[str] = field(default_factory=list)
    legacy: list[int] = field(default_factory=list)
    sealed: int = 0


def verify_log(audit: AuditLog) -> VerifyReport:
    notes: list[str] = []
    try:
        rows, head = audit.snapshot()
    except (OSError, sqlite3.Error) as exc:
        return VerifyReport(0, [f"{audit.backend_label} cannot be read ({type(exc).__name__}: {exc})"])
    anchors: list[Anchor] = []
    problems: list[str] = []
    if head is not None:
        anchors.append(Anchor(int(head.get("seq", 0)), str(head.get("entry_hash", "")), "head"))
    if not audit.checkpoints:
        notes.append("no checkpoint outside the log is configured (SOPHIA_AUDIT_CHECKPOINT_FILE or "
                     "SOPHIA_AUDIT_CHECKPOINT_DSN): whoever can write the log and its head can truncate or wipe it "
                     "unnoticed")
    for checkpoint in audit.checkpoints:
        entries = checkpoint.entries()
        if entries is None:
            if rows:
                problems.append(f"the {checkpoint.label} is missing: truncation cannot be ruled out")
            continue
        found, bad = checkpoint_anchors(entries, audit.keyring, checkpoint.label)
        anchors.extend(found)
        problems.extend(bad)
        warning = checkpoint.protection()
        if warning:
            notes.append(warning)
    # A PostgreSQL log from before its head table has no head until its first sealed record.
    sealed = any(r.get("key_id") is not None for r in rows or [])
    report = verify_records(rows or [], anchors, keyring=audit.keyring, head_required=audit.dsn is None or sealed,
                            head_is_file=audit.dsn is None)
    report.problems[:0] = problems
    report.notes[:0] = notes
    evidence = _evidence_of_a_log(anchors, audit.keyring)
    if not rows and evidence:
        state = "missing" if rows is None else "empty"
        how = "deleted" if rows is None else "wiped"
        report.problems = [p for p in report.problems if not p.startswith("truncated")]
        report.problems.insert(0, f"{audit.backend_label} is {state}, but {evidence}: it was {how}")
    return report


def _evidence_of_a_log(anchors: list[Anchor], keyring: AuditKeyring) -> str | None:
    named = max((a for a in anchors if a.seq > 0), key=lambda a: a.seq, default=None)
    if named is not None:
        return f"the {named.source} names seq={named.seq}"
    if not keyring.supplied and keyring.exists():
        return f"its key file {keyring.path} exists (the first record creates it)"
    return None


def read_head(path: Path) -> dict[str, Any] | None:
    try:
        head = json.loads(path.read_text().strip() or "null")
    except (OSError, ValueError):
        return None
    return head if isinstance(head, dict) else None


def checkpoint_anchors(entries: list[dict[str, Any]], keyring: AuditKeyring,
                       label: str) -> tuple[list[Anchor], list[str]]:
    """The checkpoint entries whose seal holds, and a problem for each one that does not."""
    anchors: list[Anchor] = []
    problems: list[str] = []
    for number, entry in enumerate(entries, 1):
        try:
            seq, digest, key_id, ts, mac = (int(entry["seq"]), str(entry["hash"]), str(entry["key_id"]),
                                            float(entry["ts"]), str(entry["mac"]))
        except (KeyError, TypeError, ValueError):
            problems.append(f"{label} entry {number}: unreadable")
            continue
        key = keyring.get(key_id)
        if key is None:
            problems.append(f"{label} entry {number}: sealed with key {key_id}, which the keyring does not hold")
            continue
        if not hmac.compare_digest(key.seal(checkpoint_message(seq, digest, key_id, ts)), mac):
            problems.append(f"{label} entry {number}: forged (its seal does not match)")
            continue
        anchors.append(Anchor(seq, digest, label))
    return anchors, problems


def verify_records(rows: list[dict[str, Any]], anchors: list[Anchor] | dict[str, Any] | None, *,
                   keyring: AuditKeyring | None = None, head_required: bool = True,
                   head_is_file: bool = True) -> VerifyReport:
    """Walk the log in storage order and name every break in the chain, then check the anchors."""
    if isinstance(anchors, dict):  # a bare head, as earlier callers passed it
        anchors = [Anchor(int(anchors.get("seq", 0)), str(anchors.get("entry_hash", "")), "head")]
    anchors = anchors or []
    walk = _walk_chain(rows, keyring)
    problems = walk.problems
    problems.extend(_check_anchors(rows, anchors))
    if head_required and rows and not any(a.source == "head" for a in anchors):
        problems.append("the head file is missing: truncation cannot be ruled out" if head_is_file
                        else "the head is missing: truncation cannot be ruled out")
    notes: list[str] = []
    if walk.legacy:
        covered = ("pinned by the first sealed record after them" if walk.sealed
                   else "no sealed record follows them yet")
        notes.append(f"records seq={_ranges(walk.legacy)}: written before audit keys (plain SHA-256), {covered}")
    if keyring is not None and not keyring.supplied and keyring.exists() and rows and not walk.sealed:
        problems.append("no record is sealed, but the audit key exists (the first sealed record creates it): "
                        "the sealed records were removed or rewritten")
    return VerifyReport(records=len(rows), problems=problems, notes=notes)


def _walk_chain(rows: list[dict[str, Any]], keyring: AuditKeyring | None) -> _Walk:
    walk = _Walk()
    problems = walk.problems
    seqs = [r["seq"] for r in rows]
    seen: set[int] = set()
    expected, prev_hash = 1, GENESIS
    for index, row in enumerate(rows):
        seq = row["seq"]
        key_id = row.get("key_id")
        if key_id is None:
            if walk.sealed:
                problems.append(f"record seq={seq}: forged (an unsealed record after sealed ones)")
            else:
                walk.legacy.append(seq)
            if entry_hash(row) != row["entry_hash"]:
                problems.append(f"record seq={seq}: modified (its content does not match its hash)")
        else:
            walk.sealed += 1
            key = keyring.get(key_id) if keyring is not None else None
            if key is None:
                problems.append(f"record seq={seq}: sealed with key {key_id}, which the keyring does not hold "
                                "(forged, or the key was lost)")
            elif not hmac.compare_digest(entry_hash(row, key), str(row["entry_hash"])):
                problems.append(f"record seq={seq}: modified (its content does not match its hash)")
        if row.get("outcome") == GAP_OUTCOME:
            problems.append(f"record seq={seq}: {_gap_text(row)}")
        if seq in seen:
            problems.append(f"record seq={seq}: inserted (a second record claims this sequence number)")
            continue
        seen.add(seq)
        if seq == expected:
            if row["prev_hash"] != prev_hash:
                problems.append(f"record seq={seq}: inserted or replaced (its prev_hash does not match seq={seq - 1})")
        elif seq > expected:
            later = seqs[index + 1:]
            missing = [s for s in range(expected, seq) if s not in later]
            if missing:
                problems.append(f"records seq={_ranges(missing)}: deleted")
            if len(missing) < seq - expected:
                problems.append(f"record seq={seq}: reordered (stored before seq={expected})")
        else:
            problems.append(f"record seq={seq}: reordered (stored after seq={expected - 1})")
        expected = max(expected, seq + 1)
        prev_hash = row["entry_hash"]
    return walk


def _check_anchors(rows: list[dict[str, Any]], anchors: list[Anchor]) -> list[str]:
    """Each anchor is a lower bound: the log must still hold its record, with its hash."""
    problems: list[str] = []
    by_seq: dict[int, str] = {}
    for row in rows:
        by_seq.setdefault(int(row["seq"]), str(row["entry_hash"]))
    last_seq = max(by_seq, default=0)
    for source in dict.fromkeys(a.source for a in anchors):
        mine = [a for a in anchors if a.source == source]
        beyond = max((a.seq for a in mine if a.seq > last_seq), default=None)
        if beyond is not None:
            problems.append(f"truncated: the {source} names seq={beyond} but the log ends at seq={last_seq}")
        replaced = sorted({a.seq for a in mine if a.seq in by_seq and by_seq[a.seq] != a.entry_hash})
        if replaced:
            listed = ", ".join(str(s) for s in replaced[:_MAX_LISTED])
            more = f" and {len(replaced) - _MAX_LISTED} more" if len(replaced) > _MAX_LISTED else ""
            noun = "record" if len(replaced) == 1 else "records"
            problems.append(f"{noun} seq={listed}{more}: replaced (the hash differs from the {source}'s)")
    return problems


def _gap_text(row: dict[str, Any]) -> str:
    try:
        args = json.loads(row["arguments"])
        dropped = int(args["dropped"])
    except (ValueError, KeyError, TypeError):
        return "records lost (a gap record the write-behind left)"
    return f"records lost: {dropped} record(s) dropped by the write-behind (a gap record)"


def _ranges(values: list[int]) -> str:
    values = sorted(values)
    parts: list[str] = []
    start = prev = values[0]
    for v in values[1:]:
        if v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        start = prev = v
    parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(parts)
