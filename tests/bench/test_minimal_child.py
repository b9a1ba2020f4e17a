"""bench/host/minimal_child.py speaks both protocol eras as the SDK server does: the 2026-07-28 era to the
real SDK client (the Sophia host's), the handshake era to raw initialize-first traffic (mcp-proxy's mcp<2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
CHILD = [sys.executable, "-m", "bench.host.minimal_child"]


@pytest.mark.anyio
async def test_the_sdk_client_lists_calls_and_listens() -> None:
    with anyio.fail_after(60):
        async with Client(StdioServerParameters(command=CHILD[0], args=CHILD[1:], cwd=ROOT)) as client:
            tools = (await client.list_tools()).tools
            assert [tool.name for tool in tools] == ["add"]
            assert tools[0].input_schema["required"] == ["a", "b"]
            result = await client.call_tool("add", {"a": 2, "b": 3})
            assert not result.is_error
            assert result.structured_content == {"result": 5}
            bad = await client.call_tool("add", {"a": "two", "b": 3})
            assert bad.is_error
            # The host holds a tools/list_changed subscription open on each child.
            async with client.listen(tools_list_changed=True):
                pass
            assert (await client.call_tool("add", {"a": -1, "b": 1})).structured_content == {"result": 0}


def test_a_handshake_era_exchange() -> None:
    sent: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 3}}},
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
        {"jsonrpc": "2.0", "id": 4, "method": "no/such"},
    ]
    run = subprocess.run(CHILD, input="".join(json.dumps(m) + "\n" for m in sent).encode(), cwd=ROOT,
                         capture_output=True, timeout=60, check=True)
    replies = {reply["id"]: reply for reply in map(json.loads, run.stdout.decode().splitlines())}
    assert sorted(replies) == [1, 2, 3, 4]  # the notification got no reply
    initialized = replies[1]["result"]
    assert initialized["protocolVersion"] == "2025-06-18"
    assert initialized["serverInfo"]["name"] == "bench"
    assert "tools" in initialized["capabilities"]
    assert replies[2]["result"] == {"content": [{"type": "text", "text": "5"}], "isError": False,
                                    "structuredContent": {"result": 5}}
    assert replies[3]["result"] == {}
    assert replies[4]["error"]["code"] == -32601
