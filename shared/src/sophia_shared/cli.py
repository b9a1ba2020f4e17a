"""One command shape for every server: `sophia-<name> [serve|check]`.

`sophia-<name>` alone serves stdio (what client configs expect); `serve` picks the transport;
`check` validates config and connectivity and exits non-zero with the reason.

This module is on every command's start-up path, so it imports nothing heavy at module level:
`--help` and `--version` never load the MCP SDK, pydantic-settings or a server's tools.
"""

import contextlib
import ipaddress
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .settings import ServerSettings

S = TypeVar("S", bound="ServerSettings")

# Every server CLI built in this process, by name: how suite-wide tests and the host find a
# server's builder without knowing its settings class.
BUILDERS: dict[str, Callable[[], Any]] = {}
# The exit status of a process ended by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


class Transport(StrEnum):
    stdio = "stdio"
    sse = "sse"
    http = "http"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerParts(Generic[S]):
    """What a server's CLI runs: its settings class, its server builder and its check."""

    settings_cls: type[S]
    build_server: Callable[[S], Any]
    check: Callable[[S], Awaitable[str]]


def version_of(distribution: str) -> str:
    """The installed version of `distribution` (what `--version` prints)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown (not installed as a distribution)"


def version_printer(program: str, distribution: str) -> Callable[[bool], None]:
    """The callback of an eager `--version` option: prints `program version` and exits."""

    def print_version(value: bool) -> None:
        import typer  # imported by whoever builds the option; kept off this module's import

        if value:
            typer.echo(f"{program} {version_of(distribution)}")
            raise typer.Exit()

    return print_version


class ServerCLI:
    """`sophia-<name>`: with no arguments it serves stdio at once (what client configs run, so
    start-up skips importing typer); with arguments it is the typer app below. The server's parts
    are loaded only when a command runs, so `--help` and `--version` stay fast."""

    def __init__(self, name: str, parts: Callable[[], ServerParts[Any]]) -> None:
        self.name = name
        self._load = parts
        self._parts: ServerParts[Any] | None = None

        def builder() -> Any:
            from .settings import load_settings

            loaded = parts()
            return loaded.build_server(load_settings(loaded.settings_cls))

        BUILDERS[name] = builder

    @property
    def parts(self) -> ServerParts[Any]:
        """The server's parts, its builder also serving the check as `sophia://health`."""
        if self._parts is None:
            loaded = self._load()
            self._parts = ServerParts(loaded.settings_cls, with_health(loaded.build_server, loaded.check),
                                      loaded.check)
        return self._parts

    def __call__(self, args: list[str] | None = None) -> None:
        argv = sys.argv[1:] if args is None else args
        if not argv:
            from .settings import SettingsError, load_settings

            try:
                settings = load_settings(self.parts.settings_cls)
            except SettingsError as exc:
                print(f"sophia-{self.name}: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            leave_on_interrupt()
            self.parts.build_server(settings).run("stdio")
            return
        self.typer_app()(argv, prog_name=f"sophia-{self.name}")

    def typer_app(self) -> Any:
        return _typer_app(self.name, lambda: self.parts)


def with_health(build_server: Callable[[S], Any], check: Callable[[S], Awaitable[str]]) -> Callable[[S], Any]:
    """`build_server` whose server also serves its own check as `sophia://health` (see health.py)."""

    def build(settings: S) -> Any:
        from .health import install_health

        server = build_server(settings)
        install_health(server, lambda: check(settings))
        return server

    return build


def server_app(
    name: str,
    settings_cls: type[S],
    build_server: Callable[[S], Any],
    check: Callable[[S], Awaitable[str]],
) -> ServerCLI:
    """The command line behind `sophia-<name>`, from parts already imported."""
    return ServerCLI(name, lambda: ServerParts(settings_cls, build_server, check))


def lazy_server_app(name: str, parts: Callable[[], ServerParts[Any]]) -> ServerCLI:
    """The command line behind `sophia-<name>`; `parts` imports the server only when a command runs."""
    return ServerCLI(name, parts)


def _serve_http(
    name: str, server: Any, transport: Transport, host: str, port: int, *, allow_unauthenticated: bool,
    extra_hosts: list[str],
) -> None:
    """`serve --transport sse|http`: the checked HTTP edge (http.py); a refused setup exits 2 with one line."""
    import typer

    from .errors import SophiaError
    from .http import http_app, run_http
    from .settings import SuiteSettings

    try:
        app = http_app(
            server, transport=transport.value, host=host, port=port,
            allow_unauthenticated=allow_unauthenticated, extra_hosts=extra_hosts, suite=SuiteSettings(),
        )
    except SophiaError as exc:
        typer.echo(f"sophia-{name}: {exc.message}", err=True)
        raise typer.Exit(2) from None
    run_http(app, host, port)


def _typer_app(name: str, parts: Callable[[], ServerParts[Any]]) -> Any:
    import typer

    from .serve_options import AllowedHostOption, AllowUnauthenticatedOption, HostOption, PortOption, ReadOnlyOption

    app = typer.Typer(
        name=f"sophia-{name}", add_completion=False, no_args_is_help=False, invoke_without_command=True,
        help=f"Sophia {name} MCP server. Without a command it serves stdio (what client configs run).",
        pretty_exceptions_enable=False, rich_markup_mode=None,
    )

    def settings(read_only: bool = False) -> Any:
        from .settings import SettingsError, load_settings

        overrides: dict[str, Any] = {"read_only": True} if read_only else {}
        try:
            return load_settings(parts().settings_cls, **overrides)
        except SettingsError as exc:
            typer.echo(f"sophia-{name}: {exc}", err=True)
            raise typer.Exit(2) from None

    print_version = version_printer(f"sophia-{name}", f"sophia-{name}")

    @app.callback()
    def default(
        ctx: typer.Context,
        version: Annotated[bool, typer.Option(
            "--version", is_eager=True, callback=print_version, help="print the version and exit")] = False,
    ) -> None:
        if ctx.invoked_subcommand is None:
            server = parts().build_server(settings())
            leave_on_interrupt()
            server.run("stdio")

    @app.command()
    def serve(
        transport: Annotated[Transport, typer.Option(help="stdio, sse or http (streamable HTTP)")] = Transport.stdio,
        host: HostOption = "127.0.0.1",
        port: PortOption = 8765,
        read_only: ReadOnlyOption = False,
        allow_unauthenticated: AllowUnauthenticatedOption = False,
        allowed_host: AllowedHostOption = None,
    ) -> None:
        """Serve the MCP server over stdio, SSE or streamable HTTP."""
        server = parts().build_server(settings(read_only))
        if transport is Transport.stdio:
            leave_on_interrupt()
            server.run("stdio")
            return
        _serve_http(name, server, transport, host, port, allow_unauthenticated=allow_unauthenticated,
                    extra_hosts=allowed_host or [])

    @app.command("check")
    def check_cmd() -> None:
        """Validate config and connectivity; exit non-zero with the reason."""
        import anyio

        from .errors import SophiaError

        config = settings()

        async def run() -> str:
            return await parts().check(config)

        try:
            line = anyio.run(run)
        except SophiaError as exc:
            typer.echo(f"sophia-{name}: {exc.code.value}: {exc.message}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"sophia-{name}: ok: {line}")

    return app


def run(app: Any) -> None:
    """Entry point body for `__main__.main` (a ServerCLI or a typer app): a bad setting is one line,
    Ctrl-C is a quiet exit 130, never a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        interrupted()
    except Exception as exc:
        from .settings import SettingsError

        if not isinstance(exc, SettingsError):
            raise
        print(f"sophia: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def leave_on_interrupt() -> None:
    """Ctrl-C ends a stdio server at once: the SDK's stdin reader is a thread that nothing can cancel,
    so the event loop's own Ctrl-C handling would wait for stdin to close before leaving."""
    import signal

    signal.signal(signal.SIGINT, lambda _signum, _frame: interrupted())


def interrupted() -> None:
    """Leave at once after Ctrl-C: no traceback, and no wait on threads blocked reading stdin."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing more to say there
            stream.flush()
    os._exit(INTERRUPTED)
