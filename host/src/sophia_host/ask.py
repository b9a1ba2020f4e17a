"""`sophia ask "…"` and `sophia chat`: the agent over an in-process host as the local user, or over
any MCP endpoint (`--url`) as the user of its token.

The agent is an MCP client either way: of a host started in this process (the configured servers, as
`sophia up` would serve them), or of the endpoint, so every tool call passes that host's request path:
role, confirmation, audit. Model calls are recorded in the local audit log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from sophia_agent.events import AgentEvent, FinalEvent
    from sophia_agent.session import McpToolSession
    from sophia_shared.audit import AuditLog
    from sophia_shared.auth import Principal

T = TypeVar("T")
ServersOption = Annotated[str | None, typer.Option("--servers", help="use only these servers, e.g. memory,snowflake")]
UrlOption = Annotated[str | None, typer.Option(
    "--url", help="drive the MCP endpoint at this URL (e.g. a running `sophia up`) instead of an in-process host")]
TokenFileOption = Annotated[Path | None, typer.Option(
    help="with --url: read the bearer token from this file (else from $SOPHIA_TOKEN)")]


@dataclass(frozen=True)
class Where:
    """The `--servers`, `--url` and token options of `sophia ask` and `sophia chat`."""

    servers: str | None = None
    url: str | None = None
    token: str | None = None


@dataclass
class Target:
    """What the agent drives: its tool session, whom it acts for, and where its model calls are recorded."""

    session: McpToolSession
    principal: Principal
    audit: AuditLog


@asynccontextmanager
async def agent_target(where: Where) -> AsyncIterator[Target]:
    """The configured host in process (as the local user), or the MCP endpoint at `url` (as the token's user)."""
    import anyio
    from mcp.client import Client
    from sophia_agent.session import McpToolSession
    from sophia_shared.audit import AuditLog
    from sophia_shared.auth import local_principal
    from sophia_shared.settings import SuiteSettings, load_settings

    from .ask_tool import ASK_TOOL
    from .config import HostSettings, load_servers, parse_server_names
    from .connect import check_url, upstream_client
    from .server import HostServer

    hide = frozenset({ASK_TOOL})
    if where.url is not None:
        check_url(where.url)
        # The endpoint authenticates, authorises and audits each tool call; model calls are recorded here.
        async with upstream_client(where.url, where.token) as client:
            yield Target(McpToolSession(client, hide=hide), local_principal(), AuditLog())
        return
    settings = load_settings(HostSettings)
    only = parse_server_names(where.servers) if where.servers is not None else None
    host = HostServer(settings, load_servers(settings, only), suite=SuiteSettings())
    async with host.running():
        with anyio.move_on_after(settings.start_timeout_s):
            await host.wait_ready()
        async with Client(host) as client:
            yield Target(McpToolSession(client, hide=hide), host.local_principal, host.audit)


def _show(event: AgentEvent) -> bool:
    """Progress as it happens: the answer's text on stdout, everything else on stderr. True: text was shown."""
    from sophia_agent.events import ApprovalEvent, RestartEvent, TokenEvent, ToolCallEvent, ToolResultEvent

    if isinstance(event, TokenEvent):
        sys.stdout.write(event.text)
        sys.stdout.flush()
        return True
    if isinstance(event, RestartEvent):
        sys.stdout.write(f"\n[sophia: {event.from_provider} failed ({event.reason}); the text above is void, "
                         f"restarting on {event.to_provider}]\n")
    elif isinstance(event, ToolCallEvent):
        typer.echo(f"sophia: calling {event.name} {json.dumps(event.arguments)[:200]}", err=True)
    elif isinstance(event, ToolResultEvent):
        typer.echo(f"sophia: {event.name} {'ok' if event.ok else event.error_code}", err=True)
    elif isinstance(event, ApprovalEvent):
        typer.echo(f"sophia: {event.tool} needs your approval: {event.message}", err=True)
    return False


def report(final: FinalEvent) -> dict[str, Any]:
    """What `sophia ask --json` prints: the answer, which provider answered, tokens and cost."""
    return {"answer": final.answer, "end_reason": final.end_reason, "provider": final.provider,
            "providers": final.providers, "turns": final.turns, "tokens_in": final.usage.get("tokens_in", 0),
            "tokens_out": final.usage.get("tokens_out", 0), "cost_usd": final.usage.get("cost_usd", "0"),
            "usage": final.usage, "error": final.error}


def where(servers_option: str | None, url: str | None, token_file: Path | None) -> Where:
    """The target options, checked; typer.Exit(2) with one line on a bad combination or token file."""
    from .connect import BridgeFailed, read_token

    if url is None:
        if token_file is not None:
            typer.echo("sophia: --token-file goes with --url", err=True)
            raise typer.Exit(2)
        return Where(servers=servers_option)
    if servers_option is not None:
        typer.echo("sophia: --servers narrows an in-process host; with --url the endpoint decides its tools", err=True)
        raise typer.Exit(2)
    try:
        return Where(url=url, token=read_token(token_file, "SOPHIA_TOKEN"))
    except BridgeFailed as exc:
        typer.echo(f"sophia: {exc}", err=True)
        raise typer.Exit(2) from None


async def _ask(sentence: str, *, as_json: bool, offline: bool, target: Where) -> tuple[FinalEvent, bool]:
    from sophia_agent.build import audit_sink
    from sophia_agent.events import FinalEvent
    from sophia_agent.runner import ask_events

    final: FinalEvent | None = None
    shown = False
    async with agent_target(target) as t:
        async for event in ask_events(t.session, t.principal, sentence, sink=audit_sink(t.audit),
                                      audit=t.audit, offline=offline):
            if isinstance(event, FinalEvent):
                final = event
            elif not as_json:
                shown = _show(event) or shown
    assert final is not None
    return final, shown


def _run_or_exit(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main`; a bad setting or an endpoint that refuses is one line and exit 2."""
    import anyio
    from sophia_shared.settings import SettingsError

    from .connect import BridgeFailed

    try:
        return anyio.run(main)
    except (SettingsError, BridgeFailed) as exc:
        typer.echo(f"sophia: {exc}", err=True)
        raise typer.Exit(2) from None


def ask(
    sentence: Annotated[str, typer.Argument(help="what you want done, in your own words")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object: answer, provider, tokens, cost")]
    = False,
    offline: Annotated[bool, typer.Option("--offline", help="no model: the offline router picks the tool")] = False,
    servers_option: ServersOption = None,
    url: UrlOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """One request: the agent plans, calls tools through the host (as you), and answers."""
    target = where(servers_option, url, token_file)
    final, shown = _run_or_exit(lambda: _ask(sentence, as_json=as_json, offline=offline, target=target))
    if as_json:
        typer.echo(json.dumps(report(final), sort_keys=True))
    else:
        typer.echo("" if shown else final.answer)
        if final.error:
            typer.echo(f"sophia: {final.error['code']}: {final.error['message']}", err=True)
    raise typer.Exit(1 if final.end_reason == "error" else 0)


async def _chat(target: Where) -> None:
    import anyio.to_thread
    import httpx
    from sophia_agent.build import audit_sink, http_models, make_agent
    from sophia_agent.events import FinalEvent
    from sophia_agent.narrow import RouterNarrower, router_for
    from sophia_agent.providers.config import AgentSettings
    from sophia_shared.settings import load_settings

    settings = load_settings(AgentSettings)
    async with agent_target(target) as t, httpx.AsyncClient() as client:
        router = await anyio.to_thread.run_sync(router_for, await t.session.list_tools())
        agent = await make_agent(settings, t.session, t.principal, entries=http_models(settings, client),
                                 sink=audit_sink(t.audit), audit=t.audit, narrower=RouterNarrower(router))
        while True:
            line = await anyio.to_thread.run_sync(_prompt)
            if line is None or line.strip() in ("exit", "quit"):
                return
            if not line.strip():
                continue
            async for event in agent.run(line):
                if isinstance(event, FinalEvent):
                    typer.echo("")
                    if event.error:
                        typer.echo(f"sophia: {event.error['code']}: {event.error['message']}", err=True)
                else:
                    _show(event)


def _prompt() -> str | None:
    try:
        return input("you> ")
    except EOFError:
        return None


def chat(servers_option: ServersOption = None, url: UrlOption = None, token_file: TokenFileOption = None) -> None:
    """A conversation with the agent (history kept for the session); `exit` or end of input leaves."""
    target = where(servers_option, url, token_file)
    _run_or_exit(lambda: _chat(target))
