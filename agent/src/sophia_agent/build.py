"""Assembling an agent from settings: the provider chains, the ledger on the audit log, the session."""

from __future__ import annotations

from decimal import Decimal

import anyio.to_thread
import httpx
from sophia_shared.audit import AuditLog, GroupCommit
from sophia_shared.auth import Principal
from sophia_shared.request import new_correlation_id

from .errors import NoProvider
from .fallback import Cooldowns, ProviderChain, TieredModels
from .ledger import AuditSink, Ledger, day_start, spent_since, strongest_of
from .loop import Agent, ToolNarrower
from .providers import build_model
from .providers.base import Model
from .providers.config import AgentSettings, ProviderConfig
from .session import ToolSession

# One process-wide cooldown table: a provider that failed for one run is skipped by the next.
COOLDOWNS = Cooldowns()


def tiered(settings: AgentSettings, entries: list[tuple[ProviderConfig, Model]],
           cooldowns: Cooldowns = COOLDOWNS) -> TieredModels:
    """The strong chain (providers not marked simple, in order) and the simple chain (those marked)."""
    if not entries:
        raise NoProvider("no model provider is configured: add [[agent.providers]] to sophia.toml "
                         "(or use --offline for the offline router)")
    simple = [(c, m) for c, m in entries if c.simple]
    strong = [(c, m) for c, m in entries if not c.simple] or simple

    def chain(pairs: list[tuple[ProviderConfig, Model]]) -> ProviderChain:
        return ProviderChain(pairs, cooldowns, settings.cooldown_s, settings.restart_after_output)

    return TieredModels(strong=chain(strong), simple=chain(simple) if simple and strong is not simple else None)


def http_models(settings: AgentSettings, client: httpx.AsyncClient) -> list[tuple[ProviderConfig, Model]]:
    return [(config, build_model(config, client)) for config in settings.providers]


def audit_sink(log: AuditLog) -> AuditSink:
    """Model-call records go through the shared audit's group commit, committed before the run goes on."""
    return GroupCommit(log).append


async def spent_today(log: AuditLog, user: str) -> Decimal:
    """What `user`'s model calls cost today (UTC), read from the audit log in a worker thread."""
    since = day_start()
    records = await anyio.to_thread.run_sync(log.records)
    return spent_since(records, user, since)


async def make_agent(settings: AgentSettings, session: ToolSession, principal: Principal, *,
                     entries: list[tuple[ProviderConfig, Model]], sink: AuditSink, audit: AuditLog | None,
                     narrower: ToolNarrower | None = None) -> Agent:
    """An agent whose model calls are recorded to `sink`; with a daily budget, today's spend comes from `audit`."""
    models = tiered(settings, entries)
    ledger = Ledger(sink, principal, correlation_id=new_correlation_id(), daily_budget=settings.daily_budget_usd,
                    strongest=strongest_of([c for c, _ in entries]))
    if settings.daily_budget_usd is not None and audit is not None:
        ledger.spent_before = await spent_today(audit, principal.name)
    return Agent(session=session, models=models, settings=settings, ledger=ledger, narrower=narrower)
