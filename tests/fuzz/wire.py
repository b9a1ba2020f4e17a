"""A raw, pipelined JSON-RPC client over a process's stdio, for streaming many frames through one process."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from anyio.abc import Process
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .hostile import frame_shapes, render_all

PROTOCOL = "2025-06-18"
# Bounds on waits, never expectations: a loaded 2-core machine starts a server in 1-10 s.
START_S = 90.0
BATCH_S = 120.0
# Each generated object is sent whole and in five broken forms (hostile.MUTATIONS): 350 batches
# of 6 objects make a little over 10,000 frames per edge.
SHAPES_PER_BATCH = 6
FUZZ = settings(max_examples=350, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


class RawWire:
    """Writes frames as lines; a reader task files every answer by id and keeps every line it read."""

    def __init__(self, process: Process):
        self.process = process
        self.answers: dict[Any, dict[str, Any]] = {}
        self.lines = 0
        self.bad_lines: list[bytes] = []
        self.changed = anyio.Event()
        self.closed = False

    async def read_forever(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        try:
            async for chunk in self.process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._file(line)
                self.changed.set()
                self.changed = anyio.Event()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            self.closed = True
            self.changed.set()

    def _file(self, line: bytes) -> None:
        if not line.strip():
            return
        self.lines += 1
        if b"Traceback" in line:
            self.bad_lines.append(line[:500])
        try:
            message = json.loads(line)
        except ValueError:
            self.bad_lines.append(line[:500])
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self.bad_lines.append(line[:500])
            return
        if "id" in message and "method" not in message:
            self.answers[message["id"]] = message

    async def send_lines(self, lines: list[bytes]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(b"".join(line + b"\n" for line in lines))

    async def wait_for(self, ids: set[Any], timeout: float = BATCH_S) -> set[Any]:
        """Wait (bounded) until every id is answered or the process closed its stdout; the ids still missing."""
        with anyio.move_on_after(timeout):
            while not ids <= self.answers.keys() and not self.closed:
                await self.changed.wait()
        return ids - self.answers.keys()

    async def request(self, request_id: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
        await self.send_lines([json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                                           "params": params}).encode()])
        missing = await self.wait_for({request_id}, START_S)
        assert not missing, f"no answer to {method} (process closed: {self.closed})"
        return self.answers[request_id]

    async def initialize(self) -> None:
        init = await self.request("init", "initialize", {
            "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}})
        assert "result" in init, init
        await self.send_lines([b'{"jsonrpc":"2.0","method":"notifications/initialized"}'])


def stream_frames(portal: BlockingPortal, process: Process, wire: RawWire, tools: list[str], prefix: str) -> int:
    """Send the generated frames in pipelined batches, checking each batch's answers; how many were sent."""
    ids = itertools.count()
    sent = 0

    @FUZZ
    @given(st.lists(frame_shapes(tools), min_size=SHAPES_PER_BATCH, max_size=SHAPES_PER_BATCH))
    def batch(shapes: list[Any]) -> None:
        nonlocal sent
        frames = [frame for shape in shapes for frame in render_all(shape, lambda: f"{prefix}-{next(ids)}")]
        portal.call(wire.send_lines, [line for line, _ in frames])
        sent += len(frames)
        expected = {request_id for _, request_id in frames if request_id is not None}
        missing = portal.call(wire.wait_for, expected)
        assert process.returncode is None, f"the process exited ({process.returncode})"
        assert not missing, f"{len(missing)} frames with an id got no answer, e.g. {sorted(missing)[:3]}"
        assert not wire.bad_lines, wire.bad_lines[:3]

    batch()
    return sent


@asynccontextmanager
async def spawned(command: list[str], env: dict[str, str]) -> AsyncIterator[tuple[Process, RawWire]]:
    process = await anyio.open_process(command, env=env, stderr=subprocess.DEVNULL)
    wire = RawWire(process)
    async with anyio.create_task_group() as tg:
        tg.start_soon(wire.read_forever)
        try:
            yield process, wire
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.move_on_after(START_S):
                await process.wait()
            if process.returncode is None:
                process.kill()
            tg.cancel_scope.cancel()


def json_message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response, whether sent as JSON or as one SSE event."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = data[-1] if data else "{}"
    message: dict[str, Any] = json.loads(text)
    return message
