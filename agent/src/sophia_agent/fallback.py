"""Fallback across the ordered providers, and escalation from the ones marked for simple turns.

A provider that fails before its first token is put in cooldown (its Retry-After, else
`cooldown_s`; none for a fault of the request itself, e.g. context overflow) and the next one is
tried. A stream that fails after text was shown is never spliced onto another: the consumer gets a
`Restarted` marker telling it to drop the `discarded_chars` it showed, and the next provider
answers the turn from the start — or, with `restart_after_output = false`, `StreamBroken`.
Every attempt, failed or not, is a ledger (audit) record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from .errors import REQUEST_FAULTS, ProviderFailure, ProvidersExhausted, StreamBroken
from .ledger import Ledger
from .providers.base import Finished, Model, ModelRequest, TextDelta, ToolCallReady, TurnOutput, Usage
from .providers.config import ProviderConfig


@dataclass(frozen=True)
class Restarted:
    """The text shown so far for this turn (`discarded_chars` of it) is void; `to_provider` starts over."""

    from_provider: str
    to_provider: str | None
    reason: str
    discarded_chars: int


@dataclass(frozen=True)
class ProviderText:
    provider: str
    text: str


@dataclass(frozen=True)
class TurnDone:
    output: TurnOutput
    provider: ProviderConfig


ChainEvent = ProviderText | Restarted | TurnDone


@dataclass
class Cooldowns:
    """Until when (monotonic seconds) each provider is skipped; shared by every run of a process."""

    clock: Callable[[], float] = time.monotonic
    until: dict[str, float] = field(default_factory=dict)

    def cool(self, name: str, seconds: float) -> None:
        self.until[name] = max(self.until.get(name, 0.0), self.clock() + seconds)

    def cooling(self, name: str) -> bool:
        return self.until.get(name, 0.0) > self.clock()


@dataclass
class ProviderChain:
    """Ordered (config, model) pairs; `turn` runs one model turn with fallback."""

    entries: list[tuple[ProviderConfig, Model]]
    cooldowns: Cooldowns
    cooldown_s: float = 30.0
    restart_after_output: bool = True

    @property
    def names(self) -> list[str]:
        return [c.name for c, _ in self.entries]

    async def turn(self, request: ModelRequest, ledger: Ledger) -> AsyncIterator[ChainEvent]:
        available = [(c, m) for c, m in self.entries if not self.cooldowns.cooling(c.name)]
        failures: list[dict[str, str]] = [{"provider": c.name, "code": "cooling_down"}
                                          for c, _ in self.entries if self.cooldowns.cooling(c.name)]
        for index, (config, model) in enumerate(available):
            ledger.check_budget()
            output, shown, started = TurnOutput(), 0, time.monotonic()
            try:
                async for event in model.stream(request):
                    if isinstance(event, TextDelta):
                        output.text += event.text
                        shown += len(event.text)
                        yield ProviderText(config.name, event.text)
                    elif isinstance(event, ToolCallReady):
                        output.tool_calls.append(event.call)
                    elif isinstance(event, Usage):
                        output.input_tokens, output.output_tokens = event.input_tokens, event.output_tokens
                    elif isinstance(event, Finished):
                        output.finish = event.reason
            except ProviderFailure as failure:
                # A failed call reports no usage: it is recorded with 0 tokens (what the ledger can know).
                await ledger.record(config, 0, 0, _ms(started), "error", failure.kind.value)
                failures.append({"provider": config.name, "code": failure.kind.value, "message": failure.message})
                if failure.kind not in REQUEST_FAULTS:
                    self.cooldowns.cool(config.name, failure.retry_after_s
                                        if failure.retry_after_s is not None else self.cooldown_s)
                if shown:
                    if not self.restart_after_output:
                        raise StreamBroken(
                            f"{config.name} failed after its answer had started ({failure.kind.value}); "
                            "not restarted (SOPHIA_AGENT_RESTART_AFTER_OUTPUT=false)",
                            data={"provider": config.name, "reason": failure.kind.value}) from None
                    following = available[index + 1][0].name if index + 1 < len(available) else None
                    yield Restarted(config.name, following, failure.kind.value, shown)
                continue
            await ledger.record(config, output.input_tokens, output.output_tokens, _ms(started), "ok")
            yield TurnDone(output, config)
            return
        summary = ", ".join(f"{f['provider']}: {f['code']}" for f in failures) or "no provider configured"
        raise ProvidersExhausted(f"no model provider could answer ({summary})", data={"failures": failures})


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0


Validator = Callable[[TurnOutput], str | None]


@dataclass
class TieredModels:
    """The simple-turn chain first (when there is one), escalating to the strong chain when the simple
    model's turn fails `validate` (a reason string) or every simple provider failed."""

    strong: ProviderChain
    simple: ProviderChain | None = None

    @property
    def chains(self) -> list[ProviderChain]:
        return [c for c in (self.simple, self.strong) if c is not None and c.entries]

    async def turn(self, request: ModelRequest, ledger: Ledger, validate: Validator,
                   *, simple_turn: bool = True) -> AsyncIterator[ChainEvent]:
        if self.simple is None or not self.simple.entries or not simple_turn or not self.strong.entries:
            async for event in self.strong.turn(request, ledger):
                yield event
            return
        shown, last = 0, self.simple.names[0]
        reason = "the simple providers failed"
        try:
            async for event in self.simple.turn(request, ledger):
                if isinstance(event, ProviderText):
                    shown += len(event.text)
                elif isinstance(event, Restarted):
                    shown = 0
                elif isinstance(event, TurnDone):
                    last = event.provider.name
                    verdict = validate(event.output)
                    if verdict is None:
                        yield event
                        return
                    reason = f"escalated: {verdict}"
                    ledger.discard_last()  # paid for, not used: always-strongest would not have made it
                    break
                yield event
        except ProvidersExhausted:
            pass
        yield Restarted(last, self.strong.names[0], reason, shown)
        async for event in self.strong.turn(request, ledger):
            yield event
