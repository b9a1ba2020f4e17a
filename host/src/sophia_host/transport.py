"""A stdio transport to a child server whose process the host owns.

The SDK's `stdio_client` hides its process; the host needs the pid (status, fault tests), the
exit (to restart), and a hard kill (a child that never answers initialize). The process runs in
its own session so a kill reaches anything it spawned (e.g. a local fakesnow).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import stat
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from .raw import RAW_MARK, RawChannel

log = logging.getLogger("sophia.host")

# The child's stderr goes to a per-child log file, not the host's stderr: over stdio the host's
# own client (a desktop app) shows stderr to the user, and a chatty child would drown it.
STDERR_LIMIT_BYTES = 5 * 1024 * 1024
# A line longer than this from the host's own client is dropped rather than buffered without bound.
STDIO_LINE_LIMIT = 16 * 1024 * 1024


class ChildProcess:
    """One spawned child: its process, and the message streams the SDK client reads and writes."""

    def __init__(self, process: anyio.abc.Process):
        self.process = process
        self.exited = anyio.Event()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the child's whole process group (it leads its own session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)


@asynccontextmanager
async def spawn_child(
    command: Sequence[str],
    env: Mapping[str, str],
    stderr_path: Path | None,
    cwd: Path | None = None,
) -> AsyncIterator[tuple[ChildProcess, tuple[Any, Any], RawChannel]]:
    """Start `command` and yield it with (read, write) streams of JSON-RPC messages for the SDK
    client, and the raw channel that shares its pipe (see raw.py)."""
    stderr: Any = None
    if stderr_path is not None:
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        if stderr_path.exists() and stderr_path.stat().st_size > STDERR_LIMIT_BYTES:
            stderr_path.replace(stderr_path.with_suffix(".log.1"))
        stderr = stderr_path.open("ab")
    try:
        process = await anyio.open_process(
            list(command), env=dict(env), stderr=stderr if stderr is not None else None,
            start_new_session=True, cwd=cwd,
        )
    finally:
        if stderr is not None:
            stderr.close()
    child = ChildProcess(process)
    read_send: MemoryObjectSendStream[SessionMessage | Exception]
    read_recv: MemoryObjectReceiveStream[SessionMessage | Exception]
    read_send, read_recv = anyio.create_memory_object_stream(64)
    write_send: MemoryObjectSendStream[SessionMessage]
    write_recv: MemoryObjectReceiveStream[SessionMessage]
    write_send, write_recv = anyio.create_memory_object_stream(64)
    assert process.stdin is not None
    raw = RawChannel(process.stdin.send)

    async def reader() -> None:
        assert process.stdout is not None
        buffer = b""
        async with read_send:
            try:
                async for chunk in process.stdout:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if RAW_MARK in line and _route_raw(raw, line):
                            continue
                        if line.strip():
                            await read_send.send(_parse(line))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                pass
            finally:
                raw.close()

    async def writer() -> None:
        assert process.stdin is not None
        async with write_recv:
            try:
                async for message in write_recv:
                    raw.observe(message)
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                pass

    async def reaper() -> None:
        await process.wait()
        child.exited.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        tg.start_soon(reaper)
        try:
            yield child, (read_recv, write_send), raw
        finally:
            raw.close()
            with anyio.CancelScope(shield=True):
                await _stop(child)
            tg.cancel_scope.cancel()


async def _stop(child: ChildProcess) -> None:
    """Close stdin (the MCP way to ask a stdio server to leave), then TERM, then KILL."""
    process = child.process
    if process.stdin is not None:
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
    for action, grace in ((None, 2.0), (child.terminate, 2.0), (child.kill, 2.0)):
        if process.returncode is not None:
            break
        if action is not None:
            action()
        with anyio.move_on_after(grace):
            await child.exited.wait()
    # The child is gone but something it forked may still hold its group.
    child.kill()


def _route_raw(raw: RawChannel, line: bytes) -> bool:
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and raw.route(message)


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        log.warning("child wrote a line that is not JSON-RPC: %s", json.dumps(line[:200].decode(errors="replace")))
        return exc


@dataclass
class StdioPipes:
    """The host's own stdin/stdout as asyncio pipes, and the fds to restore when done."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    transports: tuple[asyncio.BaseTransport, asyncio.BaseTransport]


async def connect_stdio_pipes() -> StdioPipes:
    """Open stdin/stdout as non-blocking pipes; OSError/ValueError where they are not pipes or sockets."""
    for fd in (0, 1):
        mode = os.fstat(fd).st_mode
        # epoll takes pipes and sockets; /dev/null, regular files and some ttys it refuses.
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            raise OSError(f"fd {fd} is not a pipe or a socket")
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    reader = asyncio.StreamReader(limit=STDIO_LINE_LIMIT)
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


@asynccontextmanager
async def stdio_streams(
    pipes: StdioPipes, take: Callable[[bytes], bool] | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    """The host's own stdio as (read, write) message streams, on non-blocking pipes.

    The SDK's stdio_server reads and writes through a worker thread per line; on the host's edge,
    where every call crosses stdio twice, those thread hand-offs are much of the hop. Like the
    SDK, fd 0 and 1 are diverted (to /dev/null and stderr) while serving, so stray output in this
    process cannot corrupt the wire.
    """
    saved_in, saved_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    read_send: MemoryObjectSendStream[SessionMessage | Exception]
    read_recv: MemoryObjectReceiveStream[SessionMessage | Exception]
    read_send, read_recv = anyio.create_memory_object_stream(64)
    write_send: MemoryObjectSendStream[SessionMessage]
    write_recv: MemoryObjectReceiveStream[SessionMessage]
    write_send, write_recv = anyio.create_memory_object_stream(64)
    reader, writer = pipes.reader, pipes.writer

    async def pump_in() -> None:
        async with read_send:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    log.warning("stdin line over %d bytes dropped", STDIO_LINE_LIMIT)
                    await reader.read(STDIO_LINE_LIMIT)
                    continue
                if take is not None and take(line):
                    continue  # the fast path (fastpath.StdioEdge) took it
                if line.strip():
                    await read_send.send(_parse(line))

    async def pump_out() -> None:
        async with write_recv:
            async for message in write_recv:
                writer.write(message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n")
                await writer.drain()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_in)
            tg.start_soon(pump_out)
            try:
                yield read_recv, write_send
            finally:
                tg.cancel_scope.cancel()
    finally:
        for transport in pipes.transports:
            transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
