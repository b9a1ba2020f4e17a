"""connect.py end to end, the host → client direction: a real `sophia up` over streamable HTTP, the
`sophia connect` bridge spawned as a desktop client spawns it, and the real SDK client on its stdio, once
as a handshake-era client (`legacy`) and once as a 2026-era one (`auto`). What the host sends back must
reach the stdio client: tools/list_changed, the confirmation prompt of a destructive call (answered on the
stdio side, after which the call runs once), and, for a client without elicitation, the pending approval
any such client gets. The children are tests/host/child_server.py (see test_cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx2
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import ListRoots, MCPServer, Resolve, Sample
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CreateMessageResult,
    ElicitResult,
    ErrorData,
    ListRootsResult,
    Root,
    SamplingMessage,
    TextContent,
    ToolListChangedNotification,
)
from mcp_types import INVALID_REQUEST, MISSING_REQUIRED_CLIENT_CAPABILITY
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Role, TokenStore
from sophia_shared.testing import error_of

from .conftest import START_S
from .test_cli import SOPHIA, _wait_http, http_host, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MODES = ["legacy", "auto"]


class Seen:
    """tools/list_changed as the stdio client hears it: a count, and a wait for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._event = anyio.Event()

    def bump(self) -> None:
        self.count += 1
        self._event.set()
        self._event = anyio.Event()

    async def beyond(self, count: int) -> None:
        while self.count <= count:
            await self._event.wait()


# Tests that want the default confirmation (pending approvals) name `approval_mode` before this fixture, so
# the host starts in it.
@pytest.fixture
async def host_url(tmp_path: Path, sophia_home: Path, free_port: int) -> AsyncIterator[tuple[str, Path]]:
    """A running `sophia up` composing child `alpha`, and a token file of developer `laptop` for it."""
    config = write_config(tmp_path, "alpha")
    _record, token = TokenStore().create("laptop", Role.DEVELOPER)
    token_file = tmp_path / "laptop.token"
    token_file.write_text(token + "\n")
    url = f"http://127.0.0.1:{free_port}/mcp"
    async with http_host(config, sophia_home, free_port):
        # Once the child is up (as an HTTP client sees it), every bridge's first listing has its tools.
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=START_S) as http, \
                Client(streamable_http_client(url, http_client=http)) as client:
            with anyio.fail_after(START_S):
                await _wait_http(client, "alpha_echo")
        yield url, token_file


@asynccontextmanager
async def bridged(host: tuple[str, Path], mode: str, seen: Seen | None = None,
                  **callbacks: Any) -> AsyncIterator[Client]:
    """The SDK client on the stdio of `sophia connect URL`, once the host's child lists its tools."""
    url, token_file = host

    async def on_message(message: Any) -> None:
        if isinstance(message, ToolListChangedNotification) and seen is not None:
            seen.bump()

    params = StdioServerParameters(command=SOPHIA, args=["connect", url, "--token-file", str(token_file)],
                                   env=dict(os.environ))
    with anyio.fail_after(START_S):
        async with Client(params, mode=mode, message_handler=on_message, **callbacks) as client:
            assert "alpha_echo" in {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}
            yield client


def runs_of(tool: str) -> int:
    """How many times the child itself ran `tool` to the end (its own audit records)."""
    return sum(1 for r in AuditLog().records() if (r["server"], r["tool"], r["outcome"]) == ("alpha", tool, "ok"))


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_changed_reaches_the_stdio_client(host_url: tuple[str, Path], mode: str) -> None:
    seen = Seen()
    async with bridged(host_url, mode, seen) as client, anyio.create_task_group() as tg:
        if mode == "auto":
            # A 2026-era client hears changes on the subscriptions/listen stream it opens with the bridge.
            subscription = await tg.start(_listen, client, seen)
            assert subscription.honored.tools_list_changed
        before = seen.count
        assert "alpha_grown" not in {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}
        grew = await client.call_tool("alpha_grow", {})  # the child adds a tool and says so
        assert not grew.is_error, grew
        with anyio.fail_after(START_S):
            while True:  # the host re-lists its child, then announces; each announcement crosses the bridge
                await seen.beyond(before)
                before = seen.count
                if "alpha_grown" in {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}:
                    break
        assert (await client.call_tool("alpha_grown", {})).structured_content == {"result": "grown"}
        tg.cancel_scope.cancel()


