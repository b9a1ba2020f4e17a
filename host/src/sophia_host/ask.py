"""`sophia ask "…"` and `sophia chat`: the agent over an in-process host, as the local user.

The agent is an MCP client of a host started in this process (the configured servers, as `sophia up`
would serve them), so every tool call passes the host's request path: role, confirmation, audit.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sophia_agent.events import AgentEvent, FinalEvent
    from sophia_agent.session import McpToolSession

    from .server import HostServer

ServersOption = Annotated[str | None, typer.Option("--servers", help="use only these servers, e.g. memory,snowflake")]


@asynccontextmanager
async def host_session(servers_option: str | None) -> AsyncIterator[tuple[McpToolSession, HostServer]]:
    """The configured host, in process, and an MCP client session to it (the local user's principal)."""
    import anyio
    from mcp.client import Client
    from sophia_agent.session import McpToolSession
    from sophia_shared.settings import SuiteSettings, load_settings

    from .ask_tool import ASK_TOOL
    from .config import HostSettings, load_servers, parse_server_names
    from .server import HostServer

    settings = load_settings(HostSettings)
    only = parse_server_names(servers_option) if servers_option is not None else None
    host = HostServer(settings, load_servers(settings, only), suite=SuiteSettings())
    async with host.running():
        with anyio.move_on_after(settings.start_timeout_s):
            await host.wait_ready()
        async with Client(host) as client:
            yield McpToolSession(client, hide=frozenset({ASK_TOOL})), host


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


async def _ask(sentence: str, *, as_json: bool, offline: bool, servers_option: str | None) -> tuple[FinalEvent, bool]:
    from sophia_agent.build import audit_sink
    from sophia_agent.events import FinalEvent
    from sophia_agent.runner import ask_events

    final: FinalEvent | None = None
    shown = False
    async with host_session(servers_option) as (session, host):
        async for event in ask_events(session, host.local_principal, sentence, sink=audit_sink(host.audit),
                                      audit=host.audit, offline=offline):
            if isinstance(event, FinalEvent):
                final = event
            elif not as_json:
                shown = _show(event) or shown
    assert final is not None
    return final, shown


def ask(
    sentence: Annotated[str, typer.Argument(help="what you want done, in your own words")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object: answer, provider, tokens, cost")]
    = False,
    offline: Annotated[bool, typer.Option("--offline", help="no model: the offline router picks the tool")] = False,
    servers_option: ServersOption = None,
) -> None:
    """One request: the agent plans, calls tools through the host (as you), and answers."""
    import anyio
    from sophia_shared.settings import SettingsError

    try:
        final, shown = anyio.run(lambda: _ask(sentence, as_json=as_json, offline=offline,
                                              servers_option=servers_option))
    except SettingsError as exc:
        typer.echo(f"sophia: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report(final), sort_keys=True))
    else:
        typer.echo("" if shown else final.answer)
        if final.error:
            typer.echo(f"sophia: {final.error['code']}: {final.error['message']}", err=True)
    raise typer.Exit(1 if final.end_reason == "error" else 0)


async def _chat(servers_option: str | None) -> None:
    import anyio.to_thread
    import httpx
    from sophia_agent.build import audit_sink, http_models, make_agent
    from sophia_agent.events import FinalEvent
    from sophia_agent.narrow import RouterNarrower, router_for
    from sophia_agent.providers.config import AgentSettings
    from sophia_shared.settings import load_settings

    settings = load_settings(AgentSettings)
    async with host_session(servers_option) as (session, host), httpx.AsyncClient() as client:
        router = await anyio.to_thread.run_sync(router_for, await session.list_tools())
        agent = await make_agent(settings, session, host.local_principal, entries=http_models(settings, client),
                                 sink=audit_sink(host.audit), audit=host.audit, narrower=RouterNarrower(router))
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


def chat(servers_option: ServersOption = None) -> None:
    """A conversation with the agent (history kept for the session); `exit` or end of input leaves."""
    import anyio

    anyio.run(_chat, servers_option)
