"""HostServer: one SophiaServer whose tools are the union of its children's.

The shared request path (principal, role check, read-only mode, result cap, audit) runs at the
host's edge exactly as on a single server; `execute` — the step after the role check — forwards
the call to the child with the caller's principal in `_meta`, so the child's audit names the
real user too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio
import anyio.lowlevel
import anyio.to_thread
import mcp_types as types
from mcp.server.elicitation import AcceptedElicitation, render_elicitation_schema
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import Context
from mcp.shared.subscriptions import ToolsListChanged
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field
from sophia_shared.audit import AuditEvent, AuditLog, AuditWriter
from sophia_shared.auth import Role
from sophia_shared.confirm import CONFIRMATION_TOKEN_ARG, Confirmation, client_can_elicit
from sophia_shared.errors import ErrorCode, Forbidden, SophiaError, error_code, error_data
from sophia_shared.request import ELICITS_META_KEY, current_correlation_id, current_principal, forward_meta
from sophia_shared.server import SophiaServer, ToolSpec
from sophia_shared.settings import SuiteSettings
from sophia_shared.tool_meta import ToolMeta

from .ask_tool import AgentRuns, register_ask_tool
from .catalogue import Catalogue
from .children import Child, ChildFailed, State
from .config import HostSettings, ServerEntry
from .fastpath import FastPath, StdioEdge
from .fork_client import FORK_SERVER_LOG, ForkServer
from .search import Entry, ToolIndex
from .status import StatusFile, log_dir
from .transport import StdioPipes, connect_stdio_pipes, stdio_streams

log = logging.getLogger("sophia.host")

HOST_NAME = "sophia"
FIND_TOOLS = "sophia_find_tools"
# The key of the host's own confirmation question in an InputRequiredResult.
CONFIRM_KEY = "sophia_host_confirmation"
_INPUT_REQUIRED_VERSION = "2026-07-28"
# How long a stopping host waits for its children to leave (each gets stdin closed, then TERM, then KILL).
CHILDREN_STOP_S = 15.0
# How long an answer waits for progress relays still under way (a caller that stalls them loses none of the answer).
PROGRESS_DRAIN_S = 2.0


class FoundTool(BaseModel):
    name: str
    server: str
    toolset: str
    description: str
    score: float
    listed: bool = Field(description="Whether tools/list shows it; unlisted tools can still be called by name.")
    available: bool = Field(description="False while its server is starting or restarting.")
    configured: bool = Field(default=True, description=(
        "False: its server is not configured yet, and the call answers not_configured naming the settings."))


class FindToolsResult(BaseModel):
    tools: list[FoundTool]
    ranking: Literal["keyword+semantic", "keyword"]
    searched: int


class HostServer(SophiaServer):
    """The agent host: composes children into one endpoint behind Sophia's request path."""

    def __init__(
        self,
        settings: HostSettings,
        servers: list[ServerEntry],
        *,
        suite: SuiteSettings | None = None,
        audit: AuditLog | None = None,
        index: ToolIndex | None = None,
        fork_server: ForkServer | None = None,
    ):
        super().__init__(
            HOST_NAME, settings=settings, suite=suite, audit=audit,
            instructions=(
                "Sophia composes the company's operational systems (warehouse, stacks, containers, "
                f"memory, ...) into one endpoint. When the tool you need is not listed, call {FIND_TOOLS}."
            ),
        )
        self.host_settings = settings
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"a server is configured twice: {sorted(n for n in names if names.count(n) > 1)}")
        self.log_dir = log_dir()
        # Given by `sophia up`, which starts it before importing this module; else started by `running`.
        self.fork_server = fork_server or (
            ForkServer(self.log_dir / FORK_SERVER_LOG) if settings.fork_server and servers else None
        )
        catalogue = Catalogue() if settings.catalogue else None
        self.children = [Child(entry, settings, self._child_changed, self.log_dir, on_health=self._child_health,
                               catalogue=catalogue, started_all=self.wait_ready, fork_server=self.fork_server)
                         for entry in servers]
        self.index = index or ToolIndex()
        self.fatal: str | None = None
        self.fatal_event = anyio.Event()
        self.status_file = StatusFile()
        self._routes: dict[str, Child] = {}
        self._listed: list[types.Tool] = []
        self._unconfigured: set[str] = set()
        # Handshake-era connections that listed tools: they hear tools/list_changed on their own
        # stream (2026-era clients hear it on their subscriptions/listen stream instead).
        self._legacy_connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._started = time.time()
        self._changed = anyio.Event()
        self._served_first = anyio.Event()  # a tools/list answered or a forwarded call arrived
        self._stdio: StdioPipes | None = None
        self.fast = FastPath(self)
        self._audit_writer: AuditWriter | None = None
        self.agent_runs = AgentRuns()
        self._register_own_tools()
        self._own_specs = dict(self.specs)
        self._own_tools: list[types.Tool] = []
        # Handshake-era clients only hear tools/list_changed if the capability says so.
        lowlevel = self._lowlevel_server
        make_options = lowlevel.create_initialization_options

        def with_list_changed(
            notification_options: NotificationOptions | None = None,
            experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        ) -> Any:
            return make_options(notification_options or NotificationOptions(tools_changed=True),
                                experimental_capabilities)

        lowlevel.create_initialization_options = with_list_changed  # type: ignore[method-assign,assignment]

    # -- lifecycle ------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[HostServer]:
        """Start every child in parallel (without waiting for them) and stop them all on exit."""
        self._own_tools = await SophiaServer.list_tools(self)
        self._rebuild()
        # With every child's listing in the catalogue, the first tools/list needs no child: the
        # children start once it is answered (or a forwarded call comes, or catalogue_head_start_s
        # passes), so that on 2 cores six starting processes do not slow the host's own answer.
        after = self._served_first if self.children and all(c.from_catalogue for c in self.children) else None
        # The fork server is entered first and left last: it reports the exits of the children it forked.
        forking = self.fork_server.serving() if self.fork_server is not None else contextlib.nullcontext()
        async with forking, anyio.create_task_group() as tg:
            for child in self.children:
                tg.start_soon(child.run, after, self.host_settings.catalogue_head_start_s)
            tg.start_soon(self._status_loop)
            try:
                yield self
            finally:
                await self.shut_down()
                tg.cancel_scope.cancel()
        self.status_file.remove()

    async def shut_down(self) -> None:
        """Stop every child (bounded) and drain the audit log; `running` does it on its way out,
        and a host that must leave without unwinding (stdin held open in a thread) does it first."""
        for child in self.children:
            child.stop()
        with anyio.CancelScope(shield=True), anyio.move_on_after(CHILDREN_STOP_S):
            await self._wait_stopped()
        if self._audit_writer is not None:
            self._audit_writer.close()

    async def run_stdio_async(self) -> None:
        """Serve stdio on non-blocking pipes (see transport.stdio_streams); the SDK's way otherwise."""
        try:
            pipes = await connect_stdio_pipes()
        except (OSError, ValueError):
            await super().run_stdio_async()
            return
        self._stdio = pipes
        writer = pipes.writer
        try:
            edge = StdioEdge(self.fast, lambda line: writer.write(line + b"\n"))
            async with stdio_streams(pipes, take=edge.take) as (read, write):
                await self._lowlevel_server.run(read, write, self._lowlevel_server.create_initialization_options())
        finally:
            edge.close()
            self._stdio = None

    def end_stdio(self) -> bool:
        """End the stdio session as if the client had closed stdin; False when it cannot (the
        SDK's fallback transport, whose reading thread only stops when stdin closes).

        The SDK's serving loop drains its input before it returns, so cancelling it alone would
        wait for the client to hang up; an end of input lets it finish now.
        """
        if self._stdio is None:
            return False
        self._stdio.reader.feed_eof()
        return True

    @property
    def routes(self) -> dict[str, Child]:
        """Forwarded tool name → the child that serves it."""
        return self._routes

    @property
    def audit_writer(self) -> AuditWriter:
        if self._audit_writer is None:
            self._audit_writer = AuditWriter(self.audit)
        return self._audit_writer

    async def write_audit(self, event: AuditEvent) -> None:
        """Write-behind at the edge (AuditWriter): a forwarded call's executing Sophia child records
        it synchronously itself, so the host's copy never holds up the answer."""
        self.audit_writer.submit(event)

    def check_audit(self) -> None:
        """Refuse to forward while the write-behind writer cannot write (a commit failed and waits to be
        retried, records were dropped, or the log itself is not writable now): AuditUnavailable."""
        self.audit_writer.ready()

    async def _wait_stopped(self) -> None:
        await self.until(lambda: all(c.state in (State.stopped, State.failed) for c in self.children))

    async def wait_ready(self) -> None:
        """Return once every child has come up or failed once (for callers that want to wait)."""
        await self.until(lambda: not any(c.state is State.starting and c.restarts == 0 for c in self.children))

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds, re-checking whenever a child changes state or tools."""
        while not predicate():
            await self._changed.wait()

    async def _status_loop(self) -> None:
        while True:
            # In a thread: a file's write and rename can take tens of ms on a busy disk, and on the
            # loop that stalls every call in flight.
            await anyio.to_thread.run_sync(self.status_file.write, self._status())
            await anyio.sleep(2.0)

    def children_status(self) -> list[dict[str, Any]]:
        return [c.status() for c in self.children]

    def write_status(self) -> None:
        self.status_file.write(self._status())

    def _status(self) -> dict[str, Any]:
        return {
            "pid": _own_pid(), "started": self._started, "updated": time.time(),
            "tools": len(self._routes) + len(self._own_specs), "listed": len(self._listed) + len(self._own_tools),
            "fatal": self.fatal, "servers": self.children_status(), "fast_path_calls": self.fast.calls,
            "logs": str(self.log_dir),
            "fork_server_pid": self.fork_server.pid if self.fork_server is not None else None,
        }

    # -- the registry of forwarded tools ----------------------------------------------------

    async def _child_changed(self, child: Child) -> None:
        try:
            if child.state is State.ready:
                self._check_collisions(child)
        finally:
            self._changed.set()
            self._changed = anyio.Event()
        before = _listing(self._listed)
        self._rebuild()
        self.write_status()
        # Only a real change is news: a child coming up with the tools its catalogue already listed
        # (or a restarted one with the same tools) changes nothing a client has seen.
        if _listing(self._listed) != before:
            await self._announce_tools_changed()

    def _child_health(self, child: Child) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        self.write_status()

    def _check_collisions(self, child: Child) -> None:
        for tool in child.tools:
            if tool.name in self._own_specs:
                self._refuse(child, f"server {child.name} offers {tool.name}, a name the host reserves for itself")
            owner = self._routes.get(tool.name)
            if owner is not None and owner is not child:
                self._refuse(child, f"tool {tool.name} is offered by both server {owner.name} and server {child.name}")

    def _refuse(self, child: Child, message: str) -> None:
        self.fatal = f"{message}; tool names must be unique: disable one server or restrict its tools in sophia.toml"
        self.fatal_event.set()
        child.tools = []
        raise ChildFailed(self.fatal)

    def _rebuild(self) -> None:
        routes: dict[str, Child] = {}
        specs = dict(self._own_specs)
        entries = [Entry(name=n, server=HOST_NAME, toolset=HOST_NAME, description=_own_description(self, n))
                   for n in self._own_specs]
        listed: list[types.Tool] = []
        unconfigured: set[str] = set()
        exposed = set(self.host_settings.toolsets)
        for child in self.children:
            if child.state is State.failed:
                continue
            # A restarting child keeps its last-known tools: they answer `unavailable` until it is back.
            for tool in child.tools:
                if tool.name in routes or tool.name in specs:
                    continue
                routes[tool.name] = child
                spec = _spec_for(tool, child)
                specs[tool.name] = spec
                entries.append(Entry(name=tool.name, server=child.name, toolset=spec.toolset,
                                     description=tool.description or "", title=tool.title,
                                     input_schema=tool.input_schema, destructive=spec.destructive))
                if not _configured(tool):
                    # Routed (its call answers not_configured with the settings to set) but not listed.
                    unconfigured.add(tool.name)
                    if not self.list_all_tools:
                        continue
                if not exposed or spec.toolset in exposed:
                    listed.append(tool)
        self._unconfigured = unconfigured
        self._routes = routes
        self.specs = specs
        self._listed = listed
        self.index.rebuild(entries)

    async def _announce_tools_changed(self) -> None:
        await self._subscriptions.publish(ToolsListChanged())
        for connection in list(self._legacy_connections):
            # Best effort by design: Connection.notify drops what a closed stream cannot carry.
            await connection.notify("notifications/tools/list_changed", None)

    async def list_tools(self) -> list[Any]:
        if not self.read_only:
            return [*self._own_tools, *self._listed]
        return [*self._own_tools, *(t for t in self._listed if self.visible(self.specs[t.name]))]

    async def routable_tools(self) -> list[types.Tool]:
        """Every tool a call could be routed to (listed or not, as the caller's mode shows them), from
        the children's current listings or, before they start, their catalogue files."""
        if not self._own_tools:
            self._own_tools = await SophiaServer.list_tools(self)
            self._rebuild()
        seen: dict[str, types.Tool] = {}
        for tool in [*self._own_tools, *(t for c in self.children if c.state is not State.failed for t in c.tools)]:
            spec = self.specs.get(tool.name)
            if spec is not None and self.visible(spec):
                seen.setdefault(tool.name, tool)
        return list(seen.values())

    async def _handle_list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        version = getattr(ctx, "protocol_version", None)
        if version is not None and not is_version_at_least(version, _INPUT_REQUIRED_VERSION):
            # The request's ServerSession dies with the request; its connection lives on. The SDK
            # exposes it to handlers only through this private attribute.
            connection = getattr(ctx.session, "_connection", None)
            if connection is not None:
                self._legacy_connections.add(connection)
        await self._wait_for_first_listings()
        try:
            return await super()._handle_list_tools(ctx, params)
        finally:
            self._served_first.set()

    async def _wait_for_first_listings(self) -> None:
        """Hold a tools/list (bounded) while a child starting for the first time has no tools to show:
        neither its own listing yet nor a catalogue. A failed or restarting child is not waited for."""

        def unknown() -> bool:
            return any(c.first_start and not c.tools for c in self.children)

        if unknown():
            with anyio.move_on_after(self.host_settings.start_wait_s):
                await self.until(lambda: not unknown())

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        child = self._routes.get(name)
        if child is None:
            return super()._tool_input_schema(name)
        for tool in child.tools:
            if tool.name == name:
                return dict(tool.input_schema)
        return None

    # -- forwarding -----------------------------------------------------------------------

    async def execute(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None
    ) -> types.CallToolResult | types.InputRequiredResult:
        child = self._routes.get(name)
        if child is None:
            return await super().execute(name, arguments, context)
        self._served_first.set()
        spec = self.specs.get(name)
        # A confirmed call of a caller that can answer a prompt: the child hands us its token to ask with.
        elicits = spec is not None and spec.confirm and context is not None and client_can_elicit(context)
        meta = forward_meta(current_principal(), current_correlation_id(), elicits=elicits)
        answer = _confirmation_answer(context)
        if answer is not None:
            token, accepted = answer
            if not accepted:
                raise Forbidden(f"the user declined {name}; nothing was done")
            arguments = {**arguments, CONFIRMATION_TOKEN_ARG: token}
        result = await _call_relaying_progress(child, name, arguments, meta, context)
        if (
            isinstance(result, types.CallToolResult) and context is not None
            and CONFIRMATION_TOKEN_ARG not in arguments and error_code(result) == ErrorCode.CONFIRMATION_REQUIRED
            and client_can_elicit(context)
        ):
            # The child always uses the token path; where the caller can show a prompt, the
            # host turns the token into a question at its edge and redeems it on a yes.
            return await self._ask(name, arguments, result, context, child, meta)
        return result

    async def _ask(
        self, name: str, arguments: dict[str, Any], refusal: types.CallToolResult, context: Context[Any, Any],
        child: Child, meta: dict[str, Any],
    ) -> types.CallToolResult | types.InputRequiredResult:
        data = error_data(refusal)
        token = data.get("confirmation_token")
        preview = data.get("preview")
        summary = preview.get("summary") if isinstance(preview, dict) else None
        if not isinstance(token, str) or not isinstance(summary, str):
            return refusal
        message = f"Confirm {name}: {summary}"
        version = context.protocol_version
        if version is not None and is_version_at_least(version, _INPUT_REQUIRED_VERSION):
            request = types.ElicitRequest(params=types.ElicitRequestFormParams(
                message=message, requested_schema=render_elicitation_schema(Confirmation)))
            return types.InputRequiredResult(
                input_requests={CONFIRM_KEY: request}, request_state=json.dumps({"tool": name, "token": token})
            )
        try:
            outcome = await context.elicit(message, Confirmation)
        except (ValueError, RuntimeError, SophiaError) as exc:
            # The token must not reach the caller: ask the child again as for any caller that cannot
            # be prompted (a pending approval, or the token itself in SOPHIA_CONFIRM_MODE=token).
            log.info("could not ask the caller to confirm %s (%s); asking the child without a prompt", name, exc)
            plain = {k: v for k, v in meta.items() if k != ELICITS_META_KEY}
            return await _call_relaying_progress(child, name, arguments, plain, context)
        if not (isinstance(outcome, AcceptedElicitation) and outcome.data.confirm):
            raise Forbidden(f"the user declined {name}; nothing was done")
        return await _call_relaying_progress(child, name, {**arguments, CONFIRMATION_TOKEN_ARG: token}, meta, context)

    # -- tools of the host itself -----------------------------------------------------------

    def _register_own_tools(self) -> None:
        register_ask_tool(self)

        @self.tool(role=Role.VIEWER, read_only=True, destructive=False, idempotent=True, open_world=False)
        async def sophia_find_tools(
            query: Annotated[str, Field(description="What you want to do, in a few words.", min_length=1,
                                        max_length=500)],
            k: Annotated[int, Field(description="How many tools to return.", ge=1, le=50)] = 8,
        ) -> FindToolsResult:
            """Find the tools that fit a task across this host's servers, ranked by keyword and meaning;
            one not in tools/list can still be called by the name returned."""
            semantic = self.host_settings.semantic_search
            hits, used = await anyio.to_thread.run_sync(lambda: self.index.search(query, k, semantic=semantic))
            listed = {t.name for t in self._listed} | {t.name for t in self._own_tools}
            role = current_principal().role
            found = []
            for hit in hits:
                spec = self.specs.get(hit.entry.name)
                if spec is None or not self.visible(spec) or role < spec.role:
                    continue
                child = self._routes.get(hit.entry.name)
                found.append(FoundTool(
                    name=hit.entry.name, server=hit.entry.server, toolset=hit.entry.toolset,
                    description=hit.entry.description[:400], score=hit.score, listed=hit.entry.name in listed,
                    available=child is None or child.state is State.ready,
                    configured=hit.entry.name not in self._unconfigured,
                ))
            return FindToolsResult(tools=found, ranking="keyword+semantic" if used else "keyword",
                                   searched=len(self.index.entries))


def _spec_for(tool: types.Tool, child: Child) -> ToolSpec:
    sophia = ToolMeta.of(tool.meta)
    annotations = tool.annotations
    read_only = bool(annotations.read_only_hint) if annotations is not None else False
    destructive = bool(annotations.destructive_hint) if annotations is not None else not read_only
    role = sophia.role_or(child.entry.default_role)
    return ToolSpec(
        name=tool.name, role=role, read_only=read_only, destructive=destructive,
        idempotent=bool(annotations.idempotent_hint) if annotations is not None else False,
        open_world=bool(annotations.open_world_hint) if annotations is not None else True,
        # Only a Sophia child confirms (through its token, which the host may turn into a question);
        # the host does not add confirmation to another server's tools.
        confirm=sophia.confirm, toolset=sophia.toolset or child.name,
    )


def _listing(tools: list[types.Tool]) -> list[dict[str, Any]]:
    return [t.model_dump(by_alias=True, exclude_none=True) for t in tools]


def _configured(tool: types.Tool) -> bool:
    return ToolMeta.of(tool.meta).configured


def _own_description(server: HostServer, name: str) -> str:
    tool = server._tool_manager.get_tool(name)
    return (tool.description or "") if tool is not None else ""


class _ProgressRelay:
    """Forwards the child's progress to the caller. The SDK client runs each progress callback as a
    task of its own, so a child's last step could reach the caller after the answer (or, with the
    request closed, not at all: ~1 call in 6 over HTTP); `drained` lets the answer wait for them."""

    def __init__(self, context: Context[Any, Any]):
        self._context = context
        self._running = 0
        self._idle: anyio.Event | None = None

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self._running += 1
        try:
            await self._context.report_progress(progress, total, message)
        finally:
            self._running -= 1
            if self._running == 0 and self._idle is not None:
                self._idle.set()

    async def drained(self) -> None:
        """Return once every relay started so far is done (bounded: a stuck caller cannot hold the answer)."""
        await anyio.lowlevel.checkpoint()  # relays spawned with the answer's arrival start first
        with anyio.move_on_after(PROGRESS_DRAIN_S):
            while self._running:
                self._idle = anyio.Event()
                await self._idle.wait()


async def _call_relaying_progress(
    child: Child, name: str, arguments: dict[str, Any], meta: dict[str, Any], context: Context[Any, Any] | None,
) -> types.CallToolResult | types.InputRequiredResult:
    """`child.call` with the child's progress relayed to the caller, every step before the answer."""
    relay = _ProgressRelay(context) if context is not None else None
    result = await child.call(name, arguments, meta=meta, progress=relay)
    if relay is not None:
        await relay.drained()
    return result


def _confirmation_answer(context: Context[Any, Any] | None) -> tuple[str, bool] | None:
    """On the retry of a host-asked confirmation: the child's token and whether the user said yes."""
    if context is None:
        return None
    try:
        responses = context.input_responses
        state = context.request_state
    except (ValueError, AttributeError, LookupError):
        return None
    if not responses or not state or CONFIRM_KEY not in responses:
        return None
    try:
        token = json.loads(state).get("token")
    except (ValueError, AttributeError):
        return None
    if not isinstance(token, str):
        return None
    answer = responses[CONFIRM_KEY]
    accepted = (
        isinstance(answer, types.ElicitResult) and answer.action == "accept"
        and isinstance(answer.content, dict) and answer.content.get("confirm") is True
    )
    return token, accepted


def _own_pid() -> int:
    import os

    return os.getpid()
