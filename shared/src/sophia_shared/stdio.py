"""The stdio edge of every Sophia process (each server, and the host in front of them).

Every line passes `frames.check_frame` before the SDK reads it: a bad frame is answered at once
with a JSON-RPC error carrying its id (the SDK's own stdio server drops what it cannot parse, and
the client waits for its timeout), a line over the size limit is discarded through its newline
without being buffered, and the next good frame works.

stdin and stdout are served as non-blocking asyncio pipes: the SDK's stdio server reads and writes
through a worker thread per line, and on the host, where a call crosses stdio twice, those thread
hand-offs were much of the hop. Where fd 0/1 are not pipes or sockets (a terminal, a file), the
same checks run on blocking reads in a worker thread. Like the SDK, fd 0 and 1 are diverted (to
/dev/null and stderr) while serving, so stray output in this process cannot corrupt the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import anyio
import anyio.to_thread
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from .frames import INVALID_REQUEST, PARSE_ERROR, FrameLimits, Rejected, check_frame, error_response, usable_id

log = logging.getLogger("sophia.stdio")

# How much of an oversized line is kept to read its id from (frames._recover_id reads the head).
_HEAD_BYTES = 64 * 1024


@dataclass
class StdioPipes:
    """The process's own stdin/stdout as asyncio pipes, and the transports to close when done."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    transports: tuple[asyncio.BaseTransport, asyncio.BaseTransport]


def suite_limits() -> FrameLimits:
    """The frame limits in force (SOPHIA_FRAME_MAX_BYTES, SOPHIA_FRAME_MAX_DEPTH)."""
    from .settings import SuiteSettings

    return FrameLimits.from_settings(SuiteSettings())


async def connect_stdio_pipes(limits: FrameLimits | None = None) -> StdioPipes:
    """Open stdin/stdout as non-blocking pipes; OSError/ValueError where they are not pipes or sockets."""
    limits = limits or suite_limits()
    for fd in (0, 1):
        mode = os.fstat(fd).st_mode
        # epoll takes pipes and sockets; /dev/null, regular files and some ttys it refuses.
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            raise OSError(f"fd {fd} is not a pipe or a socket")
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    # The reader's limit is the frame limit: a longer line raises LimitOverrunError instead of
    # growing the buffer.
    reader = asyncio.StreamReader(limit=limits.max_bytes + 1)
    try:
        in_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
        )
        out_transport, out_protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", buffering=0)
        )
    except (OSError, ValueError):
        for fd in (wire_in, wire_out):
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    writer = asyncio.StreamWriter(out_transport, out_protocol, reader, loop)
    return StdioPipes(reader, writer, (in_transport, out_transport))


class _Lines(Protocol):
    async def read(self) -> bytes | _Oversized | None: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Oversized:
    """A line longer than the limit: discarded, only its head kept (to read an id from)."""

    head: bytes


class _PipeLines:
    def __init__(self, pipes: StdioPipes):
        self.reader, self.writer = pipes.reader, pipes.writer

    async def read(self) -> bytes | _Oversized | None:
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial or None  # a last line without its newline is still a frame
        except asyncio.LimitOverrunError as exc:
            head = await self.reader.read(exc.consumed)
            return await self._discard(head[:_HEAD_BYTES])

    async def _discard(self, head: bytes) -> _Oversized:
        while True:
            try:
                await self.reader.readuntil(b"\n")
                return _Oversized(head)
            except asyncio.IncompleteReadError:
                return _Oversized(head)
            except asyncio.LimitOverrunError as exc:
                await self.reader.read(exc.consumed)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()


