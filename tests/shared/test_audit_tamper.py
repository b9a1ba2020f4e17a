"""Tampering needs more than file access: each forgery the review found is now reported, on both backends.

The attacker here can rewrite the log and its head (the database, the head file) but has neither
the HMAC key nor write access to the checkpoint (an append-only file, or a PostgreSQL table of
another role). Without a checkpoint configured, what stays undetectable is shown too, with the
note `verify` prints about it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sophia_shared.audit import FIELDS, GENESIS, AuditEvent, AuditKey, AuditLog, Outcome, entry_hash
from sophia_shared.audit_checkpoint import CheckpointFile, CheckpointTable, checkpoint_table_sql
from sophia_shared.audit_keys import KeyringError
from sophia_shared.settings import SuiteSettings

HOST_MODULE = "sophia_host"
BACKENDS = ["sqlite", "postgres"]


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        principal=f"user{i % 3}", principal_kind="token", role="developer", server="demo", tool=f"tool_{i}",
        arguments={"n": "number"}, outcome=Outcome.OK, error_code=None, duration_ms=1.5, correlation_id=f"c{i}",
    )


@dataclass
class Setup:
    """One audit log under attack: how to open it (as the servers and `sophia audit verify` do) and
    how the attacker reaches its storage."""

    backend: str
    home: Path
    dsn: str | None
    checkpoint: Path | None
    suite_overrides: dict[str, Any] = field(default_factory=dict)

    def open(self, **overrides: Any) -> AuditLog:
        settings = {**self.suite_overrides, **overrides}
        if self.checkpoint is not None:
            settings.setdefault("audit_checkpoint_file", self.checkpoint)
        return AuditLog(dsn=self.dsn, home=self.home, suite=SuiteSettings(**settings))

    @property
    def table(self) -> str:
        return "sophia_audit" if self.dsn else "audit"

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        if self.dsn is None:
            conn = sqlite3.connect(self.home / "audit.sqlite3", isolation_level=None)
            try:
                conn.execute(statement, params)
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as pg:
            pg.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]

    def rewrite_head(self, seq: int, digest: str) -> None:
        if self.dsn is None:
            (self.home / "audit.head").write_text(json.dumps({"seq": seq, "entry_hash": digest}).ljust(160))
        else:
            self.sql("UPDATE sophia_audit_head SET seq = ?, entry_hash = ?", (seq, digest))

    def delete_head(self) -> None:
        if self.dsn is None:
            (self.home / "audit.head").unlink()
        else:
            self.sql("DELETE FROM sophia_audit_head")

    def delete_log(self) -> None:
        if self.dsn is None:
            for suffix in ("", "-wal", "-shm"):
                (self.home / f"audit.sqlite3{suffix}").unlink(missing_ok=True)
        else:
            self.sql("DROP TABLE sophia_audit")

    @property
    def label(self) -> str:
        return "the PostgreSQL audit table" if self.dsn else "the audit database"


@pytest.fixture
def make_setup(sophia_home: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Setup]:
    def make(backend: str, *, checkpoint: bool = True) -> Setup:
        dsn = request.getfixturevalue("postgres_database_factory")("tamper") if backend == "postgres" else None
        path = None
        if checkpoint:
            (tmp_path / "checkpoints").mkdir(exist_ok=True)
            path = tmp_path / "checkpoints" / "audit.checkpoint"
        return Setup(backend, sophia_home, dsn, path)

    return make


def _written(setup: Setup, n: int = 10) -> list[dict[str, Any]]:
    audit = setup.open()
    for i in range(1, n + 1):
        audit.append(_event(i))
    rows = audit.records()
    audit.close()
    return rows


def _problems(setup: Setup, **overrides: Any) -> list[str]:
    audit = setup.open(**overrides)
    try:
        return audit.verify().problems
    finally:
        audit.close()


def _checkpoint_label(setup: Setup) -> str:
    return f"checkpoint file {setup.checkpoint}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncation_with_a_rewritten_head_is_reported(backend: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(backend)
    rows = _written(setup)
    setup.sql(f"DELETE FROM {setup.table} WHERE seq > 7")
    setup.rewrite_head(7, rows[6]["entry_hash"])
    assert _problems(setup) == [f"truncated: the {_checkpoint_label(setup)} names seq=10 but the log ends at seq=7"]


def test_without_a_checkpoint_a_rewritten_head_hides_truncation_and_verify_says_so(
    make_setup: Callable[..., Setup],
) -> None:
    setup = make_setup("sqlite", checkpoint=False)
    rows = _written(setup)
    setup.sql("DELETE FROM audit WHERE seq > 7")
    setup.rewrite_head(7, rows[6]["entry_hash"])
    report = setup.open().verify()
    assert report.intact  # the limit of a head its writer can rewrite...
    assert any("no checkpoint outside the log is configured" in n for n in report.notes)  # ...said plainly


def _recompute(setup: Setup, rows: list[dict[str, Any]], start: int, key: AuditKey | None, *,
               unsealed: bool = False) -> str:
    """Re-link rows from seq=`start` on as an attacker would: plain SHA-256, or an HMAC with a key of
    their own under the real key id. Returns the new last hash."""
    prev = rows[start - 2]["entry_hash"] if start > 1 else GENESIS
    for row in rows[start - 1:]:
        row = {**row, "prev_hash": prev}
        if unsealed:
            row["key_id"] = None
        row["entry_hash"] = prev = entry_hash(row, key)
        setup.sql(f"UPDATE {setup.table} SET principal=?, prev_hash=?, entry_hash=?, key_id=? WHERE id=?",
                  (row["principal"], row["prev_hash"], row["entry_hash"], row["key_id"], row["id"]))
    return prev


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("forgery", ["plain-sha256", "own-key", "unsealed"])
def test_an_edited_row_with_every_hash_recomputed_is_reported(
    backend: str, forgery: str, make_setup: Callable[..., Setup],
) -> None:
    setup = make_setup(backend)
    rows = _written(setup)
    rows[3]["principal"] = "mallory"
    key_id = rows[0]["key_id"]
    key = AuditKey(key_id, secrets.token_bytes(32)) if forgery == "own-key" else None
    last = _recompute(setup, rows, 4, key, unsealed=forgery == "unsealed")
    setup.rewrite_head(10, last)
    problems = _problems(setup)
    if forgery == "unsealed":
        assert "record seq=4: forged (an unsealed record after sealed ones)" in problems
    else:
        assert "record seq=4: modified (its content does not match its hash)" in problems
    assert f"records seq=4, 5, 6, 7, 8 and 2 more: replaced (the hash differs from the {_checkpoint_label(setup)}'s)" \
        in problems


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_whole_log_recomputed_without_seals_is_reported(backend: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(backend, checkpoint=False)
    rows = _written(setup, 5)
    last = _recompute(setup, rows, 1, None, unsealed=True)
    setup.rewrite_head(5, last)
    assert _problems(setup) == [
        "no record is sealed, but the audit key exists (the first sealed record creates it): "
        "the sealed records were removed or rewritten"
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("forgery", ["own-key", "unsealed"])
def test_an_appended_forged_record_is_reported(backend: str, forgery: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(backend)
    rows = _written(setup)
    forged = {**rows[-1], "seq": 11, "prev_hash": rows[-1]["entry_hash"], "tool": "demo_drop", "correlation_id": "x"}
    forged.pop("id")
    if forgery == "unsealed":
        forged["key_id"] = None
        forged["entry_hash"] = entry_hash(forged)
    else:
        forged["entry_hash"] = entry_hash(forged, AuditKey(forged["key_id"], secrets.token_bytes(32)))
    columns = [*FIELDS, "entry_hash", "key_id"]
    setup.sql(f"INSERT INTO {setup.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
              tuple(forged[c] for c in columns))
    setup.rewrite_head(11, forged["entry_hash"])
    expected = ("record seq=11: forged (an unsealed record after sealed ones)" if forgery == "unsealed"
                else "record seq=11: modified (its content does not match its hash)")
    assert _problems(setup) == [expected]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wiped_log_is_reported(backend: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(backend)
    _written(setup)
    setup.sql(f"DELETE FROM {setup.table}")
    setup.delete_head()
    assert _problems(setup) == [
        f"{setup.label} is empty, but the {_checkpoint_label(setup)} names seq=10: it was wiped"
    ]
    # The servers go on writing into the wiped log: the checkpoint still tells.
    audit = setup.open()
    audit.append(_event(11))
    audit.append(_event(12))
    problems = audit.verify().problems
    assert f"truncated: the {_checkpoint_label(setup)} names seq=10 but the log ends at seq=2" in problems
    assert f"records seq=1, 2: replaced (the hash differs from the {_checkpoint_label(setup)}'s)" in problems
    audit.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_deleted_log_is_reported(backend: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(backend)
    _written(setup)
    setup.delete_log()
    setup.delete_head()
    assert _problems(setup) == [
        f"{setup.label} is missing, but the {_checkpoint_label(setup)} names seq=10: it was deleted"
    ]


def test_a_database_deleted_under_a_running_writer_is_not_written_unlinked(make_setup: Callable[..., Setup]) -> None:
    setup = make_setup("sqlite")
    audit = setup.open()
    for i in range(1, 6):
        audit.append(_event(i))
    setup.delete_log()
    setup.delete_head()
    audit.append(_event(6))  # the same process goes on: into a new file at the path, not the deleted one
    assert [r["tool"] for r in setup.open().records()] == ["tool_6"]
    problems = _problems(setup)
    assert f"truncated: the {_checkpoint_label(setup)} names seq=5 but the log ends at seq=1" in problems
    audit.close()


def test_a_wiped_log_is_reported_by_its_key_even_without_a_checkpoint(make_setup: Callable[..., Setup]) -> None:
    setup = make_setup("sqlite", checkpoint=False)
    _written(setup)
    setup.delete_log()
    setup.delete_head()
    assert _problems(setup) == [
        f"the audit database is missing, but its key file {setup.home / 'keys' / 'audit.key'} exists "
        "(the first record creates it): it was deleted"
    ]


def test_a_forged_checkpoint_line_is_reported(make_setup: Callable[..., Setup]) -> None:
    setup = make_setup("sqlite")
    rows = _written(setup, 3)
    assert setup.checkpoint is not None
    line = json.loads(setup.checkpoint.read_text().splitlines()[-1])
    line.update(seq=2, hash=rows[1]["entry_hash"], mac="0" * 64)
    with setup.checkpoint.open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    assert _problems(setup) == [f"{_checkpoint_label(setup)} entry 4: forged (its seal does not match)"]


def test_an_untouched_checkpointed_log_verifies_on_both_stores(make_setup: Callable[..., Setup]) -> None:
    setup = make_setup("sqlite")
    _written(setup)
    report = setup.open().verify()
    assert report.intact, report.problems
    assert report.records == 10
    assert setup.checkpoint is not None and len(setup.checkpoint.read_text().splitlines()) == 10


# -- keys: rotation, supplied keys, several hosts ---------------------------------------------


def _keyring_file(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "keys" / "audit.key").read_text())
    return data


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_keeps_old_records_verifiable(backend: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(backend)
    audit = setup.open()
    for i in range(1, 4):
        audit.append(_event(i))
    old, new = audit.rotate_key(principal="ops")
    for i in range(4, 7):
        audit.append(_event(i))
    rows = audit.records()
    assert {r["key_id"] for r in rows[:3]} == {old}
    assert {r["key_id"] for r in rows[3:]} == {new} and old != new
    assert (rows[3]["server"], rows[3]["tool"], rows[3]["principal"]) == ("audit", "rotate-key", "ops")
    assert [k["id"] for k in _keyring_file(setup.home)["keys"]] == [old, new]
    report = setup.open().verify()
    assert report.intact, report.problems
    audit.close()


def test_a_record_sealed_with_a_key_the_keyring_lost_is_reported(make_setup: Callable[..., Setup]) -> None:
    setup = make_setup("sqlite", checkpoint=False)
    audit = setup.open()
    audit.append(_event(1))
    old, _ = audit.rotate_key()
    audit.append(_event(2))
    audit.close()
    ring = _keyring_file(setup.home)
    ring["keys"] = [k for k in ring["keys"] if k["id"] != old]
    (setup.home / "keys" / "audit.key").write_text(json.dumps(ring))
    assert _problems(setup) == [
        f"record seq=1: sealed with key {old}, which the keyring does not hold (forged, or the key was lost)"
    ]


def test_sophia_audit_rotate_key_command(sophia_home: Path) -> None:
    audit = AuditLog(home=sophia_home)
    audit.append(_event(1))
    old = audit.records()[0]["key_id"]
    done = subprocess.run([sys.executable, "-m", HOST_MODULE, "audit", "rotate-key"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"(was {old})" in done.stdout
    audit.append(_event(2))
    assert audit.records()[-1]["key_id"] != old
    assert audit.verify().intact


def test_supplied_keys_rotate_through_previous_keys(sophia_home: Path) -> None:
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    one = AuditLog(home=sophia_home, suite=SuiteSettings(audit_key=SecretStr(first)))
    for i in range(1, 4):
        one.append(_event(i))
    with pytest.raises(KeyringError, match="SOPHIA_AUDIT_PREVIOUS_KEYS"):
        one.rotate_key()
    two = AuditLog(home=sophia_home, suite=SuiteSettings(audit_key=SecretStr(second),
                                                         audit_previous_keys=[SecretStr(first)]))
    for i in range(4, 7):
        two.append(_event(i))
    assert two.verify().intact, two.verify().problems
    forgetful = AuditLog(home=sophia_home, suite=SuiteSettings(audit_key=SecretStr(second)))
    problems = forgetful.verify().problems
    assert len(problems) == 3 and all("which the keyring does not hold" in p for p in problems)
    assert not (sophia_home / "keys" / "audit.key").exists()  # a supplied key never touches the keyring file
    for audit in (one, two, forgetful):
        audit.close()


def test_a_short_supplied_key_is_refused_at_start() -> None:
    from sophia_shared.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as caught:
        load_settings(SuiteSettings, audit_key="short")
    assert str(caught.value).startswith("bad setting SOPHIA_AUDIT_KEY (audit_key)")
    assert "at least 32 characters" in str(caught.value)


def test_two_hosts_with_one_supplied_key_keep_one_chain_on_postgres(
    postgres_database_factory: Callable[[str], str], tmp_path: Path,
) -> None:
    dsn = postgres_database_factory("two_hosts")
    key = SecretStr(secrets.token_hex(32))
    homes = [tmp_path / "host-a", tmp_path / "host-b"]
    logs = []
    for home in homes:
        home.mkdir()
        logs.append(AuditLog(dsn=dsn, home=home, suite=SuiteSettings(audit_key=key)))
    for i in range(1, 41):
        logs[i % 2].append(_event(i))
    for audit in logs:
        report = audit.verify()
        assert report.intact, report.problems
        assert report.records == 40
    stranger = AuditLog(dsn=dsn, home=homes[0], suite=SuiteSettings(audit_key=SecretStr(secrets.token_hex(32))))
    assert len(stranger.verify().problems) == 40  # a host with another key cannot vouch for them
    for audit in [*logs, stranger]:
        audit.close()


# -- a log from before keys -------------------------------------------------------------------


_LEGACY_DDL = {
    "sqlite": "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL, ts REAL NOT NULL, "
              "principal TEXT NOT NULL, principal_kind TEXT NOT NULL, role TEXT NOT NULL, server TEXT NOT NULL, "
              "tool TEXT NOT NULL, arguments TEXT NOT NULL, outcome TEXT NOT NULL, error_code TEXT, "
              "duration_ms REAL NOT NULL, correlation_id TEXT NOT NULL, prev_hash TEXT NOT NULL, "
              "entry_hash TEXT NOT NULL)",
    "postgres": "CREATE TABLE sophia_audit (id BIGSERIAL PRIMARY KEY, seq BIGINT NOT NULL, ts DOUBLE PRECISION "
                "NOT NULL, principal TEXT NOT NULL, principal_kind TEXT NOT NULL, role TEXT NOT NULL, server TEXT "
                "NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL, outcome TEXT NOT NULL, error_code TEXT, "
                "duration_ms DOUBLE PRECISION NOT NULL, correlation_id TEXT NOT NULL, prev_hash TEXT NOT NULL, "
                "entry_hash TEXT NOT NULL)",
}


def _legacy_log(setup: Setup, n: int) -> list[dict[str, Any]]:
    """A log as the version before keys wrote it: plain SHA-256 chain, no key_id column."""
    setup.sql(_LEGACY_DDL[setup.backend])
    prev, rows = GENESIS, []
    for seq in range(1, n + 1):
        row: dict[str, Any] = {"seq": seq, "ts": 1700000000.0 + seq, "principal": "old", "principal_kind": "token",
                               "role": "viewer", "server": "demo", "tool": f"old_{seq}", "arguments": "{}",
                               "outcome": "ok", "error_code": None, "duration_ms": 1.0, "correlation_id": "c",
                               "prev_hash": prev}
        row["entry_hash"] = prev = entry_hash(row)
        columns = [*FIELDS, "entry_hash"]
        setup.sql(f"INSERT INTO {setup.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                  tuple(row[c] for c in columns))
        rows.append(row)
    if setup.dsn is None:  # that version kept the head in a file (for PostgreSQL too; now it is a table)
        setup.rewrite_head(n, prev)
    return rows


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_log_from_before_keys_goes_on_as_a_sealed_segment(backend: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(backend, checkpoint=False)
    legacy = _legacy_log(setup, 3)
    before = setup.open().verify()
    assert before.intact, before.problems
    assert "no sealed record follows them yet" in " ".join(before.notes)
    audit = setup.open()
    audit.append(_event(4))
    audit.append(_event(5))
    rows = audit.records()
    assert [r["key_id"] is None for r in rows] == [True, True, True, False, False]
    assert rows[3]["prev_hash"] == legacy[-1]["entry_hash"]  # one chain across the migration
    report = audit.verify()
    assert report.intact, report.problems
    assert any(n.startswith("records seq=1-3: written before audit keys") and "pinned" in n for n in report.notes)
    # Rewriting the legacy part, even with every plain hash recomputed, breaks the sealed link.
    rows[1]["principal"] = "mallory"
    prev = rows[0]["entry_hash"]
    for row in rows[1:3]:
        row["prev_hash"] = prev
        row["entry_hash"] = prev = entry_hash(row)
        setup.sql(f"UPDATE {setup.table} SET principal=?, prev_hash=?, entry_hash=? WHERE id=?",
                  (row["principal"], row["prev_hash"], row["entry_hash"], row["id"]))
    problems = audit.verify().problems
    assert "record seq=4: inserted or replaced (its prev_hash does not match seq=3)" in problems
    audit.close()


# -- checkpoints the writer cannot rewrite ------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sophia-checkpoint-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for item in path.rglob("*"):
            subprocess.run(["chattr", "-a", str(item)], capture_output=True, check=False, timeout=30)
        shutil.rmtree(path, ignore_errors=True)


_REWRITE_SCRIPT = r"""
import json, os, sys
from pathlib import Path
from sophia_shared.audit import AuditKey
from sophia_shared.audit_checkpoint import CheckpointFile

