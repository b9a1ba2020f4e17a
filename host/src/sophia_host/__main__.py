"""`sophia`: the admin command (tokens, audit, memory) and the host (up, status, logs, config, connect).

Every command imports what it needs when it runs: `sophia --help` and `sophia --version` load
neither the MCP SDK nor pydantic settings.
"""

from typing import Annotated

import typer
from sophia_shared.cli import run, version_printer
from sophia_shared.memory_cli import memory_app

from . import approvals_cli, ask, cli, route_cli
from .admin import audit_app, token_app

app = typer.Typer(name="sophia", help="Sophia: MCP servers for platform and data teams.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(memory_app, name="memory")
app.command("up")(cli.up)
app.command("status")(cli.status)
app.command("logs")(cli.logs)
app.command("config")(cli.config)
app.command("connect")(cli.connect)
app.command("route")(route_cli.route)
app.command("approvals")(approvals_cli.approvals)
app.command("approve")(approvals_cli.approve)
app.command("deny")(approvals_cli.deny)
app.command("ask")(ask.ask)
app.command("chat")(ask.chat)


_print_version = version_printer("sophia", "sophia-host")


@app.callback()
def options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="print the version and exit")] = False,
) -> None:
    """Sophia: MCP servers for platform and data teams."""


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
