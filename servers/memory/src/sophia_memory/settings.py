"""Settings of the memory server: the shared store's settings (env SOPHIA_MEMORY_*) plus result caps."""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from sophia_shared.memory import MemorySettings
from sophia_shared.settings import settings_config

from .spaces import DEFAULT_SPACES, PERSONAL, SPACE_PATTERN, SpaceRule


class MemoryServerSettings(MemorySettings):
    """What the server adds to the store's settings: how much text a result may carry."""

    model_config = settings_config("memory")

    # Per memory in a result; longer texts are cut and flagged `text_truncated`.
    result_text_chars: int = Field(default=2_000, ge=100, le=100_000)
    # All texts of one result together; hits beyond it are dropped and the result flagged `truncated`.
    result_total_chars: int = Field(default=20_000, ge=1_000, le=1_000_000)
    # Shared memory spaces and who may read / write each (beside everyone's personal space), e.g.
    # SOPHIA_MEMORY_SPACES='{"team": {"read": "viewer", "write": "developer"}, "ops": {"read": "devops"}}'.
    spaces: dict[str, SpaceRule] = Field(default_factory=lambda: dict(DEFAULT_SPACES))

    @field_validator("spaces")
    @classmethod
    def _space_names(cls, value: dict[str, SpaceRule]) -> dict[str, SpaceRule]:
        for name in value:
            if name == PERSONAL or not re.fullmatch(SPACE_PATTERN, name):
                raise ValueError(f"bad space name {name[:64]!r}: lowercase letters, digits, _ and -, not 'personal'")
        return value
