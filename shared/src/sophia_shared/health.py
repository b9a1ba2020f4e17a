"""A server's health, from its own `check`, as one resource the composing host reads.

`sophia-<name> check` answers a person at a terminal; the host needs the same answer from a
server it already runs, without a second process. So every server started through the shared
CLI serves `sophia://health`: its check, run in that process when read (cached briefly, bounded
in time), mapped to one of three states. The host reads it over the session it already holds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import BaseModel, ValidationError

from .errors import ErrorCode, SophiaError
from .redact import redact

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

HEALTH_URI = "sophia://health"
# Generous: a local warehouse starting on a loaded 2-core machine takes tens of seconds.
CHECK_TIMEOUT_S = 30.0
# A second read within this long answers from the last check (the host re-reads after each restart).
CACHE_S = 5.0
REASON_CHARS = 300

HealthState = Literal["ready", "not_configured", "unavailable"]

log = logging.getLogger("sophia.health")


class Health(BaseModel):
    """What the check found: `ready` with its line, or why not, in words a person can act on."""

    state: HealthState
    reason: str
    code: str | None = None
    checked_at: float = 0.0


def health_of_error(exc: SophiaError) -> Health:
    state: HealthState = "not_configured" if exc.code == ErrorCode.NOT_CONFIGURED else "unavailable"
    return Health(state=state, reason=redact(exc.message)[:REASON_CHARS], code=exc.code.value,
                  checked_at=time.time())


class HealthProbe:
    """Runs a server's check at most once per CACHE_S, never longer than CHECK_TIMEOUT_S."""

    def __init__(self, check: Callable[[], Awaitable[str]], timeout_s: float = CHECK_TIMEOUT_S):
        self._check = check
        self._timeout_s = timeout_s
        self._last: Health | None = None
        self._lock = anyio.Lock()

    async def health(self) -> Health:
        async with self._lock:
            if self._last is not None and time.time() - self._last.checked_at < CACHE_S:
                return self._last
            self._last = await self._run()
            return self._last

    async def _run(self) -> Health:
        try:
            with anyio.fail_after(self._timeout_s):
                line = await self._check()
        except SophiaError as exc:
            return health_of_error(exc)
        except TimeoutError:
            return Health(state="unavailable", reason=f"the check did not finish within {self._timeout_s:g} s",
                          code=ErrorCode.UNAVAILABLE.value, checked_at=time.time())
        except Exception as exc:  # noqa: BLE001 - the check's own bug is reported as health, not raised into the read
            log.warning("health check failed: %s", type(exc).__name__)
            return Health(state="unavailable", reason=redact(f"{type(exc).__name__}: {exc}")[:REASON_CHARS],
                          code=ErrorCode.UNAVAILABLE.value, checked_at=time.time())
        return Health(state="ready", reason=redact(line)[:REASON_CHARS], checked_at=time.time())


def install_health(server: MCPServer[Any], check: Callable[[], Awaitable[str]]) -> HealthProbe:
    """Serve `sophia://health` on `server` (an MCPServer) from `check`."""
    probe = HealthProbe(check)

    @server.resource(HEALTH_URI, name="sophia_health", mime_type="application/json",
                     description="This server's own check: ready, not_configured or unavailable, and why.")
    async def sophia_health() -> str:
        return (await probe.health()).model_dump_json()

    return probe


def parse_health(text: str) -> Health | None:
    """The health a server reported, or None when the text is not one (a server that is not Sophia's)."""
    try:
        return Health.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None
