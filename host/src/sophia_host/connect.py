"""`sophia connect URL`: a stdio MCP server that relays a streamable HTTP host, both ways.

For clients that speak only stdio (Claude Desktop) or cannot send headers. It is a proxy at the
MCP level, not a byte pipe: the SDK's server speaks whatever protocol version the stdio client
asks for and the SDK's client negotiates its own with the host, so either side may be older or
newer. Requests go up as they are: tools (with their progress), resources and prompts. What the
host sends back comes down: tools/resources/prompts list_changed (on the stdio client's own
`subscriptions/listen` streams, or as plain notifications on a handshake-era connection), log
messages (to a handshake-era client), and the host's requests: elicitation, sampling and roots,
each relayed to the stdio client and its answer relayed back. The host learns only the client
capabilities the stdio client declared, so a client without elicitation gets what any such client
gets (a pending approval); a request the stdio client cannot take is answered with the SDK's own
error. The host still authenticates, authorises, confirms and audits every call (the bridge adds no
checks and keeps nothing of a call once it is answered).

The bearer token comes from a file or an environment variable, never from argv or the URL (both
end up in process lists and logs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field
from sophia_shared.settings import ServerSettings, settings_config

if TYPE_CHECKING:
    import mcp_types as types
    from mcp.client import Client
    from mcp.shared.subscriptions import ServerEvent

log = logging.getLogger("sophia.connect")

BRIDGE_NAME = "sophia-connect"
RELIST_PAGES = 100  # a host whose tools/list pages never end cannot hold a call
_TOKEN_QUERY_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "key", "auth"})


class BridgeSettings(ServerSettings):
    """The bridge's bounded waits (env SOPHIA_CONNECT_*, `[connect]` in sophia.toml)."""

    model_config = settings_config("connect")

    # Generous: a tool call through the host may wait for a confirmation or a slow upstream system.
    read_timeout_s: float = Field(default=300.0, gt=0)
    connect_timeout_s: float = Field(default=30.0, gt=0)
    # How long a request of the host (a confirmation prompt, a sampling request) waits for the stdio
    # client's answer; a person may be reading the prompt.
    answer_timeout_s: float = Field(default=300.0, gt=0)
    # How long an answer waits for progress relays already under way.
    progress_drain_s: float = Field(default=5.0, gt=0)
    # Re-opening the host's change stream after it dropped: this long first, doubling to the max.
    relisten_initial_s: float = Field(default=0.5, gt=0)
    relisten_max_s: float = Field(default=30.0, gt=0)


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


def serve_bridge(url: str, token: str | None, settings: BridgeSettings | None = None) -> None:
    """Serve stdio until the client closes it, relaying to and from `url`."""
    import anyio
    from sophia_shared.cli import leave_on_interrupt
    from sophia_shared.settings import SettingsError, load_settings

    check_url(url)
    if settings is None:
        try:
            settings = load_settings(BridgeSettings)
        except SettingsError as exc:
            raise BridgeFailed(str(exc)) from None
    leave_on_interrupt()
    anyio.run(_bridge, url, token, settings)


async def _bridge(url: str, token: str | None, settings: BridgeSettings) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    # Fail at start, with one line, when the host is unreachable or refuses the token. The session
    # that serves is opened once the stdio client has said what it can do (its capabilities are
    # what the host is told).
    async with upstream_client(url, token, settings) as probe:
        capabilities, instructions = probe.server_capabilities, probe.instructions
    relay = Relay(url, token, settings)
    server = proxy_server(relay, capabilities, instructions)
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.run)
        async with stdio_server() as (read, write):
            await server.run(read, write, initialization_options(server, capabilities))
        tg.cancel_scope.cancel()


@asynccontextmanager
async def upstream_client(url: str, token: str | None, settings: BridgeSettings | None = None,
                          **callbacks: Any) -> AsyncIterator[Client]:
    """The SDK client session with the host, or BridgeFailed naming what refused it. `callbacks`
    (elicitation, sampling, roots, messages) go to the SDK client; each one it has is a capability
    it declares."""
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    settings = settings or BridgeSettings()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        client = Client(streamable_http_client(url, http_client=http), read_timeout_seconds=settings.read_timeout_s,
                        **callbacks)
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


