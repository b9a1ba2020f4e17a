"""The host's life cycle (cli.py `up`), with `sophia up` as a real process: a busy port is one line before
any child starts; SIGINT and SIGTERM stop the children and drain the audit without a traceback, over
stdio (on pipes, and on the SDK's fallback transport when stdout is a file) and over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from sophia_shared.audit import AuditLog

from .conftest import START_S
from .test_cli import SOPHIA, host_env, http_host, write_config
from .test_fastpath import ENVELOPE, Wire

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_a_busy_port_is_one_line_before_any_child_starts(tmp_path: Path, sophia_home: Path) -> None:
    config = write_config(tmp_path, "alpha")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with anyio.fail_after(START_S):
            done = await anyio.run_process([SOPHIA, "up", "--port", str(port)], env=host_env(config, sophia_home),
                                           check=False)
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2
    assert len(lines) == 1, lines
    assert f"port {port}" in lines[0] and "--port" in lines[0]
    # No child was started: none wrote its log.
    assert not (sophia_home / "host" / "logs").exists()


def _child_pids(home: Path) -> list[int]:
    status = json.loads((home / "host" / "status.json").read_text())
    return [s["pid"] for s in status["servers"] if s["pid"]] + [s["standby_pid"] for s in status["servers"]
                                                                 if s.get("standby_pid")]


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


async def _stopped_cleanly(process: Process, signum: signal.Signals, home: Path) -> str:
    """Send `signum`; return the host's stderr after it left, having checked it left cleanly."""
    pids = _child_pids(home)
    assert pids
    process.send_signal(signum)
    with anyio.fail_after(START_S):
        code = await process.wait()
        assert process.stderr is not None
        err = b""
        async for chunk in process.stderr:
            err += chunk
    text = err.decode(errors="replace")
    assert code == 0, text
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert all(_gone(pid) for pid in pids)
    assert not (home / "host" / "status.json").exists()
    return text


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_stops_the_http_host_cleanly(tmp_path: Path, sophia_home: Path, free_port: int,
                                                     signum: signal.Signals) -> None:
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    from .test_cli import _wait_http

    config = write_config(tmp_path, "alpha")
    async with http_host(config, sophia_home, free_port, "--allow-unauthenticated") as process:
        url = f"http://127.0.0.1:{free_port}/mcp"
        async with httpx2.AsyncClient(timeout=START_S) as http, \
                Client(streamable_http_client(url, http_client=http)) as client:
            await _wait_http(client, "alpha_echo")
            assert not (await client.call_tool("alpha_echo", {"text": "before the signal"})).is_error
        await _stopped_cleanly(process, signum, sophia_home)
    assert _host_records(sophia_home) >= 1
    assert AuditLog(home=sophia_home).verify().intact


@pytest.mark.parametrize("stdout", ["pipe", "file"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_stops_the_stdio_host_cleanly(tmp_path: Path, sophia_home: Path, signum: signal.Signals,
                                                      stdout: str) -> None:
    config = write_config(tmp_path, "alpha")
    out: Any = subprocess.PIPE if stdout == "pipe" else (tmp_path / "stdout.txt").open("wb")
    process = await anyio.open_process([SOPHIA, "up", "--transport", "stdio"], env=host_env(config, sophia_home),
                                       stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE)
    try:
        if stdout == "pipe":
            wire = Wire(process)
            # A host's own tool answers at once; its write-behind record is what the stop must drain.
            found = await wire.call("sophia_find_tools", {"query": "echo"})
            assert found.get("isError") is not True
            with anyio.fail_after(START_S):
                while "alpha_echo" not in {t["name"] for t in
                                           (await wire.request("tools/list", {"_meta": ENVELOPE}))["result"]["tools"]}:
                    await anyio.sleep(0.1)
        else:
            # The fallback transport reads in a thread that only a closed stdin would end.
            with anyio.fail_after(START_S):
                while not (sophia_home / "host" / "status.json").exists() or not _child_pids(sophia_home):
                    await anyio.sleep(0.1)
        await _stopped_cleanly(process, signum, sophia_home)
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGKILL)
        if stdout == "file":
            out.close()
    if stdout == "pipe":
        assert _host_records(sophia_home) >= 1
    assert AuditLog(home=sophia_home).verify().intact


def _host_records(home: Path) -> int:
    return sum(1 for r in AuditLog(home=home).records() if r["server"] == "sophia")


async def test_sophia_logs_shows_a_servers_last_lines_and_names_the_known_ones(sophia_home: Path) -> None:
    logs = sophia_home / "host" / "logs"
    logs.mkdir(parents=True)
    (logs / "alpha.log").write_text("".join(f"line {i}\n" for i in range(100)))
    env = {**os.environ, "SOPHIA_HOME": str(sophia_home)}
    with anyio.fail_after(START_S):
        shown = await anyio.run_process([SOPHIA, "logs", "alpha", "-n", "3"], env=env)
        missing = await anyio.run_process([SOPHIA, "logs", "../alpha"], env=env, check=False)
    assert shown.stdout.decode().splitlines() == ["line 97", "line 98", "line 99"]
    assert missing.returncode == 1 and "logs exist for: alpha" in missing.stderr.decode()
