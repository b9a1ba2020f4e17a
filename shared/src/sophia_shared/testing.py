"""Test helpers: the in-memory SDK client, with a chosen principal and elicitation answers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, cast

from mcp.client import Client
from mcp.types import CallToolResult, ElicitResult, ReadResourceResult, RequestParamsMeta, Tool

from .auth import Principal, Role
from .errors import error_code as error_code
from .errors import error_data as error_data
from .errors import error_info
from .server import PRINCIPAL_META_KEY, SophiaServer


class SophiaTestClient:
    """The SDK client, calling every tool as `principal` (forwarded like the host does)."""

    def __init__(self, client: Client, principal: Principal):
        self.client = client
        self.principal = principal

    async def call(
        self, name: str, arguments: dict[str, Any] | None = None, *, principal: Principal | None = None,
        progress_callback: Any = None,
    ) -> CallToolResult:
        who = principal or self.principal
        meta = cast(RequestParamsMeta, {PRINCIPAL_META_KEY: who.as_meta()})
        return await self.client.call_tool(name, arguments or {}, meta=meta, progress_callback=progress_callback)

    async def read_resource(self, uri: str, *, principal: Principal | None = None) -> ReadResourceResult:
        who = principal or self.principal
        meta = cast(RequestParamsMeta, {PRINCIPAL_META_KEY: who.as_meta()})
        return await self.client.read_resource(uri, meta=meta, cache_mode="bypass")

    async def list_tools(self, *, principal: Principal | None = None) -> list[Tool]:
        """The tools/list `principal` (default: this client's) sees; never from the client's cache."""
        who = principal or self.principal
        meta = cast(RequestParamsMeta, {PRINCIPAL_META_KEY: who.as_meta()})
        return (await self.client.list_tools(meta=meta, cache_mode="bypass")).tools


@asynccontextmanager
async def connect(
    server: SophiaServer,
    *,
    principal: Principal | None = None,
    elicitation: Literal["accept", "decline"] | None = None,
) -> AsyncIterator[SophiaTestClient]:
    """Connect the in-memory SDK client; `elicitation` makes it answer confirmation prompts."""
    who = principal or Principal("tester", Role.DEVELOPER, kind="test")

    async def answer(context: Any, params: Any) -> ElicitResult:
        if elicitation == "accept":
            return ElicitResult(action="accept", content={"confirm": True})
        return ElicitResult(action="decline")

    previous = server.trust_meta_principal
    server.trust_meta_principal = True
    try:
        kwargs: dict[str, Any] = {"elicitation_callback": answer} if elicitation else {}
        async with Client(server, **kwargs) as client:
            yield SophiaTestClient(client, who)
    finally:
        server.trust_meta_principal = previous


def error_of(result: CallToolResult) -> dict[str, Any]:
    """The {code, message, data} of a call that must have failed (fails loudly when it did not)."""
    info = error_info(result)
    assert info is not None, f"the call succeeded: {result.content}"
    return info


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a call (fails loudly when there is none)."""
    assert result.structured_content is not None, f"no structured content: {result.content}"
    return dict(result.structured_content)


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", *, factory: bool = False) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yield its base URL.

    With `factory=True`, `app` is called with the chosen port (for apps that check Host headers).
    """
    import socket
    import threading

    import uvicorn

    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    asgi = app(port) if factory else app
    server = uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
