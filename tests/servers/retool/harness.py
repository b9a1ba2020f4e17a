"""What Retool tests share: the contract server's tokens, principals, and virtual time.

Time for rate limits and backoff is a virtual clock shared by the contract server's window and the
client's limiter. It moves only when someone sleeps, and only after every request already let
through has been answered, so throttling is checked exactly, from the request log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from mcp.types import CallToolResult
from servers.retool.contract_org import Org
from servers.retool.contract_server import ContractServer
from sophia_shared.rest_limits import RateLimiter
from sophia_shared.server import Principal, Role
from sophia_shared.testing import SophiaTestClient, error_code, error_data

ALL_WRITE = {
    "apps:write",
    "folders:write",
    "users:write",
    "groups:write",
    "permissions:all:write",
    "resources:write",
    "environments:write",
    "workflows:read",
}
READ_ONLY_SCOPES = {
    "apps:read",
    "folders:read",
    "users:read",
    "groups:read",
    "permissions:all:read",
    "resources:read",
    "environments:read",
    "workflows:read",
}
ADMIN_TOKEN = "retool_01admintokenvalue"
READER_TOKEN = "retool_01readertokenvalue"
USERS_ONLY_TOKEN = "retool_01usersonlytoken"
TOKENS = {ADMIN_TOKEN: ALL_WRITE, READER_TOKEN: READ_ONLY_SCOPES, USERS_ONLY_TOKEN: {"users:read"}}

ADMIN = Principal("ada", Role.ADMIN, kind="test")
VIEWER = Principal("val", Role.VIEWER, kind="test")
DEVOPS = Principal("dev", Role.DEVOPS, kind="test")


class InFlight:
    """Requests between the limiter's go-ahead and their response."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: anyio.Event | None = None

    def start(self) -> None:
        if self.count == 0:
            self._idle = anyio.Event()
        self.count += 1

    def done(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        if self.count and self._idle is not None:
            with anyio.fail_after(10):
                await self._idle.wait()


class VirtualClock:
    """Time that moves only when someone sleeps, and only once every request already let through
    has been answered, so the server sees each request at the virtual time it was sent."""

    def __init__(self, start: float = 6_000.0) -> None:
        self._now = start
        self.slept: list[float] = []
        self.in_flight = InFlight()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await self.in_flight.wait_idle()
        self.slept.append(seconds)
        self._now += max(0.0, seconds)
        await anyio.sleep(0)


class TrackedLimiter(RateLimiter):
    """The real limiter, also counting each request it lets through as in flight."""

    def __init__(self, limit: int, clock: VirtualClock, period: float = 60.0) -> None:
        super().__init__(limit, period, clock)
        self.virtual = clock

    async def acquire(self) -> float:
        waited = await super().acquire()
        self.virtual.in_flight.start()
        return waited


class TrackedTransport(httpx.AsyncBaseTransport):
    """httpx's real transport, marking each request answered (or failed) for the virtual clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.clock.in_flight.done()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Retool:
    """One test's view of the contract server and the ids in its seeded organisation."""

    server: ContractServer
    clock: VirtualClock

    @property
    def org(self) -> Org:
        return self.server.org

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def workflow(self, name: str) -> str:
        return next(w for w, v in self.org.workflows.items() if v["name"] == name)

    def app(self, name: str) -> str:
        return next(a for a, v in self.org.apps.items() if v["name"] == name)

    def user(self, index: int) -> str:
        return list(self.org.users)[index]

    def hook_keys(self) -> dict[str, str]:
        return {w: h.key for w, h in self.org.hooks.items()}


async def confirmed(client: SophiaTestClient, name: str, args: dict[str, Any]) -> CallToolResult:
    """Call, check that confirmation is asked for, then repeat with the token as an approving user would."""
    first = await client.call(name, args)
    assert error_code(first) == "confirmation_required", first.content
    token = error_data(first)["confirmation_token"]
    return await client.call(name, {**args, "confirmation_token": token})
