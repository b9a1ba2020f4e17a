"""The PostgreSQL audit log shared by several hosts: one chain from concurrent writers, and a restart survived."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fixtures.postgres import RestartablePostgres
from pydantic import SecretStr
from sophia_shared.audit import AuditEvent, AuditLog, AuditUnavailable, Outcome
from sophia_shared.settings import SuiteSettings

pytestmark = pytest.mark.integration

# Hosts sharing one PostgreSQL log seal it with one key (SOPHIA_AUDIT_KEY), as each would be given.
AUDIT_KEY = secrets.token_hex(32)
SHARED_KEY = SuiteSettings(audit_key=SecretStr(AUDIT_KEY))

# Each writer process: synchronous appends (as a server does) and write-behind batches from an
# event loop (as the host does), interleaved, under its own SOPHIA_HOME (another machine).
WRITER = """
import asyncio, sys
from sophia_shared.audit import AuditEvent, AuditLog, AuditWriter

dsn, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def event(kind, i):
    return AuditEvent('p', 'token', 'viewer', name, kind, {}, 'ok', None, 0.1, f'{name}-{kind}-{i}')

log = AuditLog(dsn=dsn)
writer = AuditWriter(log, linger_s=0.002)

async def main():
    for i in range(n):
        writer.submit(event('batched', i))
        log.append(event('sync', i))
        if i % 7 == 0:
            await asyncio.sleep(0)
    assert writer.flush(60)

asyncio.run(main())
writer.close()
log.close()
"""


def _event(i: int) -> AuditEvent:
    return AuditEvent(principal="p", principal_kind="token", role="viewer", server="s", tool="t",
                      arguments={}, outcome=Outcome.OK, error_code=None, duration_ms=0.1, correlation_id=f"c{i}")


def test_writers_on_two_homes_append_concurrently_into_one_chain(
    postgres_database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    dsn = postgres_database_factory("two_writers")
    per_writer = 150
    procs = []
    for name in ("host1", "host2"):
        home = tmp_path / name
        home.mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WRITER, dsn, name, str(per_writer)],
            env={"SOPHIA_HOME": str(home), "PATH": "/usr/bin:/bin", "SOPHIA_AUDIT_KEY": AUDIT_KEY},
            stderr=subprocess.PIPE, text=True,
        ))
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    third = tmp_path / "auditor"
    third.mkdir()
    log = AuditLog(dsn=dsn, home=third, suite=SHARED_KEY)
    report = log.verify()
    assert report.intact, report.problems
    records = log.records()
    assert report.records == len(records) == 2 * 2 * per_writer
    ids = Counter(r["correlation_id"] for r in records)
    expected = {f"{h}-{k}-{i}" for h in ("host1", "host2") for k in ("sync", "batched") for i in range(per_writer)}
    assert set(ids) == expected
    assert max(ids.values()) == 1
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    log.close()


def test_verify_reads_the_shared_head_and_finds_truncation(
    postgres_database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    dsn = postgres_database_factory("shared_head")
    writer = AuditLog(dsn=dsn, home=tmp_path, suite=SHARED_KEY)
    for i in range(5):
        writer.append(_event(i))
    elsewhere = tmp_path / "other-host"
    elsewhere.mkdir()
    other = AuditLog(dsn=dsn, home=elsewhere, suite=SHARED_KEY)
    assert other.verify().intact
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM sophia_audit WHERE seq = 5")
    assert other.verify().problems == ["truncated: the head names seq=5 but the log ends at seq=4"]
    writer.close()
    other.close()


def test_appends_fail_while_the_database_is_down_and_work_again_after_a_restart(
    postgres_restartable: RestartablePostgres, sophia_home: Path
) -> None:
    with psycopg.connect(postgres_restartable.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE audit_restart")
    dsn = postgres_restartable.database_dsn("audit_restart")
    log = AuditLog(dsn=dsn, home=sophia_home)
    log.append(_event(1))
    postgres_restartable.stop()
    try:
        with pytest.raises(AuditUnavailable):
            log.append(_event(2))
        with pytest.raises(AuditUnavailable):
            log.append(_event(3))
    finally:
        postgres_restartable.start()
    # The same log object, without a restart of its process: the connection is reopened.
    log.append(_event(4))
    log.append(_event(5))
    report = log.verify()
    assert report.intact, report.problems
    assert [r["correlation_id"] for r in log.records()] == ["c1", "c4", "c5"]
    log.close()


def test_a_connection_dropped_while_idle_is_replaced_without_losing_the_append(
    postgres_restartable: RestartablePostgres, sophia_home: Path
) -> None:
    with psycopg.connect(postgres_restartable.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE audit_idle_drop")
    dsn = postgres_restartable.database_dsn("audit_idle_drop")
    log = AuditLog(dsn=dsn, home=sophia_home)
    log.append(_event(1))
    # The server ends the log's session (as a restart or a failover does) while it sits idle.
    with psycopg.connect(dsn, autocommit=True) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert ended
    log.append(_event(2))
    assert [r["correlation_id"] for r in log.records()] == ["c1", "c2"]
    assert log.verify().intact
    log.close()
