"""Supervised children: one SDK client per composed server, restarted with backoff when it dies."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.client import Client
from mcp.client.session import IncomingMessage
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter
from sophia_shared.errors import ToolTimeout, Unavailable, UpstreamError
from sophia_shared.paths import sophia_home
from sophia_shared.redact import redact

from .catalogue import Catalogue
from .config import HostSettings, ServerEntry
from .raw import RawChannel, without_protocol_stamps
from .transport import ChildProcess, spawn_child

log = logging.getLogger("sophia.host")

_RESULT = TypeAdapter[types.CallToolResult | types.InputRequiredResult](
    types.CallToolResult | types.InputRequiredResult
)
# Children started by the host accept the caller's principal from each call's _meta, and list
# every tool: the host lists to each caller what that caller's role may call.
TRUST_ENV = {"SOPHIA_TRUST_HOST_PRINCIPAL": "1", "SOPHIA_LIST_ALL_TOOLS": "1"}
_LIST_PAGE_CAP = 50


class State(StrEnum):
    starting = "starting"
    ready = "ready"
    restarting = "restarting"
    failed = "failed"
    stopped = "stopped"


class ChildFailed(Exception):
    """A child that must not be restarted (its configuration is wrong, e.g. a tool name collision)."""


class _Attached:
    """A Transport over streams someone else owns (the spawned child's)."""

    def __init__(self, streams: tuple[Any, Any]):
        self.streams = streams

    async def __aenter__(self) -> tuple[Any, Any]:
        return self.streams

    async def __aexit__(self, *exc: object) -> None:
        return None


class Child:
    """One composed server: its process or URL, its state, its tools, and its live client."""

    def __init__(
        self,
        entry: ServerEntry,
        settings: HostSettings,
        on_change: Callable[[Child], Awaitable[None]],
        log_dir: Path | None = None,
        catalogue: Catalogue | None = None,
    ):
        self.entry = entry
        self.name = entry.name
        self.settings = settings
        self.on_change = on_change
        self.log_dir = log_dir or sophia_home() / "host" / "logs"
        self.state = State.starting
        self.client: Client | None = None
        # Set while a stdio child is ready: the fast path's way to it (remote children have none).
        self.raw: RawChannel | None = None
        self.process: ChildProcess | None = None
        self.catalogue = catalogue
        # Until the child lists its tools, the ones it listed last time under the same install and
        # config: the host lists and routes them at once, and calls to them wait for the child.
        self.tools: list[types.Tool] = (catalogue.load(entry, self.child_env()) if catalogue else None) or []
        self.from_catalogue = bool(self.tools)
        self.restarts = 0
        self.last_error: str | None = None
        self.up_since: float | None = None
        self.next_retry_at: float | None = None
        self.calls = 0
        self.failures = 0
        self._stop = anyio.Event()
        self._relist = anyio.Event()
        self._state_changed = anyio.Event()

    # -- status ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.state is State.ready else None

    def describe(self) -> str:
        """Why the server's tools are unavailable right now, in words a model can act on."""
        if self.state is State.restarting and self.next_retry_at is not None:
            wait = max(0.0, self.next_retry_at - time.time())
            why = f": {self.last_error}" if self.last_error else ""
            return f"server {self.name} is restarting (next attempt in {wait:.1f} s){why}; retry shortly"
        if self.state is State.starting:
            return f"server {self.name} is starting; retry shortly"
        if self.state is State.failed:
            return f"server {self.name} failed and will not be restarted: {self.last_error}; see `sophia status`"
        return f"server {self.name} is {self.state.value}"

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state.value, "pid": self.pid,
            "target": self.entry.url or " ".join(self.entry.command), "restarts": self.restarts,
            "tools": len(self.tools), "calls": self.calls, "failures": self.failures,
            "up_since": self.up_since, "last_error": self.last_error,
        }

    # -- supervision ----------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def first_start(self) -> bool:
        """Starting for the first time: worth waiting for (a restarting or failed child is not)."""
        return self.state is State.starting and self.restarts == 0

    def child_env(self) -> dict[str, str]:
        """The environment the child process runs with."""
        return {**os.environ, **self.entry.env, **TRUST_ENV}

    async def wait_started(self, timeout: float) -> None:
        """Wait (at most `timeout` s) while the child starts for the first time."""
        with anyio.move_on_after(timeout):
            while self.first_start and not self._stop.is_set():
                await self._state_changed.wait()

    async def run(self) -> None:
        """Serve this child until stopped: (re)start it, with exponential backoff between attempts."""
        attempt = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await self._serve_once()
            except Exception as exc:  # noqa: BLE001 - a child's failure stays with the child: log it and restart
                root = _root_cause(exc)
                if isinstance(root, ChildFailed):
                    self.last_error = str(root)
                    self._set(State.failed)
                    await self.on_change(self)
                    return
                self.last_error = redact(f"{type(root).__name__}: {root}")[:300]
                log.warning("server %s: %s", self.name, self.last_error)
            self.client = None
            if self._stop.is_set():
                break
            if time.monotonic() - started >= self.settings.healthy_after_s:
                attempt = 0
            delay = min(self.settings.backoff_initial_s * 2**attempt, self.settings.backoff_max_s)
            attempt += 1
            self.restarts += 1
            self.next_retry_at = time.time() + delay
            self._set(State.restarting)
            await self.on_change(self)
            with anyio.move_on_after(delay):
                await self._stop.wait()
            self.next_retry_at = None
            if not self._stop.is_set():
                self._set(State.starting)
        self._set(State.stopped)
        await self.on_change(self)

    def _set(self, state: State) -> None:
        self.state = state
        if state is not State.ready:
            self.up_since = None
        self._state_changed.set()
        self._state_changed = anyio.Event()

    async def _serve_once(self) -> None:
        exited: anyio.Event | None = None
        # The deadline covers spawn + initialize + the first listing, then is lifted: a child that
        # never answers initialize is cancelled (and killed on the way out).
        start_timeout = self.entry.start_timeout_s or self.settings.start_timeout_s
        with anyio.CancelScope(deadline=anyio.current_time() + start_timeout) as start:
            async with AsyncExitStack() as stack:
                transport: Any
                if self.entry.remote:
                    transport = self._remote_transport(stack)
                else:
                    env = self.child_env()
                    child, streams, raw = await stack.enter_async_context(
                        spawn_child(self.entry.command, env, self.log_dir / f"{self.name}.log")
                    )
                    self.process = child
                    self.raw = raw
                    exited = child.exited
                    transport = _Attached(streams)
                client = Client(transport, mode="auto", cache=None, message_handler=self._on_message)
                await stack.enter_async_context(client)
                tools = await self._list(client)
                start.deadline = math.inf
                self.client = client
                self._keep(tools)
                self.last_error = None
                self.up_since = time.time()
                self._set(State.ready)
                try:
                    await self.on_change(self)
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._listen, client)
                        tg.start_soon(self._relist_loop, client)
                        await _first(self._stop, exited)
                        tg.cancel_scope.cancel()
                finally:
                    self.client = None
                    self.raw = None
        if start.cancelled_caught:
            raise TimeoutError(f"did not answer initialize within {start_timeout:g} s")
        if exited is not None and exited.is_set() and not self._stop.is_set():
            code = self.process.returncode if self.process is not None else None
            raise ConnectionError(f"the process exited (code {code})")

    def _remote_transport(self, stack: AsyncExitStack) -> Any:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers: dict[str, str] = {}
        if self.entry.token_env:
            token = os.environ.get(self.entry.token_env)
            if not token:
                raise ChildFailed(f"the environment variable {self.entry.token_env} (token_env) is not set")
            headers["Authorization"] = f"Bearer {token}"
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=self.settings.call_timeout_s))
        stack.push_async_callback(http.aclose)
        assert self.entry.url is not None
        return streamable_http_client(self.entry.url, http_client=http)

    async def _list(self, client: Client) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(_LIST_PAGE_CAP):
            page = await client.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return [t for t in tools if self._forwarded(t)]

    def _keep(self, tools: list[types.Tool]) -> None:
        """Take the child's own listing, and remember it for the next start when it is news."""
        unchanged = self.from_catalogue and [t.model_dump() for t in tools] == [t.model_dump() for t in self.tools]
        if self.catalogue is not None and not unchanged:
            self.catalogue.save(self.entry, self.child_env(), tools)
        self.tools = tools
        self.from_catalogue = False

    def _forwarded(self, tool: types.Tool) -> bool:
        if self.entry.tools and tool.name not in self.entry.tools:
            return False
        if self.entry.toolsets:
            return toolset_of(tool, self.name) in self.entry.toolsets
        return True

    async def _on_message(self, message: IncomingMessage) -> None:
        # Handshake-era children announce changes with a plain notification.
        if isinstance(message, types.ToolListChangedNotification):
            self._relist.set()

    async def _listen(self, client: Client) -> None:
        """Follow the child's tools/list_changed on a 2026-era connection."""
        from mcp.client.subscriptions import ListenNotSupportedError

        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    self._relist.set()
        except (ListenNotSupportedError, MCPError, anyio.EndOfStream, anyio.ClosedResourceError):
            return
        except Exception as exc:  # noqa: BLE001 - the subscription is an optimisation; the child keeps serving without it
            log.info("server %s: no tools/list_changed subscription (%s)", self.name, type(exc).__name__)

    async def _relist_loop(self, client: Client) -> None:
        while True:
            await self._relist.wait()
            self._relist = anyio.Event()
            try:
                with anyio.fail_after(self.settings.start_timeout_s):
                    tools = await self._list(client)
            except (MCPError, TimeoutError) as exc:
                log.warning("server %s: re-listing tools failed: %s", self.name, exc)
                continue
            if [t.model_dump() for t in tools] != [t.model_dump() for t in self.tools]:
                self._keep(tools)
                await self.on_change(self)

    # -- calls ----------------------------------------------------------------------------

    async def call(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        meta: Mapping[str, Any],
        progress: ProgressFnT | None,
        input_responses: types.InputResponses | None = None,
        request_state: str | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Forward one tools/call; a dead child is `unavailable`, a hung call ends with `timeout`.

        A call made while the child starts for the first time waits for it (SOPHIA_HOST_START_WAIT_S).
        """
        if self.first_start:
            await self.wait_started(self.settings.start_wait_s)
        client = self.client
        if client is None or self.state is not State.ready:
            raise Unavailable(f"{name} is unavailable: {self.describe()}")
        self.calls += 1
        request = types.CallToolRequest(
            params=types.CallToolRequestParams(
                name=name, arguments=arguments, input_responses=input_responses, request_state=request_state,
                _meta=dict(meta),  # type: ignore[arg-type]
            )
        )
        timeout = self.settings.call_timeout_s
        try:
            with anyio.fail_after(timeout):
                # session.call_tool would re-validate every result against its output schema; the
                # caller's own client does that, so the host forwards the result as it came.
                result = await client.session.send_request(request, _RESULT, progress_callback=progress)
        except TimeoutError:
            raise self.failed_timeout(name) from None
        except MCPError as exc:
            died = self.process is not None and not self.entry.remote and (
                self.process.exited.is_set() or self.process.returncode is not None
            )
            if died or self.client is not client or self.state is not State.ready or \
                    exc.code == types.CONNECTION_CLOSED:
                raise self.failed_stopped(name) from None
            raise self.failed_refused(name, exc.message) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            self.failures += 1
            raise Unavailable(f"{name} failed: server {self.name} is not reachable; retry shortly") from None
        if result.meta:
            result.meta = without_protocol_stamps(result.meta) or None  # type: ignore[assignment]
        return result

    # The ways a forwarded call fails, the same on the SDK path and the fast path (each counts).

    def failed_timeout(self, name: str) -> ToolTimeout:
        self.failures += 1
        timeout = self.settings.call_timeout_s
        return ToolTimeout(f"{name} did not finish within {timeout:g} s (SOPHIA_HOST_CALL_TIMEOUT_S); it was cancelled")

    def failed_stopped(self, name: str) -> Unavailable:
        self.failures += 1
        return Unavailable(
            f"{name} failed: server {self.name} stopped during the call and is being restarted; retry shortly"
        )

    def failed_refused(self, name: str, why: str) -> UpstreamError:
        self.failures += 1
        return UpstreamError(f"server {self.name} refused the call to {name}: {why}")


def _root_cause(exc: BaseException) -> BaseException:
    """The exception inside task-group wrappers, preferring a ChildFailed wherever it sits."""
    if isinstance(exc, BaseExceptionGroup):
        inner = [_root_cause(e) for e in exc.exceptions]
        failed = [e for e in inner if isinstance(e, ChildFailed)]
        return failed[0] if failed else inner[0]
    return exc


def toolset_of(tool: types.Tool, server: str) -> str:
    sophia = (tool.meta or {}).get("sophia")
    toolset = sophia.get("toolset") if isinstance(sophia, dict) else None
    return str(toolset) if toolset else server


async def _first(*events: anyio.Event | None) -> None:
    """Return when any of the events is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            if event is not None:
                tg.start_soon(wait, event)
