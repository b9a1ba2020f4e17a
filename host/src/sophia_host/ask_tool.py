"""`sophia_ask`, the host's MCP tool for the agent: a request in words in, the answer and its steps out.

The agent runs inside the host as the caller. It lists the tools the caller's role may use and calls
each through the host's request path (`SophiaServer.call_tool_as`), so roles, read-only mode,
confirmation and audit apply exactly as to the caller's own calls, under the ask's correlation id.
There is no caller to prompt from inside a tool, so a destructive step becomes a pending approval
for the person (`sophia approve ID`): the model cannot give it. The agent's modules are imported on
the first ask, not when the host starts.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import TYPE_CHECKING, Annotated, Any

import mcp_types as types
from pydantic import BaseModel, Field
from sophia_shared.auth import Principal, Role
from sophia_shared.redact import clip, redact
from sophia_shared.request import current_correlation_id, current_principal

if TYPE_CHECKING:
    from sophia_agent.session import ListedTool, ToolOutcome

    from .server import HostServer

ASK_TOOL = "sophia_ask"
MAX_REQUEST_CHARS = 4000
# The dashboard's agent-runs panel: the newest runs in memory, bounded (the audit log keeps every call).
KEPT_RUNS = 200
SHOWN_QUESTION_CHARS = 200


class AskStep(BaseModel):
    tool: str
    ok: bool
    error_code: str | None = None


class AskResult(BaseModel):
    # No field descriptions: every listing carries this schema, and the names say it (the tool's text explains).
    answer: str
    end_reason: str
    steps: list[AskStep]
    approvals: list[str]
    usage: dict[str, Any]  # provider, tokens_in, tokens_out, cost_usd
    error: dict[str, Any] | None = None


class AgentRuns:
    """The host's recent agent runs, newest first, for the dashboard (bounded; the text is redacted)."""

    def __init__(self, keep: int = KEPT_RUNS):
        self._runs: deque[dict[str, Any]] = deque(maxlen=keep)
        self._ids = itertools.count(1)

    def add(self, principal: Principal, request: str, result: AskResult, started: float) -> None:
        self._runs.appendleft({
            "id": f"run-{next(self._ids)}", "principal": principal.name, "status": result.end_reason,
            "question": clip(redact(request), SHOWN_QUESTION_CHARS), "provider": result.usage["provider"],
            "correlation_id": current_correlation_id(), "started": started,
            "duration_ms": round((time.time() - started) * 1000, 1), "cost_usd": result.usage["cost_usd"],
            "steps": [{"tool": s.tool, "outcome": "ok" if s.ok else s.error_code} for s in result.steps],
        })

    def recent(self, limit: int) -> list[dict[str, Any]]:
        return list(itertools.islice(self._runs, limit))


class HostToolSession:
    """The agent's tool session over the host's own request path, as one principal."""

    def __init__(self, host: HostServer, principal: Principal):
        self.host = host
        self.principal = principal

    async def list_tools(self) -> list[ListedTool]:
        from sophia_agent.session import listed

        return [listed(t) for t in await self.host.list_tools_for(self.principal) if t.name != ASK_TOOL]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        from sophia_agent.session import ToolOutcome, outcome_of

        if name == ASK_TOOL:  # never listed to the agent; a model that names it anyway is refused
            return ToolOutcome(text=f"{ASK_TOOL} cannot call itself", is_error=True, error_code="forbidden",
                               message=f"{ASK_TOOL} cannot call itself")
        result = await self.host.call_tool_as(self.principal, name, arguments)
        if isinstance(result, types.InputRequiredResult):  # not reached: there is no caller to prompt
            return ToolOutcome(text=f"{name} asked for input", is_error=True, error_code="approval_required",
                               message=f"{name} needs the person's input")
        return outcome_of(result)


async def ask_as(host: HostServer, principal: Principal, request: str, *, offline: bool) -> AskResult:
    """One request through the agent, as `principal`; its model calls are audit records of the host."""
    from sophia_agent.build import audit_sink
    from sophia_agent.events import ApprovalEvent, FinalEvent, ToolResultEvent
    from sophia_agent.runner import ask_events

    started = time.time()
    steps: list[AskStep] = []
    approvals: list[str] = []
    final: FinalEvent | None = None
    async for event in ask_events(HostToolSession(host, principal), principal, request,
                                  sink=audit_sink(host.audit), audit=host.audit, offline=offline):
        if isinstance(event, ToolResultEvent):
            steps.append(AskStep(tool=event.name, ok=event.ok, error_code=event.error_code))
        elif isinstance(event, ApprovalEvent):
            steps.append(AskStep(tool=event.tool, ok=False, error_code=event.code))
            if event.approval_id:
                approvals.append(event.approval_id)
        elif isinstance(event, FinalEvent):
            final = event
    assert final is not None  # ask_events always ends with one
    usage = {"provider": final.provider, "tokens_in": int(final.usage.get("tokens_in", 0)),
             "tokens_out": int(final.usage.get("tokens_out", 0)), "cost_usd": str(final.usage.get("cost_usd", "0"))}
    result = AskResult(answer=final.answer, end_reason=final.end_reason, steps=steps, approvals=approvals,
                       usage=usage, error=final.error)
    host.agent_runs.add(principal, request, result, started)
    return result


def register_ask_tool(host: HostServer) -> None:
    @host.tool(role=Role.VIEWER, read_only=False, destructive=False, idempotent=False, open_world=True,
               title="Ask Sophia")
    async def sophia_ask(
        request: Annotated[str, Field(description="The task, in words.", min_length=1, max_length=MAX_REQUEST_CHARS)],
        offline: Annotated[bool, Field(description="No model: the offline router picks one tool.")] = False,
    ) -> AskResult:
        """Do a task described in words: Sophia's agent picks and calls tools as you (your role, confirmation
        and audit apply) and answers; a destructive step waits for your approval (ids in approvals)."""
        return await ask_as(host, current_principal(), request, offline=offline)
