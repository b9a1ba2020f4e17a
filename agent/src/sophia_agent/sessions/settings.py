"""Session settings (env SOPHIA_SESSIONS_*, `[sessions]` in sophia.toml): where sessions live and their bounds."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from sophia_shared.paths import sophia_home
from sophia_shared.settings import ServerSettings, SuiteSettings, settings_config


class SessionSettings(ServerSettings):
    """The conversation window's budget and the store's limits."""

    model_config = settings_config("sessions")

    # None: SQLite at $SOPHIA_HOME/sessions.db; `postgresql://...` selects PostgreSQL. Unset,
    # SOPHIA_DATABASE_URL (the suite's one database) is used when that is set.
    dsn: SecretStr | None = None
    # Past this many (estimated) tokens the oldest turns are summarised into the session summary.
    window_token_budget: int = Field(default=4_000, ge=64, le=1_000_000)
    summary_max_chars: int = Field(default=4_000, ge=64, le=200_000)
    max_message_chars: int = Field(default=32_000, ge=16, le=1_000_000)
    max_tool_calls_per_message: int = Field(default=32, ge=1, le=1_000)
    max_sessions_per_user: int = Field(default=1_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _default_to_database_url(self) -> SessionSettings:
        if self.dsn is None:
            self.dsn = SuiteSettings().database_url
        return self

    def postgres_dsn(self) -> str | None:
        """The PostgreSQL DSN when one is configured, else None (SQLite)."""
        dsn = self.dsn.get_secret_value() if self.dsn else ""
        return dsn if dsn.startswith(("postgresql://", "postgres://")) else None

    def sqlite_path(self) -> Path:
        """The SQLite file: `sqlite:///abs/path.db` when given, else $SOPHIA_HOME/sessions.db."""
        dsn = self.dsn.get_secret_value() if self.dsn else ""
        if dsn.startswith("sqlite://"):
            return Path(dsn.removeprefix("sqlite://")).expanduser()
        return sophia_home() / "sessions.db"
