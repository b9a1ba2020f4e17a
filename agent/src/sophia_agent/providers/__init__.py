"""Model providers: one adapter per wire format, built from `[[agent.providers]]`."""

from __future__ import annotations

import httpx

from .anthropic import AnthropicModel
from .base import Model
from .config import AgentSettings, ProviderConfig
from .openai_chat import OpenAIChatModel
from .openai_responses import OpenAIResponsesModel

__all__ = ["AgentSettings", "Model", "ProviderConfig", "build_model"]


def build_model(config: ProviderConfig, client: httpx.AsyncClient) -> Model:
    """The adapter for `config.kind`, sharing one HTTP client (its connection pool) with the others."""
    if config.kind == "anthropic":
        return AnthropicModel(config, client)
    if config.kind == "openai-responses":
        return OpenAIResponsesModel(config, client)
    return OpenAIChatModel(config, client)
