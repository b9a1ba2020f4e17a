"""Cold start: spawn to tools/list over stdio, `sophia-memory` against a bare SDK server with one tool."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

BARE = """
from mcp.server import MCPServer

server = MCPServer("bare")


@server.tool()
def ping() -> str:
    \"\"\"Answer pong.\"\"\"
    return "pong"


server.run("stdio")
"""


async def _spawn_to_tools_list(params: StdioServerParameters) -> float:
    began = time.perf_counter()
    with anyio.fail_after(60):
        async with Client(params) as client:
            await client.list_tools()
            elapsed = time.perf_counter() - began
    return elapsed


def cold_start(work: Path, models_dir: Path, runs: int = 7) -> dict[str, Any]:
    """Median seconds from spawn to the tools/list answer, for both, alternating runs."""
    bare = work / "bare_server.py"
    bare.write_text(BARE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_MEMORY_")}
    env.update(SOPHIA_MEMORY_DSN=f"sqlite://{work / 'coldstart.db'}", SOPHIA_MEMORY_MODELS_DIR=str(models_dir),
               SOPHIA_HOME=str(work / "home"))
    memory = StdioServerParameters(command=sys.executable, args=["-m", "sophia_memory"], env=env)
    baseline = StdioServerParameters(command=sys.executable, args=[str(bare)], env=env)
    samples: dict[str, list[float]] = {"sophia_memory_s": [], "bare_sdk_s": []}
    for _ in range(runs):
        samples["sophia_memory_s"].append(anyio.run(_spawn_to_tools_list, memory))
        samples["bare_sdk_s"].append(anyio.run(_spawn_to_tools_list, baseline))
    medians = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    return {**medians, "runs": runs, "ratio": round(medians["sophia_memory_s"] / medians["bare_sdk_s"], 2)}