path = Path(sys.argv[1])
out = {"uid": os.geteuid()}
def attempt(name, fn):
    try:
        fn()
        out[name] = "done"
    except OSError as exc:
        out[name] = exc.strerror
attempt("append", lambda: CheckpointFile(path).write(99, "f" * 64, AuditKey("k-test", b"k" * 32)))
attempt("truncate", lambda: os.truncate(path, 0))
attempt("overwrite", lambda: os.close(os.open(path, os.O_WRONLY)))
attempt("replace", lambda: (path.with_name("x").write_text(""), os.replace(path.with_name("x"), path)))
attempt("unlink", lambda: os.unlink(path))
out["clear_flag"] = __import__("subprocess").run(["chattr", "-a", str(path)], capture_output=True).returncode
print(json.dumps(out))
"""


def test_an_append_only_checkpoint_file_cannot_be_rewritten_by_its_writer(shared_dir: Path) -> None:
    """`chattr +a` (set by root) leaves the writer — even as the file's owner — only appending."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (to set the append-only attribute) and setpriv (to run the writer as nobody)")
    checkpoints = shared_dir / "checkpoints"
    checkpoints.mkdir()
    path = checkpoints / "audit.checkpoint"
    CheckpointFile(path).write(1, "a" * 64, AuditKey("k-test", b"k" * 32))
    for item in (checkpoints, path):
        os.chown(item, 65534, 65534)  # the writer owns the file and its directory...
    flagged = subprocess.run(["chattr", "+a", str(path)], capture_output=True, text=True, check=False, timeout=30)
    if flagged.returncode != 0:
        pytest.skip(f"this file system has no append-only attribute: {flagged.stderr.strip()}")
    assert CheckpointFile(path).protection() is None
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                           _REWRITE_SCRIPT, str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["uid"] == 65534
    assert out["append"] == "done"  # ...and still can only add lines
    for action in ("truncate", "overwrite", "replace", "unlink"):
        assert out[action] == "Operation not permitted", (action, out)
    assert out["clear_flag"] != 0
    assert len(path.read_text().splitlines()) == 2


