"""`sophia config --client ...`: the config a desktop client reads to reach this install's host.

Each client takes only some entry kinds, and the config must be one it accepts:
- Claude Desktop (`claude_desktop_config.json`) takes stdio entries only, `{"command", "args",
  "env"}`; a remote host is reached through the stdio bridge `sophia connect URL`.
- Cursor (`mcp.json`) takes stdio entries or `{"url", "headers"}`.
- VS Code (`mcp.json`) takes `{"servers": {NAME: {"type": "stdio" | "http", ...}}}`, headers on HTTP.

A stdio entry carries the settings the user ran with (`SOPHIA_HOME` made absolute, `SOPHIA_CONFIG`,
every other `SOPHIA_*` variable but secrets), so the client's host sees the same tokens, memory and
audit log as the user's own `sophia` commands. A token never appears in a config: HTTP headers
name the client's own secret mechanism (VS Code prompts once; Cursor reads an environment
variable), and the bridge reads a token file or an environment variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

ENTRY_NAME = "sophia"
STDIO_ARGS = ["up", "--transport", "stdio"]
# The environment variable `sophia connect` and Cursor's header read the bearer token from.
TOKEN_ENV = "SOPHIA_TOKEN"  # noqa: S105 - a variable name
VSCODE_TOKEN_INPUT = "sophia-token"  # noqa: S105 - the id of VS Code's prompt
# Never copied into a client's env: the transport is the config's own choice.
NOT_COPIED = frozenset({"SOPHIA_UP_TRANSPORT", TOKEN_ENV})


class ClientKind(StrEnum):
    claude = "claude"
    cursor = "cursor"
    vscode = "vscode"


# Where each client reads its config (and how to open it from the client).
CONFIG_FILES: dict[ClientKind, str] = {
    ClientKind.claude: (
        "Claude Desktop: Settings > Developer > Edit Config, i.e. ~/.config/Claude/claude_desktop_config.json "
        "(macOS: ~/Library/Application Support/Claude/claude_desktop_config.json, "
        "Windows: %APPDATA%\\Claude\\claude_desktop_config.json); restart Claude Desktop after saving"
    ),
    ClientKind.cursor: "Cursor: ~/.cursor/mcp.json (all projects) or .cursor/mcp.json in a project",
    ClientKind.vscode: (
        "VS Code: .vscode/mcp.json in the workspace, or the command `MCP: Open User Configuration`"
    ),
}


@dataclass
class Settings:
    """What a config carries besides the command: the env for stdio entries, what was left out."""

    env: dict[str, str] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)


def suite_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """The SOPHIA_* settings of this shell, as a client's env must carry them (secrets left out)."""
    from sophia_shared.paths import sophia_home
    from sophia_shared.redact import is_secret_name, redact

    source = os.environ if environ is None else environ
    here = cwd or Path.cwd()
    out = Settings()
    for name in sorted(source):
        value = source[name]
        if not name.startswith("SOPHIA_") or name in NOT_COPIED:
            continue
        if is_secret_name(name) or name.endswith(("_KEY", "_KEYS")) or redact(value) != value:
            out.left_out.append(name)
            continue
        out.env[name] = value
    # A client starts its servers from its own directory: every path must be absolute.
    out.env["SOPHIA_HOME"] = str(sophia_home() if environ is None else _absolute(source.get("SOPHIA_HOME"), here))
    config = source.get("SOPHIA_CONFIG")
    if config:
        out.env["SOPHIA_CONFIG"] = str((here / config).resolve())
    elif (here / "sophia.toml").is_file():  # what `sophia up` here would read
        out.env["SOPHIA_CONFIG"] = str((here / "sophia.toml").resolve())
    return out


def _absolute(home: str | None, cwd: Path) -> Path:
    if home:
        return (cwd / Path(home).expanduser()).resolve()
    from sophia_shared.paths import sophia_home

    return sophia_home()


def sophia_command(portable: bool) -> str:
    """This install's `sophia` (absolute), or the bare name for a config checked into a repository."""
    from .config import HOST_SCRIPT, script_command

    return HOST_SCRIPT if portable else script_command(HOST_SCRIPT)[0]


def client_config(
    kind: ClientKind,
    *,
    url: str | None = None,
    portable: bool = False,
    token_file: Path | None = None,
    settings: Settings | None = None,
    bridge: bool = False,
) -> dict[str, Any]:
    """The JSON `kind` reads: this install's host over stdio, or the running host at `url` (through
    the stdio bridge when `bridge`, for a client or network that cannot send headers)."""
    env = dict((settings or Settings()).env)
    command = sophia_command(portable)
    if url is not None and bridge:
        entry = bridge_entry(command, url, token_file, env)
        if kind is ClientKind.vscode:
            return {"servers": {ENTRY_NAME: {"type": "stdio", **entry}}}
        return {"mcpServers": {ENTRY_NAME: entry}}
    if url is None:
        stdio: dict[str, Any] = {"command": command, "args": list(STDIO_ARGS), "env": env}
        if kind is ClientKind.vscode:
            return {"servers": {ENTRY_NAME: {"type": "stdio", **stdio}}}
        return {"mcpServers": {ENTRY_NAME: stdio}}
    if kind is ClientKind.claude:
        return {"mcpServers": {ENTRY_NAME: bridge_entry(command, url, token_file, env)}}
    if kind is ClientKind.cursor:
        return {"mcpServers": {ENTRY_NAME: {"url": url, "headers": {"Authorization": f"Bearer ${{env:{TOKEN_ENV}}}"}}}}
    return {
        "inputs": [{"type": "promptString", "id": VSCODE_TOKEN_INPUT, "password": True,
                    "description": "Sophia bearer token (from `sophia token create`)"}],
        "servers": {ENTRY_NAME: {"type": "http", "url": url,
                                 "headers": {"Authorization": f"Bearer ${{input:{VSCODE_TOKEN_INPUT}}}"}}},
    }


def bridge_entry(command: str, url: str, token_file: Path | None, env: dict[str, str]) -> dict[str, Any]:
    """A stdio entry running `sophia connect URL`: for a client that speaks only stdio."""
    args = ["connect", url]
    if token_file is not None:
        args += ["--token-file", str(token_file.expanduser().resolve())]
    else:
        env = {**env, TOKEN_ENV: "<paste a token from `sophia token create` here>"}
    return {"command": command, "args": args, "env": env}


def render(kind: ClientKind, **options: Any) -> str:
    return json.dumps(client_config(kind, **options), indent=2) + "\n"


def render_all(*, url: str | None, token_file: Path | None, settings: Settings) -> str:
    """For each client: where its config lives and what to paste (stdio, then the HTTP host at `url`)."""
    parts = []
    for kind in ClientKind:
        parts.append(f"== {CONFIG_FILES[kind]}")
        parts.append(f"-- stdio (starts its own host; merge into the file):\n{render(kind, settings=settings)}")
        if url is not None:
            how = {
                ClientKind.claude: "through the stdio bridge `sophia connect`",
                ClientKind.cursor: f"url + headers; start Cursor with {TOKEN_ENV} set to the token",
                ClientKind.vscode: "url + headers; VS Code asks for the token once",
            }[kind]
            parts.append(f"-- or the running host at {url} ({how}):\n"
                         f"{render(kind, url=url, token_file=token_file, settings=settings)}")
    return "\n".join(parts)
