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
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.to_thread
import mcp_types as types
from mcp.client import Client
from mcp.client.session import ClientSession, IncomingMessage
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter
from sophia_shared.errors import ToolTimeout, Unavailable, UpstreamError
from sophia_shared.health import CHECK_TIMEOUT_S, HEALTH_URI, Health, parse_health
from sophia_shared.paths import sophia_home
from sophia_shared.redact import redact
from sophia_shared.tool_meta import ToolMeta

from .catalogue import Catalogue
from .child_env import child_environment
from .config import HostSettings, ServerEntry
from .fork_client import ForkServer
from .raw import RawChannel, without_protocol_stamps
from .transport import ChildProcess, spawn_child

log = logging.getLogger("sophia.host")

_RESULT = TypeAdapter[types.CallToolResult | types.InputRequiredResult](
    types.CallToolResult | types.InputRequiredResult
)
_LIST_PAGE_CAP = 50
_EXIT_GRACE_S = 0.5


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


class _Session:
    """One connection to a child: its process (none for a remote server), client and tools."""

    def __init__(self) -> None:
        self.process: ChildProcess | None = None
        self.client: Client | None = None
        self.raw: RawChannel | None = None
        self.tools: list[types.Tool] = []
        self.started = False
        self.error: BaseException | None = None
        self.log_offset = 0
        # The process ended before the host closed the session (a crash, not the host's own stop).
        self.exited_first = False
        self.start_scope: anyio.CancelScope | None = None
        # Set by the supervisor to close the session; `ended` once it is closed or broke.
        self.release = anyio.Event()
        self.ended = anyio.Event()

    @property
    def alive(self) -> bool:
        return self.started and not self.ended.is_set()


