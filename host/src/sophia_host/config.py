"""What the host composes: `[host]` settings and `[servers.<name>]` tables of sophia.toml.

Every installed `sophia-<name>` console script is served on its embedded default (what `make run`
does on a fresh machine), unless `[host] installed_servers = false`. A `[servers.<name>]` table
without `command` or `url` adjusts the installed server of that name (`enabled = false`,
`toolsets`, `tools`, `env`, ...); one with its own `command` or `url` adds (or replaces) a server.
`[host] servers` or `sophia up --servers a,b` serves only the servers named.
"""

from __future__ import annotations

import functools
import re
import shutil
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sophia_shared.settings import ServerSettings, SettingsError, read_config_table, settings_config

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
HOST_SCRIPT = "sophia"


class HostSettings(ServerSettings):
    """The host's own settings (env SOPHIA_HOST_*, `[host]` in sophia.toml)."""

    model_config = settings_config("host")

    # Expose only these toolsets (plus sophia_find_tools) in tools/list; the others stay
    # callable and searchable. Empty: list every tool.
    toolsets: list[str] = Field(default_factory=list)
    call_timeout_s: float = Field(default=300.0, gt=0)
    start_timeout_s: float = Field(default=30.0, gt=0)
    # How long the first tools/list (when a server has no catalogue yet) and a call to a server
    # that is still starting wait for it (a call: also one restarting at once after a crash); never
    # spent on a server that failed or is crash-looping.
    start_wait_s: float = Field(default=20.0, ge=0)
    # Keep each server's last-known tools in $SOPHIA_HOME/host/catalogue to list them at connect.
    catalogue: bool = True
    # With every child's listing in the catalogue, the children start once the first tools/list is
    # answered (it needs none of them), or after this long.
    catalogue_head_start_s: float = Field(default=1.0, ge=0)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    # A child that stays up this long has its backoff reset. The first crash after that restarts
    # at once; only crashes in a row (a crash loop) wait, backoff_initial_s doubling to backoff_max_s.
    healthy_after_s: float = Field(default=30.0, gt=0)
    # Keep one spare, already initialised process per stdio child, spawned standby_after_s after
    # the child came up: a crash switches to it at once instead of waiting for a cold start.
    standby: bool = True
    standby_after_s: float = Field(default=5.0, ge=0)
    # How often a child's own check (sophia://health) is re-read: sooner while it is not ready.
    health_interval_s: float = Field(default=300.0, gt=0)
    health_retry_s: float = Field(default=30.0, gt=0)
    semantic_search: bool = True
    # Serve every installed sophia-<name> server besides those sophia.toml describes.
    installed_servers: bool = True
    # Serve only these servers (empty: every enabled one); `sophia up --servers` overrides it.
    servers: list[str] = Field(default_factory=list)
    # Fork each Python child from one process that has already imported the MCP SDK, pydantic and
    # sophia_shared (fork_server.py) instead of starting an interpreter per child: what makes a
    # cold start of six servers on 2 cores as quick as one server's. False: spawn every child.
    fork_server: bool = True
    # False sends every call through the SDK lane (the reference lane; the differential test
    # compares the two). Both lanes run the same request path.
    fast_path: bool = True
    # The live dashboard (/ui) and the operators' endpoints (/healthz, /readyz, /metrics) on HTTP.
    dashboard: bool = True
    # Audit records one dashboard stream may hold unsent; past it the stream is closed and the browser
    # reconnects with Last-Event-ID (it misses nothing, and a slow client cannot grow the host's memory).
    dashboard_client_buffer: int = Field(default=5000, ge=1, le=1_000_000)
    # Recent records kept in memory for reconnects; an older Last-Event-ID is replayed from the log.
    dashboard_replay_events: int = Field(default=10_000, ge=100, le=1_000_000)
    # How often the feed looks for new audit records (children and other processes write the log too).
    dashboard_poll_s: float = Field(default=0.05, gt=0, le=10)
    # A stream is ended after this long (the browser reconnects at once and misses nothing).
    dashboard_stream_max_s: float = Field(default=300.0, gt=0)
    dashboard_max_streams: int = Field(default=200, ge=1, le=10_000)
    dashboard_session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    dashboard_max_sessions: int = Field(default=1000, ge=1, le=100_000)
    # Mark the session cookie Secure (set it when a TLS proxy fronts the host).
    dashboard_cookie_secure: bool = False


