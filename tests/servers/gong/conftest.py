"""Fixtures: one Gong contract server per session (real HTTP on 127.0.0.1), reset for every test."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from servers.gong.gong_contract_server import GongContractServer
from servers.gong.gong_dataset import generate
from sophia_gong.settings import GongSettings
from sophia_shared.memory import MemorySettings, MemoryStore, open_store

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
        sync_budget_reserve=0,
    )


@pytest.fixture(scope="session")
def gong_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gong-models")


@pytest.fixture(autouse=True)
def _shared_models_dir(gong_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the local MiniLM graph once per session, not once per test's SOPHIA_HOME."""
    monkeypatch.setenv("SOPHIA_MEMORY_MODELS_DIR", str(gong_models_dir))


class StandInEmbedder:
    """A stand-in for MiniLM where ranking is not under test (sync traffic, resume, budget): token
    hashes into 384 dimensions. It keeps those tests fast; search quality is tested with MiniLM."""

    model_id = "gong-tests-token-hash"
    dimensions = 384

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"[a-z0-9]+", text.lower()):
                rows[row, int(hashlib.blake2b(token.encode(), digest_size=4).hexdigest(), 16) % self.dimensions] += 1
            rows[row, 0] += 1e-3
            rows[row] /= np.linalg.norm(rows[row])
        return rows


@pytest.fixture
def stand_in_memory() -> Callable[[], Awaitable[MemoryStore]]:
    """Opens the real SQLite + sqlite-vec memory store (under this test's SOPHIA_HOME) with the stand-in embedder."""

    async def opener() -> MemoryStore:
        return await open_store(MemorySettings(), embedder=StandInEmbedder())

    return opener