class _ThreadLines:
    """Blocking fds (a terminal, a file) read and written in a worker thread."""

    def __init__(self, wire_in: BinaryIO, wire_out: BinaryIO, limits: FrameLimits):
        self.wire_in, self.wire_out, self.limit = wire_in, wire_out, limits.max_bytes + 1
        self.pending: list[bytes] = []

    async def read(self) -> bytes | _Oversized | None:
        line = await anyio.to_thread.run_sync(self.wire_in.readline, self.limit)
        if not line:
            return None
        if len(line) < self.limit or line.endswith(b"\n"):
            return line
        head = line[:_HEAD_BYTES]
        while line and not line.endswith(b"\n"):
            line = await anyio.to_thread.run_sync(self.wire_in.readline, self.limit)
        return _Oversized(head)

    def write(self, data: bytes) -> None:
        self.pending.append(data)

    async def drain(self) -> None:
        data, self.pending = b"".join(self.pending), []
        await anyio.to_thread.run_sync(self._write_all, data)

    def _write_all(self, data: bytes) -> None:
        self.wire_out.write(data)
        self.wire_out.flush()


def sdk_message(line: bytes, limits: FrameLimits) -> SessionMessage | Rejected:
    """One line as the SDK's message, or the error that answers it."""
    checked = check_frame(line, limits)
    if isinstance(checked, Rejected):
        return checked
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError:
        # A frame our check passed but the SDK's parser refuses would otherwise vanish unanswered.
        request_id = checked.get("id")
        return Rejected(
            INVALID_REQUEST,
            "frame is not a valid MCP message",
            request_id if usable_id(request_id) else None,
            "method" in checked and "id" in checked,
        )


def oversized(head: bytes, limits: FrameLimits) -> Rejected:
    """The answer to a line that went over the limit (its id read from the head, when there)."""
    checked = check_frame(head, limits)
    request_id = checked.get("id") if isinstance(checked, dict) else checked.request_id
    return Rejected(
        PARSE_ERROR,
        f"frame is over the limit of {limits.max_bytes} bytes (SOPHIA_FRAME_MAX_BYTES)",
        request_id if usable_id(request_id) else None,
        True,
    )


def message_streams() -> tuple[
    MemoryObjectSendStream[SessionMessage | Exception],
    MemoryObjectReceiveStream[SessionMessage | Exception],
    MemoryObjectSendStream[SessionMessage],
    MemoryObjectReceiveStream[SessionMessage],
]:
    """Both ends of the two streams an SDK session runs on: (read_send, read_recv, write_send,
    write_recv), 64 messages buffered each way."""
    read_send: MemoryObjectSendStream[SessionMessage | Exception]
    read_recv: MemoryObjectReceiveStream[SessionMessage | Exception]
    read_send, read_recv = anyio.create_memory_object_stream(64)
    write_send: MemoryObjectSendStream[SessionMessage]
    write_recv: MemoryObjectReceiveStream[SessionMessage]
    write_send, write_recv = anyio.create_memory_object_stream(64)
    return read_send, read_recv, write_send, write_recv


@asynccontextmanager
async def stdio_streams(
    pipes: StdioPipes | None,
    take: Callable[[bytes], bool] | None = None,
    limits: FrameLimits | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """The process's stdio as (read, write) message streams for the SDK's serving loop.

    `pipes` from connect_stdio_pipes, or None for blocking fds. `take(line)` sees each line first
    and returns True when it handled it itself (the host's fast path).
    """
    limits = limits or suite_limits()
    with _wire(pipes, limits) as lines:
        read_send, read_recv, write_send, write_recv = message_streams()
        outstanding = _Outstanding()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump_in, lines, read_send, take, limits, outstanding)
            tg.start_soon(_pump_out, lines, write_recv, outstanding)
            try:
                yield read_recv, write_send
            finally:
                tg.cancel_scope.cancel()


@contextlib.contextmanager
def _wire(pipes: StdioPipes | None, limits: FrameLimits) -> Iterator[_Lines]:
    """The wire's lines, with fd 0 and 1 diverted (to /dev/null and stderr) until the end."""
    saved_in, saved_out = os.dup(0), os.dup(1)
    lines: _Lines
    if pipes is not None:
        lines = _PipeLines(pipes)
    else:
        lines = _ThreadLines(os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb"), limits)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    try:
        yield lines
    finally:
        if pipes is not None:
            for transport in pipes.transports:
                transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)


