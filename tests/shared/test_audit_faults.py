"""The audit fails closed: a full disk or a read-only SOPHIA_HOME refuses records, never loses them quietly.

Disk full is real in two ways: a 4 MiB tmpfs mounted for the test and filled (needs root and
mount; skipped, saying so, elsewhere), and a child process under RLIMIT_FSIZE (runs anywhere).
The read-only home runs the writer as another, unprivileged user (setpriv) when the suite runs
as root, so file permissions bind as they would for a real service account.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sophia_shared.audit import AuditEvent, AuditLog, AuditUnavailable, AuditWriter, Outcome
from sophia_shared.audit_checkpoint import CheckpointFile
from sophia_shared.errors import ErrorCode
from sophia_shared.settings import SuiteSettings

NOBODY = 65534


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        principal="ann", principal_kind="token", role="developer", server="demo", tool=f"tool_{i}",
        arguments={"n": "number"}, outcome=Outcome.OK, error_code=None, duration_ms=1.0, correlation_id=f"c{i}",
    )


def _suite(**overrides: object) -> SuiteSettings:
    return SuiteSettings(**overrides)  # type: ignore[arg-type]


@dataclass
class SmallDisk:
    """A real, tiny file system: `fill()` takes every free block, `free()` gives them back."""

    mount: Path
    home: Path

    def fill(self) -> None:
        fd = os.open(self.mount / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 512):  # big blocks, then the last partial ones: not one WAL page fits
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.mount / "filler").unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "test_disk_full_under_a_file_size_limit covers a full disk without mounting")
    home = mount / "home"
    home.mkdir(mode=0o700)
    try:
        yield SmallDisk(mount, home)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def test_disk_full_refuses_every_record_and_verify_stays_true(small_disk: SmallDisk) -> None:
    audit = AuditLog(home=small_disk.home, suite=_suite(audit_min_free_bytes=0), reprobe_s=0)
    for i in range(1, 4):
        audit.append(_event(i))
    audit.ready()
    small_disk.fill()
    refused = 0
    for i in range(4, 24):
        with pytest.raises(AuditUnavailable) as caught:
            audit.append(_event(i))
        assert caught.value.code is ErrorCode.UNAVAILABLE
        assert caught.value.message.startswith("audit unavailable: ")
        refused += 1
    assert refused == 20
    with pytest.raises(AuditUnavailable, match="no space left"):
        audit.ready()
    fresh = AuditLog(home=small_disk.home, suite=_suite())
    report = fresh.verify()
    assert report.intact, report.problems
    assert report.records == 3  # nothing half-written: the chain is whole, just shorter
    small_disk.free()
    audit.ready()  # a real probe write succeeds again
    audit.append(_event(24))
    assert [r["tool"] for r in audit.records()] == ["tool_1", "tool_2", "tool_3", "tool_24"]
    assert fresh.verify().intact
    audit.close()
    fresh.close()


def test_ready_refuses_below_the_free_space_setting(small_disk: SmallDisk) -> None:
    audit = AuditLog(home=small_disk.home, suite=_suite(audit_min_free_bytes=1024 * 1024))
    audit.append(_event(1))
    audit.ready()
    with open(small_disk.mount / "filler", "wb") as fh:
        fh.write(b"\0" * (int(3.5 * 1024 * 1024)))
    with pytest.raises(AuditUnavailable, match="SOPHIA_AUDIT_MIN_FREE_BYTES"):
        audit.ready()
    small_disk.free()
    audit.ready()
    audit.close()


def test_disk_full_keeps_the_writers_records_and_marks_a_gap_when_it_drops_some(small_disk: SmallDisk) -> None:
    audit = AuditLog(home=small_disk.home, suite=_suite(audit_min_free_bytes=0), reprobe_s=0)
    writer = AuditWriter(audit, max_held=5, retry_s=0.005, retry_max_s=0.02)
    writer.submit(_event(1))
    assert writer.flush(timeout=10)
    assert writer.healthy
    small_disk.fill()
    for i in range(2, 14):
        writer.submit(_event(i))
    # 5 are kept for the retry, the 7 beyond `max_held` are dropped and counted.
    assert writer.wait_for(lambda w: not w.healthy and w.dropped == 7, timeout=10)
    with pytest.raises(AuditUnavailable):
        writer.ready()
    small_disk.free()
    assert writer.flush(timeout=10)
    assert writer.wait_for(lambda w: w.healthy, timeout=10)
    writer.ready()
    records = audit.records()
    assert [r["tool"] for r in records] == ["tool_1", *(f"tool_{i}" for i in range(2, 7)), "gap"]
    assert json.loads(records[-1]["arguments"])["dropped"] == 7
    report = AuditLog(home=small_disk.home, suite=_suite()).verify()
    assert report.problems == ["record seq=7: records lost: 7 record(s) dropped by the write-behind (a gap record)"]
    writer.close()
    audit.close()


_FSIZE_SCRIPT = r"""
import json, resource, sys
from pathlib import Path
from sophia_shared.audit import AuditEvent, AuditLog, AuditUnavailable
from sophia_shared.settings import SuiteSettings