# The stdio request being relayed: a request of the host made while relaying it is asked of this client.
_serving: ContextVar[Any] = ContextVar("sophia_connect_serving")


class Relay:
    """The bridge's two ends: the stdio client's latest session and the SDK client session with the host.

    The host's session opens on the stdio client's first request (or its `initialized`), declaring
    exactly the capabilities that client declared: the SDK client declares one for each callback it
    is given, so a capability the stdio client lacks has no callback, and a host request for it gets
    the SDK's own refusal.
    """

    def __init__(self, url: str, token: str | None, settings: BridgeSettings) -> None:
        import anyio
        from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler

        self.url, self.token, self.settings = url, token, settings
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self.log_level: str | None = None  # what a handshake-era stdio client set with logging/setLevel
        self.declared: types.ClientCapabilities | None = None
        self._downstream: Any = None  # the ServerSession of the stdio client's latest request
        self._wanted = anyio.Event()
        self._ready = anyio.Event()
        self._client: Client | None = None
        self._failure = f"the connection to {url} is closed"

    def note(self, ctx: Any) -> None:
        """Remember the stdio client's session; its first request decides what the host is told."""
        self._downstream = ctx.session
        if not self._wanted.is_set():
            self.declared = ctx.session.client_capabilities
            self._wanted.set()

    async def upstream(self, ctx: Any) -> Client:
        """The host's session (opened on the first call), or the JSON-RPC error of why there is none."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import INTERNAL_ERROR

        self.note(ctx)
        await self._ready.wait()  # bounded: opening the session is (connect and read timeouts)
        if self._client is None:
            raise MCPError(INTERNAL_ERROR, self._failure)
        return self._client

    @property
    def client(self) -> Client | None:
        return self._client

    @contextmanager
    def serving(self, ctx: Any) -> Iterator[None]:
        reset = _serving.set(ctx)
        try:
            yield
        finally:
            _serving.reset(reset)

    def meta(self) -> Any:
        """The `_meta` a forwarded request carries: a 2026-era host sends log messages only when asked."""
        from mcp_types import LOG_LEVEL_META_KEY
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        client = self._client
        if self.log_level is None or client is None or client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return None
        return {LOG_LEVEL_META_KEY: self.log_level}

    async def run(self) -> None:
        """Open the host's session when the stdio client first needs it, and follow the host's changes."""
        await self._wanted.wait()
        try:
            async with upstream_client(self.url, self.token, self.settings, **self._callbacks()) as client:
                self._client = client
                self._ready.set()
                await self._follow_changes(client)
        except BridgeFailed as exc:
            self._failure = str(exc)
        except Exception:  # the boundary of the host's session: what ends it fails later requests, not the bridge
            log.exception("the session with %s ended", self.url)
        finally:
            self._client = None
            self._ready.set()
            self.listen.close()

    def _callbacks(self) -> dict[str, Any]:
        import mcp_types as types

        declared = self.declared or types.ClientCapabilities()
        callbacks: dict[str, Any] = {"message_handler": self._from_host}
        if declared.elicitation is not None:
            callbacks["elicitation_callback"] = self._elicit
        if declared.sampling is not None:
            callbacks["sampling_callback"] = self._sample
            callbacks["sampling_capabilities"] = declared.sampling
        if declared.roots is not None:
            callbacks["list_roots_callback"] = self._list_roots
        return callbacks

    # -- the host's requests, asked of the stdio client ------------------------------------------

    async def _elicit(self, _context: Any, params: types.ElicitRequestParams) -> types.ElicitResult | types.ErrorData:
        import mcp_types as types

        answer: types.ElicitResult | types.ErrorData = await self._ask(types.ElicitRequest(params=params),
                                                                      types.ElicitResult)
        return answer

    async def _sample(
        self, _context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        import mcp_types as types

        with_tools = params.tools is not None or params.tool_choice is not None
        result_type = types.CreateMessageResultWithTools if with_tools else types.CreateMessageResult
        answer: types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData = await self._ask(
            types.CreateMessageRequest(params=params), result_type)
        return answer

    async def _list_roots(self, _context: Any) -> types.ListRootsResult | types.ErrorData:
        import mcp_types as types

        answer: types.ListRootsResult | types.ErrorData = await self._ask(types.ListRootsRequest(),
                                                                          types.ListRootsResult)
        return answer

    async def _ask(self, request: Any, result_type: Any) -> Any:
        """The stdio client's answer to a request of the host; any failure is an ErrorData for the host."""
        import anyio
        import mcp_types as types
        from mcp.shared.exceptions import MCPError
        from mcp.shared.message import ServerMessageMetadata
        from pydantic import ValidationError

        ctx = _serving.get(None)
        session = ctx.session if ctx is not None else self._downstream
        if session is None:
            return types.ErrorData(code=types.INVALID_REQUEST,
                                   message=f"no stdio client is connected for {request.method}")
        related = ctx.request_id if ctx is not None else None
        try:
            return await session.send_request(
                request, result_type, request_read_timeout_seconds=self.settings.answer_timeout_s,
                metadata=ServerMessageMetadata(related_request_id=related) if related is not None else None)
        except MCPError as exc:  # the client's own error, its timeout, or no channel for requests (2026-era client)
            return exc.error
        except ValidationError:
            return types.ErrorData(code=types.INTERNAL_ERROR,
                                   message=f"the stdio client answered {request.method} with an invalid result")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return types.ErrorData(code=types.CONNECTION_CLOSED, message="the stdio client has gone")

    # -- the host's notifications, relayed to the stdio client -----------------------------------

    async def _from_host(self, message: Any) -> None:
        import mcp_types as types
        from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged

        if isinstance(message, types.ToolListChangedNotification):
            await self._changed(ToolsListChanged(), types.ToolListChangedNotification())
        elif isinstance(message, types.ResourceListChangedNotification):
            await self._changed(ResourcesListChanged(), types.ResourceListChangedNotification())
        elif isinstance(message, types.PromptListChangedNotification):
            await self._changed(PromptsListChanged(), types.PromptListChangedNotification())
        elif isinstance(message, types.LoggingMessageNotification):
            entry = message.params  # its own `_meta` (the host's request or subscription ids) stays behind
            await self._to_handshake_client(types.LoggingMessageNotification(
                params=types.LoggingMessageNotificationParams(level=entry.level, data=entry.data, logger=entry.logger)))
        elif isinstance(message, Exception):
            log.debug("the host's stream: %s", type(message).__name__)

    async def _changed(self, event: ServerEvent, notification: Any) -> None:
        # 2026-era stdio clients hear it on their subscriptions/listen streams, handshake-era ones as is.
        await self.bus.publish(event)
        await self._to_handshake_client(notification)

    async def _to_handshake_client(self, notification: Any) -> None:
        import anyio
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        session = self._downstream
        if session is None or session.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return
        try:
            await session.send_notification(notification)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            log.debug("dropped %s: the stdio client has gone", type(notification).__name__)

    async def _follow_changes(self, client: Client) -> None:
        """Keep a `subscriptions/listen` stream open on a 2026-era host (its events reach `_from_host`);
        a handshake-era host sends its notifications on the session itself."""
        import anyio
        from mcp.client.subscriptions import SubscriptionLost
        from mcp.shared.exceptions import MCPError
        from mcp_types import METHOD_NOT_FOUND
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        caps = client.server_capabilities
        tools = bool(caps.tools and caps.tools.list_changed)
        resources = bool(caps.resources and caps.resources.list_changed)
        prompts = bool(caps.prompts and caps.prompts.list_changed)
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or not (tools or resources or prompts):
            await anyio.sleep_forever()
        delay = self.settings.relisten_initial_s
        lost = False
        while True:
            try:
                async with client.listen(tools_list_changed=tools, resources_list_changed=resources,
                                         prompts_list_changed=prompts) as subscription:
                    delay = self.settings.relisten_initial_s
                    if lost:  # a stream has no replay: what changed while it was down, the client lists again
                        await self._changed_all(subscription.honored)
                    async for _event in subscription:
                        pass
            except MCPError as exc:
                if exc.code == METHOD_NOT_FOUND:
                    await anyio.sleep_forever()
                log.info("the host's change stream failed (%s); listening again in %.1f s", exc.message, delay)
            except (SubscriptionLost, TimeoutError) as exc:
                log.info("the host's change stream dropped (%s); listening again in %.1f s", type(exc).__name__, delay)
            lost = True
            await anyio.sleep(delay)
            delay = min(delay * 2, self.settings.relisten_max_s)

    async def _changed_all(self, honored: types.SubscriptionFilter) -> None:
        import mcp_types as types
        from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged

        if honored.tools_list_changed:
            await self._changed(ToolsListChanged(), types.ToolListChangedNotification())
        if honored.resources_list_changed:
            await self._changed(ResourcesListChanged(), types.ResourceListChangedNotification())
        if honored.prompts_list_changed:
            await self._changed(PromptsListChanged(), types.PromptListChangedNotification())


