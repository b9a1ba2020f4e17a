"""`sophia up`, `sophia status`, `sophia config`: the host's commands."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Annotated, Any

import anyio
import typer
from sophia_shared.cli import Transport
from sophia_shared.errors import SophiaError
from sophia_shared.settings import SettingsError, SuiteSettings, load_settings

from .client_config import ClientKind, render
from .config import HostSettings, load_servers, parse_server_names
from .server import HostServer
from .status import StatusFile
from .status import render as render_status

DEFAULT_PORT = 8760
EXIT_GRACE_S = 20.0
KEEP_ALIVE_S = 75


def up(
    transport: Annotated[
        Transport, typer.Option(help="http (streamable HTTP, the default), stdio (for desktop clients) or sse")
    ] = Transport.http,
    host: Annotated[str, typer.Option(help="HTTP bind address (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = DEFAULT_PORT,
    read_only: Annotated[bool, typer.Option("--read-only", help="hide every tool that is not read-only")] = False,
    allow_unauthenticated: Annotated[
        bool, typer.Option("--allow-unauthenticated", help="HTTP without bearer tokens (loopback only)")
    ] = False,
    allowed_host: Annotated[
        list[str] | None, typer.Option(help="extra Host header values to accept (behind a proxy)")
    ] = None,
    servers_option: Annotated[
        str | None, typer.Option("--servers", help="serve only these servers, e.g. memory,snowflake")
    ] = None,
) -> None:
    """Start every configured server and serve all their tools on one endpoint."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="sophia: %(levelname)s %(message)s")
    try:
        overrides: dict[str, Any] = {"read_only": True} if read_only else {}
        settings = load_settings(HostSettings, **overrides)
        only = parse_server_names(servers_option) if servers_option is not None else None
        servers = load_servers(settings, only)
        server = HostServer(settings, servers, suite=SuiteSettings())
        app = None
        if transport is not Transport.stdio:
            from sophia_shared.http import http_app

            app = http_app(server, transport=transport.value, host=host, port=port,
                           allow_unauthenticated=allow_unauthenticated, extra_hosts=allowed_host or [],
                           suite=SuiteSettings())
            if transport is Transport.http:
                from .http_edge import install_http_edge

                install_http_edge(app, server.fast, app.state.sophia_security, app.state.sophia_max_body_bytes)
    except SettingsError as exc:
        typer.echo(f"sophia: {exc}", err=True)
        raise typer.Exit(2) from None
    except SophiaError as exc:
        typer.echo(f"sophia: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if not servers:
        typer.echo("sophia: no servers configured or installed; nothing to serve", err=True)
        raise typer.Exit(2)
    # uvloop: the host's edge is all event-loop work (pipes, sockets, tasks); it cuts the hop.
    anyio.run(_serve, server, app, host, port, backend_options={"use_uvloop": True})
    if server.fatal:
        raise typer.Exit(2)


async def _serve(server: HostServer, app: Any, host: str, port: int) -> None:
    async with server.running(), anyio.create_task_group() as tg:
        web: Any = None

        def stop(code: int) -> None:
            if web is not None:
                web.should_exit = True
            server.end_stdio()
            # The SDK's fallback stdio transport blocks in a thread until stdin closes: leave anyway
            # once the children had their time to stop (they also leave when their stdin closes).
            deadline = threading.Timer(EXIT_GRACE_S, os._exit, args=(code,))
            deadline.daemon = True
            deadline.start()
            tg.cancel_scope.cancel()

        async def stop_on(event: anyio.Event) -> None:
            await event.wait()
            # Said at once: on the SDK's fallback transport the process may have to leave by os._exit.
            print(f"sophia: refused to run: {server.fatal}", file=sys.stderr, flush=True)
            stop(2)

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    stop(1)
                    return

        tg.start_soon(stop_on, server.fatal_event)
        tg.start_soon(stop_on_signal)
        if app is None:
            await server.run_stdio_async()
        else:
            import uvicorn

            class _Web(uvicorn.Server):
                def capture_signals(self) -> Any:  # the host owns signals: children must be stopped first
                    import contextlib

                    return contextlib.nullcontext()

                async def startup(self, sockets: Any = None) -> None:
                    await super().startup(sockets)
                    # One line on stderr once the port is bound: scripts and tests wait on it.
                    print(f"sophia: serving on http://{host}:{port}/mcp", file=sys.stderr, flush=True)

            # Clients of a host hold their connection between calls; uvicorn's 5 s idle cut-off makes
            # them reconnect constantly and race the close (a POST on a just-closed connection).
            web = _Web(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                      timeout_keep_alive=KEEP_ALIVE_S, http="httptools"))
            await web.serve()
        tg.cancel_scope.cancel()


def status(
    as_json: Annotated[bool, typer.Option("--json", help="the raw status as JSON")] = False,
) -> None:
    """Show the running host's servers: state, pid, restarts, tools, health."""
    current = StatusFile().read()
    if current is None:
        typer.echo("sophia: no host is running (start one with `sophia up`)", err=True)
        raise typer.Exit(1)
    if as_json:
        import json

        typer.echo(json.dumps(current, indent=1))
        return
    typer.echo(render_status(current))


def config(
    client: Annotated[ClientKind, typer.Option(help="claude, cursor or vscode")] = ClientKind.claude,
    url: Annotated[str | None, typer.Option(help="point the client at a running HTTP host instead of stdio")] = None,
    portable: Annotated[
        bool, typer.Option("--portable", help="name the `sophia` command rather than this install's path")
    ] = False,
) -> None:
    """Print a ready client config for this install."""
    typer.echo(render(client, url=url, portable=portable), nl=False)
