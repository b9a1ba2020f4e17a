"""The agent loop: the model plans, tools run through the MCP session, the model answers.

Tool calls run only after the model's turn ended cleanly (never from a stream that might still be
restarted). A destructive call that needs a person's approval ends the run with `approval_needed`:
the agent never confirms for the user and never hands a confirmation token back to the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio.to_thread
import jsonschema
from sophia_shared.errors import ErrorCode, SophiaError

from .events import (
    AgentEvent,
    ApprovalEvent,
    EndReason,
    FinalEvent,
    RestartEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from .fallback import ProviderText, Restarted, TieredModels, TurnDone
from .ledger import Ledger
from .providers.base import Message, ModelRequest, ToolDef, TurnOutput
from .providers.config import AgentSettings
from .session import ToolSession

SYSTEM_PROMPT = (
    "You are Sophia's agent. You act on the company's operational systems only through the tools given. "
    "Call a tool when the request needs one, with arguments taken from the request; ask the user for a required "
    "value you do not have instead of guessing. When the tools' results answer the request, reply briefly in plain "
    "text. Never claim to have done something a tool did not confirm."
)
_APPROVAL_CODES = {ErrorCode.APPROVAL_REQUIRED.value, ErrorCode.CONFIRMATION_REQUIRED.value}
_PREVIEW_CHARS = 300


class ToolNarrower(Protocol):
    """The seam where the offline router narrows the tools a model is shown (None: all of them)."""

    def narrow(self, sentence: str, tools: list[ToolDef]) -> tuple[list[ToolDef], dict[str, float]]:
        """The tools to show and the router's confidence for each (for escalating a simple model's choice)."""
        ...


@dataclass
class Agent:
    session: ToolSession
    models: TieredModels
    settings: AgentSettings
    ledger: Ledger
    narrower: ToolNarrower | None = None
    system_prompt: str = SYSTEM_PROMPT
    history: list[Message] = field(default_factory=list)

    async def run(self, sentence: str) -> AsyncIterator[AgentEvent]:
        """One request: stream events, always ending with exactly one FinalEvent."""
        run = _Run(self, first_call=len(self.ledger.calls))
        try:
            async for event in run.steps(sentence[: self.settings.max_sentence_chars]):
                yield event
        except SophiaError as exc:
            yield run.final("error", error={"code": exc.code.value, "message": exc.message, "data": exc.data})


@dataclass
class _Run:
    agent: Agent
    first_call: int
    turns: int = 0
    providers: list[str] = field(default_factory=list)
    answer: str = ""

    def final(self, reason: EndReason, error: dict[str, Any] | None = None) -> FinalEvent:
        calls = self.agent.ledger.calls[self.first_call:]
        usage = self.agent.ledger.report(calls)
        last = self.providers[-1] if self.providers else None
        return FinalEvent(answer=self.answer, end_reason=reason, provider=last, providers=self.providers,
                          turns=self.turns, usage=usage, error=error)

    def _tokens_used(self) -> int:
        return sum(c.tokens_in + c.tokens_out for c in self.agent.ledger.calls[self.first_call:])

    async def steps(self, sentence: str) -> AsyncIterator[AgentEvent]:
        agent = self.agent
        listed = await agent.session.list_tools()
        tools = [t.tool for t in listed]
        confidence: dict[str, float] = {}
        if agent.narrower is not None:  # NARROWING SEAM: the offline router picks what the model sees
            tools, confidence = await anyio.to_thread.run_sync(agent.narrower.narrow, sentence, tools)
        messages = [*agent.history, Message("user", sentence)]
        by_name = {t.name: t for t in tools}
        while True:
            if self.turns >= agent.settings.max_turns:
                yield self.final("turn_limit")
                return
            if self._tokens_used() >= agent.settings.max_run_tokens:
                yield self.final("token_limit")
                return
            self.turns += 1
            request = ModelRequest(agent.system_prompt, tuple(messages), tuple(tools))
            output: TurnOutput | None = None
            validate = _validator(by_name, confidence, agent.settings)
            async for event in agent.models.turn(request, agent.ledger, validate):
                if isinstance(event, ProviderText):
                    yield TokenEvent(text=event.text, provider=event.provider)
                elif isinstance(event, Restarted):
                    yield RestartEvent(from_provider=event.from_provider, to_provider=event.to_provider,
                                       reason=event.reason, discarded_chars=event.discarded_chars)
                elif isinstance(event, TurnDone):
                    output = event.output
                    self.providers.append(event.provider.name)
            assert output is not None  # turn() ends with TurnDone or raises
            self.answer = output.text
            messages.append(Message("assistant", output.text, tuple(output.tool_calls)))
            if not output.tool_calls:
                agent.history = messages
                yield self.final("answered")
                return
            async for step in self._run_tools(output, messages):
                yield step
                if isinstance(step, ApprovalEvent):
                    agent.history = messages[:-1] if messages[-1].role == "assistant" else messages
                    yield self.final("approval_needed")
                    return

    async def _run_tools(self, output: TurnOutput, messages: list[Message]) -> AsyncIterator[AgentEvent]:
        limit = self.agent.settings.max_tool_result_chars
        for call in output.tool_calls:
            yield ToolCallEvent(id=call.id, name=call.name, arguments=call.arguments)
            outcome = await self.agent.session.call_tool(call.name, call.arguments)
            if outcome.error_code in _APPROVAL_CODES:
                approval = outcome.data.get("approval_id")
                yield ApprovalEvent(tool=call.name, code=outcome.error_code or "", message=outcome.message,
                                    approval_id=approval if isinstance(approval, str) else None)
                return
            text = outcome.text if len(outcome.text) <= limit else outcome.text[:limit] + " [cut: result too long]"
            if outcome.is_error:
                text = f"error {outcome.error_code}: {outcome.message or text}"
            yield ToolResultEvent(id=call.id, name=call.name, ok=not outcome.is_error, error_code=outcome.error_code,
                                  preview=text[:_PREVIEW_CHARS])
            messages.append(Message("tool", text, tool_call_id=call.id, tool_name=call.name, is_error=outcome.is_error))


def _validator(tools: dict[str, ToolDef], confidence: dict[str, float], settings: AgentSettings) -> Any:
    """Why a simple model's turn must be escalated, or None: unknown tool, arguments failing the tool's
    schema, a tool the router has low confidence in, or an empty turn."""

    def validate(output: TurnOutput) -> str | None:
        if not output.text.strip() and not output.tool_calls:
            return "empty turn"
        for call in output.tool_calls:
            tool = tools.get(call.name)
            if tool is None:
                return f"unknown tool {call.name[:80]!r}"
            try:
                jsonschema.validate(call.arguments, tool.input_schema)
            except jsonschema.ValidationError as exc:
                return f"arguments of {call.name} fail its schema ({exc.message[:120]})"
            except jsonschema.SchemaError:
                continue  # the tool's own schema is broken: the host reports it when called
            if call.name in confidence and confidence[call.name] < settings.escalate_below_confidence:
                return f"low confidence in {call.name} ({confidence[call.name]:.2f})"
        return None

    return validate
