"""Settings: one pydantic-settings class per server (env SOPHIA_<SERVER>_*), plus the suite's own.

Sources, strongest first: init arguments, environment, the `[<server>]` table of `sophia.toml`
(path from SOPHIA_CONFIG, else ./sophia.toml, else $SOPHIA_HOME/sophia.toml), defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .paths import sophia_home
from .roles import RoleName


class SettingsError(SystemExit):
    """A bad setting at start: one line naming the setting, then exit code 2."""

    def __init__(self, line: str):
        super().__init__(2)
        self.line = line

    def __str__(self) -> str:
        return self.line


def config_file() -> Path | None:
    """The sophia.toml in force, if any."""
    explicit = os.environ.get("SOPHIA_CONFIG")
    if explicit:
        return Path(explicit)
    for candidate in (Path.cwd() / "sophia.toml", sophia_home() / "sophia.toml"):
        if candidate.is_file():
            return candidate
    return None


def read_config_table(table: str) -> dict[str, Any]:
    """The `[table]` of sophia.toml, or an empty dict."""
    path = config_file()
    if path is None or not path.is_file():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    section = data.get(table, {})
    return dict(section) if isinstance(section, dict) else {}


class _TomlTableSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], table: str):
        super().__init__(settings_cls)
        self._values = read_config_table(table)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class _SophiaBaseSettings(BaseSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        table = str(settings_cls.model_config.get("title") or "sophia")
        return (init_settings, env_settings, _TomlTableSource(settings_cls, table))


def settings_config(server: str) -> SettingsConfigDict:
    """The model_config of a server's settings: env prefix SOPHIA_<SERVER>_, `[server]` in sophia.toml."""
    return SettingsConfigDict(
        env_prefix=f"SOPHIA_{server.upper()}_",
        title=server,
        extra="ignore",
        validate_default=True,
    )


class ServerSettings(_SophiaBaseSettings):
    """What every server has: read-only mode, verbose errors, the result cap, audit of values."""

    model_config = settings_config("server")

    read_only: bool = False
    verbose_errors: bool = False
    max_result_chars: int = 200_000
    audit_values: bool = False


class SuiteSettings(_SophiaBaseSettings):
    """The suite's own settings (env SOPHIA_*, `[sophia]` in sophia.toml)."""

    model_config = SettingsConfigDict(env_prefix="SOPHIA_", title="sophia", extra="ignore")

    stdio_role: RoleName = "developer"
    # OpenTelemetry traces, opt-in: one span per tool call on each server it passes (host and child,
    # one trace). Exported over OTLP/HTTP (the standard OTEL_EXPORTER_OTLP_* variables say where),
    # or, with otel_file, appended to that file as one JSON object per span.
    otel: bool = False
    otel_file: Path | None = None
    # Who a stdio session is (its memory tenant, its audit principal): default the OS user. Set it
    # to the user your HTTP tokens were created for to share one memory across transports.
    user: str | None = None
    # Set by the host on the children it starts: they accept the caller's principal from each
    # call's _meta. Never set this on a server reachable by anything but its parent host.
    trust_host_principal: bool = False
    # How a destructive call is confirmed when the client cannot show a prompt (no elicitation):
    # "approval" (default) answers with a pending approval the person decides out of band
    # (`sophia approve ID`); "token" hands the model a single-use token to repeat the call with —
    # which the model can use by itself, so only for CI and scripted tests.
    confirm_mode: Literal["approval", "token"] = "approval"
    # How long a pending approval waits for the person, and an approved one for the model's repeat.
    approval_ttl_s: float = Field(default=900.0, ge=10.0, le=7 * 86_400.0)
    # tools/list shows every tool, not only those the caller's role may call.
    list_all_tools: bool = False
    # The suite's one PostgreSQL (scale-out: every host points at the same one). Tokens, audit
    # and memory default to it; SOPHIA_TOKENS_DSN, SOPHIA_AUDIT_DSN and SOPHIA_MEMORY_DSN override.
    database_url: SecretStr | None = None
    audit_dsn: str | None = None
    tokens_dsn: SecretStr | None = None
    # How long a verified token is trusted before the store is asked again: the bound on how late a
    # revocation made on another host (PostgreSQL token store) takes effect here.
    token_cache_s: float = Field(default=1.0, ge=0.0, le=60.0)
    auth_mode: Literal["token", "jwt"] = "token"
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None
    jwt_jwks_file: Path | None = None
    jwt_role_claim: str = "sophia_role"
    jwt_algorithms: list[str] = ["RS256", "ES256"]
    http_max_body_bytes: int = 4 * 1024 * 1024
    # Every frame a client sends (a stdio line, an HTTP body) is checked against these first
    # (frames.py); the SDK's own parser silently drops frames past ~197 levels, hence the cap.
    frame_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    frame_max_depth: int = Field(default=64, ge=4, le=190)
    # When a client closes stdin, requests it already sent are answered for up to this long first.
    stdio_drain_s: float = Field(default=30.0, ge=0, le=3600)
    # The audit chain's HMAC keyring (default $SOPHIA_HOME/keys/audit.key, created 0600 by the
    # first record), or a key given here: hosts that share one PostgreSQL log must all be given
    # the same SOPHIA_AUDIT_KEY, and keep retired ones in SOPHIA_AUDIT_PREVIOUS_KEYS (a JSON list).
    audit_key_file: Path | None = None
    audit_key: SecretStr | None = None
    audit_previous_keys: list[SecretStr] = Field(default_factory=list)
    # Where the audit head is checkpointed beyond the writer's reach: a file made append-only
    # (chattr +a) and/or a PostgreSQL table owned by another role (sophia audit checkpoint-sql).
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_dsn: SecretStr | None = None
    # Below this much free space where the audit log lives, calls are refused before they run.
    audit_min_free_bytes: int = Field(default=16 * 1024 * 1024, ge=0)

    @field_validator("audit_key", "audit_previous_keys")
    @classmethod
    def _long_enough(cls, value: SecretStr | list[SecretStr] | None) -> SecretStr | list[SecretStr] | None:
        keys = value if isinstance(value, list) else [value] if value is not None else []
        if any(len(k.get_secret_value()) < 32 for k in keys):
            raise ValueError("an audit key needs at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @model_validator(mode="after")
    def _default_to_database_url(self) -> SuiteSettings:
        if self.database_url is not None:
            if self.audit_dsn is None:
                self.audit_dsn = self.database_url.get_secret_value()
            if self.tokens_dsn is None:
                self.tokens_dsn = self.database_url
        return self


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build a settings object; a bad value fails with one line naming the setting."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "?"
        raise SettingsError(
            f"bad setting {prefix}{field.upper()} ({field}): {first['msg']}"
        ) from None
