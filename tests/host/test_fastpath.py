"""The host's fast path (fastpath.py), end to end: `sophia up` as a real process, spoken to with raw
JSON-RPC lines over stdio and with the SDK client over streamable HTTP, in front of real child servers.

Every check here is one the SDK path must also pass; `fast_path_calls` in `sophia status --json`
shows the calls really took the fast path.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Role, TokenStore

from .conftest import START_S
from .test_cli import SOPHIA, host_env, http_host, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class Wire:
    """A stdio client of raw JSON lines: what any MCP client puts on the pipe."""

    def __init__(self, process: Process):
        self.process = process
        self.buffer = b""
        self.next_id = 100

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self.buffer:
            self.buffer += await self.process.stdout.receive()
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request and return its response (skipping notifications before it)."""
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        with anyio.fail_after(START_S):
            while True:
                message = await self.receive()
                if message.get("id") == self.next_id:
                    return message

    async def call(self, name: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "arguments": arguments, "_meta": {**ENVELOPE, **(meta or {})}}
        response = await self.request("tools/call", params)
        result: dict[str, Any] = response["result"]
        return result


@asynccontextmanager
async def stdio_host(
    tmp_path: Path, home: Path, *, timeout_s: float | None = None, handshake: bool = False
) -> AsyncIterator[Wire]:
    """The host over stdio, its alpha child listed; a 2026-era conversation, or handshake-era after an initialize."""
    config = write_config(tmp_path, "alpha")
    if timeout_s is not None:
        config.write_text(config.read_text().replace("[host]\n", f"[host]\ncall_timeout_s = {timeout_s}\n"))
    process = await anyio.open_process([SOPHIA, "up", "--transport", "stdio"], env=host_env(config, home),
                                       stderr=subprocess.DEVNULL)
    try:
        wire = Wire(process)
        list_params: dict[str, Any] = {"_meta": ENVELOPE}
        if handshake:
            init = await wire.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                     "clientInfo": {"name": "old", "version": "0"}})
            assert init["result"]["protocolVersion"] == "2025-06-18"
            await wire.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            list_params = {}
        with anyio.fail_after(START_S):
            while "alpha_echo" not in {t["name"] for t in
                                       (await wire.request("tools/list", list_params))["result"]["tools"]}:
                await anyio.sleep(0.1)
        yield wire
    finally:
        assert process.stdin is not None
        await process.stdin.aclose()
        with anyio.fail_after(START_S):
            await process.wait()


def _status(config: Path, home: Path) -> dict[str, Any]:
    out = subprocess.run([SOPHIA, "status", "--json"], env=host_env(config, home), capture_output=True, text=True,
                         timeout=60, check=True)
    status: dict[str, Any] = json.loads(out.stdout)
    return status


async def _fast_calls(tmp_path: Path, home: Path, at_least: int) -> int:
    """The host's fast_path_calls once it reaches `at_least` (the status file is rewritten every 2 s)."""
    with anyio.fail_after(START_S):
        while (calls := int(_status(tmp_path / "sophia.toml", home).get("fast_path_calls", 0))) < at_least:
            await anyio.sleep(0.2)
    return calls


