"""One request end to end, for the host's commands: settings, providers, router, loop, events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio.to_thread
import httpx
from sophia_shared.audit import AuditLog
from sophia_shared.auth import Principal
from sophia_shared.errors import SophiaError
from sophia_shared.settings import load_settings

from .build import http_models, make_agent
from .events import AgentEvent, FinalEvent
from .ledger import AuditSink
from .loop import Agent
from .narrow import RouterNarrower, router_for, run_offline
from .providers.config import AgentSettings
from .session import ToolSession


async def ask_events(session: ToolSession, principal: Principal, sentence: str, *, sink: AuditSink,
                     audit: AuditLog | None, offline: bool = False, settings: AgentSettings | None = None,
                     agent: Agent | None = None) -> AsyncIterator[AgentEvent]:
    """The events of one request; a failure to start (no provider, bad config) is the FinalEvent's error."""
    settings = settings or load_settings(AgentSettings)
    try:
        listed = await session.list_tools()
        router = await anyio.to_thread.run_sync(lambda: router_for(listed))
        if offline:
            async for event in run_offline(session, router, sentence[: settings.max_sentence_chars]):
                yield event
            return
        async with httpx.AsyncClient() as client:
            if agent is None:
                agent = await make_agent(settings, session, principal, entries=http_models(settings, client),
                                         sink=sink, audit=audit, narrower=RouterNarrower(router))
            async for event in agent.run(sentence):
                yield event
    except SophiaError as exc:
        yield FinalEvent(answer="", end_reason="error", provider=None, providers=[], turns=0, usage={},
                         error={"code": exc.code.value, "message": exc.message, "data": exc.data})
