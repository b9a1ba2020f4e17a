"""OpenAI Responses: input items (messages, function_call, function_call_output) and typed stream events.

The completed response's output list is authoritative for the calls; `response.failed`, `error` and
an `incomplete` response are failures or a `length` finish, never a silent partial answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..errors import FailureKind, ProviderFailure
from .base import Finished, ModelEvent, ModelRequest, TextDelta, ToolCall, ToolCallReady, Usage
from .config import ProviderConfig
from .http import HttpModel, classify_stream_error, parse_arguments, sse_json


def response_input(request: ModelRequest) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "tool":
            items.append({"type": "function_call_output", "call_id": message.tool_call_id or "",
                          "output": message.text})
            continue
        if message.text or message.role == "user":
            items.append({"role": message.role, "content": message.text})
        items.extend({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": json.dumps(c.arguments)}
                     for c in message.tool_calls)
    return items


def responses_body(config: ProviderConfig, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": config.model, "input": response_input(request),
                            "max_output_tokens": request.max_output_tokens, "stream": stream, "store": False}
    if request.system:
        body["instructions"] = request.system
    if request.tools:
        body["tools"] = [{"type": "function", "name": t.name, "description": t.description,
                          "parameters": t.input_schema} for t in request.tools]
        if config.supports_tool_choice:
            body["tool_choice"] = request.tool_choice
    return body


def _calls(output: Any) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for item in output if isinstance(output, list) else []:
        if isinstance(item, dict) and item.get("type") == "function_call":
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise ProviderFailure(FailureKind.MALFORMED, "a function_call item has no name")
            calls.append(ToolCall(str(item.get("call_id") or item.get("id") or f"call_{len(calls)}"), name,
                                  parse_arguments(item.get("arguments"))))
    return calls


def _usage(response: dict[str, Any]) -> Usage:
    usage = response.get("usage") or {}
    tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
    return Usage(tokens_in if isinstance(tokens_in, int) and tokens_in >= 0 else 0,
                 tokens_out if isinstance(tokens_out, int) and tokens_out >= 0 else 0)


def _ending(response: dict[str, Any]) -> list[ModelEvent]:
    """The calls, usage and finish of a finished response object (streamed or whole)."""
    if response.get("status") == "failed" or response.get("error"):
        raise classify_stream_error(response.get("error") or response)
    calls = _calls(response.get("output"))
    incomplete = response.get("status") == "incomplete"
    events: list[ModelEvent] = [ToolCallReady(c) for c in calls]
    events.append(_usage(response))
    events.append(Finished("tool_calls" if calls else "length" if incomplete else "stop"))
    return events


def whole_answer(payload: dict[str, Any]) -> list[ModelEvent]:
    events: list[ModelEvent] = []
    for item in payload.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text" and part.get("text"):
                    events.append(TextDelta(str(part["text"])))
    return events + _ending(payload)


class OpenAIResponsesModel(HttpModel):
    """OpenAI Responses over httpx: streamed (SSE) or one JSON answer."""

    path = "/responses"

    def body(self, request: ModelRequest) -> dict[str, Any]:
        return responses_body(self.config, request, stream=self.config.stream)

    def whole(self, payload: dict[str, Any]) -> list[ModelEvent]:
        return whole_answer(payload)

    def streamed(self, response: httpx.Response) -> AsyncIterator[ModelEvent]:
        return _streamed(response)


async def _streamed(response: httpx.Response) -> AsyncIterator[ModelEvent]:
    async for name, data in sse_json(response):
        if data is None:
            break
        if not isinstance(data, dict):
            raise ProviderFailure(FailureKind.MALFORMED, "a stream event is not a JSON object")
        kind = data.get("type", name)
        if kind == "error":
            raise classify_stream_error(data)
        if kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
            yield TextDelta(data["delta"])
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            finished = data.get("response")
            if not isinstance(finished, dict):
                raise ProviderFailure(FailureKind.MALFORMED, f"{kind} without a response object")
            for event in _ending(finished):
                yield event
            return
    raise ProviderFailure(FailureKind.CUT, "the stream ended before response.completed")
