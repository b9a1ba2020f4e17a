"""The dashboard's live feed: the audit log followed from its head and fanned out to every stream.

The log is the only store: the feed reads the records after the last seq it saw (every process
that shares the log writes it, so it is polled, cheaply, on an index), keeps the most recent ones
in memory for reconnects, and hands each batch to every open stream. An event's id is its record's
seq, so a stream that reconnects with `Last-Event-ID` gets exactly the records after it — from
memory, or from the log when it is older than what memory keeps.

Each stream may hold at most `limit` records unsent. A stream that falls further behind (a slow
browser) is closed rather than buffered without bound; its browser reconnects with its last id
and misses nothing.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from sophia_shared.audit import AuditLog

log = logging.getLogger("sophia.host")

# What a browser gets of each record: who, what, how it ended — never its arguments or seal.
EVENT_FIELDS = ("seq", "ts", "principal", "role", "server", "tool", "outcome", "error_code", "duration_ms",
                "correlation_id")
PAGE = 1000


def project(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in EVENT_FIELDS}


@dataclass
class Batch:
    """Consecutive records (in seq order) as one SSE event, encoded once for every stream."""

    records: list[dict[str, Any]]
    _data: bytes | None = field(default=None, repr=False)

    @property
    def first(self) -> int:
        return int(self.records[0]["seq"])

    @property
    def last(self) -> int:
        return int(self.records[-1]["seq"])

    def after(self, seq: int) -> Batch | None:
        """This batch without the records up to `seq` (None when nothing is left)."""
        if self.first > seq:
            return self
        rest = [r for r in self.records if r["seq"] > seq]
        return Batch(rest) if rest else None

    def encode(self) -> bytes:
        if self._data is None:
            body = json.dumps(self.records, separators=(",", ":"), default=str)
            self._data = f"id: {self.last}\nevent: audit\ndata: {body}\n\n".encode()
        return self._data


class Subscription:
    """One stream's queue of batches, bounded in records: past `limit` it is marked overflowed."""

    def __init__(self, limit: int):
        self.limit = limit
        self.pending = 0
        self.overflowed = False
        self._items: deque[Batch] = deque()
        self._ready = anyio.Event()

    def offer(self, batch: Batch) -> None:
        if self.overflowed:
            return
        if self.pending + len(batch.records) > self.limit:
            self.overflowed = True
            self._items.clear()
            self.pending = 0
        else:
            self._items.append(batch)
            self.pending += len(batch.records)
        self._ready.set()

    async def next(self, timeout: float) -> Batch | None:
        """The next batch, or None after `timeout` s with none (time for a heartbeat) or on overflow."""
        if not self._items and not self.overflowed:
            with anyio.move_on_after(timeout):
                await self._ready.wait()
        self._ready = anyio.Event()
        if not self._items:
            return None
        batch = self._items.popleft()
        self.pending -= len(batch.records)
        if self._items:
            self._ready.set()
        return batch


class AuditFeed:
    """Follows the audit log and publishes its new records to every subscription."""

    def __init__(self, audit: AuditLog, *, keep: int, poll_s: float, limit: int,
                 observers: list[Callable[[list[dict[str, Any]]], None]] | None = None):
        self.audit = audit
        self.poll_s = poll_s
        self.limit = limit
        self.head = 0
        self.started = anyio.Event()
        self.observers = observers or []
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._subscriptions: set[Subscription] = set()

    @property
    def streams(self) -> int:
        return len(self._subscriptions)

    async def run(self) -> None:
        """Follow the log from its current head until cancelled."""
        self.head = await anyio.to_thread.run_sync(self.audit.last_seq)
        self.started.set()
        while True:
            try:
                rows = await anyio.to_thread.run_sync(self.audit.since, self.head, PAGE)
            except Exception:  # the boundary: a log that cannot be read now is read again next time
                log.exception("the dashboard feed could not read the audit log")
                rows = []
            if rows:
                self._publish([project(r) for r in rows])
            if len(rows) < PAGE:
                await anyio.sleep(self.poll_s)

    def _publish(self, records: list[dict[str, Any]]) -> None:
        self.head = int(records[-1]["seq"])
        self._recent.extend(records)
        for observe in self.observers:
            observe(records)
        batch = Batch(records)
        for subscription in self._subscriptions:
            subscription.offer(batch)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self.limit)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def replay(self, after: int, upto: int) -> Batch | None:
        """The next records after `after`, up to `upto`: from memory when it reaches back that far, else the log."""
        if after >= upto:
            return None
        recent = self._recent
        if recent and recent[0]["seq"] <= after + 1:
            taken: list[dict[str, Any]] = []
            for record in reversed(recent):
                if record["seq"] <= after:
                    break
                if record["seq"] <= upto:
                    taken.append(record)
            taken.reverse()
            return Batch(taken[:PAGE]) if taken else None
        rows = await anyio.to_thread.run_sync(self.audit.since, after, PAGE)
        records = [project(r) for r in rows if r["seq"] <= upto]
        return Batch(records) if records else None

    def recent(self, limit: int) -> list[dict[str, Any]]:
        return list(self._recent)[-limit:]
