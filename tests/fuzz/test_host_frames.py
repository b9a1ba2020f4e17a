"""The host (`sophia up`), end to end, against 10,000 malformed frames per edge (hypothesis, fixed seed).

The host runs as its real entry point in front of a real child server (tests/host/child_server.py):
frames naming the child's tool reach the fast lane and the SDK lane, the rest the host's own
handling. Over stdio one long-lived host gets the frames pipelined in batches; over streamable
HTTP each frame is a POST body, half of them as a 2026-era single exchange (the fast lane's
`Mcp-Method: tools/call` route), half inside a handshake-era session. Checked as for a single
server: no exit, every frame with an id answered with it, no traceback, a good call works after.
"""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from host.test_cli import SOPHIA, host_env, http_host, write_config
from hypothesis import given
from hypothesis import strategies as st

from .hostile import frame_shapes, render_all
from .wire import FUZZ, PROTOCOL, SHAPES_PER_BATCH, START_S, RawWire, json_message, spawned, stream_frames

pytestmark = pytest.mark.e2e

MODERN = "2026-07-28"
# The child's tools that answer at once (alpha_hang never answers, alpha_crash kills the child).
SAFE_TOOLS = ["alpha_echo", "sophia_find_tools"]


async def _until_listed(wire: RawWire, tool: str) -> None:
    """Children start after the host: list (bounded) until the child's tool is there."""
    with anyio.fail_after(START_S):
        for attempt in itertools.count():
            listed = await wire.request(f"list-{attempt}", "tools/list", {})
            if tool in {t["name"] for t in listed["result"]["tools"]}:
                return
            await anyio.sleep(0.2)


async def _echo(wire: RawWire, request_id: str) -> dict[str, Any]:
    return await wire.request(request_id, "tools/call", {"name": "alpha_echo", "arguments": {"text": "still here"}})


def test_every_frame_is_answered_by_the_host_over_stdio(tmp_path: Path, sophia_home: Path) -> None:
    config = write_config(tmp_path, "alpha")
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
        spawned([SOPHIA, "up", "--transport", "stdio"], host_env(config, sophia_home))
    ) as (process, wire):
        portal.call(wire.initialize)
        portal.call(_until_listed, wire, "alpha_echo")
        sent = stream_frames(portal, process, wire, SAFE_TOOLS, "host")
        after = portal.call(_echo, wire, "after")
    assert sent >= 10_000
    assert after["result"]["structuredContent"]["text"] == "still here"


HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_every_body_is_answered_by_the_host_over_streamable_http(tmp_path: Path, sophia_home: Path) -> None:
    config = write_config(tmp_path, "alpha")
    port = _free_port()
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
        http_host(config, sophia_home, port, "--allow-unauthenticated")
    ), httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=HEADERS, timeout=60) as http:
        init = http.post("/mcp", json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}})
        assert init.status_code == 200, init.text
        session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
        modern = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call"}
        http.post("/mcp", headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        portal.call(_wait_for_tool, http, session)
        ids = itertools.count()
        sent = 0

        @FUZZ
        @given(st.lists(frame_shapes(SAFE_TOOLS), min_size=SHAPES_PER_BATCH, max_size=SHAPES_PER_BATCH))
        def batch(shapes: list[Any]) -> None:
            nonlocal sent
            for shape in shapes:
                for body, request_id in render_all(shape, lambda: f"http-{next(ids)}"):
                    response = http.post("/mcp", headers=modern if sent % 2 else session, content=body)
                    sent += 1
                    assert response.status_code < 500, (response.status_code, response.text[:300])
                    assert "Traceback" not in response.text
                    if request_id is not None:
                        assert response.status_code != 202, body[:200]
                        assert json_message(response).get("id") == request_id, (body[:200], response.text[:300])

        batch()
        after = http.post("/mcp", headers=session, json={"jsonrpc": "2.0", "id": "after", "method": "tools/call",
                                                          "params": {"name": "alpha_echo",
                                                                     "arguments": {"text": "still here"}}})
    assert sent >= 10_000
    assert json_message(after)["result"]["structuredContent"]["text"] == "still here"


async def _wait_for_tool(http: httpx.Client, session: dict[str, str]) -> None:
    with anyio.fail_after(START_S):
        for attempt in itertools.count():
            listed = http.post("/mcp", headers=session, json={
                "jsonrpc": "2.0", "id": f"list-{attempt}", "method": "tools/list"})
            if "alpha_echo" in json.dumps(json_message(listed)):
                return
            await anyio.sleep(0.2)
