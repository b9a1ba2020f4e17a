"""Retool fixtures: one contract server per session on 127.0.0.1, reset for every test.

The server (tests/servers/retool/contract_server.py) is a real HTTP server on a real socket,
following Retool's v2 contract; the real httpx client talks to it. Time for rate limits and
backoff is a virtual clock shared by the server's window and the client's limiter, so throttling
is checked exactly, from the request log, without waiting a real minute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from servers.retool.contract_org import Org
from servers.retool.contract_server import ContractServer
from servers.retool.harness import ADMIN_TOKEN, TOKENS, Retool, TrackedLimiter, TrackedTransport, VirtualClock
from sophia_retool.client import RetoolClient
from sophia_retool.settings import RetoolSettings
from sophia_retool.tools import build_server
from sophia_shared.server import SophiaServer


@pytest.fixture(scope="session")
def contract_server() -> Iterator[ContractServer]:
    server = ContractServer(tokens=TOKENS).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def retool(contract_server: ContractServer) -> Retool:
    """A fresh seeded organisation, an empty log, a generous limit and a new virtual clock."""
    clock = VirtualClock()
    contract_server.org = Org()
    contract_server.clock = clock
    contract_server.rate_limit = 10_000
    contract_server.window_s = 60.0
    contract_server.fail_next.clear()
    contract_server.reset_window()
    contract_server.clear_log()
    return Retool(contract_server, clock)


@pytest.fixture
def settings_for(retool: Retool) -> Callable[..., RetoolSettings]:
    def make(**overrides: Any) -> RetoolSettings:
        values: dict[str, Any] = {
            "base_url": retool.base_url,
            "api_token": ADMIN_TOKEN,
            # The rate is not under test here; tests of throttling set their own.
            "rate_limit_per_minute": 6_000,
            "workflow_keys": retool.hook_keys(),
            "trigger_wait_s": 10.0,
        }
        values.update(overrides)
        return RetoolSettings(**values)

    return make


@pytest.fixture
async def make_client(retool: Retool) -> AsyncIterator[Callable[..., RetoolClient]]:
    made: list[RetoolClient] = []

    def make(settings: RetoolSettings) -> RetoolClient:
        limiter = TrackedLimiter(settings.rate_limit_per_minute, retool.clock)
        client = RetoolClient(settings, clock=retool.clock, limiter=limiter, transport=TrackedTransport(retool.clock))
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
def make_server(
    settings_for: Callable[..., RetoolSettings], make_client: Callable[..., RetoolClient]
) -> Callable[..., SophiaServer]:
    def make(**overrides: Any) -> SophiaServer:
        settings = settings_for(**overrides)
        return build_server(settings, client=make_client(settings))

    return make
