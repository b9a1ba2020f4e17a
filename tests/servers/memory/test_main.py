"""`sophia-memory` end to end: spawned over stdio with the real SDK client, and `check`.

Lazy start is checked without clocks: after initialize and tools/list the child process has
neither mapped onnxruntime nor created its database; the first search does both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from sophia_memory.settings import MemoryServerSettings
from sophia_memory.tools import build_server
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Role, TokenStore
from sophia_shared.http import http_app
from sophia_shared.settings import SuiteSettings
from sophia_shared.testing import error_code, serve_in_thread, structured

COMMAND = [sys.executable, "-m", "sophia_memory"]

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("list_every_tool")]


def _env(db: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_MEMORY_")}
    env.update(SOPHIA_MEMORY_DSN=f"sqlite://{db}", SOPHIA_MEMORY_MODELS_DIR=str(models_dir), **extra)
    return env


def _memory_child() -> psutil.Process:
    children = [p for p in psutil.Process().children(recursive=True) if "sophia_memory" in " ".join(p.cmdline())]
    assert len(children) == 1, children
    return children[0]


def _has_onnxruntime(process: psutil.Process) -> bool:
    return "onnxruntime" in Path(f"/proc/{process.pid}/maps").read_text()


@pytest.mark.anyio
async def test_stdio_answers_before_loading_the_model(tmp_path: Path, models_dir: Path) -> None:
    db = tmp_path / "memory.db"
    params = StdioServerParameters(command=COMMAND[0], args=COMMAND[1:], env=_env(db, models_dir))
    with anyio.fail_after(90):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            child = _memory_child()
            assert not _has_onnxruntime(child) and not db.exists()
            stored = await client.call_tool("memory_store", {"text": "The office wifi password rotates monthly"})
            found = await client.call_tool("memory_search", {"query": "how often does the wifi password change"})
            assert _has_onnxruntime(child) and db.exists()
    assert "memory_search" in names and len(names) == 8
    assert structured(stored)["action"] == "created"
    assert structured(found)["hits"][0]["memory"]["id"] == structured(stored)["memory"]["id"]


def test_check_reports_backend_and_model(tmp_path: Path, models_dir: Path) -> None:
    ok = subprocess.run(
        [*COMMAND, "check"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path / "memory.db", models_dir),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "memory: sqlite" in ok.stdout and "all-MiniLM-L6-v2@int8 (384 dims)" in ok.stdout
    bad = subprocess.run(
        [*COMMAND, "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path / "memory.db", models_dir, SOPHIA_MEMORY_DEDUPE_THRESHOLD="7"),
        check=False,
    )
    assert bad.returncode == 2
    assert "SOPHIA_MEMORY_DEDUPE_THRESHOLD" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


async def _over_http(url: str, token: str, tool: str, args: dict[str, Any]) -> CallToolResult:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        return await client.call_tool(tool, args)


@pytest.mark.anyio
async def test_one_person_one_memory_over_stdio_and_http(tmp_path: Path, models_dir: Path) -> None:
    """Issue 15.3 on the real transports: alice over stdio (SOPHIA_USER) and over HTTP (her token) is one
    memory user; bob's token sees none of it; the team space is shared by the rules."""
    db = tmp_path / "memory.db"
    settings = MemoryServerSettings(dsn=f"sqlite://{db}", models_dir=models_dir)
    store = TokenStore()
    _record, alice_laptop = store.create("laptop", Role.DEVELOPER, user="alice")
    _record, bob_ci = store.create("ci", Role.DEVELOPER, user="bob")
    _record, vera = store.create("vera-phone", Role.VIEWER, user="vera")
    server = build_server(settings)

    def make_app(port: int) -> Any:
        return http_app(server, transport="http", host="127.0.0.1", port=port, suite=SuiteSettings())

    params = StdioServerParameters(command=COMMAND[0], args=COMMAND[1:],
                                   env=_env(db, models_dir, SOPHIA_USER="alice"))
    with serve_in_thread(make_app, factory=True) as url, anyio.fail_after(120):
        async with Client(params) as stdio:
            mine = structured(await stdio.call_tool("memory_store", {"text": "alice parks on level 3"}))["memory"]
            team = structured(await stdio.call_tool(
                "memory_store", {"text": "the team standup is at 9:30", "space": "team"}))["memory"]
        as_alice = await _over_http(url, alice_laptop, "memory_get", {"id": mine["id"]})
        as_bob = await _over_http(url, bob_ci, "memory_get", {"id": mine["id"]})
        bob_lists = await _over_http(url, bob_ci, "memory_list", {})
        vera_team = await _over_http(url, vera, "memory_search", {"query": "standup time", "space": "team"})
        vera_writes = await _over_http(url, vera, "memory_store", {"text": "x", "space": "team"})
    assert mine["tenant"] == "alice" and team["tenant"] == "space:team"
    assert structured(as_alice)["memory"]["text"] == "alice parks on level 3"
    assert error_code(as_bob) == "not_found" and structured(bob_lists)["items"] == []
    assert [h["memory"]["id"] for h in structured(vera_team)["hits"]] == [team["id"]]
    assert error_code(vera_writes) == "forbidden"
    records = AuditLog().records()
    who = {(r["principal"], r["principal_kind"]) for r in records if r["tool"] == "memory_get"}
    assert who == {("alice", "token:laptop"), ("bob", "token:ci")}
