"""End to end against a real local model: llama-cpp-python's OpenAI-compatible server running SmolLM2-135M.

Built from source once per machine by `make local-llm` (a cached wheel, its own venv; ENVIRONMENT.md
"A real local LLM"). This proves the wire path — the real HTTP client, SSE streaming, tool-call
parsing and `sophia ask` through a host — not the model's judgement (135M parameters).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fixtures.local_llm import LocalLlm
from host.conftest import CHILD
from host.test_cli import SOPHIA
from sophia_agent.providers import build_model
from sophia_agent.providers.base import Message, ModelRequest, TextDelta, ToolCall, ToolCallReady, ToolDef, Usage
from sophia_agent.providers.config import ProviderConfig
from sophia_shared.audit import AuditLog

pytestmark = [pytest.mark.e2e, pytest.mark.local_llm, pytest.mark.timeout(3600)]
ECHO = ToolDef("echo_text", "Echo a text back.", {"type": "object", "properties": {"text": {"type": "string"}},
                                                  "required": ["text"]})


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make local-llm` (waits for a background build on the same lock), then the server on a free port."""
    llama = LocalLlm(tmp_path_factory.mktemp("llama") / "server.log")
    try:
        llama.start()
        yield llama.url
    finally:
        llama.stop()


def local(url: str, **extra: Any) -> ProviderConfig:
    return ProviderConfig.model_validate({"name": "local", "kind": "openai-compatible", "base_url": url,
                                          "model": "smollm2", "timeout_s": 120, "max_output_tokens": 64, **extra})


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_a_forced_tool_call_parses_from_the_real_server(llama_url: str, stream: bool) -> None:
    request = ModelRequest("You call tools.", (Message("user", 'Echo the text "hello".'),), (ECHO,),
                           max_output_tokens=64, tool_choice="required")
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(300):
            events = [e async for e in build_model(local(llama_url, stream=stream), client).stream(request)]
    calls = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert len(calls) >= 1 and calls[0].name == "echo_text" and isinstance(calls[0].arguments, dict)
    # llama.cpp repeats id and name in every chunk: one call, its name not concatenated.
    assert len({c.id for c in calls}) == len(calls)
    if not stream:
        usage = next(e for e in events if isinstance(e, Usage))
        assert usage.input_tokens > 0


@pytest.mark.anyio
async def test_the_turn_after_a_tool_call_is_accepted_by_the_real_server(llama_url: str) -> None:
    # The assistant's tool call as the agent sends it back, then its result: llama-cpp-python's server
    # refused an assistant message whose content was null (HTTP 500), which broke every second turn.
    called = ToolCall("call_1", "echo_text", {"text": "hello"})
    request = ModelRequest("You call tools.", (
        Message("user", 'Echo the text "hello".'), Message("assistant", "", (called,)),
        Message("tool", '{"text": "hello"}', tool_call_id="call_1", tool_name="echo_text"),
    ), (ECHO,), max_output_tokens=32)
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(300):
            events = [e async for e in build_model(local(llama_url, stream=False), client).stream(request)]
    assert any(isinstance(e, Usage) and e.input_tokens > 0 for e in events), events


@pytest.mark.anyio
async def test_text_streams_in_several_chunks(llama_url: str) -> None:
    request = ModelRequest("Be brief.", (Message("user", "Say hello to the team."),), max_output_tokens=32)
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(300):
            events = [e async for e in build_model(local(llama_url), client).stream(request)]
    assert sum(isinstance(e, TextDelta) for e in events) > 1


def test_sophia_ask_answers_through_the_real_model(llama_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "sophia.toml"
    config.write_text("\n".join([
        "[host]", "semantic_search = false", "installed_servers = false", "",
        "[servers.demo]", f"command = {json.dumps([sys.executable, str(CHILD), 'demo'])}", "",
        "[agent]", "max_turns = 2", "",
        "[[agent.providers]]", 'name = "local"', 'kind = "openai-compatible"', f'base_url = "{llama_url}"',
        'model = "smollm2"', "timeout_s = 120", "max_output_tokens = 48", "",
    ]))
    env = {**os.environ, "SOPHIA_CONFIG": str(config), "SOPHIA_HOME": str(home), "SOPHIA_ROUTER_SEMANTIC": "false"}
    done = subprocess.run([SOPHIA, "ask", "Say hello to the team.", "--json"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["provider"] == "local" and answer["providers"][0] == "local"
    assert answer["end_reason"] in ("answered", "turn_limit", "approval_needed") and answer["error"] is None
    assert answer["cost_usd"] == "0"
    calls = [r for r in AuditLog(home=home).records() if r["tool"] == "model_call"]
    assert calls and all('"provider":"local"' in r["arguments"] for r in calls)
    assert calls[0]["outcome"] == "ok"
