"""Every tool at connect, end to end over stdio with the clients a new user has: the official TypeScript
SDK (npm `@modelcontextprotocol/sdk`, driven by tests/host/ts_client.mjs) and the MCP Inspector CLI each
spawn `sophia up --transport stdio` composing the six real servers on their embedded defaults. The first
tools/list after connect lists every tool of all six, and a call made at once succeeds: once cold (no
catalogue yet: the listing waits for the children) and once warm (from the catalogue the first run left).

Node packages are installed by npm into this test session's temp dir (npm reaches the registry on our
machines and in CI; its own cache keeps reruns quick)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from .conftest import START_S
from .test_cli import SOPHIA

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TS_SDK_VERSION = "1.32.2"
TS_CLIENT = Path(__file__).with_name("ts_client.mjs")
SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
# Cold: six Python servers starting at once on a loaded 2-core machine, each importing the SDK.
RUN_S = START_S * 3


@pytest.fixture(scope="session")
def ts_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """node + tests/host/ts_client.mjs, beside an npm install of the TypeScript SDK."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are needed for the TypeScript SDK test (see ENVIRONMENT.md)")
    prefix = tmp_path_factory.mktemp("ts-sdk")
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                    f"@modelcontextprotocol/sdk@{TS_SDK_VERSION}"], check=True, capture_output=True, timeout=600)
    # ES modules resolve packages from the script's own directory, so the script sits beside node_modules.
    shutil.copy(TS_CLIENT, prefix / TS_CLIENT.name)
    yield [node, str(prefix / TS_CLIENT.name)]


def every_suite_tool() -> set[str]:
    """Every tool of the six servers, from their schema snapshots (tests/test_tool_contract.py)."""
    return {path.stem for path in SNAPSHOTS.glob("*/*.json")}


def suite_env(home: Path) -> dict[str, str]:
    """Embedded defaults, no sophia.toml; an admin at the keyboard (so no tool is above the caller's
    role) and Gong and Retool given settings (so they list every tool; nothing here calls them)."""
    return {
        **os.environ, "SOPHIA_HOME": str(home), "SOPHIA_CONFIG": str(home / "no-sophia.toml"),
        "SOPHIA_STDIO_ROLE": "admin",
        "SOPHIA_GONG_ACCESS_KEY": "e2e-key", "SOPHIA_GONG_ACCESS_KEY_SECRET": "e2e-secret",
        "SOPHIA_RETOOL_BASE_URL": "http://127.0.0.1:9", "SOPHIA_RETOOL_API_TOKEN": "e2e-token",
    }


async def _run(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    with anyio.fail_after(RUN_S):
        done = await anyio.run_process(command, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out


async def test_typescript_sdk_and_inspector_see_every_tool_at_connect(
    ts_client: list[str], inspector: list[str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = suite_env(home)
    host = [SOPHIA, "up", "--transport", "stdio"]
    wanted = every_suite_tool() | {"sophia_find_tools"}
    assert len(wanted) > 70

    # Cold: the TypeScript SDK lists straight after connect, then calls the slowest server at once.
    cold = await _run([*ts_client, "snowflake_list_databases", "{}", "--", *host], env)
    assert wanted <= set(cold["tools"]), sorted(wanted - set(cold["tools"]))
    assert cold["call"].get("isError") in (None, False), cold["call"]
    assert "DEMO" in {d["name"] for d in cold["call"]["structuredContent"]["databases"]}
    catalogue = home / "host" / "catalogue"
    assert {p.stem for p in catalogue.glob("*.json")} >= {"memory", "snowflake", "docker", "pulumi", "gong", "retool"}

    # Warm: the Inspector CLI, a new host process each time, from the catalogue the cold run left. It takes
    # a --transport in the server's arguments for its own, so the transport comes from the environment.
    inspect = [*inspector, "-e", f"SOPHIA_HOME={home}", "-e", "SOPHIA_UP_TRANSPORT=stdio"]
    for name in ("SOPHIA_CONFIG", "SOPHIA_STDIO_ROLE", "SOPHIA_GONG_ACCESS_KEY", "SOPHIA_GONG_ACCESS_KEY_SECRET",
                 "SOPHIA_RETOOL_BASE_URL", "SOPHIA_RETOOL_API_TOKEN", "SOPHIA_MEMORY_MODELS_DIR"):
        inspect += ["-e", f"{name}={env[name]}"]
    listed = await _run([*inspect, "--method", "tools/list", "--", SOPHIA, "up"], env)
    assert wanted <= {t["name"] for t in listed["tools"]}
    called = await _run([*inspect, "--method", "tools/call", "--tool-name", "memory_stats", "--", SOPHIA, "up"], env)
    assert called.get("isError") in (None, False), called
    assert "stats" in called["structuredContent"]
