"""GroupCommit (audit_writer.py): a server's records are committed before its calls answer, the
records of concurrent calls share commits, and a failed commit fails every call that waited on it.
The log is the real SQLite one, committed from a worker thread as a PostgreSQL log is."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from sophia_shared.audit import AuditEvent, AuditLog, AuditUnavailable, GroupCommit, Outcome

pytestmark = pytest.mark.anyio


def _event(n: int) -> AuditEvent:
    return AuditEvent(principal="alice", principal_kind="user", role="developer", server="demo",
                      tool=f"demo_{n}", arguments={}, outcome=Outcome.OK, error_code=None, duration_ms=1.0,
                      correlation_id=f"c{n}")


class _CountingLog(AuditLog):
    """The real SQLite log, counting its transactions; `gate` holds the first commit until set."""

    def __init__(self, home: Path):
        super().__init__(home=home)
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def append_many(self, events: list[AuditEvent]) -> list[dict[str, Any]]:
        self.gate.wait(timeout=10)
        self.batches.append(len(events))
        return super().append_many(events)


async def test_concurrent_records_share_commits_and_each_is_written_before_append_returns(sophia_home: Path) -> None:
    log = _CountingLog(sophia_home)
    commit = GroupCommit(log, in_thread=True)  # as on PostgreSQL: commits in a worker thread
    log.gate.clear()  # the first commit waits, so the calls that end meanwhile pile into one batch
    returned: list[int] = []

    async def call(n: int) -> None:
        await commit.append(_event(n))
        # The record is in the log when append returns, not later.
        assert any(r["correlation_id"] == f"c{n}" for r in log.records())
        returned.append(n)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(call, n)
            await anyio.sleep(0)  # not a wait for time: lets every call join a batch before the gate opens
            log.gate.set()
    assert sorted(returned) == list(range(50))
    assert sum(log.batches) == 50
    assert len(log.batches) < 50 / 4  # shared commits: the first alone, the other 49 in few batches
    assert log.verify().intact


async def test_a_failed_commit_fails_every_call_of_its_batch_and_the_next_batch_works(sophia_home: Path) -> None:
    log = _CountingLog(sophia_home)
    commit = GroupCommit(log, in_thread=True)  # as on PostgreSQL: commits in a worker thread
    failures: list[str] = []
    broken = True

    def flaky(events: list[AuditEvent]) -> list[dict[str, Any]]:
        if broken:
            raise AuditUnavailable("disk full")
        return AuditLog.append_many(log, events)

    log.append_many = flaky  # type: ignore[method-assign]

    async def call(n: int) -> None:
        try:
            await commit.append(_event(n))
        except AuditUnavailable as exc:
            failures.append(exc.reason)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(call, n)
    assert failures == ["disk full"] * 10
    broken = False
    with anyio.fail_after(30):
        await commit.append(_event(99))
    assert [r["correlation_id"] for r in log.records()] == ["c99"]


async def test_a_cancelled_call_still_commits_the_batch_others_wait_on(sophia_home: Path) -> None:
    log = _CountingLog(sophia_home)
    commit = GroupCommit(log, in_thread=True)  # as on PostgreSQL: commits in a worker thread
    log.gate.clear()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            leader = anyio.CancelScope()

            async def first() -> None:
                with leader:
                    await commit.append(_event(0))

            tg.start_soon(first)
            await anyio.sleep(0)
            for n in range(1, 5):
                tg.start_soon(commit.append, _event(n))
            await anyio.sleep(0)
            leader.cancel()  # the first call's caller goes away while its commit is in flight
            log.gate.set()
    assert sorted(r["correlation_id"] for r in log.records()) == [f"c{n}" for n in range(5)]


async def test_a_local_log_commits_inline_and_a_postgres_one_in_a_thread(sophia_home: Path) -> None:
    assert not GroupCommit(AuditLog(home=sophia_home)).in_thread
    assert GroupCommit(AuditLog(dsn="postgresql://unused@/none", home=sophia_home)).in_thread
    commit = GroupCommit(AuditLog(home=sophia_home))
    with anyio.fail_after(30):
        await commit.append(_event(7))
    assert [r["correlation_id"] for r in commit.log.records()] == ["c7"]
