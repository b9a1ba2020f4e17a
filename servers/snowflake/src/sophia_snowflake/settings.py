"""Settings of the Snowflake server (env SOPHIA_SNOWFLAKE_*, `[snowflake]` in sophia.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from sophia_shared.roles import RoleName
from sophia_shared.settings import ServerSettings, settings_config

from .connections import FileConnection, config_dir, find_connection, known_names
from .kinds import DANGEROUS_KINDS, StatementKind


class SnowflakeSettings(ServerSettings):
    """Connection, authentication, safety and paging settings.

    With no `account` the server runs a local fakesnow warehouse on loopback holding a demo
    dataset, and labels every result as local.
    """

    model_config = settings_config("snowflake") | {"populate_by_name": True}
    _connection: FileConnection | None = PrivateAttr(default=None)

    # A connection of the user's own connections.toml / config.toml (connections.py), used when no
    # account is set here; without this setting, their default connection if they have one.
    connection_name: str | None = Field(default=None, min_length=1, max_length=200)

    # Connector arguments of the same name.
    account: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["https", "http"] | None = None
    warehouse: str | None = None
    database: str | None = None
    # `schema` would shadow a pydantic method; the env variable keeps the connector's name.
    schema_name: str | None = Field(
        default=None, validation_alias=AliasChoices("schema_name", "SOPHIA_SNOWFLAKE_SCHEMA")
    )
    role: str | None = None

    # Other ways to authenticate: key pair, OAuth access token, programmatic access token.
    private_key_file: Path | None = None
    private_key_file_pwd: SecretStr | None = None
    oauth_token: SecretStr | None = None
    pat: SecretStr | None = None

    # Server-side guards set on every session and every statement.
    statement_timeout_s: int = Field(default=300, ge=1, le=172_800)
    login_timeout_s: int = Field(default=30, ge=1, le=600)

    # Connections are pooled per principal.
    pool_max_per_principal: int = Field(default=4, ge=1, le=64)
    pool_idle_s: float = Field(default=600.0, gt=0)

    # Pages: rows per page by default and at most; a page is also cut by max_result_chars.
    default_page_rows: int = Field(default=100, ge=1, le=10_000)
    max_page_rows: int = Field(default=10_000, ge=1, le=100_000)
    max_offset: int = Field(default=10_000_000, ge=0)
    progress_interval_s: float = Field(default=2.0, gt=0, le=60)

    # Statement kinds per role (viewer/developer/devops/admin); None keeps the documented defaults.
    statement_permissions: dict[RoleName, list[StatementKind]] | None = None
    # Kinds never run by default (PUT/GET, COPY, CALL, ...) that an admin may run via snowflake_execute.
    admin_dangerous_kinds: list[StatementKind] = Field(default_factory=list)

    # The local demo warehouse (only when no account is configured): 0 picks a free port.
    local_port: int = Field(default=0, ge=0, le=65535)
    local_database: str = "DEMO"
    local_schema: str = "PUBLIC"
    local_start_timeout_s: float = Field(default=30.0, gt=0, le=300)

    @field_validator("admin_dangerous_kinds")
    @classmethod
    def _only_dangerous(cls, kinds: list[StatementKind]) -> list[StatementKind]:
        wrong = [k.value for k in kinds if k not in DANGEROUS_KINDS]
        if wrong:
            allowed = ", ".join(sorted(k.value for k in DANGEROUS_KINDS))
            raise ValueError(f"{', '.join(wrong)} are not dangerous kinds; list only: {allowed}")
        return kinds

    @model_validator(mode="after")
    def _one_authentication(self) -> SnowflakeSettings:
        chosen = [
            name
            for name, value in (
                ("password", self.password),
                ("private_key_file", self.private_key_file),
                ("oauth_token", self.oauth_token),
                ("pat", self.pat),
            )
            if value is not None
        ]
        if len(chosen) > 1:
            raise ValueError(f"set one way to authenticate, not {' and '.join(chosen)}")
        if self.account and not self.user and self.oauth_token is None:
            raise ValueError("SOPHIA_SNOWFLAKE_USER is required with SOPHIA_SNOWFLAKE_ACCOUNT")
        if self.private_key_file is not None and not self.private_key_file.is_file():
            raise ValueError(f"private key file {self.private_key_file} does not exist")
        return self

    @model_validator(mode="after")
    def _file_connection(self) -> SnowflakeSettings:
        self._connection = None if self.account else find_connection(self.connection_name)
        if self.connection_name and not self.account and self._connection is None:
            raise ValueError(
                f"SOPHIA_SNOWFLAKE_CONNECTION_NAME={self.connection_name!r} is not a connection of "
                f"{config_dir()}/connections.toml or config.toml (known: {', '.join(known_names()) or 'none'})"
            )
        return self

    @property
    def file_connection(self) -> FileConnection | None:
        """The user's own connection in use (when no account is set here)."""
        return self._connection

    @property
    def is_local(self) -> bool:
        """No account configured, here or in the user's connection files: serve the local demo warehouse."""
        return not self.account and self._connection is None
