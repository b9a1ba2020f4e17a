"""What a run streams to its caller: tokens, tool calls and results, approvals, restarts, the end."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

EndReason = Literal["answered", "approval_needed", "turn_limit", "token_limit", "error"]


class TokenEvent(BaseModel):
    type: Literal["token"] = "token"
    text: str
    provider: str


class RestartEvent(BaseModel):
    """The `discarded_chars` of text shown for this turn are void; the turn starts over on `to_provider`."""

    type: Literal["restart"] = "restart"
    from_provider: str
    to_provider: str | None
    reason: str
    discarded_chars: int


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any]


class ToolResultEvent(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    id: str
    name: str
    ok: bool
    error_code: str | None = None
    preview: str = Field(description="The start of what the model is shown.")


class ApprovalEvent(BaseModel):
    """A destructive call waits for the person (`sophia approve ID`, or the client's prompt); the agent stops."""

    type: Literal["approval_needed"] = "approval_needed"
    tool: str
    code: str
    message: str
    approval_id: str | None = None


class FinalEvent(BaseModel):
    type: Literal["final"] = "final"
    answer: str
    end_reason: EndReason
    provider: str | None = Field(description="The provider whose turn ended the run.")
    providers: list[str] = Field(description="Every provider that answered a turn, in order.")
    turns: int
    usage: dict[str, Any]
    error: dict[str, Any] | None = None


AgentEvent = TokenEvent | RestartEvent | ToolCallEvent | ToolResultEvent | ApprovalEvent | FinalEvent
