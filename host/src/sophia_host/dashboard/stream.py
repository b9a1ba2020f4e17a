"""One SSE stream of the feed: replay after the client's last id, then live batches, bounded.

Raw ASGI rather than a streaming response: a write that stalls (a client that stopped reading)
must end the stream after a bound, and a disconnect must end it at once.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio

from .feed import AuditFeed, Batch

HEARTBEAT_S = 15.0
# The browser waits this long before it reconnects to a stream the host ended.
RETRY_MS = 250
# A single write that takes longer than this means the client is not reading: the stream ends.
SEND_TIMEOUT_S = 30.0
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
    (b"x-content-type-options", b"nosniff"),
]


def start_seq(last_event_id: str | None, after: str | None, head: int) -> int:
    """Where a stream starts: the browser's Last-Event-ID on a reconnect, else `?after=`, else the head.

    A value that is not a non-negative integer, or is past the head, starts at the head.
    """
    for value in (last_event_id, after):
        if value is not None and value.strip().isdigit() and len(value.strip()) <= 19:
            return min(int(value.strip()), head)
    return head


async def serve_stream(feed: AuditFeed, start: int, max_s: float, receive: Any, send: Any) -> None:
    """Write the stream until the client leaves, its buffer overflows or `max_s` passes."""
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    subscription = feed.subscribe()
    try:
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch_disconnect)
            with anyio.move_on_after(max_s), contextlib.suppress(TimeoutError):  # a stalled write ends it
                await _write(feed, subscription, start, send)
            tg.cancel_scope.cancel()
    finally:
        feed.unsubscribe(subscription)
    # A clean end: the browser reconnects after RETRY_MS with its last id.
    with anyio.move_on_after(1.0), contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _write(feed: AuditFeed, subscription: Any, start: int, send: Any) -> None:
    cursor = start
    await _send(send, f"retry: {RETRY_MS}\nevent: hello\ndata: {{\"head\": {feed.head}}}\n\n".encode())
    upto = feed.head  # what the subscription may not carry; later records reach it live
    while True:
        batch = await feed.replay(cursor, upto)
        if batch is None:
            break
        await _send(send, batch.encode())
        cursor = batch.last
    while not subscription.overflowed:
        item: Batch | None = await subscription.next(HEARTBEAT_S)
        if item is None:
            if not subscription.overflowed:
                await _send(send, b": ping\n\n")
            continue
        fresh = item.after(cursor)
        if fresh is not None:
            await _send(send, fresh.encode())
            cursor = fresh.last


async def _send(send: Any, body: bytes) -> None:
    with anyio.fail_after(SEND_TIMEOUT_S):
        await send({"type": "http.response.body", "body": body, "more_body": True})