def initialization_options(server: Any, capabilities: types.ServerCapabilities) -> Any:
    """Handshake-era options: list_changed is announced where the host announces it."""
    from mcp.server.lowlevel.server import NotificationOptions

    def changes(capability: Any) -> bool:
        return bool(capability is not None and capability.list_changed)

    return server.create_initialization_options(NotificationOptions(
        tools_changed=changes(capabilities.tools), resources_changed=changes(capabilities.resources),
        prompts_changed=changes(capabilities.prompts)))


def proxy_server(relay: Relay, capabilities: types.ServerCapabilities | None = None,
                 instructions: str | None = None) -> Any:
    """A low-level SDK server whose every list, call, read and get is the host's answer.

    A 2026-era stdio client gets the host's `InputRequiredResult` as it is and retries with its
    answers, which go up with the retry; for a handshake-era one the SDK client answers it, asking
    the stdio client through the relay's callbacks.
    """
    import mcp_types as types
    from mcp.server.lowlevel.server import Server
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    def modern(ctx: Any) -> bool:
        return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        upstream = await relay.upstream(ctx)
        return await upstream.list_tools(cursor=_cursor(params), meta=relay.meta(), cache_mode="bypass")

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
        upstream = await relay.upstream(ctx)
        token = (params.meta or {}).get("progress_token")
        progress = ProgressRelay(ctx, token, relay.settings.progress_drain_s) if token is not None else None
        result: Any
        with relay.serving(ctx):
            if modern(ctx):

                async def send() -> types.CallToolResult | types.InputRequiredResult:
                    return await upstream.session.call_tool(
                        params.name, params.arguments, progress_callback=progress,
                        input_responses=params.input_responses, request_state=params.request_state,
                        meta=relay.meta(), allow_input_required=True)

                result = await _resent_on_header_mismatch(upstream, params.name, send)
            else:
                result = await upstream.call_tool(params.name, params.arguments, progress_callback=progress,
                                                  meta=relay.meta())
        if progress is not None:
            await progress.drain()
        return result

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        upstream = await relay.upstream(ctx)
        return await upstream.list_resources(cursor=_cursor(params), meta=relay.meta(), cache_mode="bypass")

    async def list_templates(ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
        upstream = await relay.upstream(ctx)
        return await upstream.list_resource_templates(cursor=_cursor(params), meta=relay.meta(),
                                                      cache_mode="bypass")

    async def read_resource(
        ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        upstream = await relay.upstream(ctx)
        with relay.serving(ctx):
            if modern(ctx):
                return await upstream.session.read_resource(
                    str(params.uri), input_responses=params.input_responses, request_state=params.request_state,
                    meta=relay.meta(), allow_input_required=True)
            return await upstream.read_resource(str(params.uri), meta=relay.meta(), cache_mode="bypass")

    async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
        upstream = await relay.upstream(ctx)
        return await upstream.list_prompts(cursor=_cursor(params), meta=relay.meta(), cache_mode="bypass")

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> Any:
        upstream = await relay.upstream(ctx)
        with relay.serving(ctx):
            if modern(ctx):
                return await upstream.session.get_prompt(
                    params.name, params.arguments, input_responses=params.input_responses,
                    request_state=params.request_state, meta=relay.meta(), allow_input_required=True)
            return await upstream.get_prompt(params.name, params.arguments, meta=relay.meta())

    async def listen(ctx: Any, params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        relay.note(ctx)  # the host's change stream opens with the host's session
        return await relay.listen(ctx, params)

    async def initialized(ctx: Any, _params: Any) -> None:
        if not modern(ctx):
            relay.note(ctx)  # a handshake-era client's capabilities are known now: open the host's session

    async def roots_changed(ctx: Any, _params: Any) -> None:
        upstream = relay.client
        if upstream is not None and relay.declared is not None and relay.declared.roots is not None:
            await upstream.session.send_notification(types.RootsListChangedNotification())

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        upstream = await relay.upstream(ctx)
        relay.log_level = params.level
        if upstream.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            await upstream.session.send_request(
                types.SetLevelRequest(params=types.SetLevelRequestParams(level=params.level)), types.EmptyResult)
        return types.EmptyResult()

    server: Server[Any] = Server(
        BRIDGE_NAME, instructions=instructions, on_list_tools=list_tools, on_call_tool=call_tool,
        on_list_resources=list_resources, on_list_resource_templates=list_templates, on_read_resource=read_resource,
        on_list_prompts=list_prompts, on_get_prompt=get_prompt, on_subscriptions_listen=listen,
    )
    server.add_notification_handler("notifications/initialized", types.NotificationParams, initialized)
    server.add_notification_handler("notifications/roots/list_changed", types.NotificationParams, roots_changed)
    if capabilities is not None and capabilities.logging is not None:
        server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    return server


async def _resent_on_header_mismatch(upstream: Client, name: str, send: Any) -> Any:
    """`send()`, once more after re-listing tools if the host answers HEADER_MISMATCH (the SDK client's own
    recovery, which its driving `call_tool` does and a pass-through call must do itself)."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import HEADER_MISMATCH

    try:
        return await send()
    except MCPError as exc:
        if exc.code != HEADER_MISMATCH:
            raise
    cursor: str | None = None
    for _page in range(RELIST_PAGES):
        page = await upstream.list_tools(cursor=cursor, cache_mode="refresh")
        cursor = page.next_cursor
        if cursor is None or any(tool.name == name for tool in page.tools):
            break
    return await send()


class ProgressRelay:
    """Relays the host's progress to the stdio client under the client's own token.

    The SDK client runs each progress callback as a task of its own, so the last ones may still be
    writing when the result arrives; `drain` waits for them, since a client drops progress that
    comes after its answer.
    """

    DRAIN_S = 5.0

    def __init__(self, ctx: Any, token: str | int, drain_s: float = DRAIN_S) -> None:
        self.ctx = ctx
        self.token = token
        self.drain_s = drain_s
        self._writing: set[Any] = set()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        import anyio

        done = anyio.Event()
        self._writing.add(done)
        try:
            await self.ctx.session.send_progress_notification(self.token, progress, total, message,
                                                              related_request_id=self.ctx.request_id)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the stdio client has gone; its answer will not be written either
        finally:
            done.set()
            self._writing.discard(done)

    async def drain(self) -> None:
        """Wait (bounded) for relays already under way; their tasks started before the result was read."""
        import anyio
        import anyio.lowlevel

        await anyio.lowlevel.checkpoint()
        with anyio.move_on_after(self.drain_s):
            for done in list(self._writing):
                await done.wait()


def _cursor(params: Any) -> str | None:
    cursor = getattr(params, "cursor", None)
    return cursor if isinstance(cursor, str) else None