home = Path(sys.argv[1])
def event(i):
    return AuditEvent("ann", "token", "developer", "demo", f"tool_{i}", {}, "ok", None, 1.0, f"c{i}")
log = AuditLog(home=home, suite=SuiteSettings(audit_min_free_bytes=0), reprobe_s=0)
for i in range(1, 4):
    log.append(event(i))
biggest = max(p.stat().st_size for p in home.iterdir() if p.is_file())
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (biggest, hard))  # no file may grow: the disk is full
reasons = []
for i in range(4, 24):
    try:
        log.append(event(i))
    except AuditUnavailable as exc:
        reasons.append(exc.message)
try:
    log.ready()
    ready = "ok"
except AuditUnavailable as exc:
    ready = exc.message
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
log.ready()
log.append(event(24))
print(json.dumps({"reasons": reasons, "ready": ready}))
"""


def test_disk_full_under_a_file_size_limit(sophia_home: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, str(sophia_home)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["reasons"]) == 20
    assert all(r.startswith("audit unavailable: ") for r in out["reasons"])
    assert out["ready"].startswith("audit unavailable: ")
    audit = AuditLog(home=sophia_home)
    report = audit.verify()
    assert report.intact, report.problems
    assert [r["tool"] for r in audit.records()] == ["tool_1", "tool_2", "tool_3", "tool_24"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's own temp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="sophia-audit-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_unprivileged(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `argv` as an ordinary user: `nobody` via setpriv when we are root, else as ourselves."""
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot run the writer as an ordinary user")
        argv = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)


_READ_ONLY_SCRIPT = r"""
import json, os, sys
from pathlib import Path
from sophia_shared.audit import AuditEvent, AuditLog, AuditUnavailable

home = Path(sys.argv[1])
out = {"uid": os.geteuid()}
log = AuditLog(home=home, reprobe_s=0)
try:
    log.ready()
    out["ready"] = "ok"
except AuditUnavailable as exc:
    out["ready"] = exc.message
refused = 0
for i in range(10):
    try:
        log.append(AuditEvent("ann", "token", "viewer", "demo", "read", {}, "ok", None, 1.0, "c"))
    except AuditUnavailable as exc:
        refused += 1
        out["reason"] = exc.message
out["refused"] = refused
out["records"] = len(log.records())
print(json.dumps(out))
"""


