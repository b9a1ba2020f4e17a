"""`sophia-memory` end to end: spawned over stdio with the real SDK client, and `check`.

Lazy start is checked without clocks: after initialize and tools/list the child process has
neither mapped onnxruntime nor created its database; the first search does both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import psutil
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from sophia_shared.testing import structured

COMMAND = [sys.executable, "-m", "sophia_memory"]

# list_every_tool: these tests are about the whole catalogue, not about who may see which tool.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("list_every_tool")]


def _env(db: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_MEMORY_")}
    env.update(SOPHIA_MEMORY_DSN=f"sqlite://{db}", SOPHIA_MEMORY_MODELS_DIR=str(models_dir), **extra)
    return env


def _memory_child() -> psutil.Process:
    children = [p for p in psutil.Process().children(recursive=True) if "sophia_memory" in " ".join(p.cmdline())]
    assert len(children) == 1, children
    return children[0]


def _has_onnxruntime(process: psutil.Process) -> bool:
    return "onnxruntime" in Path(f"/proc/{process.pid}/maps").read_text()


@pytest.mark.anyio
async def test_stdio_answers_before_loading_the_model(tmp_path: Path, models_dir: Path) -> None:
    db = tmp_path / "memory.db"
    params = StdioServerParameters(command=COMMAND[0], args=COMMAND[1:], env=_env(db, models_dir))
    with anyio.fail_after(90):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            child = _memory_child()
            assert not _has_onnxruntime(child) and not db.exists()
            stored = await client.call_tool("memory_store", {"text": "The office wifi password rotates monthly"})
            found = await client.call_tool("memory_search", {"query": "how often does the wifi password change"})
            assert _has_onnxruntime(child) and db.exists()
    assert "memory_search" in names and len(names) == 8
    assert structured(stored)["action"] == "created"
    assert structured(found)["hits"][0]["memory"]["id"] == structured(stored)["memory"]["id"]


def test_check_reports_backend_and_model(tmp_path: Path, models_dir: Path) -> None:
    ok = subprocess.run(
        [*COMMAND, "check"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path / "memory.db", models_dir),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "memory: sqlite" in ok.stdout and "all-MiniLM-L6-v2@int8 (384 dims)" in ok.stdout
    bad = subprocess.run(
        [*COMMAND, "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path / "memory.db", models_dir, SOPHIA_MEMORY_DEDUPE_THRESHOLD="7"),
        check=False,
    )
    assert bad.returncode == 2
    assert "SOPHIA_MEMORY_DEDUPE_THRESHOLD" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
