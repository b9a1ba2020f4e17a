"""Settings of the Retool server: env SOPHIA_RETOOL_*, `[retool]` in sophia.toml."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from sophia_shared.settings import ServerSettings, settings_config

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _origin(value: str | None, setting: str) -> str | None:
    if value is None or not value.strip():
        return None
    url = value.strip().rstrip("/")
    # People paste the API address they saw in Retool's docs; the instance is what we need.
    for suffix in ("/api/v2", "/api"):
        url = url.removesuffix(suffix)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"{setting} must be the instance address, e.g. https://acme.retool.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{setting} must be a plain address without credentials, query or fragment")
    return url


class RetoolSettings(ServerSettings):
    """Where the Retool instance is, the API token, workflow webhook keys and the client's manners."""

    model_config = settings_config("retool")

    base_url: str | None = Field(
        default=None,
        description="The Retool instance, e.g. https://acme.retool.com (API under /api/v2).",
    )
    api_token: SecretStr | None = Field(default=None, description="Retool API token (retool_01…).")
    workflow_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="JSON object: workflow id (UUID) -> that workflow's webhook key (retool_wk_…).",
    )
    webhook_base_url: str | None = Field(
        default=None,
        description="Where workflow webhooks live, when not on base_url (Retool Cloud: https://api.retool.com).",
    )
    rate_limit_per_minute: int = Field(
        default=45, ge=1, le=10_000, description="Client-side cap on requests in any 60 s."
    )
    daily_budget: int | None = Field(
        default=None, ge=1, le=10_000_000,
        description="Requests a day (UTC) shared by every process on one SOPHIA_HOME; unset: no daily cap.",
    )
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries on 429 and 5xx before giving up.")
    retry_base_s: float = Field(default=1.0, gt=0, le=30, description="First backoff delay; doubles per retry.")
    request_timeout_s: float = Field(default=30.0, gt=0, le=300)
    trigger_wait_s: float = Field(
        default=30.0, gt=0, le=120, description="Longest wait for a workflow's Response block."
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        return _origin(value, "base_url")

    @field_validator("webhook_base_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        return _origin(value, "webhook_base_url")

    @field_validator("workflow_keys")
    @classmethod
    def _check_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for workflow_id, key in value.items():
            if not _UUID.match(workflow_id):
                raise ValueError(f"workflow_keys: {workflow_id!r} is not a workflow id (a UUID)")
            if not key.get_secret_value().strip():
                raise ValueError(f"workflow_keys: the key for {workflow_id} is empty")
        return {k.lower(): v for k, v in value.items()}

    def missing(self) -> list[str]:
        """The env names of settings the API needs and does not have."""
        names = []
        if self.base_url is None:
            names.append("SOPHIA_RETOOL_BASE_URL")
        if self.api_token is None or not self.api_token.get_secret_value().strip():
            names.append("SOPHIA_RETOOL_API_TOKEN")
        return names
