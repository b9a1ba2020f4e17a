"""`sophia`: the admin command (tokens, audit, memory) and the host (up, status, logs, config)."""

from __future__ import annotations

import typer
from sophia_shared.cli import run

from . import cli
from .admin import audit_app, token_app

app = typer.Typer(name="sophia", help="Sophia: MCP servers for platform and data teams.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.command("up")(cli.up)
app.command("status")(cli.status)
app.command("logs")(cli.logs)
app.command("config")(cli.config)


def _mount_optional() -> None:
    try:
        from sophia_shared.memory.cli import memory_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # the memory store's CLI lands with the memory issue
        return
    app.add_typer(memory_app, name="memory")


_mount_optional()


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
