"""A scripted model at the provider interface (in the spirit of pydantic-ai's FunctionModel), and a tool session.

A stand-in by design: it replaces the model, not any system the agent talks to, so the loop, the
fallback and the ledger can be driven turn by turn. The wire formats are tested against recorded
fixtures and a real local model server elsewhere (test_wire_*.py, test_faults.py, test_local_llm.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sophia_agent.errors import FailureKind, ProviderFailure
from sophia_agent.fallback import Cooldowns
from sophia_agent.ledger import Ledger
from sophia_agent.providers.base import (
    Finished,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallReady,
    ToolDef,
    Usage,
)
from sophia_agent.providers.config import ProviderConfig
from sophia_agent.session import ListedTool, ToolOutcome
from sophia_shared.audit import AuditEvent
from sophia_shared.auth import Principal, Role


@dataclass
class Step:
    """One scripted turn: text chunks, then tool calls; or a failure after `fail_after` chunks."""

    text: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    tokens: tuple[int, int] = (10, 5)
    fail: FailureKind | None = None
    fail_after: int = 0
    retry_after_s: float | None = None


Script = Callable[[ModelRequest], Step]


class ScriptedModel:
    """Answers each request with the next Step (or `script(request)`); records every request it saw."""

    def __init__(self, name: str, steps: list[Step] | Script, model: str = "scripted"):
        self._provider = name
        self._model = model
        self.steps = steps
        self.requests: list[ModelRequest] = []

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def model(self) -> str:
        return self._model

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        if callable(self.steps):
            step = self.steps(request)
        else:
            assert self.steps, f"{self._provider}: no scripted step left"
            step = self.steps.pop(0)
        for index, chunk in enumerate(step.text):
            if step.fail is not None and index == step.fail_after:
                raise ProviderFailure(step.fail, "scripted", retry_after_s=step.retry_after_s)
            yield TextDelta(chunk)
        if step.fail is not None:
            raise ProviderFailure(step.fail, "scripted", retry_after_s=step.retry_after_s)
        for call in step.calls:
            yield ToolCallReady(call)
        yield Usage(*step.tokens)
        yield Finished("tool_calls" if step.calls else "stop")


def provider(name: str, *, price_in: str = "0", price_out: str = "0", simple: bool = False) -> ProviderConfig:
    return ProviderConfig(name=name, kind="openai-compatible", base_url="http://127.0.0.1:9/v1", model=f"{name}-m",
                          price_in_per_mtok=Decimal(price_in), price_out_per_mtok=Decimal(price_out), simple=simple)


class MemorySink:
    """Collects audit events (the ledger's tests; the loop's tests with a real AuditLog are elsewhere)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def __call__(self, event: AuditEvent) -> None:
        self.events.append(event)


PRINCIPAL = Principal("alice", Role.DEVELOPER, kind="test")


def ledger(sink: MemorySink | None = None, **kwargs: Any) -> Ledger:
    return Ledger(sink or MemorySink(), PRINCIPAL, correlation_id="run1", **kwargs)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def cooldowns() -> tuple[Cooldowns, FakeClock]:
    clock = FakeClock()
    return Cooldowns(clock=clock), clock


class ScriptedTools:
    """A tool session answering from a dict of handlers (name -> arguments -> outcome)."""

    def __init__(self, handlers: dict[str, Callable[[dict[str, Any]], ToolOutcome]],
                 schemas: dict[str, dict[str, Any]] | None = None):
        self.handlers = handlers
        self.schemas = schemas or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def list_tools(self) -> list[ListedTool]:
        return [ListedTool(ToolDef(name, f"the {name} tool", self.schemas.get(name, {"type": "object"})), True, False)
                for name in self.handlers]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        self.calls.append((name, arguments))
        return self.handlers[name](arguments)
