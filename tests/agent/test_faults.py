"""The fault matrix: each wire format, streaming and not, against a local fake provider over real HTTP.

Every fault is followed by the expected fallback to the next provider (or marker, when text was
already shown) and a ledger record with the failure's stable code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from agent.fake_provider import FakeProvider, Plan, fake_provider, fixture, json_plan, sse_chunks, stream_plan
from agent.scripted import MemorySink, cooldowns, ledger
from sophia_agent.fallback import ProviderChain, ProviderText, Restarted, TurnDone
from sophia_agent.providers import build_model
from sophia_agent.providers.base import Message, ModelRequest
from sophia_agent.providers.config import ProviderConfig

pytestmark = pytest.mark.anyio
KINDS = ["openai-compatible", "anthropic", "openai-responses"]
STREAM = {"openai-compatible": ("openai_chat_text.sse", 2), "anthropic": ("anthropic_tool_use.sse", 5),
          "openai-responses": ("openai_responses_function_call.sse", 3)}  # fixture, a chunk index after some text
WHOLE = {"openai-compatible": "openai_chat_tool_call.json", "anthropic": "anthropic_tool_use.json",
         "openai-responses": "openai_responses_function_call.json"}
OVERFLOW = {
    "openai-compatible": {"error": {"message": "This model's maximum context length is 8192 tokens. However, your "
                                               "messages resulted in 9100 tokens.", "type": "invalid_request_error",
                                    "code": "context_length_exceeded"}},
    "anthropic": {"type": "error", "error": {"type": "invalid_request_error",
                                             "message": "prompt is too long: 210000 tokens > 200000 maximum"}},
    "openai-responses": {"error": {"message": "Your input exceeds the context window of this model.",
                                   "type": "invalid_request_error", "code": "context_length_exceeded"}},
}
REQUEST = ModelRequest("sys", (Message("user", "hi"),))


def fault_plan(fault: str, kind: str, stream: bool) -> Plan:
    name, index = STREAM[kind]
    error = {"error": {"message": "boom", "type": "server_error"}}
    if fault == "error_before_first_chunk":
        return json_plan(error, status=503)
    if fault == "cut_mid_stream":
        return stream_plan(name, cut_at=index) if stream else json_plan(fixture(WHOLE[kind]).encode(), cut_at=-1)
    if fault == "stall":
        return stream_plan(name, stall_at=1) if stream else json_plan(fixture(WHOLE[kind]).encode(), stall_at=0)
    if fault == "malformed":
        if not stream:
            return json_plan(b'{"id": "x", "choices": [')
        chunks = sse_chunks(fixture(name))
        chunks[index] = b'data: {"type": "content_block_delta", "delta": {"text": \n\n'
        return Plan(chunks=chunks)
    if fault == "rate_limited":
        return json_plan({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429,
                         headers={"Retry-After": "7"})
    if fault == "auth":
        return json_plan({"error": {"message": "invalid x-api-key", "type": "authentication_error"}}, status=401)
    assert fault == "context_overflow"
    return json_plan(OVERFLOW[kind], status=400)


EXPECTED = {  # fault -> (code, cooled down, text shown before it in streaming mode)
    "error_before_first_chunk": ("provider_server_error", True, False),
    "cut_mid_stream": ("provider_stream_cut", True, True),
    "stall": ("provider_timeout", True, False),
    "malformed": ("provider_malformed", True, True),
    "rate_limited": ("provider_rate_limited", True, False),
    "auth": ("provider_auth", True, False),
    "context_overflow": ("provider_context_overflow", False, False),
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeProvider, str]]:
    with fake_provider() as running:
        yield running


def configs(kind: str, url: str, stream: bool) -> tuple[ProviderConfig, ProviderConfig]:
    faulty = ProviderConfig(name="faulty", kind=kind, base_url=url, model="m", stream=stream,  # type: ignore[arg-type]
                            timeout_s=0.5)  # the stall: a short timeout, not a 30 s wait
    good = ProviderConfig(name="good", kind="openai-compatible", base_url=url, model="m", timeout_s=30)
    return faulty, good


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", sorted(EXPECTED))
async def test_fault_matrix(server: tuple[FakeProvider, str], fault: str, kind: str, stream: bool) -> None:
    provider, url = server
    provider.plans.clear()
    provider.queue(fault_plan(fault, kind, stream), stream_plan("openai_chat_text.sse"))
    faulty, good = configs(kind, url, stream)
    table, clock = cooldowns()
    sink = MemorySink()
    async with httpx.AsyncClient() as client:
        chain = ProviderChain([(faulty, build_model(faulty, client)), (good, build_model(good, client))], table)
        with anyio.fail_after(20):
            events: list[Any] = [e async for e in chain.turn(REQUEST, ledger(sink))]
    code, cooled, shown = EXPECTED[fault]
    assert [(e.arguments["provider"], e.error_code) for e in sink.events] == [("faulty", code), ("good", None)]
    done = events[-1]
    assert isinstance(done, TurnDone) and done.provider.name == "good" and done.output.text == "Forty-two."
    markers = [e for e in events if isinstance(e, Restarted)]
    if shown and stream:
        assert len(markers) == 1 and markers[0].reason == code and markers[0].to_provider == "good"
        shown_text = "".join(e.text for e in events[: events.index(markers[0])] if isinstance(e, ProviderText))
        assert markers[0].discarded_chars == len(shown_text) > 0
    else:
        assert markers == []
    assert table.cooling("faulty") is cooled
    if fault == "rate_limited":
        assert table.until["faulty"] == clock.now + 7  # Retry-After honoured, not the default cooldown


def test_error_bodies_reach_messages_redacted() -> None:
    from sophia_agent.providers.http import classify_status

    body = json.dumps({"error": {"message": "bad key sk-ant-api03-" + "x" * 40 + " for Authorization: Bearer abc"}})
    failure = classify_status(401, body.encode(), httpx.Headers())
    assert "x" * 40 not in failure.message and failure.kind.value == "provider_auth"
