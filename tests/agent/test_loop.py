"""The agent loop over a scripted model and tool session: plan, call, answer; budgets; approvals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest
from agent.scripted import MemorySink, ScriptedModel, ScriptedTools, Step, ledger, provider
from sophia_agent.build import tiered
from sophia_agent.errors import FailureKind
from sophia_agent.events import (
    AgentEvent,
    ApprovalEvent,
    FinalEvent,
    RestartEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from sophia_agent.fallback import Cooldowns
from sophia_agent.ledger import call_cost
from sophia_agent.loop import Agent
from sophia_agent.providers.base import Model, ModelRequest, ToolCall, ToolDef
from sophia_agent.providers.config import AgentSettings, ProviderConfig
from sophia_agent.session import ToolOutcome

pytestmark = pytest.mark.anyio


def make(models: list[ScriptedModel], tools: ScriptedTools, sink: MemorySink | None = None,
         **settings: Any) -> Agent:
    configs = {"cheap": provider("cheap", simple=True, price_in="0.1", price_out="0.4"),
               "strong": provider("strong", price_in="3", price_out="15")}
    entries: list[tuple[ProviderConfig, Model]] = [(configs.get(m.provider, provider(m.provider)), m) for m in models]
    agent_settings = AgentSettings(**settings)
    return Agent(session=tools, models=tiered(agent_settings, entries, Cooldowns()), settings=agent_settings,
                 ledger=ledger(sink, strongest=configs["strong"], daily_budget=agent_settings.daily_budget_usd))


async def run(agent: Agent, sentence: str = "how many rows in orders?") -> tuple[list[AgentEvent], FinalEvent]:
    with anyio.fail_after(5):
        events = [e async for e in agent.run(sentence)]
    final = events[-1]
    assert isinstance(final, FinalEvent) and sum(isinstance(e, FinalEvent) for e in events) == 1
    return events, final


def count_rows(arguments: dict[str, Any]) -> ToolOutcome:
    return ToolOutcome(text='{"rows": 42}')


async def test_plan_call_answer() -> None:
    tools = ScriptedTools({"snowflake_query": count_rows})
    model = ScriptedModel("strong", [
        Step(calls=[ToolCall("c1", "snowflake_query", {"sql": "select count(*) from orders"})], tokens=(100, 20)),
        Step(text=["There are ", "42 rows."], tokens=(150, 8)),
    ])
    events, final = await run(make([model], tools))
    assert [type(e) for e in events] == [ToolCallEvent, ToolResultEvent, TokenEvent, TokenEvent, FinalEvent]
    assert tools.calls == [("snowflake_query", {"sql": "select count(*) from orders"})]
    assert final.answer == "There are 42 rows." and final.end_reason == "answered"
    assert final.providers == ["strong", "strong"] and final.turns == 2
    assert final.usage["tokens_in"] == 250 and final.usage["tokens_out"] == 28
    assert Decimal(final.usage["cost_usd"]) == (Decimal(250) * 3 + Decimal(28) * 15) / 1_000_000
    # The tool's result follows its call in the second request.
    second = model.requests[1].messages
    assert [m.role for m in second] == ["user", "assistant", "tool"] and second[2].tool_call_id == "c1"


async def test_turn_limit_ends_the_run_with_its_reason() -> None:
    looping = ScriptedModel("strong", lambda _r: Step(calls=[ToolCall("c", "snowflake_query", {})]))
    _, final = await run(make([looping], ScriptedTools({"snowflake_query": count_rows}), max_turns=3))
    assert final.end_reason == "turn_limit" and final.turns == 3


async def test_token_budget_ends_the_run() -> None:
    looping = ScriptedModel("strong", lambda _r: Step(calls=[ToolCall("c", "snowflake_query", {})], tokens=(600, 0)))
    _, final = await run(make([looping], ScriptedTools({"snowflake_query": count_rows}), max_run_tokens=1000))
    assert final.end_reason == "token_limit" and final.turns == 2


async def test_a_destructive_call_waiting_for_approval_stops_the_run_and_never_passes_a_token_on() -> None:
    def needs_approval(arguments: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome(text="approval required", is_error=True, error_code="confirmation_required",
                           message="confirm first", data={"confirmation_token": "tok-secret", "preview": {}})

    tools = ScriptedTools({"docker_remove": needs_approval})
    model = ScriptedModel("strong", [Step(calls=[ToolCall("c1", "docker_remove", {"id": "web"})]), Step(text=["x"])])
    events, final = await run(make([model], tools))
    approval = next(e for e in events if isinstance(e, ApprovalEvent))
    assert approval.tool == "docker_remove" and approval.code == "confirmation_required"
    assert final.end_reason == "approval_needed"
    assert len(model.requests) == 1 and tools.calls == [("docker_remove", {"id": "web"})]  # never retried
    assert "tok-secret" not in "".join(e.model_dump_json() for e in events)


async def test_a_tool_error_goes_back_to_the_model_with_its_code() -> None:
    def bad(arguments: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome(text="", is_error=True, error_code="invalid_argument", message="limit must be <= 100")

    model = ScriptedModel("strong", [Step(calls=[ToolCall("c1", "q", {"limit": 1000})]), Step(text=["sorry"])])
    events, final = await run(make([model], ScriptedTools({"q": bad})))
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert not result.ok and result.error_code == "invalid_argument"
    assert model.requests[1].messages[-1].text == "error invalid_argument: limit must be <= 100"
    assert final.answer == "sorry"


async def test_the_simple_model_is_escalated_when_its_arguments_fail_the_schema() -> None:
    schema = {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]}
    tools = ScriptedTools({"snowflake_query": count_rows}, schemas={"snowflake_query": schema})
    cheap = ScriptedModel("cheap", [Step(calls=[ToolCall("c1", "snowflake_query", {"query": 1})]),
                                    Step(text=["42 rows"])])
    strong = ScriptedModel("strong", [Step(calls=[ToolCall("c2", "snowflake_query", {"sql": "select 1"})])])
    agent = make([cheap, strong], tools)
    events, final = await run(agent)
    restart = next(e for e in events if isinstance(e, RestartEvent))
    assert restart.reason.startswith("escalated: arguments of snowflake_query fail its schema")
    assert tools.calls == [("snowflake_query", {"sql": "select 1"})]  # the invalid call never ran
    assert final.providers == ["strong", "cheap"] and final.answer == "42 rows"
    # Saved against the strongest alone: the calls whose output was used, at "strong"'s price, minus what
    # the run cost. The escalated cheap call was paid for, but a strong-only run would not have made it.
    calls = agent.ledger.calls
    assert [(c.provider, c.outcome) for c in calls] == [("cheap", "discarded"), ("strong", "ok"), ("cheap", "ok")]
    assert Decimal(final.usage["cost_usd"]) == sum((c.cost for c in calls), Decimal(0))  # the waste is paid
    strongest = agent.ledger.strongest
    assert strongest is not None
    assert Decimal(final.usage["strongest_cost_usd"]) == sum(
        (call_cost(strongest, c.tokens_in, c.tokens_out) for c in calls[1:]), Decimal(0))
    assert Decimal(final.usage["saved_usd"]) == Decimal(final.usage["strongest_cost_usd"]) - Decimal(
        final.usage["cost_usd"]) > 0


async def test_low_router_confidence_escalates_a_simple_choice() -> None:
    class Narrower:
        def narrow(self, sentence: str, tools: list[ToolDef]) -> tuple[list[ToolDef], dict[str, float]]:
            return tools, {"snowflake_query": 0.1}

    cheap = ScriptedModel("cheap", [Step(calls=[ToolCall("c1", "snowflake_query", {})])])
    strong = ScriptedModel("strong", [Step(text=["I need more detail."])])
    agent = make([cheap, strong], ScriptedTools({"snowflake_query": count_rows}))
    agent.narrower = Narrower()
    events, final = await run(agent)
    assert any(isinstance(e, RestartEvent) and "low confidence" in e.reason for e in events)
    assert final.answer == "I need more detail." and final.provider == "strong"


async def test_the_daily_budget_refuses_further_spending() -> None:
    model = ScriptedModel("strong", lambda _r: Step(calls=[ToolCall("c", "q", {})], tokens=(1_000_000, 0)))
    sink = MemorySink()
    _, final = await run(make([model], ScriptedTools({"q": count_rows}), sink, daily_budget_usd="5",
                         max_run_tokens=10**9))
    assert final.end_reason == "error" and final.error is not None
    assert final.error["code"] == "limit_exceeded" and final.error["data"]["reason"] == "daily_budget"
    assert len(model.requests) == 2  # $3 spent, then $6 >= $5: the third call is never made
    assert len(sink.events) == 2


async def test_a_restart_mid_answer_shows_a_marker_and_the_answer_has_no_spliced_text() -> None:
    first = ScriptedModel("a", [Step(text=["Par", "tial"], fail=FailureKind.CUT, fail_after=1)])
    second = ScriptedModel("b", [Step(text=["Whole answer."])])
    events, final = await run(make([first, second], ScriptedTools({})))
    kinds = [(type(e).__name__, getattr(e, "text", getattr(e, "discarded_chars", None))) for e in events[:-1]]
    assert kinds == [("TokenEvent", "Par"), ("RestartEvent", 3), ("TokenEvent", "Whole answer.")]
    assert final.answer == "Whole answer." and final.usage["failed_calls"] == 1


async def test_history_carries_into_the_next_run() -> None:
    model = ScriptedModel("strong", [Step(text=["first"]), Step(text=["second"])])
    agent = make([model], ScriptedTools({}))
    await run(agent, "one")
    await run(agent, "two")
    request: ModelRequest = model.requests[1]
    assert [(m.role, m.text) for m in request.messages] == [("user", "one"), ("assistant", "first"), ("user", "two")]
