"""`sophia-retool` end to end: spawned over stdio with the real SDK client, and `check`, against the
contract server over a real socket."""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from servers.retool.harness import ADMIN_TOKEN, Retool
from sophia_shared.testing import error_code, structured

# These tests are about the whole catalogue, not about who may see which tool.
pytestmark = pytest.mark.usefixtures("list_every_tool")

COMMAND = [sys.executable, "-m", "sophia_retool"]


def _env(retool: Retool | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_RETOOL_")}
    if retool is not None:
        env["SOPHIA_RETOOL_BASE_URL"] = retool.base_url
        env["SOPHIA_RETOOL_API_TOKEN"] = ADMIN_TOKEN
    env.update(extra)
    return env


@pytest.mark.anyio
async def test_stdio_lists_tools_and_calls_retool(retool: Retool) -> None:
    params = StdioServerParameters(command=COMMAND[0], args=COMMAND[1:], env=_env(retool, SOPHIA_STDIO_ROLE="viewer"))
    with anyio.fail_after(30):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            envs = await client.call_tool("retool_list_environments", {})
            grant = await client.call_tool(
                "retool_grant_access",
                {
                    "subject_type": "group",
                    "subject_id": "3",
                    "object_type": "folder",
                    "object_id": "app_2",
                    "access_level": "use",
                },
            )
    assert len(names) == 23 and "retool_trigger_workflow" in names
    assert [e["name"] for e in structured(envs)["environments"]] == ["production", "staging"]
    assert error_code(grant) == "forbidden"
    assert [r.path for r in retool.server.log] == ["/api/v2/environments"]


def test_check_reports_version_or_names_missing_settings(retool: Retool) -> None:
    ok = subprocess.run([*COMMAND, "check"], capture_output=True, text=True, timeout=60, env=_env(retool), check=False)
    assert ok.returncode == 0, ok.stderr
    assert "ok: Retool 3.334.0" in ok.stdout and "token accepted" in ok.stdout
    missing = subprocess.run(
        [*COMMAND, "check"], capture_output=True, text=True, timeout=60, env=_env(None), check=False
    )
    assert missing.returncode == 1
    assert "not_configured" in missing.stderr and "SOPHIA_RETOOL_BASE_URL" in missing.stderr
    assert ADMIN_TOKEN not in ok.stdout + ok.stderr