def _owned_by_nobody(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        os.chown(item, NOBODY, NOBODY)


def test_read_only_sophia_home_refuses_records_as_an_ordinary_user(shared_dir: Path) -> None:
    home = shared_dir / "home"
    home.mkdir()
    seeded = AuditLog(home=home)
    for i in range(1, 4):
        seeded.append(_event(i))
    seeded.close()
    if os.geteuid() == 0:
        _owned_by_nobody(home)
    # Read-only for its owner: files 0400, directories 0500 (the keys directory too).
    for item in sorted(home.rglob("*"), reverse=True):
        item.chmod(0o500 if item.is_dir() else 0o400)
    home.chmod(0o500)
    env = {**os.environ, "SOPHIA_HOME": str(home)}
    done = _as_unprivileged([sys.executable, "-c", _READ_ONLY_SCRIPT, str(home)], env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["uid"] != 0
    assert out["ready"].startswith("audit unavailable: ")
    assert out["refused"] == 10
    assert out["reason"].startswith("audit unavailable: ")
    assert out["records"] == 3
    home.chmod(0o700)
    for item in home.rglob("*"):
        item.chmod(0o700 if item.is_dir() else 0o600)
    report = AuditLog(home=home).verify()
    assert report.intact and report.records == 3, report.problems


def test_a_sophia_home_the_user_cannot_write_refuses_the_first_record(shared_dir: Path) -> None:
    home = shared_dir / "root-owned"
    home.mkdir(mode=0o755)  # root's, not writable by the ordinary user running the server
    if os.geteuid() != 0:
        home.chmod(0o555)
    env = {**os.environ, "SOPHIA_HOME": str(home)}
    done = _as_unprivileged([sys.executable, "-c", _READ_ONLY_SCRIPT, str(home)], env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["ready"].startswith("audit unavailable: ")
    assert out["refused"] == 10 and out["records"] == 0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_audit_file_is_created_0600(sophia_home: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "elsewhere" / "audit.checkpoint"
    checkpoint.parent.mkdir()
    old_umask = os.umask(0o022)  # the usual umask: anything not created 0600 would come out 0644
    try:
        audit = AuditLog(home=sophia_home, checkpoints=[CheckpointFile(checkpoint)])
        for i in range(1, 4):
            audit.append(_event(i))
    finally:
        os.umask(old_umask)
    files = ["audit.sqlite3", "audit.sqlite3-wal", "audit.sqlite3-shm", "audit.head", "audit.lock",
             "keys/audit.key"]
    for name in files:
        assert _mode(sophia_home / name) == 0o600, name
    assert _mode(checkpoint) == 0o600
    assert _mode(sophia_home / "keys") == 0o700
    audit.close()


def test_a_log_an_earlier_version_left_0644_is_tightened(sophia_home: Path) -> None:
    import sqlite3

    db = sophia_home / "audit.sqlite3"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    audit = AuditLog(home=sophia_home)
    audit.append(_event(1))
    assert _mode(db) == 0o600
    audit.close()


def test_audit_unavailable_is_an_unavailable_error_with_a_stable_message() -> None:
    exc = AuditUnavailable("no space left where the audit log is written")
    assert exc.code is ErrorCode.UNAVAILABLE
    assert exc.message == "audit unavailable: no space left where the audit log is written"
    assert exc.reason == "no space left where the audit log is written"


def test_a_failed_write_leaves_no_record_and_the_next_one_continues_the_chain(sophia_home: Path) -> None:
    """The head moves in the same transaction: when it cannot be written (here: a directory sits where
    it goes), the records roll back, `ready()` says so before a call runs, and the chain goes on after."""
    audit = AuditLog(home=sophia_home, reprobe_s=0)
    audit.append(_event(1))
    head = sophia_home / "audit.head"
    assert audit._head is not None
    audit._head.close()  # force the head to be reopened, then make that impossible
    head.unlink()
    head.mkdir()
    with pytest.raises(AuditUnavailable) as caught:
        audit.append(_event(2))
    assert "were written" not in caught.value.message
    with pytest.raises(AuditUnavailable):
        audit.ready()
    assert [r["seq"] for r in audit.records()] == [1]
    head.rmdir()
    audit.ready()
    audit.append(_event(3))
    assert [r["tool"] for r in audit.records()] == ["tool_1", "tool_3"]
    assert audit.verify().intact


def test_unavailable_reasons_name_the_fault_not_the_path() -> None:
    from sophia_shared.audit_records import unavailable_reason

    assert unavailable_reason(OSError(errno.ENOSPC, "No space left", "/secret/path")) == (
        "no space left where the audit log is written")
    assert unavailable_reason(OSError(errno.EROFS, "Read-only")) == "the audit log is on a read-only file system"
    import sqlite3

    assert unavailable_reason(sqlite3.OperationalError("database or disk is full")) == (
        "no space left where the audit log is written")
