"""`sophia-gong` end to end: spawned over stdio with the real SDK client, against the contract server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from servers.gong.gong_contract_server import GongContractServer
from sophia_shared.testing import error_code, structured

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ENTRY = [sys.executable, "-m", "sophia_gong"]


def env_for(gong: GongContractServer, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_GONG_")}
    env.update(
        SOPHIA_HOME=str(home),
        SOPHIA_GONG_BASE_URL=gong.base_url,
        SOPHIA_GONG_ACCESS_KEY=gong.access_key,
        SOPHIA_GONG_ACCESS_KEY_SECRET=gong.access_key_secret,
        SOPHIA_STDIO_ROLE="viewer",
        **extra,
    )
    return env


async def test_stdio_serves_the_tools_against_gong(gong: GongContractServer, sophia_home: Path) -> None:
    params = StdioServerParameters(command=ENTRY[0], args=ENTRY[1:], env=env_for(gong, sophia_home))
    with anyio.fail_after(60):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            users = await client.call_tool("gong_list_users", {})
            sync = await client.call_tool("gong_sync", {})
    assert "gong_search_calls" in names
    assert len(structured(users)["users"]) == 100
    assert error_code(sync) == "forbidden"
    assert [e.path for e in gong.requests()] == ["/v2/users"]


def test_check_exits_zero_when_gong_answers(gong: GongContractServer, sophia_home: Path) -> None:
    ok = subprocess.run(
        [*ENTRY, "check"], capture_output=True, text=True, timeout=60, env=env_for(gong, sophia_home), check=False
    )
    assert ok.returncode == 0 and "2 workspaces" in ok.stdout
    assert [e.path for e in gong.requests()] == ["/v2/workspaces"]
