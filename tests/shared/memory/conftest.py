"""Memory store fixtures: every store test runs on both real backends (SQLite file, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sophia_shared.memory import MemorySettings, MemoryStore, open_store
from sophia_shared.memory.embeddings import local_embedder


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX cache for the whole session (the server tests use the same path), so the graph is built once."""
    path = tmp_path_factory.getbasetemp() / "memory-models"
    path.mkdir(exist_ok=True)
    local_embedder(path).load()  # built here, outside any test's time bound
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def memory_settings(
    request: pytest.FixtureRequest, tmp_path: Path, models_dir: Path
) -> MemorySettings:
    """Settings for a fresh, empty store on each backend."""
    if request.param == "sqlite":
        dsn = f"sqlite://{tmp_path / 'memory.db'}"
    else:
        factory: Callable[[str], str] = request.getfixturevalue("postgres_database_factory")
        dsn = factory(request.node.name)
    return MemorySettings(dsn=dsn, models_dir=models_dir)


@pytest.fixture
async def store(memory_settings: MemorySettings) -> AsyncIterator[MemoryStore]:
    opened = await open_store(memory_settings)
    try:
        yield opened
    finally:
        await opened.close()
