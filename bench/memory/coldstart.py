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


async def _spawn_to_tools_list(params: StdioServerParameters) -> tuple[float, float]:
    """Wall seconds from spawn to the tools/list answer, and the CPU seconds the child used by then."""
    import psutil

    began = time.perf_counter()
    with anyio.fail_after(60):
        async with Client(params) as client:
            await client.list_tools()
            elapsed = time.perf_counter() - began
            children = psutil.Process().children(recursive=True)
            cpu = sum(c.cpu_times().user + c.cpu_times().system for c in children if "python" in c.name())
    return elapsed, cpu


def cold_start(work: Path, models_dir: Path, runs: int = 9) -> dict[str, Any]:
    """Medians over alternating runs. CPU seconds are the load-independent figure on a shared host."""
    bare = work / "bare_server.py"
    bare.write_text(BARE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_MEMORY_")}
    env.update(
        SOPHIA_MEMORY_DSN=f"sqlite://{work / 'coldstart.db'}",
        SOPHIA_MEMORY_MODELS_DIR=str(models_dir),
        SOPHIA_HOME=str(work / "home"),
    )
    memory = StdioServerParameters(command=sys.executable, args=["-m", "sophia_memory"], env=env)
    baseline = StdioServerParameters(command=sys.executable, args=[str(bare)], env=env)
    samples: dict[str, list[tuple[float, float]]] = {"sophia_memory": [], "bare_sdk": []}
    for _ in range(runs):
        samples["sophia_memory"].append(anyio.run(_spawn_to_tools_list, memory))
        samples["bare_sdk"].append(anyio.run(_spawn_to_tools_list, baseline))
    out: dict[str, Any] = {"runs": runs}
    for name, values in samples.items():
        out[f"{name}_wall_s"] = round(statistics.median(v[0] for v in values), 3)
        out[f"{name}_cpu_s"] = round(statistics.median(v[1] for v in values), 3)
    out["ratio"] = round(out["sophia_memory_wall_s"] / out["bare_sdk_wall_s"], 2)
    out["cpu_ratio"] = round(out["sophia_memory_cpu_s"] / out["bare_sdk_cpu_s"], 2)
    return out
