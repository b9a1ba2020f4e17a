"""Gong settings (env SOPHIA_GONG_*, `[gong]` in sophia.toml)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from sophia_shared.settings import ServerSettings, settings_config

CREDENTIAL_SETTINGS = (
    "SOPHIA_GONG_ACCESS_KEY + SOPHIA_GONG_ACCESS_KEY_SECRET, or SOPHIA_GONG_OAUTH_TOKEN "
    "(+ SOPHIA_GONG_OAUTH_REFRESH_TOKEN, SOPHIA_GONG_OAUTH_CLIENT_ID, SOPHIA_GONG_OAUTH_CLIENT_SECRET)"
)


class GongSettings(ServerSettings):
    """Where Gong is, how to authenticate, and how gently to call it."""

    model_config = settings_config("gong")

    # The company's API host from Gong's API page; every path starts with /v2/. With OAuth the
    # token response's api_base_url_for_customer replaces it once the token has been refreshed.
    base_url: str = "https://api.gong.io"
    access_key: SecretStr | None = None
    access_key_secret: SecretStr | None = None

    oauth_token: SecretStr | None = None
    oauth_refresh_token: SecretStr | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    oauth_token_url: str = "https://app.gong.io/oauth2/generate-customer-token"  # noqa: S105 - a URL

    # Gong allows 3 requests/s and 10,000/day per company (not per key): stay under both.
    rate_limit_per_second: float = Field(default=3.0, gt=0, le=1000)
    daily_budget: int = Field(default=10_000, ge=1, le=10_000_000)
    max_retries: int = Field(default=5, ge=0, le=20)
    retry_backoff_s: float = Field(default=0.5, ge=0, le=60)
    # A 429 asking for a longer wait than this is reported instead of waited out (the daily cap).
    max_retry_after_s: float = Field(default=60.0, ge=0, le=3600)
    request_timeout_s: float = Field(default=60.0, gt=0, le=600)

    # Calls appear after processing: each sync re-reads this much before the last watermark.
    sync_overlap_hours: int = Field(default=24, ge=0, le=24 * 14)
    sync_initial_days: int = Field(default=30, ge=1, le=3650)
    max_range_days: int = Field(default=366, ge=1, le=3650)
    # Requests a sync leaves unspent each day, so interactive tools keep working after a backfill.
    sync_budget_reserve: int = Field(default=100, ge=0, le=1_000_000)

    @field_validator("base_url", "oauth_token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    def auth_mode(self) -> str | None:
        """'basic', 'oauth', or None when no credentials are set."""
        if self.access_key and self.access_key_secret:
            return "basic"
        if self.oauth_token or (self.oauth_refresh_token and self.oauth_client_id):
            return "oauth"
        return None
