"""Host test fixtures: child servers are real subprocesses (tests/host/child_server.py) over stdio."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from sophia_host.children import Child, State
from sophia_host.config import HostSettings, ServerEntry
from sophia_host.server import HostServer

CHILD = Path(__file__).with_name("child_server.py")
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
