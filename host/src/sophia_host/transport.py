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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.shared.message import SessionMessage
from sophia_shared.frames import FrameLimits, Rejected
from sophia_shared.stdio import StdioPipes, connect_stdio_pipes, message_streams, sdk_message, stdio_streams

from .forked import ForkedProcess
from .raw import RAW_MARK, RawChannel

if TYPE_CHECKING:
    from .fork_client import ForkServer

__all__ = ["ChildProcess", "StdioPipes", "connect_stdio_pipes", "spawn_child", "stdio_streams"]

log = logging.getLogger("sophia.host")

# The child's stderr goes to a per-child log file, not the host's stderr: over stdio the host's
# own client (a desktop app) shows stderr to the user, and a chatty child would drown it.
STDERR_LIMIT_BYTES = 5 * 1024 * 1024
# What a child writes is checked like any frame (a child is a server, not the host's own code), with
# room for its largest results.
CHILD_LIMITS = FrameLimits(max_bytes=64 * 1024 * 1024, max_depth=190)


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

    @property
    def forked(self) -> bool:
        """Forked from the host's fork server, not spawned."""
        return isinstance(self.process, ForkedProcess)

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
    fork_server: ForkServer | None = None,
    name: str = "",
) -> AsyncIterator[tuple[ChildProcess, tuple[Any, Any], RawChannel]]:
    """Start `command` and yield it with (read, write) streams of JSON-RPC messages for the SDK
    client, and the raw channel that shares its pipe (see raw.py).

    With a `fork_server` the child `name` is forked from it when it can be (fork_client.plan), else
    spawned; either way it is the same process to everything below: its own session, these pipes."""
    process = await _start(command, env, stderr_path, cwd, fork_server, name)
    child = ChildProcess(process)
    read_send, read_recv, write_send, write_recv = message_streams()
    assert process.stdin is not None
    raw = RawChannel(_direct_send(process.stdin))

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
                if isinstance(process, ForkedProcess):
                    await process.aclose()
            tg.cancel_scope.cancel()


async def _start(
    command: Sequence[str], env: Mapping[str, str], stderr_path: Path | None, cwd: Path | None,
    fork_server: ForkServer | None, name: str,
) -> anyio.abc.Process:
    stderr: Any = None
    if stderr_path is not None:
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        if stderr_path.exists() and stderr_path.stat().st_size > STDERR_LIMIT_BYTES:
            stderr_path.replace(stderr_path.with_suffix(".log.1"))
        stderr = stderr_path.open("ab")
    try:
        if fork_server is not None:
            # Without a log, the host's own stderr, as a spawned child inherits it.
            forked = await fork_server.fork(name, command, env, stderr.fileno() if stderr is not None else 2, cwd)
            if forked is not None:
                return forked
        return await anyio.open_process(
            list(command), env=dict(env), stderr=stderr if stderr is not None else None,
            start_new_session=True, cwd=cwd,
        )
    finally:
        if stderr is not None:
            stderr.close()


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


def _direct_send(stdin: Any) -> Callable[[bytes], Awaitable[None]]:
    """The raw channel's write to the child's stdin: straight to the asyncio stream when there is one.

    anyio's send adds a cancellation check and a shielded yield to the loop around every write; on
    the fast lane's hop that is a task switch and a cancel scope per call for nothing (the write
    itself never blocks; drain waits only when the pipe is full)."""
    writer = getattr(stdin, "_stream", None)  # anyio's StreamWriterWrapper over asyncio's StreamWriter
    if not isinstance(writer, asyncio.StreamWriter):
        return stdin.send  # type: ignore[no-any-return]

    async def send(data: bytes) -> None:
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError, RuntimeError) as exc:  # uvloop: RuntimeError once closed
            raise anyio.BrokenResourceError from exc

    return send


def _route_raw(raw: RawChannel, line: bytes) -> bool:
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and raw.route(message)


def _parse(line: bytes) -> SessionMessage | Exception:
    """A line the child wrote, for the SDK client. A bad response that names a request becomes an
    error for that request, so the call fails at once instead of waiting for its timeout."""
    message = sdk_message(line, CHILD_LIMITS)
    if not isinstance(message, Rejected):
        return message
    log.warning("child wrote a line that is not JSON-RPC (%s): %s", message.reason,
                json.dumps(line[:200].decode(errors="replace")))
    if message.request_id is None or message.answer:
        return ValueError(message.reason)
    reason = f"the server answered with a bad frame: {message.reason}"
    error = types.ErrorData(code=types.INTERNAL_ERROR, message=reason)
    return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=message.request_id, error=error))