async def _answer(lines: _Lines, rejected: Rejected) -> None:
    response = rejected.response_line()
    log.debug("refused a frame: %s", rejected.reason)  # debug: a flood of bad frames must not flood the log
    if response is not None:
        lines.write(response + b"\n")
        await lines.drain()


async def _pump_in(
    lines: _Lines,
    read_send: MemoryObjectSendStream[SessionMessage | Exception],
    take: Callable[[bytes], bool] | None,
    limits: FrameLimits,
    outstanding: _Outstanding,
) -> None:
    """Checked lines from the wire to the SDK; a refused one is answered here."""
    async with read_send:
        while True:
            line = await lines.read()
            if line is None:
                # The client closed its side (e.g. `server < requests.jsonl`): what it asked is still
                # answered before the read stream ends, which stops the SDK's loop and its handlers.
                with anyio.move_on_after(limits.drain_s):
                    await outstanding.answered()
                return
            if isinstance(line, _Oversized):
                await _answer(lines, oversized(line.head, limits))
                continue
            if take is not None and take(line):
                continue  # the fast path (the host's fastpath.StdioEdge) took it
            if not line.strip():
                continue
            message = sdk_message(line, limits)
            if isinstance(message, Rejected):
                await _answer(lines, message)
            else:
                outstanding.asked(message)
                await read_send.send(message)


async def _pump_out(
    lines: _Lines, write_recv: MemoryObjectReceiveStream[SessionMessage], outstanding: _Outstanding
) -> None:
    """The SDK's messages to the wire."""
    async with write_recv:
        async for message in write_recv:
            # Whatever else is already queued goes in the same write: under load the reader
            # (the host, a client) then wakes once for several answers.
            chunks = [_serialized(message)]
            outstanding.answering(message)
            while True:
                try:
                    queued = write_recv.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                chunks.append(_serialized(queued))
                outstanding.answering(queued)
            lines.write(b"".join(chunks))
            await lines.drain()


class _Outstanding:
    """The ids of requests handed to the SDK and not yet answered."""

    def __init__(self) -> None:
        self._ids: set[Any] = set()
        self._none_left = anyio.Event()

    def asked(self, message: SessionMessage) -> None:
        frame = message.message
        if isinstance(frame, types.JSONRPCRequest):
            self._ids.add(frame.id)
        elif isinstance(frame, types.JSONRPCNotification) and frame.method == "notifications/cancelled":
            # A cancelled request gets no answer (MCP): nothing to wait for at the end of input.
            request_id = (frame.params or {}).get("requestId")
            if isinstance(request_id, str | int):
                self._ids.discard(request_id)
            if not self._ids:
                self._none_left.set()

    def answering(self, message: SessionMessage) -> None:
        if isinstance(message.message, types.JSONRPCResponse | types.JSONRPCError):
            self._ids.discard(message.message.id)
            if not self._ids:
                self._none_left.set()

    async def answered(self) -> None:
        if self._ids:
            self._none_left = anyio.Event()
            await self._none_left.wait()


def _serialized(message: SessionMessage) -> bytes:
    try:
        return message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
    except ValueError:
        # A result that cannot be written as JSON (a tool returned a lone surrogate) must still
        # answer its request rather than kill the writer and, with it, the connection.
        request_id = getattr(message.message, "id", None)
        if not usable_id(request_id):
            return b""
        log.error("a response to %r could not be serialized", request_id)
        error = error_response(request_id, -32603, "the response could not be encoded as JSON")
        return json.dumps(error, separators=(",", ":")).encode() + b"\n"


async def serve_stdio(server: Any, limits: FrameLimits | None = None) -> None:
    """Run an MCPServer's low-level serving loop on this checked stdio edge."""
    lowlevel = server._lowlevel_server
    try:
        pipes: StdioPipes | None = await connect_stdio_pipes(limits)
    except (OSError, ValueError):
        pipes = None
    async with stdio_streams(pipes, limits=limits) as (read, write):
        await lowlevel.run(read, write, lowlevel.create_initialization_options())