async def _listen(client: Client, seen: Seen, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    async with client.listen(tools_list_changed=True) as subscription:
        task_status.started(subscription)
        async for _event in subscription:
            seen.bump()


@pytest.mark.parametrize("mode", MODES)
async def test_a_confirmation_answered_on_the_stdio_side_runs_the_call_once(
    approval_mode: None, host_url: tuple[str, Path], mode: str
) -> None:
    asked: list[str] = []
    answers: list[ElicitResult | ErrorData] = [
        ElicitResult(action="accept", content={"confirm": True}),
        ElicitResult(action="decline"),
        ErrorData(code=INVALID_REQUEST, message="no prompt can be shown here"),
    ]

    async def answer(context: Any, params: Any) -> ElicitResult | ErrorData:
        asked.append(params.message)
        return answers.pop(0)

    async with bridged(host_url, mode, elicitation_callback=answer) as client:
        confirmed = await client.call_tool("alpha_delete", {"item": "x"})
        assert not confirmed.is_error, confirmed
        assert confirmed.structured_content == {"result": "deleted x for laptop"}
        assert len(asked) == 1 and "alpha_delete" in asked[0] and '"x"' in asked[0]
        assert runs_of("alpha_delete") == 1

        declined = await client.call_tool("alpha_delete", {"item": "y"})
        assert error_of(declined)["code"] == "forbidden"
        # A client that answers with an error: the call fails with it, at once, and nothing runs.
        with anyio.fail_after(START_S), pytest.raises(MCPError) as refused:
            await client.call_tool("alpha_delete", {"item": "z"})
        assert refused.value.code == INVALID_REQUEST
        assert len(asked) == 3
    assert runs_of("alpha_delete") == 1
    assert not any(r["outcome"] == "pending" for r in AuditLog().records())  # nothing was left to approve


@pytest.mark.parametrize("mode", MODES)
async def test_a_stdio_client_without_elicitation_gets_a_pending_approval(
    approval_mode: None, host_url: tuple[str, Path], mode: str, sophia_home: Path
) -> None:
    async with bridged(host_url, mode) as client:
        first = await client.call_tool("alpha_delete", {"item": "x"})
        pending = error_of(first)
        # The bridge told the host this client cannot show a prompt: no token for the model, an approval.
        assert pending["code"] == "approval_required", pending
        assert "confirmation_token" not in json.dumps(pending)
        approval = pending["data"]["approval_id"]
        assert runs_of("alpha_delete") == 0

        env = {**os.environ, "SOPHIA_HOME": str(sophia_home)}
        approved = subprocess.run([SOPHIA, "approve", approval], env=env, capture_output=True, text=True,
                                  timeout=120)
        assert approved.returncode == 0, approved.stderr
        done = await client.call_tool("alpha_delete", {"item": "x"})
        assert not done.is_error, done
        again = await client.call_tool("alpha_delete", {"item": "x"})
        assert error_of(again)["code"] == "approval_required"  # an approval runs one call
    assert runs_of("alpha_delete") == 1


async def test_hostile_frames_neither_crash_nor_hang_the_bridge(host_url: tuple[str, Path]) -> None:
    """On the bridge's raw stdio: garbage, unsolicited and malformed frames, an invalid answer to the host's
    prompt and a prompt never answered (bounded by SOPHIA_CONNECT_ANSWER_TIMEOUT_S): each costs at most its own
    request, which gets a JSON-RPC error; the bridge answers the next call."""
    url, token_file = host_url
    env = {**os.environ, "SOPHIA_CONNECT_ANSWER_TIMEOUT_S": "2"}
    process = await anyio.open_process([SOPHIA, "connect", url, "--token-file", str(token_file)], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    async with process:
        assert process.stdin is not None and process.stdout is not None
        lines = BufferedByteReceiveStream(process.stdout)

        async def send(frame: Any) -> None:
            assert process.stdin is not None
            await process.stdin.send((frame if isinstance(frame, bytes) else json.dumps(frame).encode()) + b"\n")

        async def next_frame() -> dict[str, Any]:
            frame: dict[str, Any] = json.loads(await lines.receive_until(b"\n", 1 << 20))
            return frame

        async def next_request() -> dict[str, Any]:
            while True:  # skipping notifications (the host may announce its tools meanwhile)
                frame = await next_frame()
                if "method" in frame and "id" in frame:
                    return frame

        async def answer_to(request_id: int) -> dict[str, Any]:
            while True:
                frame = await next_frame()
                if frame.get("id") == request_id and "method" not in frame:
                    return frame

        def call(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                    "params": {"name": name, "arguments": arguments}}

        with anyio.fail_after(START_S):
            await send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
                "clientInfo": {"name": "hostile", "version": "1"}}})
            assert "result" in await answer_to(1)
            await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await send(b"this is not json")
            await send([1, 2, 3])
            await send({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}})
            await send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": 42}})
            await send({"jsonrpc": "2.0", "id": 3, "method": "no/such/method"})
            assert "error" in await answer_to(2)
            assert "error" in await answer_to(3)

            await send(call(4, "alpha_delete", {"item": "x"}))
            prompt = await next_request()
            assert prompt.get("method") == "elicitation/create", prompt
            await send({"jsonrpc": "2.0", "id": prompt["id"], "result": {"action": "perhaps"}})
            assert "error" in await answer_to(4)

            await send(call(5, "alpha_delete", {"item": "x"}))
            prompt = await next_request()
            assert prompt.get("method") == "elicitation/create", prompt
            assert "error" in await answer_to(5)  # never answered: the bounded wait ends it

            await send(call(6, "alpha_echo", {"text": "still here"}))
            echoed = await answer_to(6)
        assert echoed["result"]["structuredContent"]["text"] == "still here", echoed
        await process.stdin.aclose()
    assert runs_of("alpha_delete") == 0


