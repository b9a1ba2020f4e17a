"""`sophia up`, `sophia status`, `sophia logs`, `sophia config`: the host's commands."""

from __future__ import annotations

import collections
import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sophia_shared.cli import Transport
from sophia_shared.serve_options import (
    AllowedHostOption,
    AllowUnauthenticatedOption,
    HostOption,
    PortOption,
    ReadOnlyOption,
)

from .client_config import ClientKind
from .status import StatusFile, log_dir

if TYPE_CHECKING:
    from .fork_client import ForkServer
    from .server import HostServer

# The heavy modules (the MCP SDK, pydantic settings, the host server) are imported inside the
# commands: `sophia --help` and `sophia --version` must not load them.

DEFAULT_PORT = 8760
EXIT_GRACE_S = 20.0
KEEP_ALIVE_S = 75
# Open streams (a client's subscriptions/listen) are cut after this on shutdown.
GRACEFUL_S = 5
FOLLOW_POLL_S = 0.5


def up(
    transport: Annotated[
        Transport, typer.Option(
            help="http (streamable HTTP, the default), stdio (for desktop clients) or sse",
            # For clients that take --transport for their own option (the MCP Inspector CLI does).
            envvar="SOPHIA_UP_TRANSPORT",
        )
    ] = Transport.http,
    host: HostOption = "127.0.0.1",
    port: PortOption = DEFAULT_PORT,
    read_only: ReadOnlyOption = False,
    allow_unauthenticated: AllowUnauthenticatedOption = False,
    allowed_host: AllowedHostOption = None,
    servers_option: Annotated[
        str | None, typer.Option("--servers", help="serve only these servers, e.g. memory,snowflake")
    ] = None,
) -> None:
    """Start every configured server and serve all their tools on one endpoint."""
    # Bound before anything starts: a port in use is one line now, not a traceback after the start.
    listening = None
    if transport is not Transport.stdio:
        try:
            listening = listen_socket(host, port)
        except PortUnavailable as exc:
            typer.echo(f"sophia: {exc}", err=True)
            raise typer.Exit(2) from None
    # Then the fork server: its imports (the MCP SDK, pydantic) run beside the host's own, on the
    # other core, and it is ready to fork the children by the time the host starts them.
    from .fork_client import FORK_SERVER_LOG, ForkServer

    fork_server = ForkServer(log_dir() / FORK_SERVER_LOG)
    # The setting is read with the others below; turned off by the environment it is not even started.
    if os.environ.get("SOPHIA_HOST_FORK_SERVER", "").strip().lower() not in ("0", "false", "no", "off", "f", "n"):
        fork_server.start()
    try:
        server, app = _prepare(fork_server, transport, host, port, read_only, allow_unauthenticated,
                               allowed_host, servers_option)
    except BaseException:
        fork_server.close_now()
        if listening is not None:
            listening.close()
        raise
    import anyio

    # uvloop: the host's edge is all event-loop work (pipes, sockets, tasks); it cuts the hop.
    anyio.run(_serve, server, app, host, port, listening, backend_options={"use_uvloop": True})
    if server.fatal:
        raise typer.Exit(2)


def _prepare(
    fork_server: ForkServer, transport: Transport, host: str, port: int, read_only: bool, allow_unauthenticated: bool,
    allowed_host: list[str] | None, servers_option: str | None,
) -> tuple[HostServer, Any]:
    """The host server and its HTTP app (None over stdio); typer.Exit(2) if it cannot run."""
    from sophia_shared.errors import SophiaError
    from sophia_shared.settings import SettingsError, SuiteSettings, load_settings

    from .config import HostSettings, load_servers, parse_server_names
    from .server import HostServer

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="sophia: %(levelname)s %(message)s")
    try:
        overrides: dict[str, Any] = {"read_only": True} if read_only else {}
        settings = load_settings(HostSettings, **overrides)
        only = parse_server_names(servers_option) if servers_option is not None else None
        servers = load_servers(settings, only)
        if not settings.fork_server or not servers:
            fork_server.close_now()
        server = HostServer(settings, servers, suite=SuiteSettings(),
                            fork_server=fork_server if settings.fork_server else None)
        app = None
        if transport is not Transport.stdio:
            from sophia_shared.http import http_app

            app = http_app(server, transport=transport.value, host=host, port=port,
                           allow_unauthenticated=allow_unauthenticated, extra_hosts=allowed_host or [],
                           suite=SuiteSettings())
            if transport is Transport.http:
                from .http_edge import install_http_edge

                install_http_edge(app, server.fast, app.state.sophia_security, app.state.sophia_max_body_bytes)
            from .dashboard import install_dashboard

            install_dashboard(app, server)
    except SettingsError as exc:
        typer.echo(f"sophia: {exc}", err=True)
        raise typer.Exit(2) from None
    except SophiaError as exc:
        typer.echo(f"sophia: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if not servers:
        typer.echo("sophia: no servers configured or installed; nothing to serve", err=True)
        raise typer.Exit(2)
    return server, app


class PortUnavailable(Exception):
    """The HTTP port cannot be bound (in use, or not allowed)."""


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn, or PortUnavailable naming the port and what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot listen on {host}: {exc.strerror}; pass an address with --host") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"port {port} on {host} is already in use (another `sophia up`? `sophia status` shows it); "
                "choose another with --port"
            ) from None
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port or --host") \
            from None
    return sock


