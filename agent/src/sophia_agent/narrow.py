"""The offline router where the agent needs it: narrowing the tools a model is shown, and `--offline` runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .events import AgentEvent, ApprovalEvent, FinalEvent, ToolCallEvent, ToolResultEvent
from .providers.base import ToolDef
from .router import RoutableTool, Router
from .session import ListedTool, ToolSession

OFFLINE = "offline-router"
# How many tools a model is shown once the router has ranked them (all of them below this many).
SHOWN_TOOLS = 12
_APPROVAL = {"approval_required", "confirmation_required"}


def router_for(tools: list[ListedTool], **options: Any) -> Router:
    return Router((RoutableTool(t.tool.name, t.tool.description, t.tool.input_schema, t.destructive) for t in tools),
                  **options)


class RouterNarrower:
    """Shows the model the router's best `k` tools, and tells the loop the router's confidence in each."""

    def __init__(self, router: Router, k: int = SHOWN_TOOLS):
        self.router = router
        self.k = k

    def narrow(self, sentence: str, tools: list[ToolDef]) -> tuple[list[ToolDef], dict[str, float]]:
        ranked = self.router.rank(sentence, max(self.k, 1))
        confidence = {r.tool: r.confidence for r in ranked}
        if len(tools) <= self.k:
            return tools, confidence
        by_name = {t.name: t for t in tools}
        return [by_name[r.tool] for r in ranked if r.tool in by_name], confidence


def _final(answer: str, reason: Any, decision: dict[str, Any]) -> FinalEvent:
    return FinalEvent(answer=answer, end_reason=reason, provider=OFFLINE, providers=[OFFLINE], turns=1,
                      usage={"tokens_in": 0, "tokens_out": 0, "cost_usd": "0", "calls": 0, "route": decision})


async def run_offline(session: ToolSession, router: Router, sentence: str) -> AsyncIterator[AgentEvent]:
    """Route without a model: call the tool when every required argument was read from the sentence,
    ask for the missing ones, or say no tool fits. A destructive tool still meets the confirmation flow."""
    decision = router.route(sentence)
    summary = decision.model_dump()
    if decision.tool is None:
        yield _final("No tool fits this request.", "answered", summary)
        return
    if decision.missing:
        yield _final(f"{decision.tool} needs: {', '.join(decision.missing)}. Say them and ask again.",
                     "answered", summary)
        return
    yield ToolCallEvent(id="offline-1", name=decision.tool, arguments=decision.arguments)
    outcome = await session.call_tool(decision.tool, decision.arguments)
    if outcome.error_code in _APPROVAL:
        approval = outcome.data.get("approval_id")
        yield ApprovalEvent(tool=decision.tool, code=outcome.error_code or "", message=outcome.message,
                            approval_id=approval if isinstance(approval, str) else None)
        yield _final(outcome.message, "approval_needed", summary)
        return
    text = outcome.text if not outcome.is_error else f"error {outcome.error_code}: {outcome.message}"
    yield ToolResultEvent(id="offline-1", name=decision.tool, ok=not outcome.is_error, error_code=outcome.error_code,
                          preview=text[:300])
    yield _final(text, "error" if outcome.is_error else "answered", summary)
