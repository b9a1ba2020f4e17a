"""The raw channel to a stdio child: tools/call as JSON lines, answered by id.

The SDK client validates every message into pydantic models both ways; on the host's hot path
that work is most of the hop. A forwarded call needs none of it: the child validates its own
arguments and the caller's client validates the result. So the fast path writes the request as
one JSON line on the child's stdin and the child's reader hands the matching response line back
as a dict. Everything else on the pipe (initialize, tools/list, list_changed, the slow path) stays
with the SDK client; the two share the pipe through ids the SDK never uses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from mcp.shared.message import SessionMessage

# Request ids (and progress tokens) of raw calls; the SDK client numbers its own requests.
RAW_ID_PREFIX = "sophia-raw-"
RAW_MARK = RAW_ID_PREFIX.encode()
ENVELOPE_PREFIX = "io.modelcontextprotocol/"

ProgressSink = Callable[[dict[str, Any]], None]


def without_protocol_stamps(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A result's `_meta` without the child's protocol stamps (its serverInfo): they describe the
    wrong hop to the host's caller."""
    return {k: v for k, v in meta.items() if not k.startswith(ENVELOPE_PREFIX)}


class ChannelClosed(Exception):
    """The child's pipe closed (the child died or is being stopped) before it answered."""


class _Pending:
    __slots__ = ("progress", "response")

    def __init__(self, progress: ProgressSink | None):
        # An asyncio future, not an anyio Event: the host's loop is always asyncio (uvloop), and
        # on a hop measured in tens of microseconds the Event's bookkeeping shows.
        self.response: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.progress = progress


class RawChannel:
    """Raw tools/call requests multiplexed with the SDK client's traffic on one child pipe."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]]):
        # The child's stdin itself, not the SDK writer's queue: one task switch less per call.
        # Lines never interleave: each write() holds whole lines and runs on the loop's thread.
        self._send = send
        # Lines queued in one turn of the loop go out in one write: the child then reads several
        # calls per wake-up, which is most of what a busy child spends per call beyond the call itself.
        self._outbox: list[bytes] = []
        self._outbox_ids: list[str] = []
        self._writes: set[asyncio.Task[None]] = set()
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._closed = False
        # The per-request `_meta` envelope of a 2026-era connection, copied from the SDK client's
        # own requests so raw calls speak exactly the negotiated version; empty on handshake-era.
        self.envelope: dict[str, Any] = {}

    def observe(self, message: SessionMessage) -> None:
        """See a request the SDK client writes (the writer calls this) to learn its envelope."""
        params = getattr(message.message, "params", None)
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(meta, dict):
            self.envelope = {k: v for k, v in meta.items() if k.startswith(ENVELOPE_PREFIX)}

    def route(self, message: dict[str, Any]) -> bool:
        """Take a message the child wrote if it belongs to a raw call (the reader calls this)."""
        if "method" not in message:
            pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if pending is None:
                return False
            if not pending.response.done():
                pending.response.set_result(message)
            return True
        if message.get("method") == "notifications/progress":
            params = message.get("params")
            token = params.get("progressToken") if isinstance(params, dict) else None
            pending = self._pending.get(token) if isinstance(token, str) else None
            if pending is None:
                return False
            if pending.progress is not None:
                pending.progress(params)  # type: ignore[arg-type]
            return True
        return False

    async def call(self, params: dict[str, Any], progress: ProgressSink | None = None) -> dict[str, Any]:
        """Send tools/call with `params` and return the child's JSON-RPC response message.

        With `progress`, the child's progress notifications for this call go to it (their token is
        this call's id; the caller maps it back to its own). Cancelled (or timed out) → the child
        hears notifications/cancelled. ChannelClosed when the pipe closes first.
        """
        if self._closed:
            raise ChannelClosed("the child's pipe is closed")
        request_id = f"{RAW_ID_PREFIX}{next(self._ids)}"
        meta = {**(params.get("_meta") or {}), **self.envelope}
        if progress is not None:
            meta["progressToken"] = request_id
        else:
            meta.pop("progressToken", None)
        line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                           "params": {**params, "_meta": meta}}, separators=(",", ":")).encode() + b"\n"
        pending = self._pending[request_id] = _Pending(progress)
        answered = False
        try:
            if len(self._pending) == 1 and not self._outbox:
                await self._write(line, [request_id])  # alone: at once, with no turn of the loop in between
            else:
                self._post(line, request_id)
            response = await pending.response
            answered = True
            return response
        finally:
            del self._pending[request_id]
            if not answered and not self._closed:
                self._cancel(request_id)

    def _post(self, line: bytes, request_id: str | None = None) -> None:
        """Queue a line for the child; the queue is written once the loop's current turn is done."""
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(line)
        if request_id is not None:
            self._outbox_ids.append(request_id)

    def _flush(self) -> None:
        data, ids = b"".join(self._outbox), self._outbox_ids
        self._outbox, self._outbox_ids = [], []
        task = asyncio.get_running_loop().create_task(self._write(data, ids))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, data: bytes, ids: list[str]) -> None:
        try:
            await self._send(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            for request_id in ids:  # those calls fail now rather than wait for the reader to see the end
                pending = self._pending.get(request_id)
                if pending is not None and not pending.response.done():
                    pending.response.set_exception(ChannelClosed("the child's pipe is closed"))

    def _cancel(self, request_id: str) -> None:
        # Through the same queue as the request, so it can never overtake it. Best effort: a write
        # that fails has no call left to fail, and the child's own timeout still applies.
        notice = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                  "params": {"requestId": request_id, "reason": "the caller cancelled or timed out"}}
        self._post(json.dumps(notice, separators=(",", ":")).encode() + b"\n")

    def close(self) -> None:
        """Fail every call still waiting: the pipe is gone."""
        self._closed = True
        for pending in self._pending.values():
            if not pending.response.done():
                pending.response.set_exception(ChannelClosed("the child's pipe closed during the call"))
