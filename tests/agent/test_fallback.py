"""Fallback and escalation over scripted models: cooldowns, Retry-After, restart markers, no spliced text."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from agent.scripted import MemorySink, ScriptedModel, Step, cooldowns, ledger, provider
from sophia_agent.errors import FailureKind, ProvidersExhausted, StreamBroken
from sophia_agent.fallback import ProviderChain, ProviderText, Restarted, TieredModels, TurnDone
from sophia_agent.providers.base import Message, ModelRequest, ToolCall, TurnOutput

pytestmark = pytest.mark.anyio
REQUEST = ModelRequest("sys", (Message("user", "hi"),))


async def collect(events: Any) -> list[Any]:
    with anyio.fail_after(5):
        return [e async for e in events]


def text_of(events: list[Any]) -> str:
    """What a consumer that honours Restarted shows at the end: the last attempt's text only."""
    out = ""
    for event in events:
        if isinstance(event, ProviderText):
            out += event.text
        elif isinstance(event, Restarted):
            out = out[: len(out) - event.discarded_chars]
    return out


@pytest.mark.parametrize("kind", [FailureKind.CONNECT, FailureKind.SERVER, FailureKind.TIMEOUT, FailureKind.AUTH,
                                  FailureKind.RATE_LIMITED])
async def test_a_failure_before_the_first_token_falls_over_and_cools_the_provider(kind: FailureKind) -> None:
    table, clock = cooldowns()
    first = ScriptedModel("a", [Step(fail=kind), Step(text=["never"])])
    second = ScriptedModel("b", [Step(text=["hel", "lo"]), Step(text=["again"])])
    chain = ProviderChain([(provider("a"), first), (provider("b"), second)], table, cooldown_s=30)
    sink = MemorySink()
    events = await collect(chain.turn(REQUEST, ledger(sink)))
    assert not any(isinstance(e, Restarted) for e in events)  # nothing was shown: no marker needed
    done = events[-1]
    assert isinstance(done, TurnDone) and done.provider.name == "b" and done.output.text == "hello"
    assert [(e.tool, e.arguments["provider"], e.outcome, e.error_code) for e in sink.events] == [
        ("model_call", "a", "error", kind.value), ("model_call", "b", "ok", None)]
    # Cooling down: the next turn goes straight to b; after the cooldown, a is tried again.
    await collect(chain.turn(REQUEST, ledger()))
    assert len(first.requests) == 1
    clock.now += 31
    assert isinstance((await collect(chain.turn(REQUEST, ledger())))[-1], TurnDone)
    assert len(first.requests) == 2


async def test_retry_after_sets_the_cooldown() -> None:
    table, clock = cooldowns()
    chain = ProviderChain([(provider("a"), ScriptedModel("a", [Step(fail=FailureKind.RATE_LIMITED,
                                                                      retry_after_s=120)]))],
                          table, cooldown_s=5)
    with pytest.raises(ProvidersExhausted):
        await collect(chain.turn(REQUEST, ledger()))
    clock.now += 60
    assert table.cooling("a")  # 120 s asked, not the 5 s default
    clock.now += 61
    assert not table.cooling("a")


async def test_a_request_fault_does_not_cool_the_provider() -> None:
    table, _ = cooldowns()
    chain = ProviderChain([(provider("a"), ScriptedModel("a", [Step(fail=FailureKind.CONTEXT_OVERFLOW)])),
                           (provider("b"), ScriptedModel("b", [Step(text=["ok"])]))], table)
    events = await collect(chain.turn(REQUEST, ledger()))
    assert isinstance(events[-1], TurnDone) and events[-1].provider.name == "b"
    assert not table.cooling("a")


async def test_a_stream_cut_after_tokens_restarts_on_the_next_provider_with_a_marker() -> None:
    table, _ = cooldowns()
    first = ScriptedModel("a", [Step(text=["The ", "answer ", "is"], fail=FailureKind.CUT, fail_after=2)])
    second = ScriptedModel("b", [Step(text=["Forty", "-two."])])
    chain = ProviderChain([(provider("a"), first), (provider("b"), second)], table)
    events = await collect(chain.turn(REQUEST, ledger()))
    markers = [e for e in events if isinstance(e, Restarted)]
    assert markers == [Restarted("a", "b", "provider_stream_cut", len("The answer "))]
    assert text_of(events) == "Forty-two."  # nothing spliced, nothing duplicated, nothing dropped
    done = events[-1]
    assert isinstance(done, TurnDone) and done.output.text == "Forty-two."


async def test_restart_after_output_off_fails_typed() -> None:
    table, _ = cooldowns()
    first = ScriptedModel("a", [Step(text=["x", "y"], fail=FailureKind.CUT, fail_after=1)])
    chain = ProviderChain([(provider("a"), first), (provider("b"), ScriptedModel("b", []))], table,
                          restart_after_output=False)
    with pytest.raises(StreamBroken) as caught:
        await collect(chain.turn(REQUEST, ledger()))
    assert caught.value.code.value == "upstream_error" and caught.value.data["reason"] == "provider_stream_cut"


async def test_every_provider_failing_is_one_typed_error_naming_each() -> None:
    table, _ = cooldowns()
    chain = ProviderChain([(provider("a"), ScriptedModel("a", [Step(fail=FailureKind.AUTH)])),
                           (provider("b"), ScriptedModel("b", [Step(fail=FailureKind.SERVER)]))], table)
    with pytest.raises(ProvidersExhausted) as caught:
        await collect(chain.turn(REQUEST, ledger()))
    assert [f["code"] for f in caught.value.data["failures"]] == ["provider_auth", "provider_server_error"]
    with pytest.raises(ProvidersExhausted) as again:  # both cooling down now: not even tried
        await collect(chain.turn(REQUEST, ledger()))
    assert [f["code"] for f in again.value.data["failures"]] == ["cooling_down", "cooling_down"]


def _reject_calls(output: TurnOutput) -> str | None:
    return "bad arguments" if output.tool_calls else None


async def test_a_simple_turn_that_fails_validation_escalates_to_the_strong_chain() -> None:
    table, _ = cooldowns()
    simple = ScriptedModel("cheap", [Step(calls=[ToolCall("1", "t", {"x": "wrong"})])])
    strong = ScriptedModel("strong", [Step(text=["fine"])])
    models = TieredModels(strong=ProviderChain([(provider("strong"), strong)], table),
                          simple=ProviderChain([(provider("cheap", simple=True), simple)], table))
    events = await collect(models.turn(REQUEST, ledger(), _reject_calls))
    marker = next(e for e in events if isinstance(e, Restarted))
    assert (marker.from_provider, marker.to_provider, marker.reason) == ("cheap", "strong", "escalated: bad arguments")
    done = events[-1]
    assert isinstance(done, TurnDone) and done.provider.name == "strong" and done.output.text == "fine"


async def test_a_valid_simple_turn_is_kept_and_the_strong_provider_never_called() -> None:
    table, _ = cooldowns()
    strong = ScriptedModel("strong", [])
    models = TieredModels(strong=ProviderChain([(provider("strong"), strong)], table),
                          simple=ProviderChain([(provider("cheap", simple=True),
                                                 ScriptedModel("cheap", [Step(text=["ok"])]))], table))
    events = await collect(models.turn(REQUEST, ledger(), _reject_calls))
    assert isinstance(events[-1], TurnDone) and events[-1].provider.name == "cheap"
    assert strong.requests == []
