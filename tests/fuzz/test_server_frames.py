"""Every single server, end to end, against 10,000 malformed frames per edge (hypothesis, fixed seed).

Over stdio each server runs as its real entry point (`sophia-<name>`), one long-lived process that
gets the frames pipelined in batches; over streamable HTTP a real server's app (the same
`http_app` the CLI serves) on a loopback socket gets each frame as a POST body. Checked: the
process never exits, every frame with an id is answered with that id (bounded waits: a missing
answer fails, never hangs), no answer carries a traceback, every line written is JSON-RPC, and a
good call still works afterwards.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given
from hypothesis import strategies as st
from sophia_shared.settings import SuiteSettings
from sophia_shared.testing import serve_in_thread

from .hostile import frame_shapes, render_all
from .wire import FUZZ, PROTOCOL, SHAPES_PER_BATCH, RawWire, json_message, spawned, stream_frames

SERVERS = ["memory", "snowflake", "docker", "pulumi", "gong", "retool"]


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_")}
    # No real engine or account is reached: Docker at a socket that does not exist, Gong and
    # Retool unconfigured, Snowflake and Pulumi on their local defaults inside this home. Every
    # tool is listed (an unconfigured Retool lists none otherwise), so frames name real tools.
    # The session's model cache is kept, so the memory server does not build its model again here.
    return {**env, "SOPHIA_HOME": str(home), "SOPHIA_DOCKER_HOST": f"unix://{home}/no-docker.sock",
            "SOPHIA_LIST_ALL_TOOLS": "1", "SOPHIA_MEMORY_MODELS_DIR": os.environ["SOPHIA_MEMORY_MODELS_DIR"]}


def tool_names(wire: RawWire, portal: BlockingPortal) -> list[str]:
    listed = portal.call(wire.request, "list", "tools/list", {})
    return [t["name"] for t in listed["result"]["tools"]]


@pytest.mark.e2e
@pytest.mark.parametrize("name", SERVERS)
def test_every_frame_is_answered_over_stdio(name: str, sophia_home: Path) -> None:
    command = [str(Path(sys.executable).with_name(f"sophia-{name}"))]
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
        spawned(command, server_env(sophia_home))
    ) as (process, wire):
        portal.call(wire.initialize)
        tools = tool_names(wire, portal)
        sent = stream_frames(portal, process, wire, tools, name)
        after = portal.call(wire.request, "after", "tools/list", {})
    assert sent >= 10_000
    assert [t["name"] for t in after["result"]["tools"]] == tools
    assert process.returncode == 0  # it left when stdin closed, not before


# -- streamable HTTP -------------------------------------------------------------------------

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def memory_url(sophia_home: Path) -> Iterator[str]:
    import importlib

    from sophia_shared.cli import BUILDERS
    from sophia_shared.http import http_app

    importlib.import_module("sophia_memory.__main__")
    server = BUILDERS["memory"]()

    def make_app(port: int) -> Any:
        return http_app(server, transport="http", host="127.0.0.1", port=port, allow_unauthenticated=True,
                        suite=SuiteSettings())

    with serve_in_thread(make_app, factory=True) as url:
        yield url


def test_every_body_is_answered_over_streamable_http(memory_url: str) -> None:
    with httpx.Client(base_url=memory_url, headers=HEADERS, timeout=60) as http:
        init = http.post("/mcp", json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}})
        assert init.status_code == 200, init.text
        session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
        http.post("/mcp", headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = [t["name"] for t in json_message(http.post("/mcp", headers=session, json={
            "jsonrpc": "2.0", "id": "list", "method": "tools/list"}))["result"]["tools"]]
        ids = itertools.count()
        sent = 0

        @FUZZ
        @given(st.lists(frame_shapes(tools), min_size=SHAPES_PER_BATCH, max_size=SHAPES_PER_BATCH))
        def batch(shapes: list[Any]) -> None:
            nonlocal sent
            for shape in shapes:
                for body, request_id in render_all(shape, lambda: f"http-{next(ids)}"):
                    response = http.post("/mcp", headers=session, content=body)
                    sent += 1
                    assert response.status_code < 500, (response.status_code, response.text[:300])
                    assert "Traceback" not in response.text
                    if request_id is not None:
                        assert response.status_code != 202, body[:200]
                        assert json_message(response).get("id") == request_id, (body[:200], response.text[:300])

        batch()
        after = http.post("/mcp", headers=session, json={"jsonrpc": "2.0", "id": "after", "method": "tools/list"})
    assert sent >= 10_000
    assert [t["name"] for t in json_message(after)["result"]["tools"]] == tools
