"""Host test fixtures: child servers are real subprocesses (tests/host/child_server.py) over stdio."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from sophia_host.children import Child, State
from sophia_host.config import HostSettings, ServerEntry
from sophia_host.server import HostServer

CHILD = Path(__file__).with_name("child_server.py")
# The newest Inspector that runs on Node 20 (0.16 and later need Node 22); its CLI sends no headers,
# so it meets the host over loopback HTTP without tokens.
INSPECTOR_VERSION = "0.15.0"
# Bounds for waits, never expectations: a loaded 2-core machine starts a Python child in 1-5 s.
START_S = 60.0


def child_entry(name: str, *flags: str, server: str | None = None, **extra: Any) -> ServerEntry:
    """A configured child running tests/host/child_server.py as server `server` (default: `name`)."""
    return ServerEntry(name=name, command=[sys.executable, str(CHILD), server or name, *flags], **extra)


def host_settings(**overrides: Any) -> HostSettings:
    base: dict[str, Any] = {
        "semantic_search": False, "start_timeout_s": START_S, "backoff_initial_s": 0.05, "backoff_max_s": 0.5,
    }
    return HostSettings(**{**base, **overrides})


@asynccontextmanager
async def running_host(
    servers: list[ServerEntry], *, wait: bool = True, **settings: Any
) -> AsyncIterator[HostServer]:
    host = HostServer(host_settings(**settings), servers)
    async with host.running():
        if wait:
            with anyio.fail_after(START_S):
                await host.wait_ready()
        yield host


async def settle(host: HostServer, predicate: Callable[[], bool], timeout: float = START_S) -> None:
    """Wait (bounded) for a state the host reaches on its own, e.g. a restarted child."""
    with anyio.fail_after(timeout):
        await host.until(predicate)


def ready(child: Child) -> bool:
    return child.state is State.ready


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The MCP Inspector CLI from npm, installed once per session into its temp dir (test_cli, test_connect).

    Defined here only: a fixture imported into a second module is a second fixture, installed again.
    """
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed; the Inspector CLI test needs Node 20 and npm (see ENVIRONMENT.md)")
    prefix = tmp_path_factory.mktemp("inspector")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
         f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}"],
        check=True, capture_output=True, timeout=600,
    )
    yield [str(prefix / "node_modules" / ".bin" / "mcp-inspector"), "--cli"]
