"""`sophia-docker` end to end: spawned over stdio with the real SDK client, and `check`, against the real dockerd."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from servers.docker.engine import Engine
from sophia_shared.testing import error_code, structured

COMMAND = [sys.executable, "-m", "sophia_docker"]

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.usefixtures("list_every_tool")]


def _env(host: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_DOCKER_") and k != "DOCKER_HOST"}
    env.update(SOPHIA_DOCKER_HOST=host, **extra)
    return env


@pytest.mark.anyio
async def test_stdio_lists_tools_and_calls_the_engine(docker_engine: Engine, shared_sleeper: str) -> None:
    params = StdioServerParameters(
        command=COMMAND[0], args=COMMAND[1:], env=_env(docker_engine.url, SOPHIA_STDIO_ROLE="viewer")
    )
    with anyio.fail_after(60):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            listed = await client.call_tool("docker_list_containers", {"filters": {"name": shared_sleeper}})
            run = await client.call_tool("docker_run_container", {"image": "anything"})
    assert len(names) == 21 and "docker_run_container" in names
    assert [c["name"] for c in structured(listed)["containers"]] == [shared_sleeper]
    assert error_code(run) == "forbidden"


@pytest.mark.anyio
async def test_read_only_mode_hides_mutating_tools(docker_engine: Engine) -> None:
    params = StdioServerParameters(
        command=COMMAND[0], args=[*COMMAND[1:], "serve", "--read-only"], env=_env(docker_engine.url)
    )
    with anyio.fail_after(60):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
    assert "docker_list_containers" in names
    assert not names & {"docker_run_container", "docker_exec", "docker_remove_container", "docker_pull_image"}


def test_check_reports_engine_or_the_address_tried(docker_engine: Engine, tmp_path: Path) -> None:
    ok = subprocess.run(
        [*COMMAND, "check"], capture_output=True, text=True, timeout=60, env=_env(docker_engine.url), check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok: Docker engine" in ok.stdout and docker_engine.url in ok.stdout
    dead = f"unix://{tmp_path}/nobody.sock"
    bad = subprocess.run([*COMMAND, "check"], capture_output=True, text=True, timeout=60, env=_env(dead), check=False)
    assert bad.returncode == 1
    assert "unavailable" in bad.stderr and dead in bad.stderr
    config = subprocess.run(
        [*COMMAND, "check"], capture_output=True, text=True, timeout=60,
        env=_env(docker_engine.url, SOPHIA_DOCKER_ALLOWED_BIND_PATHS='["relative"]'), check=False,
    )  # fmt: skip
    assert config.returncode == 2 and "SOPHIA_DOCKER_ALLOWED_BIND_PATHS" in config.stderr