async def test_results_errors_and_the_audit_match_the_sdk_path(tmp_path: Path, sophia_home: Path) -> None:
    async with stdio_host(tmp_path, sophia_home) as wire:
        ok = await wire.call("alpha_echo", {"text": "fast"})
        assert ok["isError"] is False and ok["structuredContent"]["text"] == "fast"
        # The host's own protocol stamp, not the child's: the caller talks to the host.
        assert ok["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "sophia"
        assert ok["resultType"] == "complete"
        missing = await wire.call("alpha_echo", {"text": "missing"})
        assert missing["isError"] is True and missing["_meta"]["sophia/error"]["code"] == "not_found"
        invalid = await wire.call("alpha_echo", {"text": 5})
        assert invalid["isError"] is True and invalid["_meta"]["sophia/error"]["code"] == "invalid_argument"
        assert await _fast_calls(tmp_path, sophia_home, 3) >= 3
        correlation = ok["structuredContent"]["correlation_id"]
    # The host flushes its write-behind audit on the way out; the child appended its own at once.
    records = AuditLog(home=sophia_home).records()
    by_server = {(r["server"], r["correlation_id"]): r for r in records}
    host_record, child_record = by_server[("sophia", correlation)], by_server[("alpha", correlation)]
    assert host_record["tool"] == child_record["tool"] == "alpha_echo"
    assert host_record["principal"] == child_record["principal"] == ok["structuredContent"]["principal"]
    outcomes = sorted((r["outcome"], r["error_code"]) for r in records if r["server"] == "sophia")
    assert outcomes == [("error", "invalid_argument"), ("error", "not_found"), ("ok", None)]
    assert AuditLog(home=sophia_home).verify().intact


async def test_a_callers_principal_meta_is_never_forwarded(tmp_path: Path, sophia_home: Path) -> None:
    forged = {"sophia/principal": {"name": "mallory", "role": "admin", "kind": "token"},
              "sophia/correlation_id": "forged"}
    async with stdio_host(tmp_path, sophia_home) as wire:
        result = await wire.call("alpha_echo", {"text": "who"}, meta=forged)
        assert result["isError"] is False
        assert result["structuredContent"]["principal"] != "mallory"
        assert result["structuredContent"]["correlation_id"] != "forged"


async def test_handshake_era_calls_and_progress(tmp_path: Path, sophia_home: Path) -> None:
    async with stdio_host(tmp_path, sophia_home, handshake=True) as wire:
        wire.next_id += 1
        await wire.send({"jsonrpc": "2.0", "id": wire.next_id, "method": "tools/call",
                         "params": {"name": "alpha_slow", "arguments": {"steps": 3}, "_meta": {"progressToken": "p1"}}})
        progress = []
        with anyio.fail_after(START_S):
            while (message := await wire.receive()).get("id") != wire.next_id:
                progress.append(message)
        result = message["result"]
        # A handshake-era result carries no 2026 fields.
        assert result["isError"] is False and "resultType" not in result
        # Only progress counts here: a tools/list_changed may also arrive while alpha's tools are news.
        progress = [p for p in progress if p.get("method") == "notifications/progress"]
        assert [p["params"]["progress"] for p in progress] == [1, 2, 3]
        assert all(p["params"]["progressToken"] == "p1" for p in progress)
        assert await _fast_calls(tmp_path, sophia_home, 1) >= 1


async def test_cancellation_timeout_and_a_dying_child(tmp_path: Path, sophia_home: Path) -> None:
    async with stdio_host(tmp_path, sophia_home, timeout_s=2) as wire:
        wire.next_id += 1
        hung = wire.next_id
        await wire.send({"jsonrpc": "2.0", "id": hung, "method": "tools/call",
                         "params": {"name": "alpha_hang", "arguments": {}, "_meta": ENVELOPE}})
        # A call cancelled before the host sent it never reaches the child (nothing to cancel there);
        # once a later call has come back, the hang is running in the child.
        await wire.call("alpha_echo", {"text": "after the hang"})
        await wire.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": hung}})
        with anyio.fail_after(START_S):
            while (await wire.call("alpha_cancelled", {}))["structuredContent"]["result"] < 1:
                await anyio.sleep(0.1)
        timed_out = await wire.call("alpha_hang", {})
        assert timed_out["_meta"]["sophia/error"]["code"] == "timeout"
        died = await wire.call("alpha_crash", {})
        assert died["isError"] is True and died["_meta"]["sophia/error"]["code"] == "unavailable"
        # The child comes back and the fast path serves it again.
        with anyio.fail_after(START_S):
            while (again := await wire.call("alpha_echo", {"text": "back"}))["isError"]:
                await anyio.sleep(0.1)
        assert again["structuredContent"]["text"] == "back"


async def test_streamable_http_fast_path_keeps_the_edge(tmp_path: Path, sophia_home: Path, free_port: int) -> None:
    config = write_config(tmp_path, "alpha")
    store = TokenStore(sophia_home / "tokens.json")
    _viewer, viewer_token = store.create("vera", Role.VIEWER)
    url = f"http://127.0.0.1:{free_port}/mcp"
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "alpha_echo"}

    def body(name: str, text: Any) -> str:
        return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": name, "arguments": {"text": text}, "_meta": ENVELOPE}})

    async with http_host(config, sophia_home, free_port), httpx2.AsyncClient(timeout=60) as http:
        auth = {**headers, "Authorization": f"Bearer {viewer_token}"}
        with anyio.fail_after(START_S):
            while (response := await http.post(url, headers=auth, content=body("alpha_echo", "hi"))).json() \
                    .get("result", {}).get("isError", True):
                await anyio.sleep(0.2)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["result"]["structuredContent"]["principal"] == "vera"
        assert (await http.post(url, headers=headers, content=body("alpha_echo", "hi"))).status_code == 401
        evil = {**auth, "Origin": "http://evil.example"}
        assert (await http.post(url, headers=evil, content=body("alpha_echo", "hi"))).status_code == 403
        # A body that names another tool than its Mcp-Name header: the SDK's ladder refuses it.
        mismatch = await http.post(url, headers=auth, content=body("alpha_slow", "hi"))
        assert mismatch.status_code == 400
        # A viewer may not call a developer tool: refused at the edge (by the SDK path, with its code).
        denied = await http.post(url, headers={**auth, "Mcp-Name": "alpha_grow"}, content=json.dumps(
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "alpha_grow", "arguments": {}, "_meta": ENVELOPE}}))
        assert denied.json()["result"]["_meta"]["sophia/error"]["code"] == "forbidden"
        # A `_meta` of any other shape than an object is the SDK's to refuse; the edge stays up.
        for junk in ([1, 2], "sophia", 7, None, {"io.modelcontextprotocol/protocolVersion": [MODERN]}):
            bad = await http.post(url, headers=auth, content=json.dumps(
                {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                 "params": {"name": "alpha_echo", "arguments": {"text": "x"}, "_meta": junk}}))
            assert bad.status_code in (200, 400) and "error" in bad.json(), junk
        again = await http.post(url, headers=auth, content=body("alpha_echo", "again"))
        assert again.json()["result"]["structuredContent"]["text"] == "again"
        assert await _fast_calls(tmp_path, sophia_home, 1) >= 1
        # Every progress step of the child is on the wire before the answer, on every call (the SDK
        # client relays each step as a task of its own; without waiting for them, ~1 call in 6 lost its last).
        for n in range(20):
            slow = await http.post(url, headers={**auth, "Mcp-Name": "alpha_slow"}, content=json.dumps(
                {"jsonrpc": "2.0", "id": 10 + n, "method": "tools/call", "params": {
                    "name": "alpha_slow", "arguments": {"steps": 3}, "_meta": {**ENVELOPE, "progressToken": n}}}))
            events = [json.loads(line[5:]) for line in slow.text.splitlines() if line.startswith("data:")]
            steps = [e["params"]["message"] for e in events if e.get("method") == "notifications/progress"]
            assert steps == ["step 1", "step 2", "step 3"] and "result" in events[-1], (n, events)
