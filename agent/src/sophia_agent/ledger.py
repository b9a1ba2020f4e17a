"""The cost ledger: every model call is an audit record; costs are exact decimals; a daily budget.

There is no second log: a call's provider, model, tokens, cost, latency and outcome are the
arguments of an audit record (server `agent`, tool `model_call`) written through sophia_shared's
audit, and what a user spent today is read back from those records.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from typing import Any

from sophia_shared.audit import AuditEvent, Outcome
from sophia_shared.auth import Principal

from .errors import BudgetExceeded
from .providers.config import ProviderConfig

AUDIT_SERVER = "agent"
AUDIT_TOOL = "model_call"
MTOK = Decimal(1_000_000)

AuditSink = Callable[[AuditEvent], Awaitable[None]]


def call_cost(config: ProviderConfig, tokens_in: int, tokens_out: int) -> Decimal:
    """tokens × price per million tokens, exactly (no float anywhere)."""
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(tokens_in) * config.price_in_per_mtok + Decimal(tokens_out) * config.price_out_per_mtok) / MTOK


@dataclass(frozen=True)
class CallRecord:
    provider: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: Decimal
    latency_ms: float
    outcome: str  # ok | error | discarded (its output was escalated or restarted)
    error_code: str | None = None
    simple: bool = False


def day_start(now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.UTC)
    return dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC).timestamp()


def spent_since(records: Iterable[dict[str, Any]], user: str, since: float) -> Decimal:
    """What `user`'s model calls cost since `since` (epoch seconds), from audit records."""
    total = Decimal(0)
    for record in records:
        if (record.get("server") != AUDIT_SERVER or record.get("tool") != AUDIT_TOOL
                or record.get("principal") != user or float(record.get("ts") or 0) < since):
            continue
        try:
            arguments = json.loads(record.get("arguments") or "{}")
            total += Decimal(str(arguments.get("cost_usd", "0")))
        except (ValueError, ArithmeticError, AttributeError):
            continue  # a record we cannot read costs nothing here; verify() reports a tampered log
    return total


@dataclass
class Ledger:
    """One run's model calls for `principal`, written to `sink` (the audit log) as they end."""

    sink: AuditSink
    principal: Principal
    correlation_id: str = ""
    daily_budget: Decimal | None = None
    spent_before: Decimal = Decimal(0)
    strongest: ProviderConfig | None = None
    calls: list[CallRecord] = field(default_factory=list)

    @property
    def total_cost(self) -> Decimal:
        return sum((c.cost for c in self.calls), Decimal(0))

    @property
    def tokens_in(self) -> int:
        return sum(c.tokens_in for c in self.calls)

    @property
    def tokens_out(self) -> int:
        return sum(c.tokens_out for c in self.calls)

    def check_budget(self) -> None:
        """Refuse a further model call once today's spending reached the budget."""
        if self.daily_budget is None:
            return
        spent = self.spent_before + self.total_cost
        if spent >= self.daily_budget:
            raise BudgetExceeded(
                f"the daily model budget of ${self.daily_budget} for {self.principal.name} is spent "
                f"(${spent} today); no model call was made (SOPHIA_AGENT_DAILY_BUDGET_USD)",
                data={"reason": "daily_budget", "budget_usd": str(self.daily_budget), "spent_usd": str(spent)})

    async def record(self, config: ProviderConfig, tokens_in: int, tokens_out: int, latency_ms: float,
                     outcome: str, error_code: str | None = None) -> CallRecord:
        """Append the call to the audit log (fails closed: AuditUnavailable propagates) and to this run."""
        call = CallRecord(config.name, config.model, tokens_in, tokens_out, call_cost(config, tokens_in, tokens_out),
                          latency_ms, outcome, error_code, config.simple)
        await self.sink(AuditEvent(
            principal=self.principal.name, principal_kind=self.principal.audit_kind, role=self.principal.role.label,
            server=AUDIT_SERVER, tool=AUDIT_TOOL,
            arguments={"provider": call.provider, "model": call.model, "usage_in": tokens_in,
                       "usage_out": tokens_out, "cost_usd": str(call.cost), "latency_ms": round(latency_ms, 3),
                       "simple": call.simple, "result": outcome},
            outcome=Outcome.ERROR if outcome == "error" else Outcome.OK, error_code=error_code, duration_ms=latency_ms,
            correlation_id=self.correlation_id,
        ))
        self.calls.append(call)
        return call

    def discard_last(self) -> None:
        """The last call's output was not used (a simple turn escalated): it was paid for, but a run on
        the strongest provider alone would not have made it."""
        if self.calls:
            self.calls[-1] = replace(self.calls[-1], outcome="discarded")

    def strongest_cost(self, calls: list[CallRecord] | None = None) -> Decimal:
        """What the run would have cost on the strongest provider alone: the calls whose output was used,
        at its price (discarded calls would not have been made). Token counts differ between models, so
        this is an estimate of the saving, not a measurement."""
        calls = [c for c in (self.calls if calls is None else calls) if c.outcome != "discarded"]
        if self.strongest is None:
            return sum((c.cost for c in calls), Decimal(0))
        return sum((call_cost(self.strongest, c.tokens_in, c.tokens_out) for c in calls), Decimal(0))

    def report(self, calls: list[CallRecord] | None = None) -> dict[str, Any]:
        """Tokens, cost and the saving against the strongest provider, over `calls` (default: all)."""
        calls = self.calls if calls is None else calls
        cost = sum((c.cost for c in calls), Decimal(0))
        strongest = self.strongest_cost(calls)
        return {
            "tokens_in": sum(c.tokens_in for c in calls), "tokens_out": sum(c.tokens_out for c in calls),
            "cost_usd": str(cost), "calls": len(calls), "failed_calls": sum(c.outcome == "error" for c in calls),
            "strongest_provider": self.strongest.name if self.strongest else None,
            "strongest_cost_usd": str(strongest), "saved_usd": str(strongest - cost),
        }


def strongest_of(providers: list[ProviderConfig]) -> ProviderConfig | None:
    """The provider that costs most per token among those not marked simple (all, if every one is)."""
    pool = [p for p in providers if not p.simple] or providers
    if not pool:
        return None
    return max(pool, key=lambda p: (p.price_in_per_mtok + p.price_out_per_mtok, -pool.index(p)))