async def _serve(server: HostServer, app: Any, host: str, port: int, listening: socket.socket | None) -> None:
    import anyio

    async with server.running(), anyio.create_task_group() as tg:
        web: Any = None
        stopping = False

        def stop(code: int) -> None:
            """Leave the way a client hanging up would: the edges finish, then the children stop."""
            nonlocal stopping
            stopping = True
            # The SDK's fallback stdio transport blocks in a thread until stdin closes: leave anyway
            # once the children had their time to stop (they also leave when their stdin closes).
            deadline = threading.Timer(EXIT_GRACE_S, os._exit, args=(code,))
            deadline.daemon = True
            deadline.start()
            if web is not None:
                web.should_exit = True  # uvicorn's own shutdown: lifespan and connections end cleanly
            elif not server.end_stdio():
                tg.start_soon(leave_now, code)

        async def leave_now(code: int) -> None:
            # The fallback transport's thread holds stdin: nothing unwinds until it closes, so stop
            # the children and drain the audit here, then leave.
            await server.shut_down()
            server.status_file.remove()
            sys.stderr.flush()
            os._exit(code)

        async def stop_on(event: anyio.Event) -> None:
            await event.wait()
            # Said at once: on the SDK's fallback transport the process may have to leave by os._exit.
            print(f"sophia: refused to run: {server.fatal}", file=sys.stderr, flush=True)
            stop(2)
            tg.cancel_scope.cancel()

        async def stop_on_signal() -> None:
            # Held for the whole run: a second Ctrl-C while stopping leaves at once, without a traceback.
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    if stopping:
                        print("sophia: stopped without waiting for the children", file=sys.stderr, flush=True)
                        os._exit(128 + signum)
                    print("sophia: stopping (the children and the audit log first)", file=sys.stderr, flush=True)
                    stop(0)

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
                                      timeout_keep_alive=KEEP_ALIVE_S, http="httptools",
                                      timeout_graceful_shutdown=GRACEFUL_S))
            await web.serve(sockets=[listening] if listening is not None else None)
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
    from .status import render as render_status

    typer.echo(render_status(current))


def logs(
    server: Annotated[str, typer.Argument(help="the server whose log to show, e.g. snowflake")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="how many of the last lines", min=1, max=100_000)] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing what the server writes")] = False,
) -> None:
    """Show a server's own log (its stderr, as the host started it): $SOPHIA_HOME/host/logs/<server>.log."""
    from .config import NAME_RE

    directory = log_dir()
    path = directory / f"{server}.log"
    if not NAME_RE.match(server) or not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.log")) if directory.is_dir() else []
        hint = f"logs exist for: {', '.join(known)}" if known else "no server has written a log yet (`sophia up`)"
        typer.echo(f"sophia: no log for server {server!r} in {directory}; {hint}", err=True)
        raise typer.Exit(1)
    with path.open("rb") as fh:
        for line in collections.deque(fh, maxlen=lines):
            sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()
        if follow:
            _follow(fh)


def _follow(fh: Any) -> None:
    """Print what is appended to `fh` until Ctrl-C (a rotation to .log.1 ends it: the file is new)."""
    try:
        while True:
            chunk = fh.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            else:
                time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return


def config(
    client: Annotated[
        str, typer.Option(help="claude, cursor, vscode, or all (each client's file and what to paste)")
    ] = "claude",
    url: Annotated[
        str | None, typer.Option(help="point the client at a running HTTP host (e.g. http://127.0.0.1:8760/mcp)")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="a file holding the bearer token, for the `sophia connect` bridge")
    ] = None,
    portable: Annotated[
        bool, typer.Option("--portable", help="name the `sophia` command and no settings (for a checked-in file)")
    ] = False,
    bridge: Annotated[
        bool, typer.Option("--bridge", help="with --url: a stdio entry running `sophia connect` (no headers needed)")
    ] = False,
) -> None:
    """Print a ready client config for this install (stdio, or --url for a running HTTP host)."""
    from .client_config import render, render_all, suite_settings

    if client != "all" and client not in ClientKind.__members__:
        typer.echo(f"sophia config: --client must be claude, cursor, vscode or all, not {client!r}", err=True)
        raise typer.Exit(2)
    settings = None if portable else suite_settings()
    if settings is not None and settings.left_out:
        typer.echo(f"sophia config: left out secret settings {', '.join(settings.left_out)}: add them to the "
                   "config's env yourself, or keep them in sophia.toml", err=True)
    if client == "all":
        typer.echo(render_all(url=url, token_file=token_file, settings=settings or suite_settings()), nl=False)
        return
    typer.echo(render(ClientKind(client), url=url, portable=portable, token_file=token_file, settings=settings,
                      bridge=bridge), nl=False)


def connect(
    url: Annotated[str, typer.Argument(help="the host's streamable HTTP endpoint, e.g. http://127.0.0.1:8760/mcp")],
    token_file: Annotated[
        Path | None, typer.Option(help="read the bearer token from this file (else from $SOPHIA_TOKEN)")
    ] = None,
    token_env: Annotated[
        str, typer.Option(help="the environment variable holding the bearer token")
    ] = "SOPHIA_TOKEN",  # noqa: S107 - the variable's name, not a token
) -> None:
    """Bridge stdio to a streamable HTTP host, for clients that speak only stdio (Claude Desktop).

    The token is never taken from the command line or the URL: argv and URLs end up in process
    lists and logs.
    """
    from .connect import BridgeFailed, read_token, serve_bridge

    try:
        token = read_token(token_file, token_env)
        serve_bridge(url, token)
    except BridgeFailed as exc:
        typer.echo(f"sophia connect: {exc}", err=True)
        raise typer.Exit(2) from None
