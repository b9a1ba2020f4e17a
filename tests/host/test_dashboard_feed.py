"""The dashboard's feed in process: the audit log followed, replayed exactly, bounded per stream; per-tool figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sophia_host.dashboard.feed import AuditFeed, Batch, Subscription
from sophia_host.dashboard.stats import OTHER, ToolStats
from sophia_host.dashboard.stream import serve_stream, start_seq
from sophia_shared.audit import AuditEvent, AuditLog, Outcome

pytestmark = pytest.mark.anyio


def _event(i: int, *, server: str = "sophia", tool: str = "demo_echo", outcome: Outcome = Outcome.OK,
           ms: float = 2.0) -> AuditEvent:
    return AuditEvent(principal="ada", principal_kind="token", role="admin", server=server, tool=tool,
                      arguments={}, outcome=outcome, error_code=None if outcome is Outcome.OK else "not_found",
                      duration_ms=ms, correlation_id=f"c{i}")


def _record(seq: int) -> dict[str, Any]:
    return {"seq": seq}


def test_since_and_last_seq_follow_the_log(sophia_home: Path) -> None:
    log = AuditLog(home=sophia_home)
    assert log.last_seq() == 0 and log.since(0) == []
    log.append_many([_event(i) for i in range(5)])
    assert log.last_seq() == 5
    assert [r["seq"] for r in log.since(2)] == [3, 4, 5]
    assert [r["seq"] for r in log.since(0, limit=2)] == [1, 2]
    assert log.since(2)[0]["entry_hash"] == log.records()[2]["entry_hash"]


def test_a_subscription_past_its_bound_is_marked_and_holds_nothing() -> None:
    subscription = Subscription(limit=5)
    subscription.offer(Batch([_record(1), _record(2), _record(3)]))
    assert not subscription.overflowed and subscription.pending == 3
    subscription.offer(Batch([_record(4), _record(5), _record(6)]))
    assert subscription.overflowed and subscription.pending == 0


def test_a_batch_after_a_seq_keeps_only_what_is_newer() -> None:
    batch = Batch([_record(4), _record(5), _record(6)])
    assert batch.after(3) is batch
    rest = batch.after(4)
    assert rest is not None and [r["seq"] for r in rest.records] == [5, 6]
    assert batch.after(6) is None
    assert batch.encode().startswith(b"id: 6\nevent: audit\ndata: [")


@pytest.mark.parametrize(("header", "query", "expected"), [
    (None, None, 10), ("4", "7", 4), (None, "7", 7), ("junk", "3", 3), ("-1", None, 10), ("99", None, 10),
    ("1" * 40, None, 10),
])
def test_where_a_stream_starts(header: str | None, query: str | None, expected: int) -> None:
    assert start_seq(header, query, head=10) == expected


async def _running_feed(log: AuditLog, tg: anyio.abc.TaskGroup, **options: Any) -> AuditFeed:
    settings: dict[str, Any] = {"keep": 100, "poll_s": 0.01, "limit": 1000, **options}
    feed = AuditFeed(log, keep=settings["keep"], poll_s=settings["poll_s"], limit=settings["limit"])
    tg.start_soon(feed.run)
    with anyio.fail_after(10):
        await feed.started.wait()
    return feed


async def test_the_feed_publishes_new_records_and_replays_old_ones_from_the_log(sophia_home: Path) -> None:
    log = AuditLog(home=sophia_home)
    log.append_many([_event(i) for i in range(150)])  # before the feed: only the log has them
    async with anyio.create_task_group() as tg:
        feed = await _running_feed(log, tg, keep=100)
        subscription = feed.subscribe()
        log.append_many([_event(i) for i in range(150, 160)])
        seen: list[int] = []
        with anyio.fail_after(10):
            while len(seen) < 10:
                batch = await subscription.next(1.0)
                seen += [r["seq"] for r in batch.records] if batch else []
        assert seen == list(range(151, 161))
        replayed: list[int] = []
        cursor = 0
        while (batch := await feed.replay(cursor, feed.head)) is not None:
            replayed += [r["seq"] for r in batch.records]
            cursor = batch.last
        assert replayed == list(range(1, 161))
        tg.cancel_scope.cancel()


async def _published(feed: AuditFeed, seq: int) -> None:
    """Return once the feed has published record `seq` (woken by the feed itself, no polling)."""
    if feed.head >= seq:
        return
    done = anyio.Event()

    def observe(records: list[dict[str, Any]]) -> None:
        if records[-1]["seq"] >= seq:
            done.set()

    feed.observers.append(observe)
    try:
        await done.wait()
    finally:
        feed.observers.remove(observe)


class _SlowClient:
    """An ASGI client that stops reading after its first `reads` writes until released."""

    def __init__(self, reads: int):
        self.reads = reads
        self.bodies: list[bytes] = []
        self.release = anyio.Event()
        self.read_all = anyio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        if len(self.bodies) >= self.reads:
            await self.release.wait()
        self.bodies.append(message["body"])
        if len(self.bodies) >= self.reads:
            self.read_all.set()

    async def receive(self) -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    def seqs(self) -> list[int]:
        found: list[int] = []
        for body in self.bodies:
            for frame in body.decode().split("\n\n"):
                data = [line[6:] for line in frame.splitlines() if line.startswith("data: ")]
                if "event: audit" in frame and data:
                    found += [r["seq"] for r in json.loads(data[0])]
        return found


async def test_a_slow_stream_is_closed_at_its_bound_and_its_reconnect_misses_nothing(sophia_home: Path) -> None:
    log = AuditLog(home=sophia_home)
    log.append(_event(0))
    async with anyio.create_task_group() as tg:
        feed = await _running_feed(log, tg, limit=5)
        slow = _SlowClient(reads=2)  # the hello, then one batch: then it stops reading
        ended = anyio.Event()

        async def stream() -> None:
            await serve_stream(feed, 0, 60.0, slow.receive, slow.send)
            ended.set()

        tg.start_soon(stream)
        with anyio.fail_after(10):
            await slow.read_all.wait()
            for i in range(1, 21):  # 20 records in separate batches: past the bound of 5
                await _published(feed, log.append(_event(i))["seq"])
            assert feed.streams == 1  # overflowed, but its writer is still stuck in a write
            slow.release.set()
            await ended.wait()  # the overflowed stream ended by itself
        assert feed.streams == 0
        got = slow.seqs()
        assert got == [1, 2]  # the replay, then the batch whose write stalled
        again = _SlowClient(reads=1000)
        with anyio.fail_after(10):  # what a reconnect from its last id gets (the stream ends after 0.5 s)
            await serve_stream(feed, got[-1], 0.5, again.receive, again.send)
        assert got + again.seqs() == list(range(1, 22))
        tg.cancel_scope.cancel()


def test_tool_figures_count_the_host_s_records_once_and_bound_their_labels() -> None:
    registry = CollectorRegistry()
    stats = ToolStats("sophia", lambda tool: tool.startswith("demo_"), registry)
    records = [
        *({"server": "sophia", "tool": "demo_echo", "outcome": "ok", "duration_ms": 1.0 + i % 10, "ts": 1000.0}
          for i in range(100)),
        {"server": "sophia", "tool": "demo_echo", "outcome": "error", "error_code": "not_found", "duration_ms": 500.0,
         "ts": 1000.0},
        {"server": "demo", "tool": "demo_echo", "outcome": "ok", "duration_ms": 9.0, "ts": 1000.0},  # the child's copy
        {"server": "sophia", "tool": "invented_by_a_caller", "outcome": "error", "error_code": "not_found",
         "duration_ms": 0.1, "ts": 1000.0},
    ]
    stats.observe(records)
    windows = {row["tool"]: row for row in stats.windows(now=1010.0)}
    assert set(windows) == {"demo_echo", OTHER}
    five = windows["demo_echo"]["5m"]
    assert five["calls"] == 101 and five["errors"] == 1 and five["error_rate"] == pytest.approx(1 / 101, abs=1e-4)
    assert 5.0 <= five["p50_ms"] <= 7.0 and 8.5 <= five["p99_ms"] <= 11.5  # 6 and 10 ms, ±12 %
    assert windows["demo_echo"]["60m"]["calls"] == 101
    assert stats.windows(now=1000.0 + 3600.0 + 60.0) == []  # an hour later nothing is left
    text = generate_latest(registry).decode()
    assert 'sophia_calls_total{outcome="ok",tool="demo_echo"} 100.0' in text
    assert 'sophia_call_errors_total{code="not_found",tool="other"} 1.0' in text
    assert "invented_by_a_caller" not in text
