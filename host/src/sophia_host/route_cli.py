"""`sophia route "…"`: the offline router's decision for a sentence over the host's tools; nothing runs.

The tools come from each configured server's catalogue file (what the host last listed for it, under
the same key `sophia up` checks); a server with no current catalogue is started as `sophia up` would
start it, listed, and stopped — no tool is ever called.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from .server import HostServer

LIST_TIMEOUT_S = 120.0


def route(
    sentence: Annotated[str, typer.Argument(help="what you want done, in your own words")],
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="use the offline router (the only one here)")] = True,
    servers_option: Annotated[
        str | None, typer.Option("--servers", help="route among these servers' tools only, e.g. memory,docker")
    ] = None,
) -> None:
    """Print which tool (with which arguments) the offline router would pick; nothing is run."""
    import anyio
    from sophia_agent.router import Router, RouterSettings
    from sophia_shared.errors import SophiaError
    from sophia_shared.settings import SettingsError, SuiteSettings, load_settings

    from .config import HostSettings, load_servers, parse_server_names
    from .server import HostServer

    del offline  # no provider is consulted by `route`: it is always the offline router
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="sophia: %(levelname)s %(message)s")
    try:
        settings = load_settings(HostSettings)
        only = parse_server_names(servers_option) if servers_option is not None else None
        server = HostServer(settings, load_servers(settings, only), suite=SuiteSettings())
        router_settings = load_settings(RouterSettings)
    except SettingsError as exc:
        typer.echo(f"sophia: {exc}", err=True)
        raise typer.Exit(2) from None
    except SophiaError as exc:
        typer.echo(f"sophia: {exc.message}", err=True)
        raise typer.Exit(2) from None
    tools, source = anyio.run(catalogue_tools, server)
    decision = Router.from_tools(tools, settings=router_settings).route(sentence)
    if as_json:
        typer.echo(decision.model_dump_json())
        return
    typer.echo(_human(decision.model_dump(), len(tools), source))


async def catalogue_tools(server: HostServer) -> tuple[list[Any], str]:
    """The host's tools: from the catalogue files when every server has one, else by starting them."""
    import anyio

    from .children import State

    if all(child.from_catalogue for child in server.children):
        return await server.routable_tools(), "catalogue"
    async with server.running():
        with anyio.fail_after(LIST_TIMEOUT_S):
            await server.wait_ready()
        failed = [c.entry.name for c in server.children if c.state is State.failed]
        if failed:
            print(f"sophia: routing without {', '.join(failed)} (it did not start)", file=sys.stderr)
        tools = await server.routable_tools()
    return tools, "started"


def _human(decision: dict[str, Any], count: int, source: str) -> str:
    if decision["tool"] is None:
        closest = ", ".join(f"{a['tool']} ({a['confidence']:.2f})" for a in decision["alternatives"])
        return f"no tool fits well enough (of {count}, from the {source} tools); closest: {closest or 'none'}"
    lines = [f"{decision['tool']} (confidence {decision['confidence']:.2f})",
             f"arguments: {json.dumps(decision['arguments'])}"]
    if decision["missing"]:
        lines.append(f"missing: {', '.join(decision['missing'])} (say them; nothing is guessed)")
    return "\n".join(lines)
