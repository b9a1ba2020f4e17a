"""Settings of the Docker server: where the engine is, and the safety policy for what it runs."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator
from sophia_shared.settings import ServerSettings, settings_config

DEFAULT_HOST = "unix:///var/run/docker.sock"


class DockerSettings(ServerSettings):
    """Env prefix SOPHIA_DOCKER_; `[docker]` in sophia.toml."""

    model_config = settings_config("docker")

    # Engine address. None falls back to DOCKER_HOST (and DOCKER_TLS_VERIFY / DOCKER_CERT_PATH),
    # then to the local socket, the same order the docker CLI uses.
    host: str | None = Field(default=None, description="unix://, tcp:// or ssh:// engine address")
    api_version: str = Field(default="auto", description="engine API version, or 'auto' to negotiate")
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    tls_verify: bool | None = None
    tls_ca_cert: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    # The ssh binary handles keys and known_hosts as the user already configured them.
    use_ssh_client: bool = True

    # Policy for everything that creates or runs.
    allowed_bind_paths: list[str] = Field(
        default_factory=list, description="host directories containers may bind-mount (empty: none)"
    )
    allowed_images: list[str] = Field(
        default_factory=list, description="fnmatch patterns of images that may be pulled or run (empty: any)"
    )
    default_memory_mb: int = Field(default=512, ge=6, le=1_048_576)
    max_memory_mb: int = Field(default=4096, ge=6, le=1_048_576)
    default_cpus: float = Field(default=1.0, gt=0, le=1024)
    max_cpus: float = Field(default=2.0, gt=0, le=1024)
    default_pids_limit: int = Field(default=256, ge=8, le=1_000_000)
    max_pids_limit: int = Field(default=4096, ge=8, le=1_000_000)

    # Result caps.
    max_log_bytes: int = Field(default=64_000, ge=1_000, le=10_000_000)
    max_list_items: int = Field(default=200, ge=1, le=10_000)

    @field_validator("allowed_bind_paths")
    @classmethod
    def _absolute_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not os.path.isabs(path):
                raise ValueError(f"allowed_bind_paths entries must be absolute paths, got {path!r}")
        return [os.path.normpath(path) for path in paths]

    def engine_address(self) -> str:
        """The engine address this server will try, for messages and `check`."""
        return resolve_engine(self).address


@dataclass(frozen=True)
class Engine:
    """The engine to talk to, where that choice came from, and a docker context's TLS files."""

    address: str
    source: str
    tls_dir: Path | None = None
    skip_tls_verify: bool = False

    @property
    def label(self) -> str:
        return f"{self.address} ({self.source})"


def resolve_engine(settings: DockerSettings) -> Engine:
    """The docker CLI's order: SOPHIA_DOCKER_HOST, DOCKER_HOST, DOCKER_CONTEXT, the current context of
    $DOCKER_CONFIG/config.json (default ~/.docker), then the local socket. The docker SDK reads
    DOCKER_HOST but not contexts, so the context's endpoint is read here from its meta.json."""
    if settings.host:
        return Engine(settings.host, "SOPHIA_DOCKER_HOST")
    if os.environ.get("DOCKER_HOST"):
        return Engine(os.environ["DOCKER_HOST"], "DOCKER_HOST")
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    name, source = os.environ.get("DOCKER_CONTEXT"), "DOCKER_CONTEXT"
    if not name:
        name, source = _current_context(config_dir), "docker context"
    if name and name != "default":
        digest = hashlib.sha256(name.encode()).hexdigest()
        endpoint = _context_endpoint(config_dir / "contexts" / "meta" / digest / "meta.json")
        if endpoint is not None:
            tls_dir = config_dir / "contexts" / "tls" / digest / "docker"
            return Engine(str(endpoint["Host"]), f"{source} {name!r}", tls_dir if tls_dir.is_dir() else None,
                          bool(endpoint.get("SkipTLSVerify")))
    return Engine(DEFAULT_HOST, "default socket")


def _current_context(config_dir: Path) -> str | None:
    try:
        config = json.loads((config_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    current = config.get("currentContext") if isinstance(config, dict) else None
    return current if isinstance(current, str) else None


def _context_endpoint(meta_file: Path) -> dict[str, object] | None:
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return None
    endpoint = (meta.get("Endpoints") or {}).get("docker") if isinstance(meta, dict) else None
    return endpoint if isinstance(endpoint, dict) and isinstance(endpoint.get("Host"), str) else None
