"""OpenAI Chat Completions, and every OpenAI-compatible server (Ollama, vLLM, llama.cpp).

Pitfalls handled here (tests/agent/test_wire_*.py): arguments as a JSON string or an object;
streamed tool calls that end with finish_reason "stop"; `id` and `name` repeated in every chunk
(llama.cpp); parallel calls that all arrive at index 0 (told apart by their ids); servers without
`tool_choice`; an error object inside a 200 stream; a stream that ends without finish or [DONE].
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import FailureKind, ProviderFailure
from .base import Finished, FinishReason, Message, ModelEvent, ModelRequest, TextDelta, ToolCall, ToolCallReady, Usage
from .config import ProviderConfig
from .http import HttpModel, classify_stream_error, parse_arguments, sse_json


def chat_messages(request: ModelRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
    for message in request.messages:
        out.append(_chat_message(message))
    return out


def _chat_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.text}
    if message.role == "assistant" and message.tool_calls:
        # "" rather than null: OpenAI takes either, llama-cpp-python's server refuses null (HTTP 500).
        return {"role": "assistant", "content": message.text, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in message.tool_calls]}
    return {"role": message.role, "content": message.text}


def chat_body(config: ProviderConfig, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": config.model, "messages": chat_messages(request),
                            "max_tokens": request.max_output_tokens, "stream": stream}
    if request.tools:
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                           "parameters": t.input_schema}} for t in request.tools]
        if config.supports_tool_choice:
            body["tool_choice"] = request.tool_choice
            if request.tool_choice == "required" and len(request.tools) == 1:
                # The named form forces the one tool everywhere; llama.cpp's chatml-function-calling
                # accepts only "auto" or this (its stream dies on "required").
                body["tool_choice"] = {"type": "function", "function": {"name": request.tools[0].name}}
    if stream and config.kind == "openai":
        body["stream_options"] = {"include_usage": True}
    return body


@dataclass
class _Pending:
    id: str
    name: str = ""
    arguments: str = ""
    parsed: dict[str, Any] | None = None


@dataclass
class ChatStreamState:
    """Tool-call fragments accumulated over a stream, keyed by index and told apart by id."""

    calls: list[_Pending] = field(default_factory=list)
    by_index: dict[int, _Pending] = field(default_factory=dict)
    finish: str | None = None
    done: bool = False

    def add(self, fragment: dict[str, Any]) -> None:
        index = fragment.get("index", len(self.calls))
        index = index if isinstance(index, int) else len(self.calls)
        call_id = fragment.get("id") or None
        function = fragment.get("function") or {}
        current = self.by_index.get(index)
        if current is None or (call_id is not None and call_id != current.id):
            # A new call; parallel calls that all say index 0 differ by id.
            current = _Pending(id=call_id or f"call_{len(self.calls)}")
            self.calls.append(current)
            self.by_index[index] = current
        name = function.get("name")
        if isinstance(name, str) and name and not current.name:
            current.name = name  # repeated in every chunk by llama.cpp: kept once, never concatenated
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            current.parsed = arguments  # an object, not a JSON string (Ollama)
        elif isinstance(arguments, str):
            current.arguments += arguments

    def tool_calls(self) -> list[ToolCall]:
        out = []
        for pending in self.calls:
            if not pending.name:
                raise ProviderFailure(FailureKind.MALFORMED, "a streamed tool call has no name")
            args = pending.parsed if pending.parsed is not None else parse_arguments(pending.arguments)
            out.append(ToolCall(id=pending.id, name=pending.name, arguments=args))
        return out


def finish_of(raw: str | None, has_calls: bool) -> FinishReason:
    if has_calls:
        return "tool_calls"  # whatever the server said ("stop" from several servers)
    return "length" if raw == "length" else "stop"


def usage_of(payload: dict[str, Any]) -> Usage | None:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int) or prompt < 0 or completion < 0:
        return None
    return Usage(prompt, completion)


class OpenAIChatModel(HttpModel):
    """Chat Completions over httpx: streamed (SSE) or one JSON answer."""

    path = "/chat/completions"

    def body(self, request: ModelRequest) -> dict[str, Any]:
        return chat_body(self.config, request, stream=self.config.stream)

    def whole(self, payload: dict[str, Any]) -> list[ModelEvent]:
        return _whole_answer(payload)

    def streamed(self, response: httpx.Response) -> AsyncIterator[ModelEvent]:
        return _streamed(response)


async def _streamed(response: httpx.Response) -> AsyncIterator[ModelEvent]:
    state = ChatStreamState()
    usage: Usage | None = None
    async for _name, chunk in sse_json(response):
        if chunk is None:
            state.done = True
            break
        if not isinstance(chunk, dict):
            raise ProviderFailure(FailureKind.MALFORMED, "a stream chunk is not a JSON object")
        if chunk.get("error"):
            raise classify_stream_error(chunk)
        usage = usage_of(chunk) or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                yield TextDelta(text)
            for fragment in delta.get("tool_calls") or []:
                if isinstance(fragment, dict):
                    state.add(fragment)
            if choice.get("finish_reason"):
                state.finish = str(choice["finish_reason"])
    if state.finish is None and not state.done:
        raise ProviderFailure(FailureKind.CUT, "the stream ended before the model finished")
    calls = state.tool_calls()
    for call in calls:
        yield ToolCallReady(call)
    yield usage or Usage(0, 0)
    yield Finished(finish_of(state.finish, bool(calls)))


def _whole_answer(payload: dict[str, Any]) -> list[ModelEvent]:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ProviderFailure(FailureKind.MALFORMED, "the answer has no choices")
    message = choices[0].get("message") or {}
    events: list[ModelEvent] = []
    if isinstance(message.get("content"), str) and message["content"]:
        events.append(TextDelta(message["content"]))
    state = ChatStreamState()
    for i, raw in enumerate(message.get("tool_calls") or []):
        if isinstance(raw, dict):
            state.add({**raw, "index": i})
    calls = state.tool_calls()
    events.extend(ToolCallReady(c) for c in calls)
    events.append(usage_of(payload) or Usage(0, 0))
    events.append(Finished(finish_of(choices[0].get("finish_reason"), bool(calls))))
    return events
