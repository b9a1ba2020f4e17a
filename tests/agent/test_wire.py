"""Wire fixtures per provider format: validated against the official SDKs' types, replayed through each adapter.

The fixtures follow the formats the vendors document (hosted APIs cannot be reached here to record
them); the SDKs' pydantic types are the check that they do. Quirk fixtures (Ollama's object
arguments, an error object in a 200 stream) are asserted NOT to be valid SDK payloads: they are
what real servers send beyond the spec.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from agent.fake_provider import FakeProvider, fake_provider, fixture, json_plan, stream_plan
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.message_create_params import MessageCreateParamsStreaming
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from pydantic import TypeAdapter, ValidationError
from sophia_agent.errors import FailureKind, ProviderFailure
from sophia_agent.providers import build_model
from sophia_agent.providers.base import (
    Finished,
    Message,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallReady,
    ToolDef,
    Usage,
)
from sophia_agent.providers.config import ProviderConfig

pytestmark = pytest.mark.anyio
WEATHER = ToolDef("get_weather", "The weather in a city.",
                  {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
# A conversation with a parallel call and both its results: the Anthropic adapter must merge them.
REQUEST = ModelRequest("be brief", (
    Message("user", "weather in Paris and Rome?"),
    Message("assistant", "", (ToolCall("c1", "get_weather", {"city": "Paris"}),
                              ToolCall("c2", "get_weather", {"city": "Rome"}))),
    Message("tool", "sunny", tool_call_id="c1"), Message("tool", "rain", tool_call_id="c2", is_error=True),
    Message("user", "and Oslo?"),
), (WEATHER,))
RESPONSE_EVENT: Any = ResponseStreamEvent
SDK_EVENT: dict[str, TypeAdapter[Any]] = {
    "anthropic": TypeAdapter(RawMessageStreamEvent), "openai": TypeAdapter(ChatCompletionChunk),
    "openai-responses": TypeAdapter(ResponseStreamEvent)}


def events_of(name: str) -> list[Any]:
    out = []
    for block in fixture(name).strip().split("\n\n"):
        data = next(line[6:] for line in block.splitlines() if line.startswith("data: "))
        if data != "[DONE]":
            out.append(json.loads(data))
    return out


@pytest.mark.parametrize(("name", "kind"), [
    ("anthropic_tool_use.sse", "anthropic"), ("openai_chat_parallel.sse", "openai"),
    ("openai_chat_text.sse", "openai"), ("openai_compat_index0_stop.sse", "openai"),
    ("openai_compat_repeated_id_name.sse", "openai"), ("llamacpp_recorded_tool_call.sse", "openai"),
    ("openai_responses_function_call.sse", "openai-responses"),
    ("openai_responses_failed.sse", "openai-responses"),
])
def test_stream_fixtures_are_valid_sdk_events(name: str, kind: str) -> None:
    members = {_literal(m): m for m in typing.get_args(typing.get_args(RESPONSE_EVENT)[0])}
    for event in events_of(name):
        if event.get("type") == "ping":
            continue  # a keep-alive the SDK's union leaves out
        if kind == "openai-responses":  # the event's own class: a readable error, not one per union member
            members[event["type"]].model_validate(event)
        else:
            SDK_EVENT[kind].validate_python(event)


def _literal(model: Any) -> str:
    return str(typing.get_args(model.model_fields["type"].annotation)[0])


def test_whole_answer_fixtures_are_valid_sdk_objects() -> None:
    AnthropicMessage.model_validate_json(fixture("anthropic_tool_use.json"))
    ChatCompletion.model_validate_json(fixture("openai_chat_tool_call.json"))
    Response.model_validate_json(fixture("openai_responses_function_call.json"))


def test_quirk_fixtures_are_outside_the_spec() -> None:
    with pytest.raises(ValidationError):
        ChatCompletion.model_validate_json(fixture("ollama_chat_object_arguments.json"))
    with pytest.raises(ValidationError):
        SDK_EVENT["openai"].validate_python(events_of("openai_compat_error_in_stream.sse")[-1])
    with pytest.raises(ValidationError):
        SDK_EVENT["anthropic"].validate_python(events_of("anthropic_error_in_stream.sse")[-1])


@pytest.fixture
def server() -> Iterator[tuple[FakeProvider, str]]:
    with fake_provider() as running:
        yield running


def config(kind: str, url: str, *, stream: bool = True, **extra: Any) -> ProviderConfig:
    return ProviderConfig.model_validate({"name": kind, "kind": kind, "base_url": url, "model": "m",
                                          "stream": stream, "timeout_s": 10, **extra})


async def replay(cfg: ProviderConfig) -> list[ModelEvent]:
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(10):
            return [e async for e in build_model(cfg, client).stream(REQUEST)]


def summary(events: list[ModelEvent]) -> tuple[str, list[tuple[str, str, dict[str, Any]]], Usage | None, str]:
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    calls = [(e.call.id, e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallReady)]
    usage = next((e for e in events if isinstance(e, Usage)), None)
    finish = next(e.reason for e in events if isinstance(e, Finished))
    return text, calls, usage, finish


CASES = [
    ("anthropic", "anthropic_tool_use.sse", True,
     ("Checking the weather.", [("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather",
                                 {"location": "San Francisco, CA", "unit": "fahrenheit"}),
                                ("toolu_02", "get_time", {"tz": "PST"})], Usage(472, 89), "tool_calls")),
    ("anthropic", "anthropic_tool_use.json", False,
     ("Checking.", [("toolu_9", "get_weather", {"location": "Paris"})], Usage(100, 20), "tool_calls")),
    ("openai", "openai_chat_parallel.sse", True,
     ("", [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_time", {"tz": "CET"})], Usage(82, 31),
      "tool_calls")),
    ("openai", "openai_chat_text.sse", True, ("Forty-two.", [], Usage(12, 3), "stop")),
    ("openai", "openai_chat_tool_call.json", False,
     ("", [("call_w", "get_weather", {"city": "Paris"})], Usage(70, 15), "tool_calls")),
    # all at index 0, told apart by id; finish_reason "stop" although it called tools
    ("openai-compatible", "openai_compat_index0_stop.sse", True,
     ("", [("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_weather", {"city": "Rome"})], Usage(0, 0),
      "tool_calls")),
    # llama.cpp: id and name in every chunk, never concatenated
    ("openai-compatible", "openai_compat_repeated_id_name.sse", True,
     ("", [("call_x", "get_weather", {"city": "Oslo"})], Usage(0, 0), "tool_calls")),
    # recorded from llama-cpp-python 0.3.36's server (SmolLM2-135M): id, name and a legacy function_call in every chunk
    ("openai-compatible", "llamacpp_recorded_tool_call.sse", True,
     ("", [("call__0_echo_text_cmpl-64bb2c02-df1d-4a88-8c64-1aafd3207be2", "echo_text", {"text": "hello, world,"})],
      Usage(0, 0), "tool_calls")),
    # Ollama: arguments as an object
    ("openai-compatible", "ollama_chat_object_arguments.json", False,
     ("", [("call_o", "get_weather", {"city": "Lima"})], Usage(50, 12), "tool_calls")),
    ("openai-responses", "openai_responses_function_call.sse", True,
     ("Let me check.", [("call_1", "get_weather", {"city": "Paris"})], Usage(64, 18), "tool_calls")),
    ("openai-responses", "openai_responses_function_call.json", False,
     ("Let me check.", [("call_1", "get_weather", {"city": "Paris"})], Usage(64, 18), "tool_calls")),
]


@pytest.mark.parametrize(("kind", "name", "stream", "expected"), CASES, ids=[c[1] for c in CASES])
async def test_fixtures_replay_through_the_adapter(server: tuple[FakeProvider, str], kind: str, name: str,
                                                   stream: bool, expected: Any) -> None:
    provider, url = server
    provider.queue(stream_plan(name) if stream else json_plan(fixture(name).encode()))
    assert summary(await replay(config(kind, url, stream=stream))) == expected


@pytest.mark.parametrize(("kind", "name"), [("anthropic", "anthropic_error_in_stream.sse"),
                                            ("openai-compatible", "openai_compat_error_in_stream.sse"),
                                            ("openai-responses", "openai_responses_failed.sse")])
async def test_an_error_inside_a_200_stream_fails_typed(server: tuple[FakeProvider, str], kind: str,
                                                        name: str) -> None:
    provider, url = server
    provider.queue(stream_plan(name))
    with pytest.raises(ProviderFailure) as caught:
        await replay(config(kind, url))
    assert caught.value.kind in (FailureKind.STREAM_ERROR, FailureKind.RATE_LIMITED)


REQUEST_TYPES: dict[str, TypeAdapter[Any]] = {"anthropic": TypeAdapter(MessageCreateParamsStreaming),
                 "openai": TypeAdapter(CompletionCreateParamsStreaming),
                 "openai-responses": TypeAdapter(ResponseCreateParamsStreaming)}
REPLY = {"anthropic": "anthropic_tool_use.sse", "openai": "openai_chat_text.sse",
         "openai-responses": "openai_responses_function_call.sse"}


@pytest.mark.parametrize("kind", sorted(REQUEST_TYPES))
async def test_request_bodies_are_valid_sdk_params(server: tuple[FakeProvider, str], kind: str) -> None:
    provider, url = server
    provider.queue(stream_plan(REPLY[kind]))
    await replay(config(kind, url, api_key_env="SOPHIA_TEST_PROVIDER_KEY"))
    body = provider.requests[-1]
    REQUEST_TYPES[kind].validate_python(body)
    if kind == "anthropic":
        # Both results in ONE user message, first, right after the assistant's calls; roles alternate.
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["user", "assistant", "user"]
        results = body["messages"][2]["content"]
        assert [b["type"] for b in results] == ["tool_result", "tool_result", "text"]
        assert [b["tool_use_id"] for b in results[:2]] == ["c1", "c2"] and results[1]["is_error"] is True


async def test_no_tool_choice_for_servers_without_it(server: tuple[FakeProvider, str]) -> None:
    provider, url = server
    provider.queue(stream_plan("openai_chat_text.sse"), stream_plan("openai_chat_text.sse"))
    await replay(config("openai-compatible", url, supports_tool_choice=False))
    await replay(config("openai-compatible", url))
    assert "tool_choice" not in provider.requests[0] and provider.requests[1]["tool_choice"] == "auto"
    assert "stream_options" not in provider.requests[0]  # an OpenAI-only field


async def test_the_api_key_comes_from_the_named_env_variable(server: tuple[FakeProvider, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    provider, url = server
    monkeypatch.setenv("SOPHIA_TEST_PROVIDER_KEY", "sk-test-123")
    provider.queue(stream_plan("openai_chat_text.sse"), stream_plan("anthropic_tool_use.sse"))
    await replay(config("openai", url, api_key_env="SOPHIA_TEST_PROVIDER_KEY"))
    await replay(config("anthropic", url, api_key_env="SOPHIA_TEST_PROVIDER_KEY"))
    assert provider.headers[0]["authorization"] == "Bearer sk-test-123"
    assert provider.headers[1]["x-api-key"] == "sk-test-123" and "authorization" not in provider.headers[1]


def test_a_key_in_place_of_its_env_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="NAME of an environment variable"):
        config("openai", "http://127.0.0.1:1/v1", api_key_env="sk-live-abc/def")