def test_a_checkpoint_file_that_is_not_append_only_is_noted(make_setup: Callable[..., Setup]) -> None:
    setup = make_setup("sqlite")
    _written(setup, 2)
    notes = setup.open().verify().notes
    assert any("is not append-only" in n and "chattr +a" in n for n in notes)


@pytest.fixture
def checkpoint_roles(postgres_dsn: str, postgres_database_factory: Callable[[str], str]) -> Iterator[tuple[str, str]]:
    """A database whose checkpoint table belongs to one role while the writer logs in as another."""
    import psycopg

    dsn = postgres_database_factory("checkpoint_roles")
    suffix = secrets.token_hex(4)
    owner, writer = f"ckpt_owner_{suffix}", f"audit_writer_{suffix}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{owner}" NOLOGIN')
        admin.execute(f'CREATE ROLE "{writer}" LOGIN')
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f'GRANT CREATE ON SCHEMA public TO "{owner}"')
        db.execute(f'SET ROLE "{owner}"')
        db.execute(checkpoint_table_sql(writer))  # type: ignore[arg-type]
    writer_dsn = dsn.replace("postgresql://postgres@", f"postgresql://{writer}@")
    yield dsn, writer_dsn


def test_a_checkpoint_table_of_another_role_cannot_be_rewritten_by_the_writer(
    checkpoint_roles: tuple[str, str], sophia_home: Path,
) -> None:
    import psycopg

    _, writer_dsn = checkpoint_roles
    suite = SuiteSettings(audit_checkpoint_dsn=SecretStr(writer_dsn))
    audit = AuditLog(home=sophia_home, suite=suite)
    for i in range(1, 6):
        audit.append(_event(i))
    report = audit.verify()
    assert report.intact, report.problems
    assert not any("can be rewritten" in n for n in report.notes)
    with psycopg.connect(writer_dsn, autocommit=True) as conn:
        for statement in ("DELETE FROM sophia_audit_checkpoint", "UPDATE sophia_audit_checkpoint SET seq = 1",
                          "TRUNCATE sophia_audit_checkpoint", "DROP TABLE sophia_audit_checkpoint"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)  # type: ignore[arg-type]
    rows = audit.records()
    db = sqlite3.connect(sophia_home / "audit.sqlite3", isolation_level=None)
    db.execute("DELETE FROM audit WHERE seq > 2")
    db.close()
    (sophia_home / "audit.head").write_text(json.dumps({"seq": 2, "entry_hash": rows[1]["entry_hash"]}))
    assert AuditLog(home=sophia_home, suite=suite).verify().problems == [
        "truncated: the checkpoint table sophia_audit_checkpoint names seq=5 but the log ends at seq=2"
    ]
    audit.close()


