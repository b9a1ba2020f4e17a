"""`sophia config --client ...`: the client config that points a desktop client at this install's host."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from .config import HOST_SCRIPT, script_command

ENTRY_NAME = "sophia"
STDIO_ARGS = ["up", "--transport", "stdio"]


class ClientKind(StrEnum):
    claude = "claude"
    cursor = "cursor"
    vscode = "vscode"


def client_config(kind: ClientKind, *, url: str | None = None, portable: bool = False) -> dict[str, Any]:
    """The JSON a client reads: the host over stdio (this install's `sophia`), or a remote URL.

    `portable` names the `sophia` command instead of this install's absolute path, for a config
    checked into the repository.
    """
    command = HOST_SCRIPT if portable else script_command(HOST_SCRIPT)[0]
    if kind is ClientKind.vscode:
        server: dict[str, Any] = (
            {"type": "http", "url": url} if url else {"type": "stdio", "command": command, "args": STDIO_ARGS}
        )
        return {"servers": {ENTRY_NAME: server}}
    entry: dict[str, Any] = {"url": url} if url else {"command": command, "args": STDIO_ARGS, "env": {}}
    return {"mcpServers": {ENTRY_NAME: entry}}


def render(kind: ClientKind, *, url: str | None = None, portable: bool = False) -> str:
    return json.dumps(client_config(kind, url=url, portable=portable), indent=2) + "\n"