class ServerEntry(BaseModel):
    """One `[servers.<name>]` table: a stdio command, or the URL of a remote streamable HTTP server."""

    name: str
    command: list[str] = Field(default_factory=list)
    url: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    # Forward only these tools / toolsets of this server (empty: all of them).
    tools: list[str] = Field(default_factory=list)
    toolsets: list[str] = Field(default_factory=list)
    # The minimum role of a tool that does not say (a server that is not a Sophia server).
    default_role: str = "developer"
    # The environment variable holding the bearer token for a remote server; the token itself
    # never sits in sophia.toml.
    token_env: str | None = None
    # Overrides [host] start_timeout_s for a server that is slow (or quick) to start.
    start_timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_target(self) -> ServerEntry:
        if not NAME_RE.match(self.name):
            raise ValueError(f"server name {self.name!r}: use lowercase letters, digits, '-' or '_'")
        if bool(self.command) == bool(self.url):
            raise ValueError(f"server {self.name!r} needs exactly one of command or url")
        return self

    @property
    def remote(self) -> bool:
        return self.url is not None


@functools.cache
def console_scripts() -> dict[str, str]:
    """Every console script of this environment: name → `module:attr`. Read once per process: a scan
    of every installed distribution's metadata, tenths of a second on a busy machine."""
    return {ep.name: ep.value for ep in entry_points(group="console_scripts")}


def installed_servers() -> list[ServerEntry]:
    """Every `sophia-<name>` console script installed beside this Python."""
    found: dict[str, ServerEntry] = {}
    for script in console_scripts():
        if not script.startswith("sophia-") or script == HOST_SCRIPT:
            continue
        name = script.removeprefix("sophia-")
        if not NAME_RE.match(name):
            continue
        found[name] = ServerEntry(name=name, command=script_command(script))
    return [found[n] for n in sorted(found)]


def script_command(script: str) -> list[str]:
    """The command that runs console script `script` of this environment."""
    beside = Path(sys.executable).parent / script
    if beside.is_file():
        return [str(beside)]
    which = shutil.which(script)
    return [which] if which else [script]


def load_servers(settings: HostSettings | None = None, only: list[str] | None = None) -> list[ServerEntry]:
    """The servers to serve: the installed ones adjusted by `[servers.*]` of sophia.toml, plus the
    ones it describes; only those named in `only` (else `[host] servers`) when given, else the enabled."""
    host = settings if settings is not None else HostSettings()
    installed = {e.name: e for e in installed_servers()} if host.installed_servers else {}
    entries = dict(installed)
    for name, body in read_config_table("servers").items():
        if not isinstance(body, dict):
            raise SettingsError(f"bad setting servers.{name}: expected a table")
        base = installed.get(name)
        if base is not None and "command" not in body and "url" not in body:
            body = {**body, "command": base.command}
        try:
            entries[name] = ServerEntry(name=name, **body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "?"
            raise SettingsError(f"bad setting servers.{name}.{where}: {first['msg']}") from None
    chosen = only if only is not None else host.servers
    if not chosen:
        return [e for e in sorted(entries.values(), key=lambda e: e.name) if e.enabled]
    unknown = [n for n in chosen if n not in entries]
    if unknown:
        where = "--servers" if only is not None else "servers (SOPHIA_HOST_SERVERS)"
        raise SettingsError(
            f"bad setting {where}: no server named {', '.join(unknown)}; known: {', '.join(sorted(entries)) or 'none'}"
        )
    # Named explicitly, a server runs even if sophia.toml disables it.
    return [entries[n] for n in dict.fromkeys(chosen)]


def parse_server_names(value: str) -> list[str]:
    """`memory,snowflake` → ["memory", "snowflake"] (the value of `sophia up --servers`)."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise SettingsError("bad setting --servers: name at least one server, e.g. --servers memory,snowflake")
    bad = [n for n in names if not NAME_RE.match(n)]
    if bad:
        raise SettingsError(f"bad setting --servers: {bad[0]!r} is not a server name")
    return names