def test_the_writer_never_creates_the_checkpoint_table_and_fails_closed_without_it(
    postgres_database_factory: Callable[[str], str], sophia_home: Path,
) -> None:
    from sophia_shared.audit import AuditUnavailable

    dsn = postgres_database_factory("no_checkpoint_table")
    audit = AuditLog(home=sophia_home, suite=SuiteSettings(audit_checkpoint_dsn=SecretStr(dsn)), reprobe_s=0)
    with pytest.raises(AuditUnavailable):
        audit.ready()
    with pytest.raises(AuditUnavailable):
        audit.append(_event(1))
    assert CheckpointTable(dsn).entries() is None
    audit.close()


def test_a_checkpoint_table_the_writer_owns_is_noted(
    postgres_database_factory: Callable[[str], str], sophia_home: Path,
) -> None:
    import psycopg

    dsn = postgres_database_factory("own_checkpoint_table")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(checkpoint_table_sql("postgres"))  # type: ignore[arg-type]
    audit = AuditLog(home=sophia_home, suite=SuiteSettings(audit_checkpoint_dsn=SecretStr(dsn)))
    audit.append(_event(1))
    assert any("can be rewritten by the role that writes it" in n for n in audit.verify().notes)
    audit.close()


# -- the command ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["none", "truncated", "wiped", "deleted"])
def test_sophia_audit_verify_exits_1_on_each_forgery(damage: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup("sqlite")
    rows = _written(setup, 5)
    if damage == "truncated":
        setup.sql("DELETE FROM audit WHERE seq > 3")
        setup.rewrite_head(3, rows[2]["entry_hash"])
    elif damage == "wiped":
        setup.sql("DELETE FROM audit")
        setup.delete_head()
    elif damage == "deleted":
        setup.delete_log()
        setup.delete_head()
    env = {**os.environ, "SOPHIA_AUDIT_CHECKPOINT_FILE": str(setup.checkpoint)}
    done = subprocess.run([sys.executable, "-m", HOST_MODULE, "audit", "verify"], capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    if damage == "none":
        assert done.returncode == 0, done.stdout + done.stderr
        assert "audit log intact: 5 records" in done.stdout
        return
    assert done.returncode == 1, done.stdout + done.stderr
    assert "audit log NOT intact" in done.stderr
    expected = {"truncated": "truncated: the checkpoint file", "wiped": "it was wiped", "deleted": "it was deleted"}
    assert expected[damage] in done.stdout


def test_sophia_audit_checkpoint_sql_prints_the_owner_script() -> None:
    done = subprocess.run([sys.executable, "-m", HOST_MODULE, "audit", "checkpoint-sql", "--writer-role", "sophia"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "GRANT SELECT, INSERT ON sophia_audit_checkpoint TO \"sophia\"" in done.stdout
    assert "UPDATE" not in done.stdout and "DELETE" not in done.stdout
