"""`sophia connect URL`: a stdio MCP server that forwards every request to a streamable HTTP host.

For clients that speak only stdio (Claude Desktop) or cannot send headers. It is a proxy at the
MCP level, not a byte pipe: the SDK's server speaks whatever protocol version the stdio client
asks for and the SDK's client negotiates its own with the host, so either side may be older or
newer. Tools (with their progress), resources and prompts are forwarded as they are; the host still authenticates,
authorises, confirms and audits every call (the bridge adds no checks and keeps no state).

The bearer token comes from a file or an environment variable, never from argv or the URL (both
end up in process lists and logs).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BRIDGE_NAME = "sophia-connect"
# Generous: a tool call through the host may wait for a confirmation or a slow upstream system.
READ_TIMEOUT_S = 300.0
CONNECT_TIMEOUT_S = 30.0
_TOKEN_QUERY_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "key", "auth"})


class BridgeFailed(Exception):
    """The bridge cannot start: one line saying why and what to change."""


def read_token(token_file: Path | None, token_env: str) -> str | None:
    """The bearer token from `token_file`, else from `$token_env`; None when neither has one."""
    if token_file is not None:
        try:
            token = token_file.expanduser().read_text().strip()
        except OSError as exc:
            raise BridgeFailed(f"cannot read the token file {token_file}: {exc.strerror}") from None
        if not token:
            raise BridgeFailed(f"the token file {token_file} is empty")
        return token
    return os.environ.get(token_env, "").strip() or None


def check_url(url: str) -> None:
    """Refuse URLs that are not HTTP(S) or that carry credentials (those belong in a token file)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BridgeFailed(f"{url!r} is not an http(s) URL; give the host's endpoint, e.g. http://127.0.0.1:8760/mcp")
    named = {name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if parts.username or parts.password or named & _TOKEN_QUERY_NAMES:
        raise BridgeFailed("the URL carries credentials; pass the token with --token-file or $SOPHIA_TOKEN instead")


def serve_bridge(url: str, token: str | None) -> None:
    """Serve stdio until the client closes it, forwarding to `url`."""
    import anyio
    from sophia_shared.cli import leave_on_interrupt

    check_url(url)
    leave_on_interrupt()
    anyio.run(_bridge, url, token)


async def _bridge(url: str, token: str | None) -> None:
    from mcp.server.stdio import stdio_server

    async with upstream_client(url, token) as upstream:
        server = proxy_server(upstream)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


@asynccontextmanager
async def upstream_client(url: str, token: str | None) -> AsyncIterator[Any]:
    """The SDK client session with the host, or BridgeFailed naming what refused it."""
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        client = Client(streamable_http_client(url, http_client=http), read_timeout_seconds=READ_TIMEOUT_S)
        try:
            await client.__aenter__()
        except Exception as exc:  # noqa: BLE001 - the boundary: a failure to connect is one line naming its cause
            # The SDK reports an HTTP refusal as a bare JSON-RPC error: ask once more to learn the status.
            raise BridgeFailed(_why(exc, url, token, await _status_of(http, url))) from None
        try:
            yield client
        finally:
            await client.__aexit__(None, None, None)


async def _status_of(http: Any, url: str) -> int | None:
    """The HTTP status `url` answers an initialize with (None when it cannot be reached)."""
    import httpx2

    probe = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": BRIDGE_NAME, "version": "0"}}}
    try:
        response = await http.post(url, json=probe, headers={"Accept": "application/json, text/event-stream"})
    except httpx2.HTTPError:
        return None
    await response.aclose()
    status: int = response.status_code
    return status


def _why(exc: BaseException, url: str, token: str | None, status: int | None) -> str:
    """A connect failure as one line: the HTTP status the host answered, or the network error."""
    import httpx2

    if status == 401:
        hint = "the token was refused" if token else "the host requires a token"
        return (f"{url} answered 401: {hint}; create one with `sophia token create --name NAME` and pass it "
                "with --token-file or $SOPHIA_TOKEN")
    if status is not None and status >= 400:
        return f"{url} answered HTTP {status}"
    if status is None or any(isinstance(c, httpx2.TransportError) for c in _causes(exc)):
        return f"cannot reach {url} (is `sophia up --transport http` running there?)"
    return f"cannot connect to {url}: {type(exc).__name__}"


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        found.append(current)
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None and linked not in found:
                stack.append(linked)
    return found


def proxy_server(upstream: Any) -> Any:
    """A low-level SDK server whose every list, call, read and get is the upstream's answer."""
    import mcp_types as types
    from mcp.server.lowlevel.server import Server

    async def list_tools(_ctx: Any, params: Any) -> types.ListToolsResult:
        return await upstream.list_tools(cursor=_cursor(params), cache_mode="bypass")  # type: ignore[no-any-return]

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        token = (params.meta or {}).get("progress_token")
        relay = ProgressRelay(ctx, token) if token is not None else None
        result: types.CallToolResult = await upstream.call_tool(params.name, params.arguments, progress_callback=relay)
        if relay is not None:
            await relay.drain()
        return result

    async def list_resources(_ctx: Any, params: Any) -> types.ListResourcesResult:
        return await upstream.list_resources(cursor=_cursor(params), cache_mode="bypass")  # type: ignore[no-any-return]

    async def list_templates(_ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
        return await upstream.list_resource_templates(  # type: ignore[no-any-return]
            cursor=_cursor(params), cache_mode="bypass")

    async def read_resource(_ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return await upstream.read_resource(str(params.uri), cache_mode="bypass")  # type: ignore[no-any-return]

    async def list_prompts(_ctx: Any, params: Any) -> types.ListPromptsResult:
        return await upstream.list_prompts(cursor=_cursor(params), cache_mode="bypass")  # type: ignore[no-any-return]

    async def get_prompt(_ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        return await upstream.get_prompt(params.name, params.arguments)  # type: ignore[no-any-return]

    return Server(
        BRIDGE_NAME, on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
        on_list_resource_templates=list_templates, on_read_resource=read_resource,
        on_list_prompts=list_prompts, on_get_prompt=get_prompt,
    )


class ProgressRelay:
    """Relays the host's progress to the stdio client under the client's own token.

    The SDK client runs each progress callback as a task of its own, so the last ones may still be
    writing when the result arrives; `drain` waits for them, since a client drops progress that
    comes after its answer.
    """

    DRAIN_S = 5.0

    def __init__(self, ctx: Any, token: str | int) -> None:
        self.ctx = ctx
        self.token = token
        self._writing: set[Any] = set()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        import anyio

        done = anyio.Event()
        self._writing.add(done)
        try:
            await self.ctx.session.send_progress_notification(self.token, progress, total, message,
                                                              related_request_id=self.ctx.request_id)
        finally:
            done.set()
            self._writing.discard(done)

    async def drain(self) -> None:
        """Wait (bounded) for relays already under way; their tasks started before the result was read."""
        import anyio
        import anyio.lowlevel

        await anyio.lowlevel.checkpoint()
        with anyio.move_on_after(self.DRAIN_S):
            for done in list(self._writing):
                await done.wait()


def _cursor(params: Any) -> str | None:
    cursor = getattr(params, "cursor", None)
    return cursor if isinstance(cursor, str) else None