class Child:
    """One composed server: its process or URL, its state, its tools, and its live client."""

    def __init__(
        self,
        entry: ServerEntry,
        settings: HostSettings,
        on_change: Callable[[Child], Awaitable[None]],
        log_dir: Path | None = None,
        on_health: Callable[[Child], None] | None = None,
        catalogue: Catalogue | None = None,
        started_all: Callable[[], Awaitable[None]] | None = None,
        fork_server: ForkServer | None = None,
    ):
        self.entry = entry
        # Where its processes are forked from when they can be (fork_client.py); else spawned.
        self.fork_server = fork_server
        # Returns once every child of the host has come up (or failed) once: the background work of
        # a child that is up (its first check, its spare) waits for it, so that on 2 cores it does
        # not compete with the children still starting, and the first complete tools/list comes sooner.
        self.started_all = started_all
        self.name = entry.name
        self.settings = settings
        self.on_change = on_change
        # Health changes nothing a client lists: only the status hears of it.
        self.on_health = on_health
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
        # Crashes in a row, each within healthy_after_s of the start before it: 2 or more is a crash loop.
        self.crashes = 0
        self.last_error: str | None = None
        # The server's own check (sophia://health), None until read or for a server without one.
        self.health: Health | None = None
        self.up_since: float | None = None
        self.next_retry_at: float | None = None
        self.calls = 0
        self.failures = 0
        self._stop = anyio.Event()
        self._relist = anyio.Event()
        self._state_changed = anyio.Event()
        self._spare: _Session | None = None
        self._spare_changed = anyio.Event()
        self._starting: set[_Session] = set()
        self._sessions: anyio.abc.TaskGroup | None = None
        self._said: tuple[str, str] | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    # -- status ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.state is State.ready else None

    @property
    def standby_pid(self) -> int | None:
        spare = self._spare
        return spare.process.pid if spare is not None and spare.alive and spare.process is not None else None

    @property
    def crash_looping(self) -> bool:
        """Crashed twice or more in a row and not up: callers should not wait for it."""
        return self.crashes >= 2 and self.state is not State.ready

    def health_state(self) -> tuple[str, str | None]:
        """What `sophia status` and the warning line say: a state word and its reason."""
        if self.state is State.ready:
            if self.health is not None and self.health.state != "ready":
                return self.health.state.replace("_", "-"), self.health.reason
            return "ready", self.health.reason if self.health is not None else None
        if self.crash_looping:
            return "crash-looping", self.last_error
        return self.state.value, self.last_error

    def describe(self) -> str:
        """Why the server's tools are unavailable right now, in words a model can act on."""
        if self.state is State.restarting and self.next_retry_at is not None:
            wait = max(0.0, self.next_retry_at - time.time())
            why = f": {self.last_error}" if self.last_error else ""
            looping = " after crashing repeatedly" if self.crash_looping else ""
            return f"server {self.name} is restarting{looping} (next attempt in {wait:.1f} s){why}; retry shortly"
        if self.state is State.starting:
            return f"server {self.name} is starting; retry shortly"
        if self.state is State.failed:
            return f"server {self.name} failed and will not be restarted: {self.last_error}; see `sophia status`"
        return f"server {self.name} is {self.state.value}"

    def status(self) -> dict[str, Any]:
        health, reason = self.health_state()
        return {
            "name": self.name, "state": self.state.value, "pid": self.pid,
            "target": self.entry.url or " ".join(self.entry.command), "restarts": self.restarts,
            "tools": len(self.tools), "calls": self.calls, "failures": self.failures,
            "up_since": self.up_since, "last_error": self.last_error,
            "health": health, "reason": reason, "crashes_in_a_row": self.crashes,
            "standby_pid": self.standby_pid, "log": None if self.entry.remote else str(self.log_path),
            "forked": self.process.forked if self.process is not None and self.state is State.ready else None,
        }

    # -- supervision ----------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        for starting in list(self._starting):
            if starting.start_scope is not None:
                starting.start_scope.cancel()

    async def wait_standby(self) -> None:
        """Return once a spare process is ready (for tests and benchmarks that kill the active one)."""
        while self.standby_pid is None:
            await self._spare_changed.wait()

    @property
    def first_start(self) -> bool:
        """Starting for the first time: worth waiting for (a restarting or failed child is not)."""
        return self.state is State.starting and self.restarts == 0

    def child_env(self) -> dict[str, str]:
        """The environment the child process runs with."""
        return child_environment(self.name, self.entry.command, self.entry.env)

    @property
    def starting_up(self) -> bool:
        """Starting, for the first time or again at once after a crash: a call is worth a bounded wait
        (a crash loop, which restarts with backoff, is not)."""
        return self.state is State.starting and not self.crash_looping

    async def wait_started(self, timeout: float, *, again: bool = False) -> None:
        """Wait (at most `timeout` s) while the child starts for the first time (`again`: or restarts)."""
        with anyio.move_on_after(timeout):
            while (self.starting_up if again else self.first_start) and not self._stop.is_set():
                await self._state_changed.wait()

    async def run(self, after: anyio.Event | None = None, limit_s: float = 0.0) -> None:
        """Serve this child until stopped: restart it at once after a crash, with backoff only in a crash loop.

        With `after`, the process starts once it is set (or after `limit_s`): see HostServer.running."""
        if after is not None:
            with anyio.move_on_after(limit_s):
                await _first(after, self._stop)
        async with anyio.create_task_group() as sessions:
            self._sessions = sessions
            try:
                await self._supervise()
            finally:
                self._retire_spare()
        self._set(State.stopped)
        await self.on_change(self)

    async def _supervise(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            session = self._take_spare() or _Session()
            try:
                if not session.started:
                    await self._open(session)
                if self._stop.is_set():
                    session.release.set()
                    break
                await self._serve(session)
            except Exception as exc:  # noqa: BLE001 - a child's failure stays with the child: log it and restart
                root = _root_cause(exc)
                if isinstance(root, ChildFailed):
                    self.last_error = str(root)
                    self._set(State.failed)
                    await self.on_change(self)
                    return
                if self._stop.is_set():
                    break
                self._crashed(began, self._why(session, root))
            else:
                if self._stop.is_set():
                    break
                self._crashed(began, self._why(session, session.error))
            await self._pause()

    async def _open(self, session: _Session) -> None:
        """Start `session` and return once it is up (raising why it did not come up)."""
        assert self._sessions is not None
        self._starting.add(session)
        try:
            await self._sessions.start(self._hold, session)
        finally:
            self._starting.discard(session)

    async def _serve(self, session: _Session) -> None:
        """Make `session` the child's live connection until it ends or the child is stopped."""
        assert session.client is not None
        self.client = session.client
        self.raw = session.raw
        self.process = session.process
        save = self._keep(session.tools)
        self.last_error = None
        self.up_since = time.time()
        self._set(State.ready)
        try:
            await self.on_change(self)
            async with anyio.create_task_group() as tg:
                if save:
                    tg.start_soon(self._save_catalogue, session, session.tools)
                tg.start_soon(self._listen, session.client)
                tg.start_soon(self._relist_loop, session.client)
                tg.start_soon(self._health_loop, session.client)
                if self.settings.standby and not self.entry.remote:
                    tg.start_soon(self._keep_spare, session)
                # The process's exit, not only the session's end: calls must stop using its client
                # before the session closes it.
                await _first(self._stop, session.ended, session.process.exited if session.process else None)
                if session.process is not None and session.process.exited.is_set():
                    session.exited_first = True  # before the release below: it died on its own
                tg.cancel_scope.cancel()
        finally:
            self.client = None
            self.raw = None
            session.release.set()

    def _crashed(self, began: float, why: str) -> None:
        """Count a crash: the first after a healthy run restarts at once; one more in a row is a loop."""
        self.client = None
        quick = time.monotonic() - began < self.settings.healthy_after_s
        self.crashes = self.crashes + 1 if quick else 1
        self.restarts += 1
        self.last_error = why
        # One line per change: a loop retrying every backoff_max_s for hours says so once.
        said = ("loop" if self.crashes >= 2 else "crash", why)
        if said != self._said:
            if self.crashes >= 2:
                log.warning("server %s is crash-looping (%d crashes in a row): %s", self.name, self.crashes, why)
            else:
                log.warning("server %s: %s; restarting", self.name, why)
        self._said = said if self.crashes >= 2 else None

    async def _pause(self) -> None:
        delay = 0.0
        if self.crashes >= 2:
            delay = min(self.settings.backoff_initial_s * 2 ** (self.crashes - 2), self.settings.backoff_max_s)
        self.next_retry_at = time.time() + delay
        self._set(State.restarting)
        await self.on_change(self)
        if delay > 0:
            with anyio.move_on_after(delay):
                await self._stop.wait()
        self.next_retry_at = None
        if not self._stop.is_set():
            self._set(State.starting)

    def _why(self, session: _Session, exc: BaseException | None) -> str:
        """One line on why a session ended: the exit and the child's own last log line, or the error."""
        code = session.process.returncode if session.process is not None and session.exited_first else None
        if code is not None and code < 0:
            return f"the process was killed by signal {-code}"
        if code is not None:
            # A process that exits on its own says why last (a bad setting, a traceback's last line).
            line = last_log_line(self.log_path, session.log_offset)
            why = f"the process exited (code {code})"
            return redact(f"{why}: {line}" if line else why)[:300]
        if exc is None:
            return "the connection ended"
        root = _root_cause(exc)
        return redact(f"{type(root).__name__}: {root}")[:300]

    def _set(self, state: State) -> None:
        self.state = state
        if state is not State.ready:
            self.up_since = None
        self._state_changed.set()
        self._state_changed = anyio.Event()

    async def _hold(self, session: _Session, *, task_status: anyio.abc.TaskStatus[_Session]) -> None:
        """Connect `session`, report it started, and hold it open until released or broken."""
        try:
            await self._connect(session, task_status)
        except Exception as exc:
            if not session.started:
                raise  # to the caller of start(): the child did not come up
            session.error = exc
        finally:
            session.ended.set()

    async def _connect(self, session: _Session, task_status: anyio.abc.TaskStatus[_Session]) -> None:
        exited: anyio.Event | None = None
        # The deadline covers spawn + initialize + the first listing, then is lifted: a child that
        # never answers initialize is cancelled (and killed on the way out).
        start_timeout = self.entry.start_timeout_s or self.settings.start_timeout_s
        with anyio.CancelScope(deadline=anyio.current_time() + start_timeout) as start:
            session.start_scope = start
            async with AsyncExitStack() as stack:
                transport: Any
                if self.entry.remote:
                    transport = self._remote_transport(stack)
                else:
                    env = self.child_env()
                    session.log_offset = _size(self.log_path)
                    child, streams, raw = await stack.enter_async_context(
                        spawn_child(self.entry.command, env, self.log_path, fork_server=self.fork_server,
                                    name=self.name)
                    )
                    session.process = child
                    session.raw = raw
                    exited = child.exited
                    transport = _Attached(streams)
                try:
                    client = Client(transport, mode="auto", cache=None, message_handler=self._on_message)
                    await stack.enter_async_context(client)
                    session.tools = await self._list(client)
                    start.deadline = math.inf
                    session.client = client
                    session.started = True
                    task_status.started(session)
                    await _first(session.release, exited)
                finally:
                    await _note_exit(session, exited)
        if start.cancelled_caught and not session.started:
            raise TimeoutError(f"did not answer initialize within {start_timeout:g} s")

    # -- the spare ------------------------------------------------------------------------

    def _take_spare(self) -> _Session | None:
        spare, self._spare = self._spare, None
        self._spare_moved()
        if spare is not None and spare.alive:
            return spare
        return None

    def _retire_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.release.set()
        self._spare_moved()

    def _spare_moved(self) -> None:
        self._spare_changed.set()
        self._spare_changed = anyio.Event()

    async def _keep_spare(self, active: _Session) -> None:
        """While `active` serves, keep one more process of this child started and idle."""
        began = anyio.current_time()
        await self._until_started_all(active)
        with anyio.move_on_after(self.settings.standby_after_s - (anyio.current_time() - began)):
            await _first(self._stop, active.ended)
        while not self._stop.is_set() and not active.ended.is_set():
            spare = self._spare
            if spare is not None and spare.alive:
                await _first(self._stop, active.ended, spare.ended)
                continue
            spare = _Session()
            try:
                await self._open(spare)
            except Exception as exc:  # noqa: BLE001 - no spare only means a cold restart; the active one serves on
                log.info("server %s: no standby process (%s)", self.name, self._why(spare, exc))
                return
            # Its own check warms it: a fresh process pays its lazy imports and first connection
            # (seconds, for some servers) on its first call, which would otherwise be the first
            # call after a crash.
            if spare.client is not None:
                await self._read_health(spare.client)
            self._spare = spare
            self._spare_moved()

    async def _until_started_all(self, active: _Session | None) -> None:
        """Wait (bounded by start_wait_s) until every child has started once, or this one stops."""
        if self.started_all is None:
            return
        with anyio.move_on_after(self.settings.start_wait_s):
            await _first(self._stop, active.ended if active is not None else None, _Awaited(self.started_all))

    # -- health ---------------------------------------------------------------------------

    async def _health_loop(self, client: Client) -> None:
        """Read the server's own check now and then; a server without one keeps health None."""
        await self._until_started_all(None)
        while True:
            health = await self._read_health(client)
            if health is None:
                return
            before = self.health
            self.health = health
            if before is None or (before.state, before.reason) != (health.state, health.reason):
                if health.state != "ready":
                    log.warning("server %s (%s): %s", self.name, health.state.replace("_", " "), health.reason)
                if self.on_health is not None:
                    self.on_health(self)
            ready = health.state == "ready"
            await anyio.sleep(self.settings.health_interval_s if ready else self.settings.health_retry_s)

    async def _read_health(self, client: Client) -> Health | None:
        try:
            with anyio.fail_after(CHECK_TIMEOUT_S + 5):
                result = await client.session.read_resource(HEALTH_URI)
        except (MCPError, TimeoutError, RuntimeError):
            return None
        for content in result.contents:
            text = getattr(content, "text", None)
            if isinstance(text, str):
                return parse_health(text)
        return None

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

    def _keep(self, tools: list[types.Tool]) -> bool:
        """Take the child's own listing; True when it is news the catalogue should remember."""
        unchanged = self.from_catalogue and [t.model_dump() for t in tools] == [t.model_dump() for t in self.tools]
        self.tools = tools
        self.from_catalogue = False
        return self.catalogue is not None and not unchanged

    async def _save_catalogue(self, session: _Session | None, tools: list[types.Tool]) -> None:
        """Write the listing for the next start, once every child has started: its key (a walk of
        the installed code) and the write are no part of this start, and run in a thread."""
        catalogue = self.catalogue
        if catalogue is None:
            return
        try:
            await self._until_started_all(session)
        finally:
            # Written even when the child or the host stops first: the listing is still true.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(catalogue.save, self.entry, self.child_env(), tools)

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
                save = self._keep(tools)
                await self.on_change(self)
                if save:
                    await self._save_catalogue(None, tools)

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

        A call made while the child starts, for the first time or again after a crash (not in a crash
        loop), waits for it (SOPHIA_HOST_START_WAIT_S): a child that died at its start was restarted at once.
        """
        if self.starting_up:
            await self.wait_started(self.settings.start_wait_s, again=True)
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
                result = await _session_of(client).send_request(request, _RESULT, progress_callback=progress)
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
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError, _Closed):
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


async def _note_exit(session: _Session, exited: anyio.Event | None) -> None:
    """Whether the process ended on its own; its pipe closes a moment before its exit is reaped."""
    if exited is None or session.release.is_set():
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(_EXIT_GRACE_S):
        await exited.wait()
    session.exited_first = exited.is_set()


class _Closed(Exception):
    """The client of a session that closed while a call was on its way to it."""


def _session_of(client: Client) -> ClientSession:
    try:
        return client.session
    except RuntimeError:  # the SDK's word for a client outside its context: the child went away
        raise _Closed from None


def _root_cause(exc: BaseException) -> BaseException:
    """The exception inside task-group wrappers, preferring a ChildFailed wherever it sits."""
    if isinstance(exc, BaseExceptionGroup):
        inner = [_root_cause(e) for e in exc.exceptions]
        failed = [e for e in inner if isinstance(e, ChildFailed)]
        return failed[0] if failed else inner[0]
    return exc


def toolset_of(tool: types.Tool, server: str) -> str:
    return ToolMeta.of(tool.meta).toolset or server


class _Waitable(Protocol):
    async def wait(self) -> Any: ...


class _Awaited:
    """An awaitable function as an event to wait for (in `_first`)."""

    def __init__(self, fn: Callable[[], Awaitable[None]]):
        self.fn = fn

    async def wait(self) -> None:
        await self.fn()


async def _first(*events: _Waitable | None) -> None:
    """Return when any of the events is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: _Waitable) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            if event is not None:
                tg.start_soon(wait, event)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def last_log_line(path: Path, offset: int, window: int = 8192) -> str | None:
    """The child's own last non-empty line written after `offset` (e.g. the bad setting it refused)."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size < offset:
                offset = 0  # the log was rotated since
            fh.seek(max(offset, size - window))
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else None
