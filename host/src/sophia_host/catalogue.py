"""The last-known tools of each child, so the first tools/list after connect lists every server at once.

One file per server, `$SOPHIA_HOME/host/catalogue/<name>.json` (0600, written atomically), holding the
child's tools and the key they were listed under. The key is a digest of what decides that list:
the command or URL, the entry's settings in sophia.toml, the installed code the command runs (the
server's package, sophia_shared, the MCP SDK: versions and file times) and the `SOPHIA_*` settings the
child will see. A changed install or config changes the key, and a stale file is ignored. Secrets
only count by presence: the digest of a low-entropy secret could be guessed back from the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import mcp_types as types
from pydantic import ValidationError
from sophia_shared.paths import sophia_home, write_atomically
from sophia_shared.redact import is_secret_name
from sophia_shared.settings import config_file

from .config import ServerEntry, console_scripts

log = logging.getLogger("sophia.host")

# Bump when the file's shape or what the key covers changes.
FORMAT = 1
# Packages whose code shapes every Sophia child's listing.
_SHARED_PACKAGES = ("sophia_shared", "mcp", "mcp_types")
_MAX_FILE_BYTES = 8 * 1024 * 1024


class Catalogue:
    """Reads and writes the catalogue files of one host."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or sophia_home() / "host" / "catalogue"

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def load(self, entry: ServerEntry, env: Mapping[str, str]) -> list[types.Tool] | None:
        """The tools last listed under the key `entry` has now, or None (missing, stale or unreadable)."""
        path = self.path(entry.name)
        try:
            if path.stat().st_size > _MAX_FILE_BYTES:
                return None
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.info("server %s: ignoring its catalogue (%s)", entry.name, type(exc).__name__)
            return None
        if not isinstance(data, dict) or data.get("key") != catalogue_key(entry, env):
            return None
        listed = data.get("tools")
        if not isinstance(listed, list):
            return None
        try:
            return [types.Tool.model_validate(t) for t in listed]
        except ValidationError:
            log.info("server %s: ignoring its catalogue (a tool does not validate)", entry.name)
            return None

    def save(self, entry: ServerEntry, env: Mapping[str, str], tools: Iterable[types.Tool]) -> None:
        """Write the tools under the current key; a failure only costs the next start its head start."""
        body = {
            "format": FORMAT, "server": entry.name, "key": catalogue_key(entry, env),
            "tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools],
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomically(self.path(entry.name), json.dumps(body, separators=(",", ":")).encode())
        except OSError as exc:
            log.warning("server %s: could not write its catalogue: %s", entry.name, exc)



def catalogue_key(entry: ServerEntry, env: Mapping[str, str]) -> str:
    """The digest of everything that decides which tools `entry`'s child lists."""
    parts = {
        "format": FORMAT,
        "command": entry.command, "url": entry.url, "token_env": entry.token_env,
        "tools": entry.tools, "toolsets": entry.toolsets, "default_role": entry.default_role,
        "env": _settings_seen(entry.env, every=True),
        "settings": _settings_seen(env),
        "config": _file_stamp(config_file()),
        "code": [_package_stamp(p) for p in (*_SHARED_PACKAGES, *_packages_run_by(entry.command))],
        "files": [_file_stamp(Path(arg)) for arg in entry.command if os.sep in arg],
        "python": sys.version,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _settings_seen(env: Mapping[str, str], *, every: bool = False) -> list[tuple[str, str]]:
    """The `SOPHIA_*` variables (`every`: all of them), a secret's value reduced to whether it is set."""
    return sorted(
        (name, ("set" if value else "") if is_secret_name(name) else value)
        for name, value in env.items() if every or name.startswith("SOPHIA_")
    )


def _file_stamp(path: Path | None) -> tuple[str, int, int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return (str(path), 0, 0)
    return (str(path), stat.st_mtime_ns, stat.st_size)


def _packages_run_by(command: list[str]) -> list[str]:
    """The top-level packages a command runs: a console script's module, or `-m module`."""
    if not command:
        return []
    if "-m" in command[:-1]:
        return [command[command.index("-m") + 1].split(".")[0]]
    value = console_scripts().get(Path(command[0]).name)
    return [value.split(":")[0].split(".")[0]] if value else []


@functools.lru_cache(maxsize=64)
def _package_stamp(package: str) -> Any:
    """A package's version and the newest time and count of its source files (editable installs change
    code without changing the version). Taken once per process: an install changed while the host runs
    only makes the next start's key differ, which costs that start its head start, never a stale list."""
    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return (package, None)
    if spec is None:
        return (package, None)
    try:
        version: str | None = metadata.version(package.replace("_", "-"))
    except metadata.PackageNotFoundError:
        version = None
    roots = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
    newest, count = 0, 0
    for root in roots:
        for path in Path(root).rglob("*.py"):
            try:
                newest = max(newest, path.stat().st_mtime_ns)
            except OSError:
                continue
            count += 1
    return (package, version, newest, count)
