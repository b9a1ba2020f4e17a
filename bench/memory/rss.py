"""Memory (RSS) of the real processes: `sophia-memory` over stdio after start, after its model is
loaded, and its load peak (VmHWM); the whole suite under `sophia up` once tool search, memory and
Gong have each embedded something (the sum over the host and every child process)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

SOPHIA = str(Path(sys.executable).with_name("sophia"))


def _status(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def _children() -> list[Any]:
    import psutil

    return list(psutil.Process().children(recursive=True))


def _env(work: Path, models_dir: Path, model: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPHIA_MEMORY_", "SOPHIA_GONG_"))}
    env.update(
        SOPHIA_HOME=str(work / f"home-{model}"),
        SOPHIA_MEMORY_DSN=f"sqlite://{work / f'rss-{model}.db'}",
        SOPHIA_MEMORY_MODELS_DIR=str(models_dir),
        SOPHIA_MEMORY_EMBEDDING_MODEL=model,
    )
    return env


async def _memory_server(work: Path, models_dir: Path, model: str) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sophia_memory"], env=_env(work, models_dir, model)
    )
    with anyio.fail_after(600):
        async with Client(params) as client:
            await client.list_tools()
            (server,) = [p for p in _children() if "sophia_memory" in " ".join(p.cmdline())]
            started = _status(server.pid)
            began = time.perf_counter()
            await client.call_tool("memory_store", {"text": "The production database is backed up nightly."})
            first_write_s = time.perf_counter() - began
            await client.call_tool("memory_search", {"query": "when are backups taken?"})
            loaded = _status(server.pid)
    return {
        "after_start_mb": started["VmRSS"],
        "after_model_load_mb": loaded["VmRSS"],
        "load_peak_vmhwm_mb": loaded["VmHWM"],
        "peak_over_steady": round(loaded["VmHWM"] / loaded["VmRSS"], 2),
        "first_write_with_model_load_s": round(first_write_s, 3),
    }


def memory_server_rss(work: Path, models_dir: Path, model: str) -> dict[str, Any]:
    """`sophia-memory` with `model` (its graph already cached in models_dir)."""
    return anyio.run(_memory_server, work, models_dir, model)


def _gong_stand_in() -> Any:
    """The local Gong v2 contract server (tests/servers/gong) with a few calls, so the suite's Gong
    server can sync and so load its model; a stand-in for an account, which cannot exist here."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from datetime import UTC, datetime, timedelta

    from servers.gong.gong_contract_server import GongContractServer
    from servers.gong.gong_dataset import generate

    end = datetime.now(UTC) - timedelta(minutes=5)
    server = GongContractServer(generate(calls=5, users=8, seed=3, end=end, days=3, late_fraction=0.0))
    server.start()
    return server


async def _suite(work: Path, models_dir: Path, model: str) -> dict[str, Any]:
    env = _env(work, models_dir, model)
    env["SOPHIA_CONFIG"] = str(work / "no-such-sophia.toml")  # every installed server, defaults
    gong_server = _gong_stand_in()
    env.update(
        SOPHIA_GONG_BASE_URL=gong_server.base_url,
        SOPHIA_GONG_ACCESS_KEY=gong_server.access_key,
        SOPHIA_GONG_ACCESS_KEY_SECRET=gong_server.access_key_secret,
    )
    try:
        return await _suite_with(env)
    finally:
        gong_server.stop()


async def _suite_with(env: dict[str, str]) -> dict[str, Any]:
    params = StdioServerParameters(command=SOPHIA, args=["up", "--transport", "stdio"], env=env)
    warmed: dict[str, bool] = {}
    with anyio.fail_after(900):
        async with Client(params) as client:
            names: set[str] = set()
            while not {"memory", "gong"} <= {n.split("_", 1)[0] for n in names}:
                names = {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}
                await anyio.sleep(0.5)
            find = next(n for n in names if n.endswith("find_tools"))
            store = next(n for n in names if n.endswith("memory_store"))
            search = next(n for n in names if n.endswith("memory_search"))
            gong = next((n for n in names if n.endswith("gong_search_calls")), None)
            sync = next((n for n in names if n.endswith("gong_sync")), None)
            warmed["tool_search"] = not (await client.call_tool(find, {"query": "search my memories"})).is_error
            await client.call_tool(store, {"text": "Alice prefers dark mode."})
            warmed["memory"] = not (await client.call_tool(search, {"query": "display theme"})).is_error
            if gong is not None and sync is not None:
                # A sync indexes the stand-in's calls (loading Gong's model), then a search reads them.
                await client.call_tool(sync, {})
                warmed["gong"] = not (await client.call_tool(gong, {"query": "pricing"})).is_error
            processes = [p for p in _children() if p.is_running()]
            # Keyed by pid too: a server's standby has the same command line as the server.
            per_process = {
                f"{p.pid} {' '.join(p.cmdline()[1:3])[:60]}": round(p.memory_info().rss / 2**20, 1) for p in processes
            }
    return {
        "warmed": warmed,
        "total_rss_mb": round(sum(per_process.values()), 1),
        "processes": per_process,
    }


def suite_rss(work: Path, models_dir: Path, model: str) -> dict[str, Any]:
    """The suite under `sophia up` (stdio) with every installed server, embedders warmed."""
    return anyio.run(_suite, work, models_dir, model)