def sample() -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text="say hi"))], max_tokens=8)


def roots() -> ListRoots:
    return ListRoots()


def sampling_server() -> MCPServer:
    """A plain SDK server (the host forwards no sampling or roots) whose tools need the client's model and
    roots: what the bridge must relay to its stdio client and back."""
    server = MCPServer("upstream")

    @server.tool()
    async def ask_model(answer: Annotated[CreateMessageResult, Resolve(sample)]) -> str:
        """What the client's model said."""
        assert isinstance(answer.content, TextContent)
        return answer.content.text

    @server.tool()
    async def client_roots(found: Annotated[ListRootsResult, Resolve(roots)]) -> list[str]:
        """The client's roots."""
        return [str(root.uri) for root in found.roots]

    return server


@asynccontextmanager
async def served(server: MCPServer, port: int) -> AsyncIterator[str]:
    """`server` over streamable HTTP in this process, on `port`."""
    import uvicorn

    web = uvicorn.Server(uvicorn.Config(server.streamable_http_app(), host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(web.serve)
        with anyio.fail_after(START_S):
            while not web.started:
                await anyio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/mcp"
        web.should_exit = True


@pytest.mark.parametrize("mode", MODES)
async def test_sampling_and_roots_are_asked_of_the_stdio_client(mode: str, free_port: int, tmp_path: Path) -> None:
    asked: list[str] = []

    async def model(context: Any, params: Any) -> CreateMessageResult:
        asked.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="hi"), model="stdio-side")

    async def list_roots(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=tmp_path.as_uri())])

    async with served(sampling_server(), free_port) as url:
        params = StdioServerParameters(command=SOPHIA, args=["connect", url], env=dict(os.environ))
        with anyio.fail_after(START_S):
            async with Client(params, mode=mode, sampling_callback=model, list_roots_callback=list_roots) as client:
                said = await client.call_tool("ask_model", {})
                rooted = await client.call_tool("client_roots", {})
            assert not said.is_error and said.structured_content == {"result": "hi"}, said
            assert asked == ["say hi"]
            assert rooted.structured_content == {"result": [tmp_path.as_uri()]}, rooted

            # Without the capability the host is not told of one: the SDK server's own refusal comes back.
            async with Client(params, mode=mode) as bare:
                with pytest.raises(MCPError) as refused:
                    await bare.call_tool("ask_model", {})
            assert refused.value.code == MISSING_REQUIRED_CLIENT_CAPABILITY
