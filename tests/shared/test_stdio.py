"""The checked stdio edge (stdio.py) of a real server process: on pipes, and on plain files (the
blocking fallback), every bad line is answered with its id and the next good one still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage

TESTS = Path(__file__).resolve().parents[1]
DEMO = [sys.executable, "-m", "shared.demo_server"]

pytestmark = pytest.mark.e2e

INIT = {"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_DEMO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return {**env, **extra}


def _echo(request_id: str, text: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                       "params": {"name": "demo_echo", "arguments": {"text": text}}}).encode()


def _lines(*frames: dict[str, Any] | bytes) -> bytes:
    return b"".join((f if isinstance(f, bytes) else json.dumps(f).encode()) + b"\n" for f in frames)


def _answers(output: bytes) -> dict[Any, dict[str, Any]]:
    messages = [json.loads(line) for line in output.splitlines() if line.strip()]
    return {m["id"]: m for m in messages if "id" in m and "method" not in m}


BAD_THEN_GOOD = (
    INIT, INITIALIZED,
    b'{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"name":"demo_echo","arguments":{"text":"'
    + b"x" * 10_000 + b'"}}}',
    b'{"jsonrpc":"2.0","id":"deep","method":"tools/call","params":' + b"[" * 1500 + b"]" * 1500 + b"}",
    b'{"jsonrpc":"2.0","id":"sur","method":"tools/call","params":{"name":"demo_echo","arguments":{"text":"\\ud800"}}}',
    b'{"jsonrpc":"2.0","id":"cut","method":"tools/call","params":{"name":',
    _echo("good", "still here"),
)


def _check(answers: dict[Any, dict[str, Any]]) -> None:
    assert answers["big"]["error"]["code"] == -32700
    assert "SOPHIA_FRAME_MAX_BYTES" in answers["big"]["error"]["message"]
    assert answers["deep"]["error"]["code"] == -32600
    assert answers["sur"]["error"]["code"] == -32600
    assert answers["cut"]["error"]["code"] == -32700
    assert answers["good"]["result"]["structuredContent"]["text"] == "hello still here"


@pytest.mark.anyio
async def test_bad_lines_on_pipes_are_answered_and_the_next_good_one_works() -> None:
    process = await anyio.open_process(DEMO, env=_env(SOPHIA_FRAME_MAX_BYTES="4096"), stderr=subprocess.DEVNULL)
    assert process.stdin is not None and process.stdout is not None
    output = b""
    with anyio.fail_after(60):
        await process.stdin.send(_lines(*BAD_THEN_GOOD))
        while "good" not in _answers(output):
            output += await process.stdout.receive()
        await process.stdin.aclose()
        await process.wait()
    _check(_answers(output))


def test_bad_lines_from_a_file_are_answered_too(tmp_path: Path) -> None:
    source, sink = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(_lines(*BAD_THEN_GOOD))
    with source.open("rb") as stdin, sink.open("wb") as stdout:
        done = subprocess.run(DEMO, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL,
                              env=_env(SOPHIA_FRAME_MAX_BYTES="4096"), timeout=60, check=False)
    assert done.returncode == 0
    _check(_answers(sink.read_bytes()))


@pytest.mark.anyio
async def test_the_end_of_input_waits_for_answers_but_not_for_cancelled_requests() -> None:
    from sophia_shared.stdio import _Outstanding

    def message(frame: dict[str, Any]) -> SessionMessage:
        return SessionMessage(types.jsonrpc_message_adapter.validate_python(frame))

    outstanding = _Outstanding()
    outstanding.asked(message({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}))
    outstanding.asked(message({"jsonrpc": "2.0", "id": "two", "method": "tools/list", "params": {}}))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(outstanding.answered)
            await anyio.sleep(0)  # it waits: two requests are open
            outstanding.answering(message({"jsonrpc": "2.0", "id": 1, "result": {}}))
            # The client gave up on the other one: MCP sends no answer to a cancelled request.
            outstanding.asked(message({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                       "params": {"requestId": "two"}}))
            # A hostile requestId (not an id at all) changes nothing and raises nothing.
            outstanding.asked(message({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                       "params": {"requestId": [1, 2]}}))
