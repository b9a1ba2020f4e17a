"""Fixtures: one Gong contract server per session (real HTTP on 127.0.0.1), reset for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers.gong.gong_contract_server import GongContractServer
from servers.gong.gong_dataset import generate
from sophia_gong.settings import GongSettings

# Where the rate is not what a test is about, both sides allow far more than Gong's 3/s.
FAST_RATE = 500.0


@pytest.fixture(scope="session")
def gong_server() -> Iterator[GongContractServer]:
    server = GongContractServer(generate(calls=300, users=130, seed=11, turns=(4, 8)))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gong(gong_server: GongContractServer) -> Iterator[GongContractServer]:
    """The session's server with an empty log, fast limits and a large daily cap."""
    gong_server.reset()
    gong_server.rate_limit = FAST_RATE
    gong_server.daily_cap = 10_000
    yield gong_server
    gong_server.reset()
    gong_server.rate_limit = FAST_RATE


@pytest.fixture
def gong_settings(gong: GongContractServer) -> GongSettings:
    return GongSettings(
        base_url=gong.base_url,
        access_key=gong.access_key,
        access_key_secret=gong.access_key_secret,
        rate_limit_per_second=FAST_RATE,
        retry_backoff_s=0.01,
    )
