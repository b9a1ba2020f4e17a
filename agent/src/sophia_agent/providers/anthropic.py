"""Anthropic Messages: tool_use / tool_result blocks, streamed as typed SSE events.

The API wants strictly alternating roles and every tool_result in the user message right after
the assistant message that called it: consecutive tool results are merged into one user message
whose first blocks they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import FailureKind, ProviderFailure
from .base import Finished, FinishReason, ModelEvent, ModelRequest, TextDelta, ToolCall, ToolCallReady, Usage
from .config import ProviderConfig
from .http import HttpModel, classify_stream_error, parse_arguments, sse_json

API_VERSION = "2023-06-01"
_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}


def anthropic_messages(request: ModelRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or "",
                                     "content": message.text or "(no output)"}
            if message.is_error:
                block["is_error"] = True
            _append(out, "user", [block])
        elif message.role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                       for c in message.tool_calls]
            _append(out, "assistant", blocks or [{"type": "text", "text": "(no output)"}])
        else:
            _append(out, "user", [{"type": "text", "text": message.text}])
    return out


def _append(out: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if out and out[-1]["role"] == role:
        out[-1]["content"].extend(blocks)
    else:
        out.append({"role": role, "content": blocks})


def anthropic_body(config: ProviderConfig, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": config.model, "max_tokens": request.max_output_tokens,
                            "messages": anthropic_messages(request), "stream": stream}
    if request.system:
        body["system"] = request.system
    if request.tools:
        body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.input_schema}
                         for t in request.tools]
        if config.supports_tool_choice:
            body["tool_choice"] = _TOOL_CHOICE[request.tool_choice]
    return body


def _finish(stop_reason: Any, has_calls: bool) -> FinishReason:
    if has_calls:
        return "tool_calls"
    return "length" if stop_reason == "max_tokens" else "stop"


@dataclass
class _Block:
    kind: str
    id: str = ""
    name: str = ""
    json: str = ""


@dataclass
class _StreamState:
    blocks: dict[int, _Block] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: Any = None
    stopped: bool = False

    def calls(self) -> list[ToolCall]:
        return [ToolCall(b.id, b.name, parse_arguments(b.json)) for _, b in sorted(self.blocks.items())
                if b.kind == "tool_use"]


class AnthropicModel(HttpModel):
    """Anthropic Messages over httpx: streamed (SSE) or one JSON answer."""

    path = "/messages"

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        key = self.config.api_key()
        if key is not None:
            headers["x-api-key"] = key.get_secret_value()
        return headers

    def body(self, request: ModelRequest) -> dict[str, Any]:
        return anthropic_body(self.config, request, stream=self.config.stream)

    def whole(self, payload: dict[str, Any]) -> list[ModelEvent]:
        return whole_answer(payload)

    def streamed(self, response: httpx.Response) -> AsyncIterator[ModelEvent]:
        return _streamed(response)


async def _streamed(response: httpx.Response) -> AsyncIterator[ModelEvent]:
    state = _StreamState()
    async for name, data in sse_json(response):
        text = _apply(state, name, data)
        if text:
            yield TextDelta(text)
        if state.stopped:
            break
    if not state.stopped:
        raise ProviderFailure(FailureKind.CUT, "the stream ended before message_stop")
    calls = state.calls()
    for call in calls:
        yield ToolCallReady(call)
    yield Usage(state.input_tokens, state.output_tokens)
    yield Finished(_finish(state.stop_reason, bool(calls)))


def _apply(state: _StreamState, name: str, data: Any) -> str:
    """Fold one SSE event into `state`; return any text it carries."""
    if not isinstance(data, dict):
        raise ProviderFailure(FailureKind.MALFORMED, "a stream event is not a JSON object")
    kind = data.get("type", name)
    if kind == "error":
        raise classify_stream_error(data)
    if kind == "message_start":
        usage = (data.get("message") or {}).get("usage") or {}
        state.input_tokens = _count(usage.get("input_tokens"))
        state.output_tokens = _count(usage.get("output_tokens"))
    elif kind == "content_block_start":
        block = data.get("content_block") or {}
        state.blocks[_count(data.get("index"))] = _Block(kind=str(block.get("type")), id=str(block.get("id", "")),
                                                          name=str(block.get("name", "")))
    elif kind == "content_block_delta":
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta":
            return str(delta.get("text") or "")
        if delta.get("type") == "input_json_delta":
            target = state.blocks.get(_count(data.get("index")))
            if target is None:
                raise ProviderFailure(FailureKind.MALFORMED, "a tool input delta for a block never started")
            target.json += str(delta.get("partial_json") or "")
    elif kind == "message_delta":
        state.stop_reason = (data.get("delta") or {}).get("stop_reason")
        usage = data.get("usage") or {}
        if "output_tokens" in usage:
            state.output_tokens = _count(usage.get("output_tokens"))  # cumulative, not a delta
        if "input_tokens" in usage and usage.get("input_tokens") is not None:
            state.input_tokens = max(state.input_tokens, _count(usage.get("input_tokens")))
    elif kind == "message_stop":
        state.stopped = True
    return ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def whole_answer(payload: dict[str, Any]) -> list[ModelEvent]:
    content = payload.get("content")
    if not isinstance(content, list):
        raise ProviderFailure(FailureKind.MALFORMED, "the answer has no content list")
    events: list[ModelEvent] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and block.get("text"):
            events.append(TextDelta(str(block["text"])))
        elif block.get("type") == "tool_use":
            calls.append(ToolCall(str(block.get("id", "")), str(block.get("name", "")),
                                  parse_arguments(block.get("input"))))
    events.extend(ToolCallReady(c) for c in calls)
    usage = payload.get("usage") or {}
    events.append(Usage(_count(usage.get("input_tokens")), _count(usage.get("output_tokens"))))
    events.append(Finished(_finish(payload.get("stop_reason"), bool(calls))))
    return events
