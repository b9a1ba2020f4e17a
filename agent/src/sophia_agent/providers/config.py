"""Provider settings: the ordered `[[agent.providers]]` of sophia.toml (the order is the fallback order)."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from sophia_shared.settings import ServerSettings, settings_config

ProviderKind = Literal["anthropic", "openai", "openai-responses", "openai-compatible"]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DEFAULT_URLS: dict[str, str] = {
    "anthropic": "https://api.anthropic.com/v1",
    "openai": "https://api.openai.com/v1",
    "openai-responses": "https://api.openai.com/v1",
}


class ProviderConfig(BaseModel):
    """One model provider. `api_key_env` names an environment variable; the key itself is never in config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    kind: ProviderKind
    base_url: str | None = None
    model: str = Field(min_length=1, max_length=200)
    api_key_env: str | None = None
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # The first byte of the answer must arrive this fast (a stalled server fails over sooner than timeout_s).
    first_token_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    price_in_per_mtok: Decimal = Field(default=Decimal(0), ge=0)
    price_out_per_mtok: Decimal = Field(default=Decimal(0), ge=0)
    # Marked for simple turns (routing, argument filling, summaries): tried first for them, and the
    # agent escalates to the others when its output fails the tool's schema or its confidence is low.
    simple: bool = False
    stream: bool = True
    max_output_tokens: int = Field(default=1024, ge=1, le=200_000)
    # Ollama and some llama.cpp builds reject `tool_choice`: leave it out of their requests.
    supports_tool_choice: bool = True

    @field_validator("price_in_per_mtok", "price_out_per_mtok", mode="before")
    @classmethod
    def _exact_price(cls, value: object) -> object:
        # A TOML float (0.15) becomes Decimal("0.15"), not its binary expansion.
        return Decimal(str(value)) if isinstance(value, float) else value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("api_key_env is the NAME of an environment variable (e.g. ANTHROPIC_API_KEY), "
                             "never the key itself")
        return value

    @model_validator(mode="after")
    def _url(self) -> ProviderConfig:
        if self.base_url is None and self.kind == "openai-compatible":
            raise ValueError(f"provider {self.name!r}: an openai-compatible provider needs base_url")
        if self.base_url is not None and not re.match(r"^https?://", self.base_url):
            raise ValueError(f"provider {self.name!r}: base_url must start with http:// or https://")
        return self

    @property
    def url(self) -> str:
        return (self.base_url or _DEFAULT_URLS[self.kind]).rstrip("/")

    def api_key(self) -> SecretStr | None:
        """The key from the named environment variable, read when a call is made."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        return SecretStr(value) if value else None


class AgentSettings(ServerSettings):
    """The agent's settings (env SOPHIA_AGENT_*, `[agent]` in sophia.toml; `[[agent.providers]]` the providers)."""

    model_config = settings_config("agent")

    providers: list[ProviderConfig] = Field(default_factory=list)
    # Per user and UTC day, over every model call the audit log records for them. None: no limit.
    daily_budget_usd: Decimal | None = Field(default=None, ge=0)
    max_turns: int = Field(default=8, ge=1, le=100)
    # Input + output tokens over one run (all its model calls).
    max_run_tokens: int = Field(default=100_000, ge=1)
    # A provider that failed for its own reasons is skipped this long (or as long as its 429 asked).
    cooldown_s: float = Field(default=30.0, ge=0, le=86_400)
    # After text was shown, a failed stream is restarted on the next provider (with a marker event);
    # false: it fails with stream_broken instead.
    restart_after_output: bool = True
    # A simple provider's tool choice below this router confidence is escalated.
    escalate_below_confidence: float = Field(default=0.5, ge=0, le=1)
    max_tool_result_chars: int = Field(default=8_000, ge=100, le=1_000_000)
    max_sentence_chars: int = Field(default=4_000, ge=10, le=100_000)

    @field_validator("daily_budget_usd", mode="before")
    @classmethod
    def _exact_budget(cls, value: object) -> object:
        return Decimal(str(value)) if isinstance(value, float) else value

    @model_validator(mode="after")
    def _unique_names(self) -> AgentSettings:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError(f"a provider name is used twice: {sorted({n for n in names if names.count(n) > 1})}")
        return self
