"""The router's settings and what it answers: ranked tools and one routing decision."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sophia_shared.settings import ServerSettings, settings_config


class RouterSettings(ServerSettings):
    """The offline router's settings (env SOPHIA_ROUTER_*, `[router]` in sophia.toml)."""

    model_config = settings_config("router")

    # Below this confidence the router names no tool (`tool: null`) and lists what came closest.
    abstain_below: float = Field(default=0.2, ge=0.0, le=1.0)
    # A destructive tool needs at least this much: a wrong guess there costs the most.
    destructive_abstain_below: float = Field(default=0.35, ge=0.0, le=1.0)
    # Longer sentences are cut to this many characters before any work is done on them.
    max_sentence_chars: int = Field(default=2000, ge=16, le=100_000)
    alternatives: int = Field(default=3, ge=0, le=20)
    # Rank with the shared local MiniLM as well as keywords (keywords alone when it cannot load).
    semantic: bool = True


class RankedTool(BaseModel):
    """One tool and how sure the router is that it is the one asked for (0..1)."""

    model_config = ConfigDict(frozen=True)

    tool: str
    confidence: float = Field(ge=0.0, le=1.0)


class RouteDecision(BaseModel):
    """What the offline router would do with a sentence; nothing has run.

    `tool` is null when nothing fits well enough. `missing` names the required arguments the
    sentence does not give: the caller asks for them, the router never guesses them. A destructive
    tool named here still goes through the request path's confirmation when it is called.
    """

    model_config = ConfigDict(frozen=True)

    tool: str | None
    arguments: dict[str, Any]
    missing: list[str]
    confidence: float = Field(ge=0.0, le=1.0)
    alternatives: list[RankedTool]
