"""Batched appends: the host's write-behind (`AuditWriter`) and a server's group commit (`GroupCommit`)."""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from .audit_records import AuditEvent, AuditUnavailable, gap_event

if TYPE_CHECKING:
    from .audit import AuditLog

log = logging.getLogger("sophia.audit")


class AuditWriter:
    """Write-behind appends for a hot edge: calls hand records over, one thread commits batches.

    On an event loop, `submit` only appends to a list; the list goes to the writer thread once
    per `linger_s`, so neither a commit nor a thread wake-up (which would contend for the GIL
    with the loop) happens per call. A group commit costs about what one synchronous append
    does, so the log keeps up at a fraction of the CPU and a call never waits on the disk.

    When a batch cannot be written, its records are kept and retried (backing off to `retry_max_s`)
    and `healthy` is False, so the edge refuses calls (`ready()`). Past `max_held` kept records,
    newer ones are dropped and counted; once writing works again, a gap record (outcome "gap")
    says how many and when, and `verify` reports it. Records not yet committed when the process
    is killed (-9) are lost — at most the last `linger_s` plus one commit of calls; `close` (and
    interpreter exit) drains everything it can. The composing host uses this; a server that
    executes the action appends synchronously.
    """

    def __init__(self, log: AuditLog, max_batch: int = 1000, linger_s: float = 0.02, *,
                 max_held: int = 10_000, retry_s: float = 0.05, retry_max_s: float = 1.0):
        self.log = log
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.max_held = max_held
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self._queue: queue.SimpleQueue[list[AuditEvent] | None] = queue.SimpleQueue()
        self._buffer: list[AuditEvent] = []
        self._handoff_scheduled = False
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._failure: str | None = None
        self._dropped = 0
        self._dropped_span: tuple[float, float] | None = None
        self.gaps_written = 0

    @property
    def healthy(self) -> bool:
        """Whether records can be written now. After a failed batch, the log itself is probed (a real
        write, at most every `log.reprobe_s`) so the edge sees a recovery at once, not after the
        retry's back-off; a probe that passes also wakes the retry of what is held."""
        if self._failure is None and self._dropped == 0:
            return True
        try:
            self.log.ready()
        except AuditUnavailable:
            return False
        self._queue.put([])  # the log takes writes again: retry the held records now
        return True

    @property
    def dropped(self) -> int:
        """Records dropped (over `max_held`) and not yet covered by a gap record."""
        return self._dropped

    def ready(self) -> None:
        """Raise AuditUnavailable while records cannot be written (see `healthy`, `AuditLog.ready`)."""
        if not self.healthy:
            raise AuditUnavailable(self._failure or "the audit log cannot be written")
        self.log.ready()

    def submit(self, event: AuditEvent) -> None:
        if self._thread is None:
            self._start()
        elif not self._thread.is_alive():  # closed: nothing drains the queue any more
            self.log.append(event)
            return
        with self._idle:
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._queue.put([event])
            return
        self._buffer.append(event)
        if not self._handoff_scheduled:
            self._handoff_scheduled = True
            loop.call_later(self.linger_s, self._handoff)

    def _handoff(self) -> None:
        self._handoff_scheduled = False
        batch, self._buffer = self._buffer, []
        if batch:
            self._queue.put(batch)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sophia-audit-writer", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        held: list[AuditEvent] = []
        delay = self.retry_s
        stopping = False
        while True:
            try:
                batches = [self._queue.get(timeout=delay if held else None)]
            except queue.Empty:
                batches = []
            while not self._queue.empty():
                batches.append(self._queue.get_nowait())
            stopping = stopping or None in batches
            self._hold([e for b in batches if b is not None for e in b], held)
            written = self._write_held(held)
            delay = self.retry_s if self._failure is None else min(delay * 2, self.retry_max_s)
            with self._idle:
                self._pending -= written
                self._idle.notify_all()
            if stopping and (not held or self._failure is not None):
                if held:
                    log.error("audit writer closing with %d records it could not write: %s",
                              len(held), self._failure)
                return

    def _hold(self, events: list[AuditEvent], held: list[AuditEvent]) -> None:
        room = max(self.max_held - len(held), 0)
        if len(events) > room:
            lost = events[room:]
            with self._idle:
                self._dropped += len(lost)
                self._pending -= len(lost)
            first, last = lost[0].ts, lost[-1].ts
            span = self._dropped_span
            self._dropped_span = (min(span[0], first), max(span[1], last)) if span else (first, last)
            events = events[:room]
        held.extend(events)

    def _write_held(self, held: list[AuditEvent]) -> int:
        """Write what is held (then the gap record, if any were dropped); how many were written."""
        written = 0
        try:
            while held:
                chunk = held[:self.max_batch]
                self.log.append_many(chunk)
                del held[:len(chunk)]
                written += len(chunk)
            if self._dropped:
                dropped, span = self._dropped, self._dropped_span or (0.0, 0.0)
                self.log.append(gap_event(dropped, span))
                self.gaps_written += 1
                self._dropped, self._dropped_span = 0, None
        except AuditUnavailable as exc:
            self._failure = exc.reason
            return written
        self._failure = None
        return written

    def wait_for(self, predicate: Callable[[AuditWriter], bool], timeout: float) -> bool:
        """Wait until `predicate(self)` holds, re-checked after each write attempt; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: predicate(self), timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted record is written (or dropped); False on timeout.

        Called from the event loop's thread (or with no loop), it hands over the records still
        waiting for their linger first.
        """
        self._handoff()
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._handoff()
        self._queue.put(None)
        thread.join(timeout=30.0)




class _Batch:
    __slots__ = ("done", "error", "events")

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.done = anyio.Event()
        self.error: BaseException | None = None


class GroupCommit:
    """Synchronous appends for a server that executes the action, without a commit per call.

    `append` returns once the call's record is committed (or raises AuditUnavailable), so the
    record still comes before the answer. A PostgreSQL commit runs in a worker thread, never on the
    event loop, and the records of calls that end while one commit is in flight share the next one:
    the first call of a batch waits for its turn at the lock, everyone after it just joins its
    batch. On a PostgreSQL log shared by several writers (which serialise on the chain lock), one
    transaction per call capped a server at ~100 calls/s; a transaction per batch does not.
    Commits are shielded from cancellation: a batch that others joined is always written.
    """

    def __init__(self, log: AuditLog, *, in_thread: bool | None = None):
        self.log = log
        # PostgreSQL commits wait on the network and the chain lock: a worker thread. A local SQLite
        # WAL commit (no fsync per commit) stays inline, on the connection the loop thread keeps.
        self.in_thread = bool(log.dsn) if in_thread is None else in_thread
        self._open = _Batch()
        self._turn = anyio.Lock()

    async def append(self, event: AuditEvent) -> None:
        batch = self._open
        batch.events.append(event)
        with anyio.CancelScope(shield=True):
            if len(batch.events) == 1:
                await self._commit(batch)
            else:
                await batch.done.wait()
        if batch.error is not None:
            raise batch.error

    async def _commit(self, batch: _Batch) -> None:
        async with self._turn:
            self._open = _Batch()  # close this batch: calls from now on wait for the next commit
            try:
                if self.in_thread:
                    await anyio.to_thread.run_sync(self.log.append_many, batch.events)
                else:
                    self.log.append_many(batch.events)
            except Exception as exc:  # noqa: BLE001 - every waiter of the batch hears the failure
                batch.error = exc
            finally:
                batch.done.set()
