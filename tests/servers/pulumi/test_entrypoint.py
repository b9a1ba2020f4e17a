"""Cold start and the `sophia-pulumi` entry point over stdio with the real SDK client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from servers.pulumi.environments import Backend
from servers.pulumi.state_fixtures import PASSPHRASE
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import check
from sophia_shared.errors import Unavailable

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("list_every_tool")]

COLD_START = """
import json, sys, anyio
from sophia_pulumi.settings import PulumiSettings
from sophia_pulumi.tools import build_server
from sophia_shared.testing import connect

async def main():
    async with connect(build_server(PulumiSettings())) as client:
        names = [t.name for t in await client.list_tools()]
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pulumi", "grpc", "semver")
                   or m.startswith("google.protobuf"))
    print(json.dumps({"tools": len(names), "heavy": heavy}))

anyio.run(main)
"""


def test_tools_list_does_not_load_the_pulumi_sdk(tmp_path: Path) -> None:
    """In a fresh interpreter (this one has long imported the SDK): initialize + tools/list."""
    env = {**os.environ, "SOPHIA_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", COLD_START], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"tools": 10, "heavy": []}


@pytest.mark.e2e
async def test_stdio_entry_point_serves_read_tools(read_backend: Backend, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SOPHIA_HOME": str(tmp_path),
        "SOPHIA_PULUMI_BACKEND_URL": read_backend.url,
        "SOPHIA_PULUMI_PROJECTS_DIR": str(read_backend.projects),
        "SOPHIA_PULUMI_PASSPHRASE": PASSPHRASE,
        "SOPHIA_PULUMI_CLI": str(tmp_path / "none" / "bin" / "pulumi"),
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "sophia_pulumi"], env=env)
    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool(
                "pulumi_list_resources", {"project": "webapp", "stack": "prod", "type": "aws:iam/*"}
            )
    assert len(tools) == 10
    body: dict[str, Any] = dict(result.structured_content or {})
    assert body["total"] == 80 and len(body["resources"]) == 80


def test_check_command_reports_state_and_missing_cli(read_backend: Backend, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SOPHIA_HOME": str(tmp_path),
        "SOPHIA_PULUMI_BACKEND_URL": read_backend.url,
        "SOPHIA_PULUMI_CLI": str(tmp_path / "none" / "bin" / "pulumi"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "sophia_pulumi", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "ok:" in out.stdout and "5 stacks in file state" in out.stdout and "no Pulumi CLI" in out.stdout


async def test_check_fails_for_a_remote_backend_without_cli(tmp_path: Path) -> None:
    settings = PulumiSettings(backend_url="https://api.pulumi.com", cli=tmp_path / "none" / "bin" / "pulumi")
    with pytest.raises(Unavailable, match="needs the Pulumi CLI"):
        await check(settings)
