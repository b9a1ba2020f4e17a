"""Settings of the memory server: the shared store's settings (env SOPHIA_MEMORY_*) plus result caps."""

from __future__ import annotations

from pydantic import Field
from sophia_shared.memory import MemorySettings
from sophia_shared.settings import settings_config


class MemoryServerSettings(MemorySettings):
    """What the server adds to the store's settings: how much text a result may carry."""

    model_config = settings_config("memory")

    # Per memory in a result; longer texts are cut and flagged `text_truncated`.
    result_text_chars: int = Field(default=2_000, ge=100, le=100_000)
    # All texts of one result together; hits beyond it are dropped and the result flagged `truncated`.
    result_total_chars: int = Field(default=20_000, ge=1_000, le=1_000_000)
