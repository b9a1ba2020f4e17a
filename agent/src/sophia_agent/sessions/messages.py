"""A session's messages: user, assistant (possibly calling tools) and tool results, as stored."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["user", "assistant", "tool"]


class ToolCallRecord(BaseModel):
    """One tool call an assistant message made; its result is the tool message with the same id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=256)
    arguments: dict[str, Any] = Field(default_factory=dict)


class SessionMessage(BaseModel):
    """One message of the conversation window (the fields of the agent's provider Message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCallRecord, ...] = ()
    tool_call_id: str | None = Field(default=None, max_length=128)
    tool_name: str | None = Field(default=None, max_length=256)
    is_error: bool = False

    def size_chars(self) -> int:
        """What the message costs in characters, tool calls included (the token estimate's input)."""
        calls = sum(len(c.name) + len(json.dumps(c.arguments, default=str)) for c in self.tool_calls)
        return len(self.text) + calls


def estimate_tokens(message: SessionMessage) -> int:
    """A deterministic, offline token estimate: ~4 characters a token plus a per-message overhead."""
    return message.size_chars() // 4 + 4
