"""Measure tools/list bytes of one checkout: each server in process and the host over stdio.

Run by bench/tools_list with the Python of the checkout to measure (this one, or a baseline worktree):
it imports only what every version of the suite has (`sophia_shared.cli.BUILDERS`, the SDK client) and
prints one JSON object. Bytes are the UTF-8 length of the `tools/list` result as the wire carries it.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import ListToolsResult

SERVERS = ["memory", "snowflake", "docker", "pulumi", "gong", "retool"]


def _wire_bytes(tools: list[Any]) -> int:
    return len(ListToolsResult(tools=tools).model_dump_json(by_alias=True, exclude_none=True).encode())


async def _servers() -> dict[str, Any]:
    from sophia_shared.auth import Principal, Role
    from sophia_shared.cli import BUILDERS

    developer = Principal("bench", Role.DEVELOPER, kind="test")
    out: dict[str, Any] = {}
    for name in SERVERS:
        importlib.import_module(f"sophia_{name}.__main__")
        server = BUILDERS[name]()
        listed = await server.list_tools_for(developer)
        every = await server.list_tools()
        out[name] = {"developer_tools": len(listed), "developer_bytes": _wire_bytes(listed),
                     "all_tools": len(every), "all_bytes": _wire_bytes(every)}
    return out


async def _host(home: Path) -> dict[str, Any]:
    sophia = str(Path(sys.executable).with_name("sophia"))
    env = {**os.environ, "SOPHIA_HOME": str(home), "SOPHIA_STDIO_ROLE": "developer"}
    client = Client(StdioServerParameters(command=sophia, args=["up", "--transport", "stdio"], env=env))
    with anyio.fail_after(120):
        async with client:
            tools = (await client.list_tools()).tools
    # Each tool's own bytes too: a tool the baseline did not have is shown apart from the ones it had.
    each = {t.name: len(t.model_dump_json(by_alias=True, exclude_none=True).encode()) for t in tools}
    return {"developer_tools": len(tools), "developer_bytes": _wire_bytes(tools), "tool_bytes": each}


async def main() -> None:
    result: dict[str, Any] = {"servers": await _servers()}
    result["servers_developer_bytes"] = sum(s["developer_bytes"] for s in result["servers"].values())
    result["servers_all_bytes"] = sum(s["all_bytes"] for s in result["servers"].values())
    if len(sys.argv) > 1:
        result["host"] = await _host(Path(sys.argv[1]))
    print(json.dumps(result))


if __name__ == "__main__":
    anyio.run(main)
