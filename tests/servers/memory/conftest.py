"""Memory server fixtures: server settings on both real store backends, one model cache per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sophia_memory.settings import MemoryServerSettings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def server_settings(request: pytest.FixtureRequest, tmp_path: Path, models_dir: Path) -> MemoryServerSettings:
    """Settings of a memory server over a fresh, empty store on each backend."""
    if request.param == "sqlite":
        dsn = f"sqlite://{tmp_path / 'memory.db'}"
    else:
        factory: Callable[[str], str] = request.getfixturevalue("postgres_database_factory")
        dsn = factory(request.node.name)
    return MemoryServerSettings(dsn=dsn, models_dir=models_dir)
