"""The hash-chained audit log: every kind of tampering is found and named."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sophia_shared.audit import AuditEvent, AuditLog, Outcome

HOST_MODULE = "sophia_host"


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        principal=f"user{i % 3}", principal_kind="token", role="developer", server="demo", tool=f"tool_{i}",
        arguments={"n": "number"}, outcome=Outcome.OK, error_code=None, duration_ms=1.5, correlation_id=f"c{i}",
    )


@pytest.fixture
def log(sophia_home: Path) -> AuditLog:
    audit = AuditLog(home=sophia_home)
    for i in range(1, 11):
        audit.append(_event(i))
    return audit


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "audit.sqlite3", isolation_level=None)


def test_an_untouched_log_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert report.intact, report.problems
    assert report.records == 10
    assert [r["seq"] for r in log.records()] == list(range(1, 11))


def test_modified_record_is_named(log: AuditLog, sophia_home: Path) -> None:
    _db(sophia_home).execute("UPDATE audit SET principal='mallory' WHERE seq=4")
    assert log.verify().problems == ["record seq=4: modified (its content does not match its hash)"]


def test_deleted_record_is_named(log: AuditLog, sophia_home: Path) -> None:
    _db(sophia_home).execute("DELETE FROM audit WHERE seq IN (5, 6)")
    problems = log.verify().problems
    assert problems == ["records seq=5-6: deleted"]


def test_inserted_record_is_named(log: AuditLog, sophia_home: Path) -> None:
    db = _db(sophia_home)
    row = db.execute("SELECT * FROM audit WHERE seq=3").fetchone()
    cols = [d[1] for d in db.execute("PRAGMA table_info(audit)")]
    forged = dict(zip(cols, row, strict=True))
    forged.pop("id")
    forged["tool"] = "forged_tool"
    columns, marks = ", ".join(forged), ", ".join("?" * len(forged))
    db.execute(f"INSERT INTO audit ({columns}) VALUES ({marks})", list(forged.values()))
    problems = log.verify().problems
    assert "record seq=3: inserted (a second record claims this sequence number)" in problems
    assert any("modified" in p for p in problems)


def test_reordered_records_are_named(log: AuditLog, sophia_home: Path) -> None:
    db = _db(sophia_home)
    # Swap the stored positions of seq 7 and 8 (every column but the storage id).
    cols = [d[1] for d in db.execute("PRAGMA table_info(audit)") if d[1] != "id"]
    r7 = db.execute(f"SELECT {', '.join(cols)} FROM audit WHERE seq=7").fetchone()
    r8 = db.execute(f"SELECT {', '.join(cols)} FROM audit WHERE seq=8").fetchone()
    id7 = db.execute("SELECT id FROM audit WHERE seq=7").fetchone()[0]
    id8 = db.execute("SELECT id FROM audit WHERE seq=8").fetchone()[0]
    setter = ", ".join(f"{c}=?" for c in cols)
    db.execute(f"UPDATE audit SET {setter} WHERE id=?", [*r8, id7])
    db.execute(f"UPDATE audit SET {setter} WHERE id=?", [*r7, id8])
    problems = log.verify().problems
    assert any("seq=8: reordered" in p for p in problems)
    assert any("seq=7: reordered" in p for p in problems)
    assert not any("deleted" in p for p in problems)


def test_truncation_is_found_through_the_head(log: AuditLog, sophia_home: Path) -> None:
    _db(sophia_home).execute("DELETE FROM audit WHERE seq >= 9")
    assert log.verify().problems == ["truncated: the head names seq=10 but the log ends at seq=8"]


def test_a_deleted_head_is_reported(log: AuditLog) -> None:
    assert log.head_path is not None
    log.head_path.unlink()
    assert log.verify().problems == ["the head file is missing: truncation cannot be ruled out"]


def test_sophia_audit_verify_exit_codes(log: AuditLog, sophia_home: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", HOST_MODULE, "audit", "verify"], capture_output=True, text=True,
                        timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "intact: 10 records" in ok.stdout
    _db(sophia_home).execute("UPDATE audit SET outcome='denied' WHERE seq=2")
    bad = subprocess.run([sys.executable, "-m", HOST_MODULE, "audit", "verify"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 1
    assert "record seq=2: modified" in bad.stdout


def test_concurrent_writers_keep_one_chain(sophia_home: Path) -> None:
    """Several processes sharing SOPHIA_HOME (the host and its children) append to one chain."""
    script = (
        "from sophia_shared.audit import AuditLog, AuditEvent\n"
        "log = AuditLog()\n"
        "for i in range(50):\n"
        "    log.append(AuditEvent('p', 'local', 'viewer', 's', 't', {}, 'ok', None, 0.1, 'c'))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    log = AuditLog(home=sophia_home)
    report = log.verify()
    assert report.intact, report.problems
    assert report.records == 150


def test_postgres_backend_detects_tampering(postgres_database_dsn: str, sophia_home: Path) -> None:
    import psycopg

    audit = AuditLog(dsn=postgres_database_dsn, home=sophia_home)
    for i in range(1, 6):
        audit.append(_event(i))
    assert audit.verify().intact
    with psycopg.connect(postgres_database_dsn, autocommit=True) as conn:
        conn.execute("UPDATE sophia_audit SET tool='x' WHERE seq=2")
        conn.execute("DELETE FROM sophia_audit WHERE seq=4")
    problems = audit.verify().problems
    assert "record seq=2: modified (its content does not match its hash)" in problems
    assert "records seq=4: deleted" in problems
    audit.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_batched_appends_keep_one_chain(backend: str, sophia_home: Path, request: pytest.FixtureRequest) -> None:
    dsn = request.getfixturevalue("postgres_database_dsn") if backend == "postgres" else None
    if dsn is not None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:  # the database may hold another test's log
            conn.execute("DROP TABLE IF EXISTS sophia_audit")
    audit = AuditLog(dsn=dsn, home=sophia_home)
    audit.append(_event(1))
    written = audit.append_many([_event(i) for i in range(2, 40)])
    audit.append(_event(40))
    assert [r["seq"] for r in written] == list(range(2, 40))
    report = audit.verify()
    assert report.intact, report.problems
    assert [r["tool"] for r in audit.records()] == [f"tool_{i}" for i in range(1, 41)]
    audit.close()


@pytest.mark.anyio
async def test_the_write_behind_writer_batches_on_a_loop_and_drains_on_flush_and_close(sophia_home: Path) -> None:
    from sophia_shared.audit import AuditWriter

    audit = AuditLog(home=sophia_home)
    writer = AuditWriter(audit, linger_s=60.0)  # nothing moves by time in this test: only flush/close
    for i in range(1, 101):
        writer.submit(_event(i))
    assert audit.records() == []  # on a loop, records wait for their hand-over
    assert writer.flush()
    assert [r["tool"] for r in audit.records()] == [f"tool_{i}" for i in range(1, 101)]
    writer.submit(_event(101))
    writer.close()
    writer.submit(_event(102))  # after close: written at once, never queued and lost
    assert [r["seq"] for r in audit.records()][-2:] == [101, 102]
    assert audit.verify().intact


def test_the_write_behind_writer_without_a_loop(sophia_home: Path) -> None:
    from sophia_shared.audit import AuditWriter

    audit = AuditLog(home=sophia_home)
    writer = AuditWriter(audit)
    for i in range(1, 21):
        writer.submit(_event(i))
    assert writer.flush()
    assert len(audit.records()) == 20 and audit.verify().intact
    writer.close()


def test_a_missing_postgres_driver_names_the_real_setting(sophia_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sophia_shared.audit import _PostgresBackend
    from sophia_shared.errors import NotConfigured

    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails as if not installed
    dsn = "postgresql://postgres@/audit?host=/nonexistent"
    with pytest.raises(NotConfigured) as at_start:
        AuditLog(dsn=dsn, home=sophia_home)
    with pytest.raises(NotConfigured) as at_connect:
        _PostgresBackend(dsn)._connection(write=False)
    for raised in (at_start, at_connect):
        assert "SOPHIA_AUDIT_DSN" in str(raised.value) and "<SERVER>" not in str(raised.value)
