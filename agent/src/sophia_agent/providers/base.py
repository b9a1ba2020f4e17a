"""The provider interface: one neutral conversation in, one stream of model events out.

Every wire format (Anthropic Messages, OpenAI Chat Completions and Responses, OpenAI-compatible
servers) is an adapter from this to its JSON and back; the agent loop, the fallback and the tests'
scripted model see only this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant", "tool"]
FinishReason = Literal["stop", "tool_calls", "length"]


@dataclass(frozen=True)
class ToolDef:
    """A tool as the model is shown it: the MCP tool's name, description and input schema."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One turn. A `tool` message is the result of the assistant's call `tool_call_id`."""

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    is_error: bool = False


@dataclass(frozen=True)
class ModelRequest:
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolDef, ...] = ()
    max_output_tokens: int = 1024
    # "required" forces a tool call where the server supports tool_choice; "auto" lets the model answer.
    tool_choice: Literal["auto", "required", "none"] = "auto"


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallReady:
    """A complete tool call (arguments parsed). Adapters emit it only once the model's turn has ended."""

    call: ToolCall


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Finished:
    reason: FinishReason


ModelEvent = TextDelta | ToolCallReady | Usage | Finished


class Model(Protocol):
    """A model behind one provider. `stream` raises ProviderFailure for anything but a clean turn."""

    @property
    def provider(self) -> str: ...

    @property
    def model(self) -> str: ...

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]: ...


@dataclass
class TurnOutput:
    """What one model turn produced, once it ended cleanly."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    finish: FinishReason = "stop"
