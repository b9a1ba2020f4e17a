"""The user's own Snowflake connections: `connections.toml` and `config.toml`, read by the connector's rules.

Where (snowflake-connector-python 4.x, sf_dirs.py): `$SNOWFLAKE_HOME` (default `~/.snowflake`) when
that directory exists, else the platform's config directory (`$XDG_CONFIG_HOME/snowflake`, i.e.
`~/.config/snowflake`, on Linux). What: `connections.toml` holds one table per connection name;
`config.toml` may hold more under `[connections.<name>]` (those of connections.toml win) and
`default_connection_name`. Which: the name asked for, else `SNOWFLAKE_DEFAULT_CONNECTION_NAME`, else
config.toml's `default_connection_name`, else "default". The connector resolves its directory once, at
import, and keeps a process-wide cache, so the files are read here (tomllib, no connector import) and
the connection's parameters are passed to `snowflake.connector.connect` as they are written.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FileConnection", "config_dir", "find_connection"]


@dataclass(frozen=True)
class FileConnection:
    """One connection of the user's files: its name, the file it came from, its connector parameters."""

    name: str
    path: Path
    params: dict[str, Any] = field(repr=False)

    @property
    def account(self) -> str:
        return str(self.params.get("account") or "?")

    @property
    def label(self) -> str:
        return f"Snowflake account {self.account} (connection {self.name!r} of {self.path})"


def config_dir() -> Path:
    home = Path(os.environ.get("SNOWFLAKE_HOME") or "~/.snowflake/").expanduser()
    if home.exists():
        return home
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "snowflake"


def find_connection(name: str | None) -> FileConnection | None:
    """The connection `name` (None: the default one) of the user's files; None when there is none.

    A bad file raises ValueError naming it: the server refuses to start rather than silently fall
    back to the demo warehouse.
    """
    directory = config_dir()
    config = _read(directory / "config.toml")
    from_config = _table(config.get("connections"))
    from_file = _read(directory / "connections.toml")
    chosen = name or os.environ.get("SNOWFLAKE_DEFAULT_CONNECTION_NAME") or config.get("default_connection_name")
    chosen = str(chosen or "default")
    for path, connections in ((directory / "connections.toml", from_file), (directory / "config.toml", from_config)):
        params = connections.get(chosen)
        if isinstance(params, dict):
            return FileConnection(chosen, path, dict(params))
    return None


def known_names() -> list[str]:
    """Every connection name in the user's files (for messages)."""
    directory = config_dir()
    config = _read(directory / "config.toml")
    names = {*_read(directory / "connections.toml"), *_table(config.get("connections"))}
    return sorted(n for n in names if isinstance(n, str))


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None
