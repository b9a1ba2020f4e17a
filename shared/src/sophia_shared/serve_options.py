"""The serving options every Sophia command shares (`sophia-<name> serve` and `sophia up`), declared
once. Imported only where a command line is built: it imports typer."""

from __future__ import annotations

from typing import Annotated

import typer

HostOption = Annotated[str, typer.Option(help="HTTP bind address (loopback by default)")]
PortOption = Annotated[int, typer.Option(help="HTTP port")]
ReadOnlyOption = Annotated[bool, typer.Option("--read-only", help="hide every tool that is not read-only")]
AllowUnauthenticatedOption = Annotated[
    bool, typer.Option("--allow-unauthenticated", help="HTTP without bearer tokens (loopback only)")
]
AllowedHostOption = Annotated[
    list[str] | None, typer.Option(help="extra Host header values to accept (behind a proxy)")
]
