"""A child forked by the fork server, as an anyio Process: what transport.spawn_child reads and writes.

Its pipes are the host's ends of two os.pipe()s, served by the event loop exactly like the pipes of
a process the loop spawned (asyncio's StreamReader/StreamWriter); its exit comes from the fork
server, which is its parent and reaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from signal import Signals

import anyio
import anyio.abc


class PipeReceiveStream(anyio.abc.ByteReceiveStream):
    """The child's stdout."""

    def __init__(self, reader: asyncio.StreamReader, transport: asyncio.BaseTransport):
        self._reader = reader
        self._transport = transport

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self._reader.read(max_bytes)
        if not data:
            raise anyio.EndOfStream
        return data

    async def aclose(self) -> None:
        self._transport.close()


class PipeSendStream(anyio.abc.ByteSendStream):
    """The child's stdin. `_stream` is the attribute anyio's own wrapper has: transport._direct_send
    writes to it without anyio's per-write checkpoint."""

    def __init__(self, writer: asyncio.StreamWriter):
        self._stream = writer

    async def send(self, item: bytes) -> None:
        try:
            self._stream.write(item)
            await self._stream.drain()
        except (ConnectionResetError, BrokenPipeError, RuntimeError) as exc:  # uvloop: RuntimeError once closed
            if self._stream.is_closing():
                raise anyio.BrokenResourceError from exc
            raise

    async def aclose(self) -> None:
        self._stream.close()


class ForkedProcess(anyio.abc.Process):
    """A child of the fork server: its pid, pipes and (once the fork server reports it) its exit."""

    def __init__(self, pid: int, stdin: PipeSendStream, stdout: PipeReceiveStream):
        self._pid = pid
        self._stdin = stdin
        self._stdout = stdout
        self._returncode: int | None = None
        self._exited = anyio.Event()

    def exited_with(self, code: int) -> None:
        if self._returncode is None:
            self._returncode = code
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self._returncode is not None
        return self._returncode

    def send_signal(self, signal: Signals) -> None:
        if self._returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal)

    def terminate(self) -> None:
        self.send_signal(Signals.SIGTERM)

    def kill(self) -> None:
        self.send_signal(Signals.SIGKILL)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def stdin(self) -> PipeSendStream:
        return self._stdin

    @property
    def stdout(self) -> PipeReceiveStream:
        return self._stdout

    @property
    def stderr(self) -> None:
        return None

    async def aclose(self) -> None:
        """Close the host's ends of the pipes (the child is stopped by transport._stop)."""
        await self._stdin.aclose()
        await self._stdout.aclose()


async def open_pipes(stdin_fd: int, stdout_fd: int) -> tuple[PipeSendStream, PipeReceiveStream]:
    """The host's ends of a child's stdin and stdout, on the running loop (the fds are theirs to close)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(stdout_fd, "rb", buffering=0)
        )
    except BaseException:
        os.close(stdin_fd)
        raise
    try:
        write_transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(stdin_fd, "wb", buffering=0)
        )
    except BaseException:
        read_transport.close()
        raise
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    return PipeSendStream(writer), PipeReceiveStream(reader, read_transport)
