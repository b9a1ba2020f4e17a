"""One command shape for every server: `sophia-<name> [serve|check]`.

`sophia-<name>` alone serves stdio (what client configs expect); `serve` picks the transport;
`check` validates config and connectivity and exits non-zero with the reason.
"""


import ipaddress
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from .errors import SophiaError
from .settings import ServerSettings, SettingsError, SuiteSettings, load_settings

S = TypeVar("S", bound=ServerSettings)

# Every server CLI built in this process, by name: how suite-wide tests and the host find a
# server's builder without knowing its settings class.
BUILDERS: dict[str, Callable[[], Any]] = {}


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


class ServerCLI:
    """`sophia-<name>`: with no arguments it serves stdio at once (what client configs run, so
    start-up skips importing typer); with arguments it is the typer app below."""

    def __init__(
        self, name: str, settings_cls: type[S], build_server: Callable[[S], Any], check: Callable[[S], Awaitable[str]]
    ) -> None:
        self.name = name
        self._settings_cls: type[Any] = settings_cls
        self._build_server: Callable[[Any], Any] = with_health(build_server, check)
        self._check: Callable[[Any], Awaitable[str]] = check
        BUILDERS[name] = lambda: build_server(load_settings(settings_cls))

    def __call__(self, args: list[str] | None = None) -> None:
        argv = sys.argv[1:] if args is None else args
        if not argv:
            try:
                settings = load_settings(self._settings_cls)
            except SettingsError as exc:
                print(f"sophia-{self.name}: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            self._build_server(settings).run("stdio")
            return
        self.typer_app()(argv, prog_name=f"sophia-{self.name}")

    def typer_app(self) -> Any:
        return _typer_app(self.name, self._settings_cls, self._build_server, self._check)


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
    """The command line behind `sophia-<name>`."""
    return ServerCLI(name, settings_cls, build_server, check)


def _typer_app(
    name: str,
    settings_cls: type[S],
    build_server: Callable[[S], Any],
    check: Callable[[S], Awaitable[str]],
) -> Any:
    import anyio
    import typer

    app = typer.Typer(
        name=f"sophia-{name}", add_completion=False, no_args_is_help=False, invoke_without_command=True,
        help=f"Sophia {name} MCP server.", pretty_exceptions_enable=False,
    )

    def settings(read_only: bool = False) -> S:
        overrides: dict[str, Any] = {"read_only": True} if read_only else {}
        try:
            return load_settings(settings_cls, **overrides)
        except SettingsError as exc:
            typer.echo(f"sophia-{name}: {exc}", err=True)
            raise typer.Exit(2) from None

    @app.callback()
    def default(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            build_server(settings()).run("stdio")

    @app.command()
    def serve(
        transport: Annotated[Transport, typer.Option(help="stdio, sse or http (streamable HTTP)")] = Transport.stdio,
        host: Annotated[str, typer.Option(help="HTTP bind address (loopback by default)")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="HTTP port")] = 8765,
        read_only: Annotated[bool, typer.Option("--read-only", help="hide every tool that is not read-only")] = False,
        allow_unauthenticated: Annotated[
            bool, typer.Option("--allow-unauthenticated", help="HTTP without bearer tokens (loopback only)")
        ] = False,
        allowed_host: Annotated[
            list[str] | None, typer.Option(help="extra Host header values to accept (behind a proxy)")
        ] = None,
    ) -> None:
        """Serve the MCP server over stdio, SSE or streamable HTTP."""
        server = build_server(settings(read_only))
        if transport is Transport.stdio:
            server.run("stdio")
            return
        from .http import http_app, run_http

        try:
            app_ = http_app(
                server, transport=transport.value, host=host, port=port,
                allow_unauthenticated=allow_unauthenticated, extra_hosts=allowed_host or [],
                suite=SuiteSettings(),
            )
        except SophiaError as exc:
            typer.echo(f"sophia-{name}: {exc.message}", err=True)
            raise typer.Exit(2) from None
        run_http(app_, host, port)

    @app.command("check")
    def check_cmd() -> None:
        """Validate config and connectivity; exit non-zero with the reason."""
        config = settings()

        async def run() -> str:
            return await check(config)

        try:
            line = anyio.run(run)
        except SophiaError as exc:
            typer.echo(f"sophia-{name}: {exc.code.value}: {exc.message}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"sophia-{name}: ok: {line}")

    return app


def run(app: Any) -> None:
    """Entry point body for `__main__.main` (a ServerCLI or a typer app)."""
    try:
        app()
    except SettingsError as exc:
        print(f"sophia: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
